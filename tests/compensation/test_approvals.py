"""Who may settle a pending compensation, and where a stale one escalates."""
from __future__ import annotations

from services.compensation.domain import check_approval, next_role


def test_supervisor_may_approve_within_the_supervisor_limit(small_policy):
    ok, reason = check_approval(120.0, "USD", "supervisor", small_policy)
    assert ok
    assert "supervisor" in reason


def test_agent_approving_above_the_agent_limit_is_refused_with_the_role_needed(small_policy):
    ok, reason = check_approval(120.0, "USD", "agent", small_policy)
    assert not ok
    assert reason == "role agent may approve up to 50.00 USD, this compensation is 120.00 USD; it needs supervisor"


def test_supervisor_approving_a_manager_sized_amount_is_refused(small_policy):
    ok, reason = check_approval(501.0, "USD", "supervisor", small_policy)
    assert not ok
    assert "it needs manager" in reason


def test_forged_role_is_refused(small_policy):
    ok, reason = check_approval(10.0, "USD", "admin", small_policy)
    assert not ok
    assert reason == "unknown approver role 'admin': the policy knows agent, supervisor, manager"


def test_role_names_must_match_exactly(small_policy):
    assert not check_approval(10.0, "USD", "Supervisor", small_policy).ok
    assert not check_approval(10.0, "USD", "", small_policy).ok


def test_amount_above_every_role_is_refused_for_everyone(small_policy):
    ok, reason = check_approval(6000.0, "USD", "manager", small_policy)
    assert not ok
    assert "no role in the policy may approve it" in reason


def test_approval_limits_follow_the_currency_of_the_compensation(small_policy):
    assert check_approval(45.0, "EUR", "agent", small_policy).ok
    assert not check_approval(46.0, "EUR", "agent", small_policy).ok
    assert check_approval(60_000, "JPY", "supervisor", small_policy).ok  # 500 USD × 150


def test_approval_in_a_currency_the_policy_cannot_price_is_refused(small_policy):
    ok, reason = check_approval(10.0, "CHF", "manager", small_policy)
    assert not ok
    assert "CHF" in reason


def test_stale_approval_escalates_one_role_up_and_stops_at_the_top(small_policy):
    assert next_role("agent", small_policy) == "supervisor"
    assert next_role("supervisor", small_policy) == "manager"
    assert next_role("manager", small_policy) is None
    assert next_role("janitor", small_policy) is None
