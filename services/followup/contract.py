"""What the followup service reads and writes; the contract document is docs/contract.md.

In: `complaint.classified` on helpdesk.complaints.classified.v1 (`parse_classified`) and case
activity on helpdesk.case-activity.v1 (`parse_activity`: `case.resolved`, `case.reopened`,
`customer.returned`, `survey.answered`; the other types are the sla service's business). Both
parsers and models are shared with the other services and re-exported here from shared/.
The recovery read model also reads helpdesk.sla.v1 and helpdesk.compensation.v1 (and the two
topics above again, in its own consumer group): `RECOVERY_PARSERS`, lenient, see its section.

Out: helpdesk.followups.v1: `followup.scheduled`, `followup.due`, `followup.cancelled`,
`followup.skipped` (`FollowupsTopicEvent` is the shape of every one), built from the domain's
results by the builders at the end of this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ValidationError, field_validator

from services.followup.domain import PendingFollowup, PlannedFollowup, SkippedFollowup
from services.followup.domain.recovery import (
    Breached, CaseFact, Classified, CompensationDecided, Contacted, DecisionStatus, Reopened, Resolved, Return,
    in_minor_units,
)
from services.followup.policy import FOLLOWUP_KINDS, FollowupChannel, FollowupKind  # noqa: F401  (re-exported: Out)
from shared.events import (  # noqa: F401  (re-exported: the events this service reads)
    CLASSIFIED, CASE_ACTIVITY, COMPENSATION, FOLLOWUPS, SLA, CaseContacted, CaseReopened, CaseResolved,
    ComplaintClassified, CustomerReturned, Id, Outbound, SurveyAnswered,
)
from shared.inbound import (  # noqa: F401  (re-exported: In)
    RejectedInput, parse_activity, parse_classified, parse_json_object,
)

__all__ = [
    # In
    "CASE_ACTIVITY", "CLASSIFIED", "CaseReopened", "CaseResolved", "ComplaintClassified", "CustomerReturned",
    "SurveyAnswered", "parse_activity", "parse_classified",
    "COMPENSATION", "RECOVERY_ID_PREFIX", "RECOVERY_PARSERS", "RECOVERY_TOPICS", "SLA", "RecoveryIgnored",
    "RecoveryInput", "parse_recovery_activity", "parse_recovery_classified", "parse_recovery_compensation",
    "parse_recovery_sla",
    # Out
    "FOLLOWUPS", "FOLLOWUP_KINDS", "SKIP_REASONS", "FollowupCancelled", "FollowupChannel", "FollowupDue",
    "FollowupEvent", "FollowupKind", "FollowupScheduled", "FollowupSkipped", "FollowupsTopicEvent", "SkippedWhen",
    "cancelled_event", "deferred_event", "due_event", "scheduled_event", "skipped_at_due_events",
    "skipped_when_planned_event",
]

# ---------- In: re-exported above ----------
# complaint.classified (`parse_classified`) and the case activity this service acts on (`parse_activity`
# returns every activity type: the service ignores all but resolved, reopened, returned and answered).

# ---------- In: the recovery read model (services/followup/recovery.py) ----------
# A separate consumer (group `helpdesk-followup.recovery`) reads complaints.classified, case-activity,
# sla.v1 and compensation.v1 and folds them into services/followup/domain/recovery.py's facts. It is
# lenient: a record it does not need, or cannot read, is none of its business (`RecoveryIgnored`,
# and its router returns None), never reported to the rejected topic: sla and compensation's output
# is not CRM input, and followup's own inbound consumer already reports bad CRM records.
RECOVERY_TOPICS: tuple[str, ...] = (CLASSIFIED, CASE_ACTIVITY, SLA, COMPENSATION)
RECOVERY_ID_PREFIX = "recovery:"  # its processed-event ids, apart from the inbound consumer's


class RecoveryIgnored(RejectedInput):
    """A record the recovery read model does not use (its router drops it; nothing is reported)."""

    def __init__(self, why: str) -> None:
        super().__init__("ignored", [why])


@dataclass(frozen=True)
class RecoveryInput:
    """One record for the read model: `fact` (a domain CaseFact or Return) and its `case_id`;
    `event_id` is the record's event id prefixed with RECOVERY_ID_PREFIX, so the Inbox remembers it
    apart from the inbound consumer, which handles the same classified and activity records."""

    event_id: str
    case_id: str
    fact: CaseFact | Return


class _SlaNotice(BaseModel):
    """The fields of an sla.v1 event the read model needs (the whole event: services/sla/contract.py)."""

    event_id: Id
    type: str
    case_id: Id
    breached: bool | None = None


class _CompensationNotice(BaseModel):
    """The fields of a compensation.v1 event the read model needs (services/compensation/contract.py);
    `value` is read exactly (a JSON number in the currency's minor units, via its shortest text)."""

    event_id: Id
    type: str
    occurred_at: AwareDatetime
    case_id: Id
    decision_id: Id
    value: Decimal = Decimal(0)
    currency: str = ""
    rule_id: str | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        return Decimal(repr(value)) if isinstance(value, float) else value


_COMPENSATION_STATUS: dict[str, DecisionStatus] = {
    "compensation.granted": "granted", "compensation.approved": "granted", "compensation.denied": "denied",
    "compensation.pending_approval": "pending", "compensation.none": "none",
}
_BY_MACHINE = ("bot", "system")


def _utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc)


def _model(raw: bytes | None, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(parse_json_object(raw))
    except RejectedInput as exc:
        raise RecoveryIgnored(exc.reason) from None
    except ValidationError:
        raise RecoveryIgnored("invalid_fields") from None


def _recovery_input(event_id: str, case_id: str, fact: CaseFact | Return) -> RecoveryInput:
    return RecoveryInput(RECOVERY_ID_PREFIX + event_id, case_id, fact)


def parse_recovery_classified(raw: bytes | None) -> RecoveryInput:
    """complaint.classified → `Classified`; RecoveryIgnored for a record the inbound consumer rejects."""
    try:
        e = parse_classified(raw)
    except RejectedInput as exc:
        raise RecoveryIgnored(exc.reason) from None
    return _recovery_input(e.event_id, e.case_id, Classified(
        e.case_id, e.customer_id, e.category, _utc(e.received_at or e.occurred_at), e.repeat_contacts))


def parse_recovery_activity(raw: bytes | None) -> RecoveryInput:
    """case.contacted by a person → `Contacted`, case.resolved → `Resolved`, case.reopened →
    `Reopened`, customer.returned → `Return`; RecoveryIgnored for any other type, an automated
    contact (`automated: true`, or `by` bot or system, as sla counts it) or a bad record."""
    try:
        e = parse_activity(raw)
    except RejectedInput as exc:
        raise RecoveryIgnored(exc.reason) from None
    at = _utc(e.occurred_at)
    if isinstance(e, CaseContacted):
        if e.automated or e.by in _BY_MACHINE:
            raise RecoveryIgnored("automated contact")
        return _recovery_input(e.event_id, e.case_id, Contacted(e.case_id, at))
    if isinstance(e, CaseResolved):
        return _recovery_input(e.event_id, e.case_id, Resolved(e.case_id, at))
    if isinstance(e, CaseReopened):
        return _recovery_input(e.event_id, e.case_id, Reopened(e.case_id, at))
    if isinstance(e, CustomerReturned):
        return _recovery_input(e.event_id, e.case_id, Return(RECOVERY_ID_PREFIX + e.event_id, e.customer_id,
                                                              e.case_id, at))
    raise RecoveryIgnored(f"{e.type} is not used")


def parse_recovery_sla(raw: bytes | None) -> RecoveryInput:
    """sla.breached, or sla.met / sla.cancelled with `breached: true` → `Breached`; RecoveryIgnored
    for every other sla event."""
    e = _model(raw, _SlaNotice)
    if e.type == "sla.breached" or (e.type in ("sla.met", "sla.cancelled") and e.breached):
        return _recovery_input(e.event_id, e.case_id, Breached(e.case_id))
    raise RecoveryIgnored(f"{e.type} is not used")


def parse_recovery_compensation(raw: bytes | None) -> RecoveryInput:
    """Every decision event of compensation.v1 → `CompensationDecided` (granted and approved count
    as granted); RecoveryIgnored for another type or a record without a valid currency."""
    e = _model(raw, _CompensationNotice)
    status = _COMPENSATION_STATUS.get(e.type)
    if status is None:
        raise RecoveryIgnored(f"{e.type} is not used")
    try:
        value = in_minor_units(e.value, e.currency)
    except (ValueError, ArithmeticError):
        raise RecoveryIgnored("no valid currency or value") from None
    if value < 0:
        raise RecoveryIgnored("no valid currency or value")
    return _recovery_input(e.event_id, e.case_id, CompensationDecided(
        e.case_id, e.decision_id, status, e.rule_id, value, e.currency, _utc(e.occurred_at)))


RECOVERY_PARSERS: dict[str, Callable[[bytes | None], RecoveryInput]] = {
    CLASSIFIED: parse_recovery_classified, CASE_ACTIVITY: parse_recovery_activity,
    SLA: parse_recovery_sla, COMPENSATION: parse_recovery_compensation,
}
"""Topic (without prefix) → the read model's parser of its records."""


# ---------- Out: helpdesk.followups.v1 ----------
# `kind` and `channel` of every event: FollowupKind and FollowupChannel, from services/followup/policy.py
# (the policy configures each kind and its channel; the domain reads them from there too).


class FollowupEvent(Outbound):
    case_id: str
    followup_id: str
    customer_id: str
    kind: FollowupKind
    due_at: datetime
    channel: FollowupChannel


class FollowupScheduled(FollowupEvent):
    type: Literal["followup.scheduled"] = "followup.scheduled"
    reason: str = ""  # why it is due then, e.g. "retention check-in +30d, deferred: min_gap"


class FollowupDue(FollowupEvent):
    type: Literal["followup.due"] = "followup.due"


class FollowupCancelled(FollowupEvent):
    type: Literal["followup.cancelled"] = "followup.cancelled"
    reason: str = ""  # customer_returned | case_reopened | skipped_at_due:<rule>


# Why a follow-up is not sent (the constants of services/followup/domain/model.py).
SKIP_REASONS: tuple[str, ...] = (
    "open_case", "irate_case_unresolved", "survey_within_window", "case_already_surveyed", "already_scheduled",
    "already_sent", "no_slot_within_max_defer", "max_contacts", "min_gap", "cooldown_after_survey",
    "cooldown_after_response",
)
SkippedWhen = Literal["planning", "due"]


class FollowupSkipped(FollowupEvent):
    """Contract addition: a follow-up the rules decided not to send, so the CRM knows the customer
    will not hear from us this way (e.g. no survey while another case of theirs is open).

    `reason` is one of SKIP_REASONS; `due_at` is when it would have been due (UTC). `skipped_when`
    is `planning` (decided when the case was resolved: it was never scheduled) or `due` (decided
    when it fell due: its earlier `followup.scheduled` is also closed by a `followup.cancelled` with
    reason `skipped_at_due:<reason>`, as before this event existed).
    """

    type: Literal["followup.skipped"] = "followup.skipped"
    reason: str
    skipped_when: SkippedWhen = "planning"


class FollowupsTopicEvent(FollowupEvent):
    """The shape of every event on helpdesk.followups.v1 (for the AsyncAPI spec and readers):
    `reason` is on scheduled, cancelled and skipped events, `skipped_when` on skipped ones."""

    type: Literal["followup.scheduled", "followup.due", "followup.cancelled", "followup.skipped"]
    reason: str | None = None
    skipped_when: SkippedWhen | None = None


# ---------- builders: domain results → outbound events ----------
def scheduled_event(followup_id: str, p: PlannedFollowup, causation_id: str) -> FollowupScheduled:
    """`followup.scheduled` for a follow-up planned by the event `causation_id`."""
    return FollowupScheduled(case_id=p.case_id, causation_id=causation_id, followup_id=followup_id,
                             customer_id=p.customer_id, kind=p.kind, due_at=p.due_at, channel=p.channel,
                             reason=p.reason)


def skipped_when_planned_event(followup_id: str, s: SkippedFollowup, causation_id: str) -> FollowupSkipped:
    """`followup.skipped` (`skipped_when="planning"`) for a follow-up the rules refused when planning;
    `due_at` is when it would have been due."""
    return FollowupSkipped(case_id=s.case_id, causation_id=causation_id, followup_id=followup_id,
                           customer_id=s.customer_id, kind=s.kind, due_at=s.would_have_been_due,
                           channel=s.channel, reason=s.reason, skipped_when="planning")


def cancelled_event(p: PendingFollowup, causation_id: str, reason: str) -> FollowupCancelled:
    """`followup.cancelled` closing a scheduled follow-up (reason: customer_returned | case_reopened |
    skipped_at_due:<rule>)."""
    return FollowupCancelled(
        case_id=p.case_id, causation_id=causation_id, followup_id=p.followup_id, customer_id=p.customer_id,
        kind=p.kind, due_at=p.due_at, channel=p.channel, reason=reason,
    )


def due_event(p: PendingFollowup, causation_id: str) -> FollowupDue:
    """`followup.due`: the CRM sends it now."""
    return FollowupDue(
        case_id=p.case_id, causation_id=causation_id, followup_id=p.followup_id,
        customer_id=p.customer_id, kind=p.kind, due_at=p.due_at, channel=p.channel,
    )


def deferred_event(p: PendingFollowup, causation_id: str, due_at: datetime, reason: str) -> FollowupScheduled:
    """`followup.scheduled` again for a follow-up moved when it fell due, with its new `due_at` (UTC)."""
    return FollowupScheduled(
        case_id=p.case_id, causation_id=causation_id, followup_id=p.followup_id,
        customer_id=p.customer_id, kind=p.kind, due_at=due_at, channel=p.channel, reason=reason,
    )


def skipped_at_due_events(p: PendingFollowup, causation_id: str, rule: str) -> list[FollowupEvent]:
    """A follow-up the rules refused when it fell due: the CRM saw it scheduled, so
    `followup.cancelled` (reason `skipped_at_due:<rule>`) closes it as always, and
    `followup.skipped` (`skipped_when="due"`) says why, the same event one skipped when planned gets."""
    return [
        cancelled_event(p, causation_id, f"skipped_at_due:{rule}"),
        FollowupSkipped(case_id=p.case_id, causation_id=causation_id, followup_id=p.followup_id,
                        customer_id=p.customer_id, kind=p.kind, due_at=p.due_at,
                        channel=p.channel, reason=rule, skipped_when="due"),
    ]
