"""Empowerment limits, monthly budgets, caps per case and the one-grant-per-case rule."""
from __future__ import annotations

from services.compensation.domain import CaseFacts, decide

from .conftest import SMALL_POLICY, complaint, policy_from


def billing(amount: float, currency: str = "USD", **fields):
    # the billing rule refunds the whole order: the decision's value is the order amount
    return complaint((amount, currency), category="billing", **fields)


# ---------- limits ----------
def test_grant_within_the_agent_limit_is_automatic(small_policy):
    decision = decide(billing(49.99), small_policy, "v")
    assert (decision.outcome, decision.authority, decision.reason_code) == ("granted", "agent", "within_agent_limit")


def test_grant_exactly_at_the_agent_limit_is_automatic(small_policy):
    assert decide(billing(50.0), small_policy, "v").outcome == "granted"


def test_grant_over_the_agent_limit_waits_for_a_supervisor(small_policy):
    decision = decide(billing(120.0), small_policy, "v")
    assert (decision.outcome, decision.authority, decision.reason_code) == (
        "pending_approval", "supervisor", "over_agent_limit")
    assert decision.offers[0] == {"kind": "refund", "percent": 100, "amount": 120.0, "value": 120.0}


def test_grant_over_the_supervisor_limit_waits_for_a_manager(small_policy):
    assert decide(billing(501.0), small_policy, "v").authority == "manager"


def test_grant_above_every_limit_offers_the_fallback_instead(small_policy):
    decision = decide(billing(9000.0), small_policy, "v")
    assert (decision.outcome, decision.rule_id, decision.reason_code) == ("granted", "apology", "over_all_limits")
    assert [o["kind"] for o in decision.offers] == ["personal_note", "gift"]
    assert any("above every role's limit" in line for line in decision.explanation)


def test_explicit_euro_limit_applies_to_euro_orders(small_policy):
    # agent: 45 EUR explicitly, not 50 USD × 0.9
    assert decide(billing(45.0, "EUR"), small_policy, "v").outcome == "granted"
    assert decide(billing(45.5, "EUR"), small_policy, "v").authority == "supervisor"


def test_limit_is_converted_for_other_known_currencies(small_policy):
    # agent: 50 USD × 150 = 7500 JPY
    assert decide(billing(7500, "JPY"), small_policy, "v").outcome == "granted"
    assert decide(billing(7600, "JPY"), small_policy, "v").outcome == "pending_approval"


def test_order_in_unpriceable_currency_is_decided_from_policy_defaults(small_policy):
    decision = decide(complaint((100.0, "CHF"), category="confusing_process"), small_policy, "v")
    assert decision.currency == "USD"
    assert decision.value == 14.0  # 15% of the assumed 40 USD order + 8 USD shipping
    assert any("CHF has no exchange rate" in line for line in decision.explanation)


# ---------- budgets ----------
BUDGETED = SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100}\n  '*': {USD: 30}\npricing:")


def test_grant_within_the_monthly_budget_is_automatic():
    decision = decide(billing(40.0), policy_from(BUDGETED), "v", CaseFacts(month_spent=60.0))
    assert decision.outcome == "granted"


def test_grant_that_would_overrun_the_monthly_budget_goes_to_approval():
    decision = decide(billing(40.0), policy_from(BUDGETED), "v", CaseFacts(month_spent=61.0))
    assert (decision.outcome, decision.authority, decision.reason_code) == (
        "pending_approval", "supervisor", "budget_exceeded")


def test_sources_without_their_own_budget_share_the_default_budget():
    decision = decide(billing(40.0, source="crm-west"), policy_from(BUDGETED), "v")
    assert decision.reason_code == "budget_exceeded"


def test_budget_in_one_currency_does_not_limit_another():
    # Budgets are converted now (issue 12): a source whose only line is USD spends it on EUR grants
    # too (test_budget_currencies.py). With a EUR line of its own, a EUR grant spends that one and the USD line
    # does not limit it: 1000 EUR spent of 1100 leaves 100 EUR for this 40 EUR refund, while the
    # USD line (100) would have been overrun long ago.
    both = BUDGETED.replace("crm-east: {USD: 100}", "crm-east: {USD: 100, EUR: 1100}")
    decision = decide(billing(40.0, "EUR"), policy_from(both), "v", CaseFacts(month_spent=1000.0))
    assert decision.outcome == "granted"


def test_no_budget_means_no_budget_check(small_policy):
    assert decide(billing(40.0), small_policy, "v", CaseFacts(month_spent=1e6)).outcome == "granted"


# ---------- caps ----------
def test_coupon_is_cut_down_to_what_the_cap_leaves(small_policy):
    # order 100: cap 100; 90 already granted leaves 10: the 15 coupon is cut to 10, shipping dropped
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), small_policy, "v",
                      CaseFacts(granted_total=90.0))
    assert decision.offers == [{"kind": "coupon", "percent": 15, "cap": 10.0, "value": 10.0}]
    assert (decision.outcome, decision.reason_code) == ("granted", "cap_applied")


def test_offers_that_do_not_fit_the_cap_are_dropped_in_order(small_policy):
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), small_policy, "v",
                      CaseFacts(granted_total=77.0))
    assert [o["kind"] for o in decision.offers] == ["coupon", "free_shipping"]
    assert decision.value == 23.0  # fits exactly: nothing trimmed
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), small_policy, "v",
                      CaseFacts(granted_total=80.0))
    assert decision.offers == [{"kind": "coupon", "percent": 15, "value": 15.0}]


def test_case_at_its_cap_keeps_only_what_costs_nothing(small_policy):
    decision = decide(billing(40.0), small_policy, "v", CaseFacts(granted_total=40.0))
    assert decision.offers == [{"kind": "personal_note", "handwritten": False, "value": 0.0}]
    assert decision.reason_code == "cap_applied"


def test_case_at_its_cap_with_nothing_free_to_offer_gets_none():
    # Since issue 12 the fallback stands in for a rule the cap emptied, and the small policy's
    # fallback has a free note (test_cap_fallback.py: the case at its cap gets that note). Nothing free to
    # offer therefore means a fallback without a free offer too: a mug (10 USD) does not fit in 0.
    no_free_fallback = policy_from(SMALL_POLICY.replace("    - {kind: personal_note, handwritten: true}\n", ""))
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), no_free_fallback, "v",
                      CaseFacts(granted_total=100.0))
    assert (decision.outcome, decision.offers, decision.reason_code) == ("none", [], "cap_reached")


def test_rule_may_explicitly_go_over_the_cap(small_policy):
    decision = decide(complaint((30.0, "USD"), category="defect"), small_policy, "v")
    assert decision.value == 40.0  # replacement 30 + socks 10 > order 30
    assert "cap_applied" not in decision.reason_codes


def test_cap_factor_widens_the_cap(small_policy):
    confusing, facts = complaint((100.0, "USD"), category="confusing_process"), CaseFacts(granted_total=87.0)
    at_order_total = decide(confusing, small_policy, "v", facts)
    widened = decide(confusing, policy_from(SMALL_POLICY + "cap_factor: 1.1\n"), "v", facts)
    assert at_order_total.value == 13.0  # cap 100, 87 granted: the coupon is cut to 13, shipping dropped
    assert widened.value == 23.0  # cap 110 leaves 23: coupon and shipping both fit
    assert widened.reason_code == "within_agent_limit"


# ---------- one automatic grant per case ----------
def test_repeat_complaint_on_a_case_with_a_grant_gets_nothing_more(small_policy):
    decision = decide(billing(40.0, repeat_contacts=1), small_policy, "v", CaseFacts(already_compensated=True))
    assert (decision.outcome, decision.reason_code, decision.offers) == ("none", "already_granted", [])


def test_reopened_case_gets_a_second_grant_only_where_a_rule_allows(small_policy):
    allowed = decide(complaint(category="delay"), small_policy, "v",
                     CaseFacts(already_compensated=True, reopened=True))
    assert (allowed.outcome, allowed.rule_id) == ("granted", "reopened_apology")
    refused = decide(billing(40.0), small_policy, "v", CaseFacts(already_compensated=True, reopened=True))
    assert (refused.outcome, refused.reason_code) == ("none", "already_granted")


def test_reopened_case_without_an_earlier_grant_is_decided_normally(small_policy):
    decision = decide(billing(40.0), small_policy, "v", CaseFacts(reopened=True))
    assert (decision.outcome, decision.rule_id) == ("granted", "big_refund_for_billing")
