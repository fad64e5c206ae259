"""Spreading the word: which other customers hear about a process change, and when."""
from __future__ import annotations

from datetime import datetime
from typing import Iterable

from services.followup.domain.localtime import after, customer_zone
from services.followup.domain.model import CategoryCase, CustomerFacts, PlannedFollowup, SkippedFollowup
from services.followup.domain.planning import fit
from services.followup.policy import FollowupPolicy


def names_improvement(resolution_improvement: str | None) -> bool:
    """Whether a resolution counts as an improvement: its `improvement` text says something (blank
    or whitespace only does not). Only this is kept of the text, never the text itself."""
    return bool(resolution_improvement and resolution_improvement.strip())


def improvement_recipients(
    policy: FollowupPolicy, *, category: str, resolving_customer_id: str,
    candidates: Iterable[CategoryCase], now: datetime,
) -> list[CategoryCase]:
    """Other customers with a case in the same category within the lookback, one (latest) case each.

    The resolving customer is told through their own notice, never twice.
    """
    notice = policy.improvement_notice
    if not (notice.enabled and notice.notify_same_category_customers):
        return []
    since = now - notice.lookback
    latest: dict[str, CategoryCase] = {}
    for case in candidates:
        if case.category != category or case.customer_id == resolving_customer_id:
            continue
        if not since <= case.received_at <= now:
            continue
        kept = latest.get(case.customer_id)
        if kept is None or case.received_at > kept.received_at:
            latest[case.customer_id] = case
    return sorted(latest.values(), key=lambda c: c.customer_id)


def plan_improvement_notice(
    policy: FollowupPolicy, recipient: CategoryCase, customer: CustomerFacts, now: datetime,
) -> PlannedFollowup | SkippedFollowup:
    """The notice to another customer, filed under their own case, under their frequency rules.

    Due `delay` after `now` in the recipient's zone (calendar days keep the local clock time).
    """
    notice = policy.improvement_notice
    due = after(now, notice.delay, customer_zone(customer.timezone))
    return fit(
        policy, "improvement_notice", notice.channel, due, customer,
        recipient.case_id, "a change made after a similar complaint",
    )
