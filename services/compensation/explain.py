"""Explains, for an admin, what the policy would decide for one classified complaint, and why."""
from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.events import ComplaintClassified

from .domain import CaseFacts, Decision, decide
from .domain.money import format_money
from .policy import CompensationPolicy

# explain needs the classification, not the envelope: a hand-written EVENT.json may leave these out.
_ENVELOPE_PLACEHOLDERS = {"case_id": "(case)", "causation_id": "(event)", "customer_id": "(customer)"}


def complaint_from_event(event: dict[str, Any]) -> ComplaintClassified:
    """The classified complaint in `event`, or ValueError saying which fields are wrong."""
    kind = event.get("type", "complaint.classified")
    if kind != "complaint.classified":
        raise ValueError(
            f"the event is {kind!r}; explain needs a complaint.classified event "
            f"(as intake publishes it on helpdesk.complaints.classified.v1)")
    try:
        return ComplaintClassified.model_validate({**_ENVELOPE_PLACEHOLDERS, **event})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"not a usable complaint.classified event: {problems}") from None


def _describe_complaint(c: ComplaintClassified) -> str:
    order = "no order" if c.order is None else f"order {format_money(c.order.amount, c.order.currency)}"
    return (f"category {c.category}, severity {c.severity}, temperament {c.temperament}, "
            f"loyalty {c.loyalty}, publicity risk {c.publicity_risk}, channel {c.channel}, "
            f"public {'yes' if c.public else 'no'}, repeat contacts {c.repeat_contacts}, {order}, "
            f"source {c.source or '-'}")


def _sections(decision: Decision) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {"Rules": [], "Extras": [], "Offers": [], "Notes": []}
    for line in decision.explanation:
        if line.startswith(("rule ", "no rule")):
            sections["Rules"].append(line)
        elif line.startswith("extra "):
            sections["Extras"].append(line)
        elif line.startswith("offer "):
            sections["Offers"].append(line.removeprefix("offer "))
        elif not line.startswith("decision: "):
            sections["Notes"].append(line)
    return sections


def render(complaint: ComplaintClassified, decision: Decision) -> str:
    out = [f"Complaint: {_describe_complaint(complaint)}"]
    if decision.policy_version:
        out.append(f"Policy version: {decision.policy_version}")
    for title, lines in _sections(decision).items():
        if lines or title in ("Rules", "Offers"):
            out.append(f"{title}:")
            out.extend(f"  - {line}" for line in lines or ["(none)"])
    others = [c for c in decision.reason_codes if c != decision.reason_code]
    also = f" (also: {', '.join(others)})" if others else ""
    out += [
        f"Outcome: {decision.outcome}, rule {decision.rule_id or '-'}",
        f"Cost: {format_money(decision.value, decision.currency)}",
        f"Authority: {decision.authority or '-'}",
        f"Reason: {decision.reason_code}{also}",
    ]
    return "\n".join(out)


def explain(policy: CompensationPolicy, complaint_event: dict[str, Any], *, version: str = "",
            facts: CaseFacts = CaseFacts()) -> str:
    """Which rule matched, which did not and why, the offers, their cost and who may grant them."""
    complaint = complaint_from_event(complaint_event)
    return render(complaint, decide(complaint, policy, version, facts))
