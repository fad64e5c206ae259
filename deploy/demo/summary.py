"""The demo's closing summary: the services' metrics next to the events they published.

Both come from one moment (demo.py waits until they agree, see `Demo.snapshot`), so each figure
that has an event counterpart must equal it; a figure that does not is shown with what the events
say instead of being silently different. Money is summed per currency, never across currencies.

Pure functions over plain data, so tests can feed them events and metric samples.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Mapping

from services.compensation.domain.money import exact, minor_units, round_money
from services.registry import NAMES

LABEL_WIDTH = 42  # the summary's label column (tests/test_demo.py reads it)

# A service reports a bad record once for every inbound topic it reads: a bad case-activity record
# is rejected by sla and by followup, one complaint.rejected each. compensation also refuses
# approval answers it cannot accept (unknown decision, approver not authorised), counted apart.
_REFUSED = "helpdesk_compensation_approvals_refused_total"


@dataclass(frozen=True)
class Sample:
    """One metric sample: `name` as exported (counters end in `_total`), its labels and value."""

    name: str
    labels: Mapping[str, str]
    value: float


def metric_samples(exposition: str) -> list[Sample]:
    """The helpdesk samples of one service's /metrics text (Prometheus exposition format)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(exposition) for s in family.samples
            if s.name.startswith("helpdesk_")]


@dataclass
class Figures:
    """The summary's metric figures, read at one moment. Counts are floats as Prometheus has them;
    money is per currency code; `rejected_by_service` maps intake/sla/compensation/followup to
    complaint.rejected events it published (its `rejected_events_total`, plus refused approvals)."""

    classified: float = 0.0
    rejected_by_service: dict[str, float] = field(default_factory=dict)
    breaches: float = 0.0
    granted_by_currency: dict[str, Decimal] = field(default_factory=dict)
    escalations: float = 0.0
    followups_due: float = 0.0
    followups_skipped: float = 0.0
    returned: float = 0.0
    first_contact_p90: float | None = None  # seconds; only Prometheus computes quantiles here

    @classmethod
    def from_samples(cls, samples: Iterable[Sample], first_contact_p90: float | None = None) -> "Figures":
        """Adds up the samples (from Prometheus or the services' /metrics) into the summary's figures."""
        f = cls(first_contact_p90=first_contact_p90)
        rejected: dict[str, float] = defaultdict(float)
        granted: dict[str, Decimal] = defaultdict(Decimal)
        for s in samples:
            name = s.name
            if name == "helpdesk_intake_complaints_classified_total":
                f.classified += s.value
            elif name.endswith("_rejected_events_total") or name == _REFUSED:
                rejected[name.split("_")[1]] += s.value
            elif name == "helpdesk_sla_breaches_total":
                f.breaches += s.value
            elif name == "helpdesk_compensation_value_granted_total":
                granted[s.labels.get("currency", "?")] += exact(s.value)
            elif name == "helpdesk_compensation_approval_escalations_total":
                f.escalations += s.value
            elif name == "helpdesk_followup_due_total":
                f.followups_due += s.value
            elif name == "helpdesk_followup_skipped_total":
                f.followups_skipped += s.value
            elif name == "helpdesk_followup_customers_returned_after_recovery_total":
                f.returned += s.value
        f.rejected_by_service = {k: v for k, v in rejected.items() if v}
        f.granted_by_currency = {c: round_money(v, c) for c, v in granted.items() if v}
        return f


@dataclass
class EventFacts:
    """What the helpdesk's published events say, for the figures that have an event counterpart."""

    types: Counter[str]
    rejected_by_service: Counter[str]
    rejected_records: int  # distinct (topic, partition, offset) among the complaint.rejected events
    granted_by_currency: dict[str, Decimal]  # compensation.granted + compensation.approved
    escalations: list[tuple[str, str, str, int]]  # (case_id, from role, to role, level)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> "EventFacts":
        """Reads the output events in the order they were consumed."""
        types: Counter[str] = Counter()
        by_service: Counter[str] = Counter()
        distinct: set[tuple[Any, Any, Any]] = set()
        granted: dict[str, Decimal] = defaultdict(Decimal)
        authority: dict[str, str] = {}
        escalations = []
        for r in records:
            kind = r.get("type", "?")
            types[kind] += 1
            if kind == "complaint.rejected":
                by_service[r.get("rejected_by") or "?"] += 1
                distinct.add((r.get("topic"), r.get("partition"), r.get("offset")))
            elif kind in ("compensation.granted", "compensation.approved") and r.get("value") is not None:
                granted[r.get("currency") or "?"] += exact(r["value"])
            elif kind == "compensation.pending_approval":
                decision, to_role = str(r.get("decision_id")), str(r.get("authority"))
                if r.get("escalated"):
                    escalations.append((str(r.get("case_id")), authority.get(decision, "?"), to_role,
                                        int(r.get("escalation_level") or 0)))
                authority[decision] = to_role
        return cls(types, by_service, len(distinct),
                   {c: round_money(v, c) for c, v in granted.items() if v}, escalations)


def money(by_currency: Mapping[str, Decimal]) -> str:
    """'USD 8,360.50, EUR 9.20': one amount per currency, in its minor units, never added together."""
    if not by_currency:
        return "none"
    return ", ".join(f"{c} {round_money(v, c):,.{minor_units(c)}f}" for c, v in sorted(by_currency.items()))


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _by_service(counts: Mapping[str, float]) -> str:
    names = sorted(counts, key=lambda s: (NAMES.index(s) if s in NAMES else len(NAMES), s))
    return ", ".join(f"{s} {_count(counts[s])}" for s in names)


def disagreements(figures: Figures, events: EventFacts) -> list[str]:
    """The figures whose metric value differs from what the published events say (empty: they agree)."""
    pairs = [
        ("complaints classified", figures.classified, events.types["complaint.classified"]),
        ("rejections", {k: v for k, v in figures.rejected_by_service.items()},
         {k: float(v) for k, v in events.rejected_by_service.items()}),
        ("SLA breaches", figures.breaches, events.types["sla.breached"]),
        ("compensation granted", figures.granted_by_currency, events.granted_by_currency),
        ("approvals escalated", figures.escalations, len(events.escalations)),
        ("follow-ups due", figures.followups_due, events.types["followup.due"]),
        ("follow-ups skipped", figures.followups_skipped, events.types["followup.skipped"]),
    ]
    return [label for label, metric, published in pairs if metric != published]


def summary_lines(figures: Figures, events: EventFacts) -> list[tuple[str, str]]:
    """The summary as (label, value) lines; a figure the events contradict says so in its value."""
    differ = set(disagreements(figures, events))

    def checked(label: str, text: str, published: str) -> str:
        return text if label not in differ else f"{text} [yellow](but the events say {published})[/]"

    rejections = sum(figures.rejected_by_service.values())
    lines = [
        ("complaints classified", checked("complaints classified", _count(figures.classified),
                                          str(events.types["complaint.classified"]))),
        ("records rejected (distinct records)", str(events.rejected_records)),
        ("rejections reported (complaint.rejected)", checked(
            "rejections", _count(rejections) + (f": {_by_service(figures.rejected_by_service)}" if rejections else ""),
            _by_service(events.rejected_by_service) or "none")),
        ("SLA breaches", checked("SLA breaches", _count(figures.breaches), str(events.types["sla.breached"]))),
        ("first-contact time p90 (s)",
         "n/a (needs Prometheus)" if figures.first_contact_p90 is None else f"{figures.first_contact_p90:,.1f}"),
        ("compensation granted", checked("compensation granted", money(figures.granted_by_currency),
                                         money(events.granted_by_currency))),
        ("approvals escalated to a higher role", checked(
            "approvals escalated",
            _count(figures.escalations) + "".join(
                f"{':' if i == 0 else ','} {case.rsplit('-', 1)[0]} {old} → {new}"
                for i, (case, old, new, _level) in enumerate(events.escalations)),
            str(len(events.escalations)))),
        ("follow-ups due", checked("follow-ups due", _count(figures.followups_due), str(events.types["followup.due"]))),
        ("follow-ups skipped (followup.skipped)", checked(
            "follow-ups skipped", _count(figures.followups_skipped), str(events.types["followup.skipped"]))),
        ("customers returned after recovery", _count(figures.returned)),
    ]
    return lines


def events_line(events: EventFacts) -> str:
    """'events published by the helpdesk: complaint.classified 10, …' (the counts the figures match)."""
    return "events published by the helpdesk: " + ", ".join(f"{k} {v}" for k, v in sorted(events.types.items()))


def render(figures: Figures, events: EventFacts) -> list[str]:
    """The summary's printed lines (rich markup), label column `LABEL_WIDTH` wide."""
    out = [f"  {label:<{LABEL_WIDTH}} {value}" for label, value in summary_lines(figures, events)]
    out.append("  " + events_line(events))
    return out
