"""One recovery scenario as the four topics carry it, with its report worked out by hand: used by the
service-layer test (tests/followup/test_recovery_service.py, in memory) and the read-model test
through Kafka (tests/followup/test_recovery_read_model.py).

Relative to `now`, report `--since 90d --within 30d`:

- A: customer CA, billing. Classified, an automated contact after 5 min (ignored: sla does not count
  it), a person calls after 2h (bucket 1-4h), an SLA clock breached, rule R1 grants USD 20.00,
  resolved 60 days ago; CA is back 10 days later: **returned**. CA complains again 3 days after the
  resolution (case D): A is a **repeat complaint**.
- B: customer CB, delivery. Contact after 30 min (<1h), `sla.met` not breached, rule R2: pending
  approval, then approved, EUR 50.00; resolved 45 days ago; CB never returns.
- C: customer CC, billing, had to ask twice (`repeat_contacts: 1`). Never contacted, compensation
  none (no rule), reopened 41 days ago and resolved again 40 days ago; CC is back 5 days later:
  **returned**.
- D: CA's new complaint, open: not in the population.

Population A, B, C: 2 of 3 back (customers: 2 of 3). billing 2/2, delivery 0/1; R1 1/1, R2 0/1,
none 1/1; breached 1/1, not breached 1/2; first contact 1-4h 1/1, <1h 0/1, no contact 1/1.
Cost per retained: R1 USD 20.00 ÷ 1 = 20.00; R2 EUR 50.00 ÷ 0 = none. Repeat complaints 1 of 3
(A); repeat contacts 1 of 3 (C).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION, SLA
from tests.builders import activity_event, classified_json

DAY, HOUR, MINUTE = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
SINCE, WITHIN = 90 * DAY, 30 * DAY


def _id() -> str:
    return str(uuid.uuid4())


def _classified(case_id: str, customer: str, category: str, received: datetime, repeat: int = 0) -> dict[str, Any]:
    return classified_json(case_id=case_id, customer_id=customer, category=category, received_at=received,
                           occurred_at=received, repeat_contacts=repeat)


def _sla(type_: str, case_id: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"event_id": _id(), "type": type_, "occurred_at": at.isoformat(), "case_id": case_id,
            "causation_id": _id(), "clock": "first_contact", "due_at": at.isoformat(), "priority": "P3", **fields}


def _compensation(type_: str, case_id: str, customer: str, decision: str, rule: str | None, value: float,
                  currency: str, at: datetime) -> dict[str, Any]:
    return {"event_id": _id(), "type": type_, "occurred_at": at.isoformat(), "case_id": case_id,
            "causation_id": _id(), "decision_id": decision, "customer_id": customer, "offers": [],
            "value": value, "currency": currency, "rule_id": rule, "policy_version": "v1", "authority": None}


def records(now: datetime, tag: str = "") -> dict[str, list[dict[str, Any]]]:
    """The scenario's records per topic (without prefix), keyed by case; `tag` makes its case and
    customer ids unique."""
    a, b, c, d = (f"{tag}A", f"{tag}B", f"{tag}C", f"{tag}D")
    ca, cb, cc = f"{tag}CA", f"{tag}CB", f"{tag}CC"
    a_res, b_res, c_res = now - 60 * DAY, now - 45 * DAY, now - 40 * DAY
    a_in, b_in, c_in = a_res - 5 * DAY, b_res - 2 * DAY, c_res - 3 * DAY
    return {
        CLASSIFIED: [
            _classified(a, ca, "billing", a_in), _classified(b, cb, "delivery", b_in),
            _classified(c, cc, "billing", c_in, repeat=1), _classified(d, ca, "billing", a_res + 3 * DAY),
        ],
        CASE_ACTIVITY: [
            activity_event("case.contacted", a, a_in + 5 * MINUTE, automated=True),
            activity_event("case.contacted", a, a_in + 2 * HOUR, by="agent"),
            activity_event("case.contacted", b, b_in + 30 * MINUTE),
            activity_event("case.promise_made", b, b_in + HOUR, promise_id="p1", due_at=(b_in + DAY).isoformat()),
            activity_event("case.resolved", a, a_res, resolution="refunded"),
            activity_event("case.resolved", b, b_res, resolution="replaced"),
            activity_event("case.reopened", c, c_res - DAY),
            activity_event("case.resolved", c, c_res, resolution="explained"),
            activity_event("customer.returned", a, a_res + 10 * DAY, customer_id=ca),
            activity_event("customer.returned", c, c_res + 5 * DAY, customer_id=cc),
            activity_event("survey.answered", a, a_res + 4 * DAY, customer_id=ca, score=9),
        ],
        SLA: [
            _sla("sla.started", a, a_in),
            _sla("sla.breached", a, a_in + HOUR, breached_at=(a_in + HOUR).isoformat()),
            _sla("sla.warning", b, b_in + 10 * MINUTE, threshold=0.5),
            _sla("sla.met", b, b_in + 30 * MINUTE, breached=False, elapsed_seconds=1800),
        ],
        COMPENSATION: [
            _compensation("compensation.granted", a, ca, f"{tag}dA", "R1", 20.0, "USD", a_in + 3 * HOUR),
            _compensation("compensation.pending_approval", b, cb, f"{tag}dB", "R2", 50.0, "EUR", b_in + HOUR),
            _compensation("compensation.approved", b, cb, f"{tag}dB", "R2", 50.0, "EUR", b_in + 5 * HOUR),
            _compensation("compensation.none", c, cc, f"{tag}dC", None, 0, "USD", c_in + HOUR),
        ],
    }


def shares(d: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(cases, returned) of each group of a report's breakdown."""
    return {k: (v.cases, v.returned) for k, v in d.items()}


def check_report(report: Any) -> None:
    """The hand-worked figures of the module doc."""
    o = report.overall
    assert (o.cases, o.returned, o.customers, o.returned_customers) == (3, 2, 3, 2)
    assert report.awaiting == 0
    assert shares(report.by_category) == {"billing": (2, 2), "delivery": (1, 0)}
    assert shares(report.by_rule) == {"R1": (1, 1), "R2": (1, 0), "none": (1, 1)}
    assert shares(report.by_breach) == {"breached": (1, 1), "not breached": (2, 1)}
    assert shares(report.by_first_contact) == {"1-4h": (1, 1), "<1h": (1, 0), "no contact": (1, 1)}
    costs = {(c.rule_id, c.currency): (c.granted, c.retained, c.per_retained) for c in report.cost_per_retained}
    assert costs == {("R1", "USD"): (Decimal("20.00"), 1, Decimal("20.00")),
                     ("R2", "EUR"): (Decimal("50.00"), 0, None)}
    assert (report.repeat_complaints, report.repeat_contact_cases) == (1, 1)


def check_report_json(data: dict[str, Any]) -> None:
    """The same figures as `helpdesk report recovery --json` prints them."""
    assert data["overall"] == {"cases": 3, "returned": 2, "customers": 3, "returned_customers": 2,
                               "returned_ratio": 2 / 3}
    assert {k: (v["cases"], v["returned"]) for k, v in data["by_rule"].items()} == {
        "R1": (1, 1), "R2": (1, 0), "none": (1, 1)}
    assert {k: (v["cases"], v["returned"]) for k, v in data["by_first_contact"].items()} == {
        "1-4h": (1, 1), "<1h": (1, 0), "no contact": (1, 1)}
    assert data["cost_per_retained"] == [
        {"rule_id": "R1", "currency": "USD", "granted": "20.00", "retained_customers": 1, "per_retained": "20.00"},
        {"rule_id": "R2", "currency": "EUR", "granted": "50.00", "retained_customers": 0, "per_retained": None},
    ]
    assert data["repeat_complaints"] == 1 and data["repeat_complaint_rate"] == 1 / 3
