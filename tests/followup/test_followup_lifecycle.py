"""What happens to planned follow-ups: the customer returns, a case reopens, an improvement is told, one falls due."""
from __future__ import annotations

from datetime import timedelta

from services.followup.domain import (
    CategoryCase, Contact, CustomerCase, PendingFollowup, ResolvedCase, cancel_on_reopened, cancel_on_returned,
    decide_at_due, followup_id_for, improvement_recipients, plan_improvement_notice, plan_on_resolved,
)
from .helpers import at, customer, planned, policy, skipped

NOON = at("2026-11-23T12:00:00Z")


def pending(followup_id: str, kind: str, case_id: str, customer_id: str = "C-881") -> PendingFollowup:
    return PendingFollowup(followup_id, kind, case_id, customer_id, NOON + timedelta(days=7), "email")


SCHEDULED = [
    pending("f1", "retention_checkin", "CRM-1"),
    pending("f2", "retention_checkin", "CRM-2"),
    pending("f3", "satisfaction_survey", "CRM-2"),
    pending("f4", "thank_you_note", "CRM-2"),
    pending("f5", "improvement_notice", "CRM-2"),
    pending("f6", "retention_checkin", "CRM-9", customer_id="C-OTHER"),
]


# ---------- the customer comes back; a case reopens ----------

def test_returning_customer_ends_every_retention_check_in_of_theirs_on_every_case():
    assert [p.followup_id for p in cancel_on_returned(SCHEDULED, "C-881")] == ["f1", "f2"]


def test_returning_customer_keeps_their_survey_and_notes_and_other_customers_keep_theirs():
    cancelled = {p.followup_id for p in cancel_on_returned(SCHEDULED, "C-881")}
    assert cancelled.isdisjoint({"f3", "f4", "f5", "f6"})


def test_reopened_case_cancels_its_thank_you_note_and_survey_only():
    assert [p.followup_id for p in cancel_on_reopened(SCHEDULED, "CRM-2")] == ["f3", "f4"]


def test_reopened_case_leaves_other_cases_alone():
    assert cancel_on_reopened(SCHEDULED, "CRM-404") == []


def test_resolving_a_reopened_case_again_plans_a_new_thank_you_but_does_not_double_the_check_ins():
    still_running = tuple(Contact("retention_checkin", NOON + timedelta(days=d), "CRM-2", pending=True) for d in (20, 80))
    plan = plan_on_resolved(policy(), ResolvedCase("CRM-2", NOON), customer(contacts=still_running), NOON)
    assert len(planned(plan, "thank_you_note")) == 1
    assert planned(plan, "retention_checkin") == []
    assert {s.reason for s in skipped(plan, "retention_checkin")} == {"already_scheduled"}


def test_a_case_is_thanked_only_once_however_often_it_is_resolved():
    thanked = (Contact("thank_you_note", NOON - timedelta(days=5), "CRM-2"),)
    plan = plan_on_resolved(policy(), ResolvedCase("CRM-2", NOON), customer(contacts=thanked), NOON)
    assert [s.reason for s in skipped(plan, "thank_you_note")] == ["already_sent"]


# ---------- improvements: tell the customer, and spread the word ----------

def test_resolution_naming_an_improvement_tells_the_customer_what_changed():
    plan = plan_on_resolved(policy(), ResolvedCase("CRM-2", NOON, improvement=True), customer(), NOON)
    [notice] = planned(plan, "improvement_notice")
    assert notice.due_at == NOON + timedelta(days=1) and notice.customer_id == "C-881"


SPREAD = policy(improvement_notice={"notify_same_category_customers": True, "lookback": "30d"})
CANDIDATES = [
    CategoryCase("C-A", "CRM-10", "installation", NOON - timedelta(days=3)),
    CategoryCase("C-A", "CRM-11", "installation", NOON - timedelta(days=1)),  # later case of the same customer
    CategoryCase("C-B", "CRM-12", "billing", NOON - timedelta(days=2)),       # other category
    CategoryCase("C-C", "CRM-13", "installation", NOON - timedelta(days=45)),  # too long ago
    CategoryCase("C-881", "CRM-2", "installation", NOON - timedelta(days=4)),  # the resolving customer
    CategoryCase("C-D", "CRM-14", "installation", NOON - timedelta(days=29)),
]


def test_others_with_a_recent_case_in_the_same_category_hear_about_the_change_once_each():
    chosen = improvement_recipients(SPREAD, category="installation", resolving_customer_id="C-881", candidates=CANDIDATES, now=NOON)
    assert [(c.customer_id, c.case_id) for c in chosen] == [("C-A", "CRM-11"), ("C-D", "CRM-14")]


def test_nobody_else_is_told_unless_the_policy_says_so():
    assert improvement_recipients(policy(), category="installation", resolving_customer_id="C-881", candidates=CANDIDATES, now=NOON) == []


def test_improvement_notice_to_another_customer_respects_their_own_contact_rules():
    recipient = CANDIDATES[1]
    yesterday = (Contact("retention_checkin", NOON, "CRM-11"),)
    notice = plan_improvement_notice(SPREAD, recipient, customer("C-A", contacts=yesterday), NOON)
    assert notice.case_id == "CRM-11" and notice.customer_id == "C-A"
    assert notice.due_at == NOON + timedelta(days=2) and notice.deferred_by == ("min_gap",)


# ---------- when a follow-up falls due ----------

RULES = policy(quiet_hours={"enabled": False})


def test_survey_falling_due_after_the_customer_opened_a_new_case_is_skipped():
    survey = pending("f3", "satisfaction_survey", "CRM-2")
    decision = decide_at_due(RULES, survey, customer(cases=(CustomerCase("CRM-7", open=True),)), survey.due_at)
    assert (decision.action, decision.reason) == ("skip", "open_case")


def test_check_in_falling_due_the_day_after_another_contact_was_sent_waits_for_the_gap():
    checkin = pending("f1", "retention_checkin", "CRM-1")
    sent = (Contact("improvement_notice", checkin.due_at - timedelta(days=1), "CRM-5"),)
    decision = decide_at_due(RULES, checkin, customer(contacts=sent), checkin.due_at)
    assert decision.action == "defer" and decision.due_at == checkin.due_at + timedelta(days=1)


def test_follow_up_falling_due_with_nothing_in_the_way_is_sent_now():
    checkin = pending("f1", "retention_checkin", "CRM-1")
    scheduled_later = (Contact("improvement_notice", checkin.due_at + timedelta(hours=1), "CRM-5", pending=True),)
    decision = decide_at_due(RULES, checkin, customer(contacts=scheduled_later), checkin.due_at)
    assert (decision.action, decision.due_at) == ("send", checkin.due_at)


def test_follow_up_fired_late_at_night_after_an_outage_waits_for_the_morning():
    checkin = pending("f1", "retention_checkin", "CRM-1")
    three_am_tokyo = at("2026-12-01T03:00:00+09:00")
    decision = decide_at_due(policy(), checkin, customer(timezone="Asia/Tokyo"), three_am_tokyo)
    assert decision.action == "defer" and decision.due_at == at("2026-12-01T08:00:00+09:00")


def test_same_event_planning_the_same_follow_up_gets_the_same_id():
    assert followup_id_for("evt-1", "C-881", "retention_checkin", 0) == followup_id_for("evt-1", "C-881", "retention_checkin", 0)
    assert followup_id_for("evt-1", "C-881", "retention_checkin", 0) != followup_id_for("evt-1", "C-881", "retention_checkin", 1)
