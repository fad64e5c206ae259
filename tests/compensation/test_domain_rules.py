"""The compensation rules that lived in SQL, gauge code and the handler, now pure
(services/compensation/domain): grant rounds, reopened since the last grant, a grant the rounds
constraint refused, the budget month and the budget left, why an approver's answer is refused, and
where a stale approval escalates. No database."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.compensation.domain import (
    BudgetCharge, CaseFacts, CaseHistory, Decision, budgets_remaining, case_facts, check_answer, escalation_step,
    grant_round, month_start, refused_as_duplicate, reopened_since_compensated,
)
from .conftest import SMALL_POLICY, policy_from


# ---------- grant rounds ----------
@pytest.mark.parametrize("reopens, expected", [(0, 1), (1, 2), (5, 6)])
def test_each_reopen_starts_a_new_grant_round(reopens, expected) -> None:
    assert grant_round(reopens) == expected


def test_a_case_never_reopened_is_not_reopened() -> None:
    assert not reopened_since_compensated(0, [])
    assert not reopened_since_compensated(0, [1])


def test_a_reopened_case_without_a_compensation_counts_as_reopened() -> None:
    assert reopened_since_compensated(1, [])


def test_reopened_after_its_compensation_counts_until_the_new_round_gets_one() -> None:
    assert reopened_since_compensated(1, [1])
    assert not reopened_since_compensated(1, [1, 2])  # the second round already has its grant
    assert reopened_since_compensated(2, [1, 2])  # reopened once more


def test_case_facts_from_a_fresh_case() -> None:
    assert case_facts(CaseHistory()) == CaseFacts()


def test_case_facts_carry_the_amounts_and_read_the_rounds() -> None:
    facts = case_facts(CaseHistory(reopens=1, compensated_rounds=(1,), granted_total=Decimal("20.00"),
                                   month_spent=Decimal("140.50")))
    assert facts == CaseFacts(granted_total=Decimal("20.00"), already_compensated=True, reopened=True,
                              month_spent=Decimal("140.50"))


def test_a_compensation_in_this_round_means_compensated_and_not_reopened() -> None:
    facts = case_facts(CaseHistory(reopens=0, compensated_rounds=(1,)))
    assert facts.already_compensated and not facts.reopened


# ---------- budget left ----------
BUDGETS = SMALL_POLICY + """
budgets:
  crm-east: {USD: 2000, EUR: 1800}
  "*": {USD: 1000}
"""


def test_budget_left_per_source_and_line() -> None:
    policy = policy_from(BUDGETS)
    spent = {("crm-east", "USD"): Decimal("150.25"), ("web", "USD"): Decimal("1000.01")}
    assert budgets_remaining(policy, spent) == {
        ("crm-east", "USD"): Decimal("1849.75"),
        ("crm-east", "EUR"): Decimal("1800"),
        ("web", "USD"): Decimal("-0.01"),  # a source without its own budget spends "*"; overspent shows
    }


def test_sources_come_sorted_and_spending_on_a_line_the_policy_no_longer_has_is_not_listed() -> None:
    policy = policy_from(BUDGETS)
    left = budgets_remaining(policy, {("a-crm", "JPY"): Decimal(500)})
    assert list(left) == [("a-crm", "USD"), ("crm-east", "USD"), ("crm-east", "EUR")]
    assert left[("a-crm", "USD")] == Decimal(1000)


def test_no_budgets_no_lines(small_policy) -> None:
    assert budgets_remaining(small_policy, {}) == {}
    assert budgets_remaining(small_policy, {("web", "USD"): Decimal(5)}) == {}


# ---------- an approver's answer ----------
def test_an_unknown_decision_is_refused(small_policy) -> None:
    check = check_answer(None, Decimal(0), "", "manager", small_policy)
    assert check == (False, "unknown_decision", "no compensation decision has this id")


@pytest.mark.parametrize("status", ["granted", "approved", "denied", "none"])
def test_only_a_pending_decision_is_settled(small_policy, status) -> None:
    check = check_answer(status, Decimal(10), "USD", "manager", small_policy)
    assert check == (False, "not_pending", f"the decision is {status}, not waiting for approval")


def test_an_unknown_role_is_refused_as_such(small_policy) -> None:
    check = check_answer("pending", Decimal(10), "USD", "Supervisor", small_policy)
    assert not check.ok and check.code == "unknown_approver_role"
    assert check.reason.startswith("unknown approver role 'Supervisor'")


def test_a_role_below_the_value_is_not_authorised(small_policy) -> None:
    check = check_answer("pending", Decimal(120), "USD", "agent", small_policy)
    assert not check.ok and check.code == "approver_not_authorised" and "it needs supervisor" in check.reason


def test_a_known_role_without_a_rate_for_the_currency_is_not_authorised(small_policy) -> None:
    check = check_answer("pending", Decimal(10), "CHF", "manager", small_policy)
    assert not check.ok and check.code == "approver_not_authorised"


def test_a_role_whose_limit_covers_it_settles(small_policy) -> None:
    check = check_answer("pending", Decimal(120), "USD", "supervisor", small_policy)
    assert check.ok and check.code == "" and check.reason.startswith("within the supervisor limit")


# ---------- a grant the one-compensation-per-round constraint refused ----------
def test_a_refused_duplicate_grants_nothing_and_says_why() -> None:
    granted = Decision(outcome="granted", rule_id="r", offers=[{"kind": "coupon", "percent": 15}], value=Decimal(15),
                       currency="USD", authority="agent", reason_code="within_agent_limit",
                       reason_codes=("within_agent_limit",), explanation=("rule r matches",), policy_version="v",
                       budget=BudgetCharge("USD", Decimal(15)))
    refused = refused_as_duplicate(granted)
    assert (refused.outcome, refused.offers, refused.value, refused.authority, refused.budget) == (
        "none", [], Decimal(0), None, None)
    assert (refused.reason_code, refused.reason_codes) == ("already_granted", ("already_granted",))
    assert refused.explanation == ("rule r matches", "refused by the one-compensation-per-case constraint")
    assert (refused.rule_id, refused.currency, refused.policy_version) == ("r", "USD", "v")


# ---------- the budget month ----------
def test_the_budget_month_is_the_utc_calendar_month() -> None:
    assert month_start(datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc)) == datetime(2026, 11, 1, tzinfo=timezone.utc)
    # 1 December 00:30 in Berlin is still November in UTC
    berlin = timezone(timedelta(hours=1))
    assert month_start(datetime(2026, 12, 1, 0, 30, tzinfo=berlin)) == datetime(2026, 11, 1, tzinfo=timezone.utc)


# ---------- a stale approval ----------
def test_a_pending_approval_escalates_one_role_up_and_stops_at_the_top(small_policy) -> None:
    assert escalation_step("pending", "supervisor", small_policy) == (True, "manager")
    assert escalation_step("pending", "manager", small_policy) == (True, None)  # nobody above
    assert escalation_step("pending", None, small_policy) == (True, None)


@pytest.mark.parametrize("status", [None, "granted", "approved", "denied", "none"])
def test_a_decision_no_longer_pending_does_not_escalate(small_policy, status) -> None:
    assert escalation_step(status, "supervisor", small_policy) == (False, None)
