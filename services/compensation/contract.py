"""The compensation service's contract (docs/contract.md): what it reads and what it publishes.
Field names are the CRM contract: add, never rename.

In:
- helpdesk.complaints.classified.v1: `complaint.classified` (shared.events.ComplaintClassified), read
  by `parse_classified`, which, unlike sla's and followup's, refuses a record that leaves out its type;
- helpdesk.compensation-approvals.v1: `compensation.approved` / `compensation.denied`
  (`ApprovalAnswer`), read by `parse_answer`;
- helpdesk.case-activity.v1: only `case.reopened` (shared.events.CaseReopened), read by `parse_reopened`.

Out:
- helpdesk.compensation.v1: `CompensationEvent`, built by `decision_event` (granted, pending_approval,
  none), `settled_event` (approved, denied) and `escalated_event` (pending_approval, escalated);
- helpdesk.complaints.rejected.v1: an approver's answer that does not count, built by `refused_answer_event`.

Amounts go out as JSON numbers in the currency's minor units (185 JPY, 15.00 USD, 1.852 BHD): the
domain computes them as exact decimals, rounded half-up (domain/money.py), and only here do they
become the JSON numbers the contract has always carried."""
from __future__ import annotations

import uuid
from datetime import datetime
from functools import partial
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared import inbound
from shared.events import CaseReopened, ComplaintClassified, ComplaintRejected, Id, Outbound, ShortText, Timestamp
from shared.inbound import RecordRef, parse_event, rejected_event

from .domain import Decision, json_number

__all__ = [
    "APPROVAL_TYPES", "ApprovalAnswer", "Approver", "CaseReopened", "CompensationEvent", "ComplaintClassified",
    "decision_event", "decision_fields", "decision_id_for", "escalated_event", "parse_answer", "parse_classified",
    "parse_reopened", "refused_answer_event", "settled_event",
]

APPROVAL_TYPES = ("compensation.approved", "compensation.denied")

# decision ids derive from the classified event: replaying it can never mint a second decision.
_DECISION_NAMESPACE = uuid.UUID("5d0c2a6e-8f1b-4c59-9a57-0c6b5e1f7a21")


def decision_id_for(classified_event_id: str) -> str:
    return str(uuid.uuid5(_DECISION_NAMESPACE, classified_event_id))


class Approver(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Id
    id: Id


class ApprovalAnswer(BaseModel):
    """A supervisor's answer to a pending compensation. `case_id` is optional: `decision_id` says which."""

    model_config = ConfigDict(extra="ignore")

    event_id: Id
    type: Literal["compensation.approved", "compensation.denied"]
    occurred_at: Timestamp
    source: Id | None = None
    case_id: Id | None = None
    decision_id: Id
    approver: Approver
    note: ShortText | None = None  # free text: stored nowhere, logged never

    @property
    def approved(self) -> bool:
        return self.type == "compensation.approved"


# ---------- In ----------
# Compensation, unlike sla and followup, refuses a complaint.classified that does not say its type.
parse_classified = partial(inbound.parse_classified, type_required=True)
parse_classified.__doc__ = """A `complaint.classified` record's value → ComplaintClassified, or RejectedInput
(`unknown_type` when its `type` is missing or another; see shared.inbound.parse_classified)."""


def parse_answer(raw: bytes | None) -> ApprovalAnswer:
    """An approval answer record's value → ApprovalAnswer, or RejectedInput (empty, not_json,
    unknown_type, invalid_fields; docs/contract.md, "Rejected records")."""
    return parse_event(raw, ApprovalAnswer, APPROVAL_TYPES)


def parse_reopened(raw: bytes | None) -> CaseReopened:
    """A case-activity record's value → CaseReopened, or RejectedInput for any other type or a bad record."""
    return parse_event(raw, CaseReopened, ("case.reopened",))


# ---------- Out ----------
def decision_fields(decision: Decision, decision_id: str, customer_id: str) -> dict[str, Any]:
    """The fields every compensation event carries, null where a decision has none (never left out)."""
    return {
        "decision_id": decision_id,
        "customer_id": customer_id,
        "offers": decision.offers,
        "value": json_number(decision.value),
        "currency": decision.currency,
        "rule_id": decision.rule_id,
        "policy_version": decision.policy_version,
        "authority": decision.authority,
        "reason_code": decision.reason_code,
        "reason_codes": list(decision.reason_codes),
    }


class CompensationEvent(Outbound):
    """The shape of every event on helpdesk.compensation.v1 (for the AsyncAPI spec and readers)."""

    type: Literal["compensation.granted", "compensation.pending_approval", "compensation.approved",
                  "compensation.denied", "compensation.none"]
    case_id: str
    decision_id: str
    customer_id: str
    offers: list[dict[str, Any]]  # e.g. {"kind": "coupon", "percent": 15}, {"kind": "free_shipping"}
    value: float  # estimated cost, in `currency`, rounded to its minor units (JPY 0 decimals, USD 2, BHD 3)
    currency: str
    rule_id: str | None
    policy_version: str
    authority: str | None  # the role whose limit covered it
    reason_code: str | None = None
    reason_codes: list[str] = []
    approver: Approver | None = None  # approved / denied
    escalated: bool | None = None  # a pending approval handed to the next role
    escalation_level: int | None = None


def decision_event(decision: Decision, decision_id: str, case_id: str, customer_id: str, causation_id: str,
                   occurred_at: datetime) -> dict[str, Any]:
    """`compensation.granted` | `compensation.pending_approval` | `compensation.none`."""
    event = Outbound(type=f"compensation.{decision.outcome}", case_id=case_id, causation_id=causation_id,
                     occurred_at=occurred_at, **decision_fields(decision, decision_id, customer_id))
    return event.model_dump(mode="json")  # keeps nulls: rule_id and authority are contract fields


def settled_event(stored: dict[str, Any], answer: ApprovalAnswer, occurred_at: datetime) -> dict[str, Any]:
    """`compensation.approved` | `compensation.denied`, repeating what was approved and by whom."""
    fields = {k: stored[k] for k in ("decision_id", "customer_id", "offers", "currency", "rule_id",
                                      "policy_version", "authority", "reason_code", "reason_codes")}
    fields["value"] = json_number(stored["value"])
    event = Outbound(type=answer.type, case_id=stored["case_id"], causation_id=answer.event_id,
                     occurred_at=occurred_at, approver={"role": answer.approver.role, "id": answer.approver.id},
                     **fields)
    return event.model_dump(mode="json")


def escalated_event(stored: dict[str, Any], to_role: str, level: int, causation_id: str,
                    occurred_at: datetime) -> dict[str, Any]:
    """A stale pending approval handed to the next role: a new `compensation.pending_approval`."""
    fields = {k: stored[k] for k in ("decision_id", "customer_id", "offers", "currency", "rule_id",
                                      "policy_version", "reason_code", "reason_codes")}
    fields["value"] = json_number(stored["value"])
    event = Outbound(type="compensation.pending_approval", case_id=stored["case_id"], causation_id=causation_id,
                     occurred_at=occurred_at, authority=to_role, escalated=True, escalation_level=level, **fields)
    return event.model_dump(mode="json")


def refused_answer_event(ref: RecordRef, answer: ApprovalAnswer, reason: str, explanation: str, service: str,
                         topic_prefix: str = "", stored: dict[str, Any] | None = None) -> ComplaintRejected:
    """The rejected event reporting an approver's answer that does not count: `reason` is the refusal
    code (domain/approvals.py), `explanation` its one error line. It names the answer's `decision_id`;
    an answer that left `case_id` out is reported with the case of the decision it named (`stored`,
    when that decision exists), so that `helpdesk rejected list --case` finds it."""
    event = rejected_event(ref, reason, [explanation], service, topic_prefix)
    event.decision_id = answer.decision_id
    if answer.case_id is None and stored is not None:
        event.case_id = stored["case_id"]
    return event
