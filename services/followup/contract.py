"""What the followup service reads and writes; the contract document is docs/contract.md.

In: `complaint.classified` on helpdesk.complaints.classified.v1 (`parse_classified`) and case
activity on helpdesk.case-activity.v1 (`parse_activity`: `case.resolved`, `case.reopened`,
`customer.returned`, `survey.answered`; the other types are the sla service's business). Both
parsers and models are shared with the other services and re-exported here from shared/.

Out: helpdesk.followups.v1: `followup.scheduled`, `followup.due`, `followup.cancelled`,
`followup.skipped` (`FollowupsTopicEvent` is the shape of every one), built from the domain's
results by the builders at the end of this module.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.followup.domain import PendingFollowup, PlannedFollowup, SkippedFollowup
from services.followup.policy import FOLLOWUP_KINDS, FollowupChannel, FollowupKind  # noqa: F401  (re-exported: Out)
from shared.events import (  # noqa: F401  (re-exported: the events this service reads)
    CLASSIFIED, CASE_ACTIVITY, FOLLOWUPS, CaseReopened, CaseResolved, ComplaintClassified, CustomerReturned, Outbound,
    SurveyAnswered,
)
from shared.inbound import parse_activity, parse_classified  # noqa: F401  (re-exported: In)

__all__ = [
    # In
    "CASE_ACTIVITY", "CLASSIFIED", "CaseReopened", "CaseResolved", "ComplaintClassified", "CustomerReturned",
    "SurveyAnswered", "parse_activity", "parse_classified",
    # Out
    "FOLLOWUPS", "FOLLOWUP_KINDS", "SKIP_REASONS", "FollowupCancelled", "FollowupChannel", "FollowupDue",
    "FollowupEvent", "FollowupKind", "FollowupScheduled", "FollowupSkipped", "FollowupsTopicEvent", "SkippedWhen",
    "cancelled_event", "deferred_event", "due_event", "scheduled_event", "skipped_at_due_events",
    "skipped_when_planned_event",
]

# ---------- In: re-exported above ----------
# complaint.classified (`parse_classified`) and the case activity this service acts on (`parse_activity`
# returns every activity type: the service ignores all but resolved, reopened, returned and answered).

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
