"""What happens to scheduled follow-ups when the customer comes back, a case reopens, or one falls due."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Iterable, Literal

from services.followup.domain.localtime import utc
from services.followup.domain.model import CustomerFacts, PendingFollowup, PlannedFollowup
from services.followup.domain.planning import fit, survey_blocked_by
from services.followup.policy import FollowupPolicy

# Cancellation reasons carried on followup.cancelled.
CUSTOMER_RETURNED = "customer_returned"
CASE_REOPENED = "case_reopened"


def complaint_reopens(status: str, resolved_at: datetime | None, received_at: datetime) -> bool:
    """A new complaint on a resolved case counts as a reopen: the customer complained again after the
    resolution. A classification received at or before it (late, or redelivered) does not."""
    return status == "resolved" and resolved_at is not None and received_at > resolved_at


def resolution_plans(status: str) -> bool:
    """Whether resolving a case in `status` plans follow-ups: a second resolution without a reopen in
    between plans nothing new."""
    return status != "resolved"


def in_retention(customer: CustomerFacts) -> bool:
    """Whether a retention check-in of this customer, on any case, is still scheduled."""
    return any(c.kind == "retention_checkin" and c.pending for c in customer.contacts)


def enters_retention(customer: CustomerFacts, planned: Iterable[PlannedFollowup]) -> bool:
    """Whether a plan puts a customer who was not being kept in touch with (`customer`, before the
    plan) into retention: it schedules their first pending check-in."""
    return not in_retention(customer) and any(p.kind == "retention_checkin" for p in planned)


def cancel_on_returned(pending: Iterable[PendingFollowup], customer_id: str) -> list[PendingFollowup]:
    """The customer is back: every retention check-in of theirs, on any case, has done its job."""
    return [p for p in pending if p.customer_id == customer_id and p.kind == "retention_checkin"]


def cancel_on_reopened(pending: Iterable[PendingFollowup], case_id: str) -> list[PendingFollowup]:
    """Thanking or surveying a customer whose problem came back would be tone-deaf.

    Retention check-ins stay (the customer still needs keeping) and so do improvement notices
    (the change was made either way); a later resolution plans the note and survey again.
    """
    return [p for p in pending if p.case_id == case_id and p.kind in ("thank_you_note", "satisfaction_survey")]


@dataclass(frozen=True)
class DueDecision:
    action: Literal["send", "defer", "skip"]
    due_at: datetime
    reason: str = ""


def decide_at_due(
    policy: FollowupPolicy, followup: PendingFollowup, customer: CustomerFacts, now: datetime,
) -> DueDecision:
    """Checks a follow-up again when it falls due: facts change in the days since it was planned.

    `customer` must not list this follow-up among its contacts. Frequency rules count what was
    actually sent, as a send-time rule does; survey answers (`customer.survey_responses`) start
    their cooldown. `now` may be in any zone; the decision's `due_at` is UTC.
    """
    now = utc(now)
    if followup.kind == "satisfaction_survey":
        blocked = survey_blocked_by(policy, now, customer, followup.case_id)
        if blocked:
            return DueDecision("skip", now, blocked)
    sent = replace(customer, contacts=tuple(c for c in customer.contacts if not c.pending))
    placed = fit(policy, followup.kind, followup.channel, now, sent, followup.case_id, "")
    if not isinstance(placed, PlannedFollowup):
        return DueDecision("skip", now, placed.reason)
    if placed.due_at > now:
        return DueDecision("defer", placed.due_at, ", ".join(placed.deferred_by))
    return DueDecision("send", now)
