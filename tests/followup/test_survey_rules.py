"""Surveys: one per case however often it is resolved, and none right after the customer answered one.

All customers here are in UTC (no daylight saving), so a day is 24 hours; quiet hours (21:00-08:00)
do not touch the noon times used. Every expected value is worked out by hand beside it.
"""
from __future__ import annotations

import json

import pytest

from services.compensation.handlers import reopened_only
from services.followup.domain import Contact, PendingFollowup, ResolvedCase, decide_at_due, plan_on_resolved
from services.followup.policy import FollowupPolicy
from services.sla.domain.case import CaseSla, on_activity
from services.sla.policy import SlaPolicy
from shared.events import ACTIVITY_TYPES, SurveyAnswered
from shared.inbound import RejectedInput, parse_activity
from shared.policy import parse_policy
from .helpers import at, customer, planned, policy, skipped

# ---------- one survey per case ----------

FIRST_RESOLVED = at("2026-01-05T12:00:00Z")
FIRST_SURVEY = Contact("satisfaction_survey", at("2026-01-08T12:00:00Z"), "CRM-7")  # sent, 3 days later
RESOLVED_AGAIN = at("2026-02-25T12:00:00Z")  # reopened, resolved 51 days later: 5 Jan + 26 = 31 Jan, + 25 = 25 Feb


def resolved_again(rules: FollowupPolicy):
    facts = customer(contacts=(FIRST_SURVEY,))
    return plan_on_resolved(rules, ResolvedCase("CRM-7", RESOLVED_AGAIN), facts, RESOLVED_AGAIN)


def test_case_resolved_again_fifty_one_days_later_gets_no_second_survey():
    plan = resolved_again(policy())
    assert planned(plan, "satisfaction_survey") == []
    [survey] = skipped(plan, "satisfaction_survey")
    # It would have been due 25 Feb + 3 days = 28 Feb 12:00, 51 days after the first survey
    # (8 Jan + 23 = 31 Jan, + 28 = 28 Feb): outside the 30-day window, so only the new rule stops it.
    assert (survey.reason, survey.would_have_been_due) == ("case_already_surveyed", at("2026-02-28T12:00:00Z"))


def test_with_once_per_case_off_the_case_is_surveyed_again_after_the_window():
    [survey] = planned(resolved_again(policy(satisfaction_survey={"once_per_case": False})), "satisfaction_survey")
    assert survey.due_at == at("2026-02-28T12:00:00Z")  # 25 Feb 12:00 + 3 days, nothing in the way


def test_another_case_of_the_customer_is_still_surveyed_once_the_window_has_passed():
    facts = customer(contacts=(FIRST_SURVEY,))
    plan = plan_on_resolved(policy(), ResolvedCase("CRM-8", RESOLVED_AGAIN), facts, RESOLVED_AGAIN)
    assert planned(plan, "satisfaction_survey")[0].due_at == at("2026-02-28T12:00:00Z")


def test_survey_falling_due_for_a_case_already_surveyed_is_skipped():
    # A survey planned while once_per_case was off, the policy turned it on before it fell due.
    survey = PendingFollowup("f9", "satisfaction_survey", "CRM-7", "C-881", at("2026-02-28T12:00:00Z"), "email")
    decision = decide_at_due(policy(), survey, customer(contacts=(FIRST_SURVEY,)), survey.due_at)
    assert (decision.action, decision.reason) == ("skip", "case_already_surveyed")


def test_one_survey_per_case_is_on_by_default_and_in_the_shipped_file():
    from pathlib import Path

    from shared.policy import load_policy

    assert FollowupPolicy().satisfaction_survey.once_per_case is True
    shipped = load_policy(Path(__file__).resolve().parents[2] / "config" / "followup.yaml", FollowupPolicy)
    assert shipped.satisfaction_survey.once_per_case is True
    assert parse_policy("satisfaction_survey:\n  once_per_case: false\n", FollowupPolicy).satisfaction_survey.once_per_case is False


# ---------- the answer's cooldown ----------

SHORT_WINDOW = policy(satisfaction_survey={"window": "7d"})  # so that the cooldown, not the window, decides
EARLIER_SURVEY = Contact("satisfaction_survey", at("2026-11-01T12:00:00Z"), "CRM-1")
ANSWERED = at("2026-11-02T12:00:00Z")
SECOND_RESOLVED = at("2026-11-10T12:00:00Z")


def second_case(responses=()):
    facts = customer(contacts=(EARLIER_SURVEY,), survey_responses=tuple(responses))
    return plan_on_resolved(SHORT_WINDOW, ResolvedCase("CRM-2", SECOND_RESOLVED), facts, SECOND_RESOLVED)


def test_customer_who_answered_is_not_surveyed_again_within_the_cooldown():
    [survey] = planned(second_case([ANSWERED]), "satisfaction_survey")
    # Due 10 Nov + 3 days = 13 Nov 12:00; the 7-day window since 1 Nov ended 8 Nov; the 14-day
    # cooldown since the answer (2 Nov 12:00) ends 16 Nov 12:00.
    assert survey.due_at == at("2026-11-16T12:00:00Z")
    assert survey.deferred_by == ("cooldown_after_response",)


def test_without_an_answer_the_same_survey_goes_out_on_time():
    assert planned(second_case(), "satisfaction_survey")[0].due_at == at("2026-11-13T12:00:00Z")  # 10 Nov + 3 days


def test_survey_answered_after_it_was_planned_is_deferred_when_it_falls_due():
    survey = PendingFollowup("f3", "satisfaction_survey", "CRM-2", "C-881", at("2026-11-13T12:00:00Z"), "email")
    facts = customer(contacts=(EARLIER_SURVEY,), survey_responses=(ANSWERED,))
    decision = decide_at_due(SHORT_WINDOW, survey, facts, survey.due_at)
    assert (decision.action, decision.due_at) == ("defer", at("2026-11-16T12:00:00Z"))  # 2 Nov + 14 days
    assert decision.reason == "cooldown_after_response"


def test_cooldown_skips_instead_when_the_policy_says_skip():
    rules = policy(satisfaction_survey={"window": "7d"}, frequency={"on_violation": "skip"})
    facts = customer(contacts=(EARLIER_SURVEY,), survey_responses=(ANSWERED,))
    plan = plan_on_resolved(rules, ResolvedCase("CRM-2", SECOND_RESOLVED), facts, SECOND_RESOLVED)
    assert [s.reason for s in skipped(plan, "satisfaction_survey")] == ["cooldown_after_response"]


# ---------- survey.answered on the case-activity topic ----------

def answer(**fields) -> bytes:
    event = {"event_id": "ev-1", "type": "survey.answered", "occurred_at": "2026-11-02T12:00:00Z",
             "source": "crm-east", "case_id": "CRM-1", "customer_id": "C-881", **fields}
    return json.dumps(event).encode()


def test_survey_answer_is_part_of_the_case_activity_contract():
    assert "survey.answered" in ACTIVITY_TYPES
    event = parse_activity(answer(score=9, followup_id="f3"))
    assert isinstance(event, SurveyAnswered)
    assert (event.customer_id, event.score, event.followup_id, event.occurred_at) == ("C-881", 9, "f3", ANSWERED)
    assert parse_activity(answer()).score is None  # the score is optional


@pytest.mark.parametrize("fields", [{"score": 11}, {"score": -1}, {"score": "9"}, {"score": True}, {"customer_id": ""}])
def test_bad_survey_answers_are_rejected_with_the_field(fields):
    with pytest.raises(RejectedInput) as refused:
        parse_activity(answer(**fields))
    assert refused.value.reason == "invalid_fields"
    assert any(error.startswith(f"survey.answered.{next(iter(fields))}") for error in refused.value.errors)


def test_sla_treats_a_survey_answer_as_none_of_its_business():
    event = parse_activity(answer())
    known = CaseSla("CRM-1", "P3", "crm-east", "ev-0")
    assert on_activity(known, event, SlaPolicy(), ANSWERED).effects == []
    unknown = on_activity(None, event, SlaPolicy(), ANSWERED)
    assert (unknown.case, unknown.effects) == (None, [])  # not even kept for a classification to come


def test_compensation_ignores_a_survey_answer_without_reporting_it():
    class Record:
        value = answer()

    assert reopened_only(Record()) is None
