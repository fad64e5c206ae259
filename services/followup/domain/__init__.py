"""Pure follow-up rules: no I/O, every instant passed in. Read model → localtime → frequency → planning;
ids numbers what is planned, lifecycle and improvement say what a case's events mean."""
from services.followup.domain.ids import TIMER_KIND, followup_id_for, number_followups, timer_key
from services.followup.domain.improvement import improvement_recipients, names_improvement, plan_improvement_notice
from services.followup.domain.lifecycle import (
    CASE_REOPENED, CUSTOMER_RETURNED, DueDecision, cancel_on_reopened, cancel_on_returned, complaint_reopens,
    decide_at_due, enters_retention, in_retention, resolution_plans,
)
from services.followup.domain.localtime import after, customer_zone, end_of_quiet_hours, next_day_at
from services.followup.domain.model import (
    CategoryCase, Contact, CustomerCase, CustomerFacts, FollowupPlan, PendingFollowup, PlannedFollowup,
    ResolvedCase, SkippedFollowup,
)
from services.followup.domain.planning import plan_on_resolved, survey_blocked_by, thank_you_due

__all__ = [
    "CASE_REOPENED", "CUSTOMER_RETURNED", "TIMER_KIND", "CategoryCase", "Contact", "CustomerCase", "CustomerFacts",
    "DueDecision", "FollowupPlan", "PendingFollowup", "PlannedFollowup", "ResolvedCase", "SkippedFollowup",
    "after", "cancel_on_reopened", "cancel_on_returned", "complaint_reopens", "customer_zone", "decide_at_due",
    "end_of_quiet_hours", "enters_retention", "followup_id_for", "improvement_recipients", "in_retention",
    "names_improvement", "next_day_at", "number_followups", "plan_improvement_notice", "plan_on_resolved",
    "resolution_plans", "survey_blocked_by", "thank_you_due", "timer_key",
]
