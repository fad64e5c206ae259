"""Pure follow-up rules: no I/O, every instant passed in. Read model → localtime → frequency → planning."""
from services.followup.domain.improvement import improvement_recipients, plan_improvement_notice
from services.followup.domain.lifecycle import (
    CASE_REOPENED, CUSTOMER_RETURNED, DueDecision, cancel_on_reopened, cancel_on_returned, decide_at_due,
)
from services.followup.domain.localtime import after, customer_zone, end_of_quiet_hours, next_day_at
from services.followup.domain.model import (
    CategoryCase, Contact, CustomerCase, CustomerFacts, FollowupPlan, PendingFollowup, PlannedFollowup,
    ResolvedCase, SkippedFollowup,
)
from services.followup.domain.planning import followup_id_for, plan_on_resolved, survey_blocked_by, thank_you_due

__all__ = [
    "CASE_REOPENED", "CUSTOMER_RETURNED", "CategoryCase", "Contact", "CustomerCase", "CustomerFacts",
    "DueDecision", "FollowupPlan", "PendingFollowup", "PlannedFollowup", "ResolvedCase", "SkippedFollowup",
    "after", "cancel_on_reopened", "cancel_on_returned", "customer_zone", "decide_at_due", "end_of_quiet_hours",
    "followup_id_for", "improvement_recipients", "next_day_at", "plan_improvement_notice",
    "plan_on_resolved", "survey_blocked_by", "thank_you_due",
]
