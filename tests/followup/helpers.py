"""Fixed clocks and small builders for the follow-up rule tests."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from services.followup.domain import CustomerFacts, FollowupPlan, PlannedFollowup, SkippedFollowup
from services.followup.policy import FollowupPolicy


def at(text: str) -> datetime:
    """An instant from RFC 3339 text, as UTC (the way every due time is stored)."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def policy(**sections: Any) -> FollowupPolicy:
    """The default policy with some sections replaced, e.g. policy(quiet_hours={"enabled": False})."""
    return FollowupPolicy.model_validate(sections)


def only_retention(**sections: Any) -> FollowupPolicy:
    """A policy that plans retention check-ins only, to look at one rule at a time."""
    off = {"enabled": False}
    base = {"thank_you_note": off, "satisfaction_survey": off, "improvement_notice": off, "quiet_hours": off}
    return policy(**{**base, **sections})


def customer(customer_id: str = "C-881", **facts: Any) -> CustomerFacts:
    return CustomerFacts(customer_id=customer_id, **facts)


def planned(plan: FollowupPlan, kind: str) -> list[PlannedFollowup]:
    return [p for p in plan.planned if p.kind == kind]


def skipped(plan: FollowupPlan, kind: str) -> list[SkippedFollowup]:
    return [s for s in plan.skipped if s.kind == kind]
