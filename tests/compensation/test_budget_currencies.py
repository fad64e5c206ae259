"""Monthly budgets in other currencies (issue 12): a budget written in USD limits EUR and JPY grants
too, converted at the policy's exchange rates; a policy whose budgets or limits cannot be converted
is refused at load, naming the field.

The small policy (conftest.SMALL_POLICY): USD, 0.9 EUR and 150 JPY per USD; the agent may grant
45 EUR (explicit) or 50 USD; the billing rule refunds the whole order (plus a free note).
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from services.compensation.domain import BudgetCharge, BudgetLine, CaseFacts, budget_line, decide
from shared.policy import PolicyError

from .conftest import SMALL_POLICY, complaint, policy_from

USD_BUDGET = SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100}\npricing:")


def billing(amount: float, currency: str, **fields):
    return complaint((amount, currency), category="billing", **fields)


def test_a_euro_grant_spends_a_dollar_budget_converted():
    decision = decide(billing(40.0, "EUR"), policy_from(USD_BUDGET), "v", CaseFacts(month_spent=Decimal("55.56")))
    # 40 EUR / 0.9 EUR per USD = 44.444… → 44.44 USD; 100 − 55.56 = 44.44 USD left: just enough
    assert decision.budget == BudgetCharge("USD", Decimal("44.44"))
    assert (decision.outcome, decision.reason_code) == ("granted", "within_agent_limit")


def test_a_euro_grant_that_overruns_a_dollar_budget_waits_for_a_supervisor():
    decision = decide(billing(40.0, "EUR"), policy_from(USD_BUDGET), "v", CaseFacts(month_spent=Decimal("55.57")))
    # 100 − 55.57 = 44.43 USD left < 44.44 USD this grant spends
    assert (decision.outcome, decision.authority, decision.reason_code) == (
        "pending_approval", "supervisor", "budget_exceeded")
    assert any("only 44.43 USD left this month, this grant spends 44.44 USD" in line
               for line in decision.explanation)


def test_a_yen_grant_spends_a_dollar_budget_converted():
    policy = policy_from(USD_BUDGET)
    # 3,000 JPY / 150 JPY per USD = 20.00 USD; 100 − 80 = 20 USD left: enough; 100 − 80.01 = 19.99: not
    enough = decide(billing(3000, "JPY"), policy, "v", CaseFacts(month_spent=80))
    assert (enough.outcome, enough.budget) == ("granted", BudgetCharge("USD", Decimal("20.00")))
    assert decide(billing(3000, "JPY"), policy, "v", CaseFacts(month_spent=Decimal("80.01"))).reason_code == \
        "budget_exceeded"


def test_a_dollar_grant_spends_its_own_line_unconverted():
    decision = decide(billing(40.0, "USD"), policy_from(USD_BUDGET), "v", CaseFacts(month_spent=60))
    # 40.00 USD, 100 − 60 = 40 left
    assert (decision.outcome, decision.budget) == ("granted", BudgetCharge("USD", Decimal("40.00")))


def test_a_line_in_the_grant_currency_comes_first():
    policy = policy_from(SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100, EUR: 50}\npricing:"))
    assert budget_line(policy, "crm-east", "EUR") == BudgetLine("EUR", Decimal(50))
    assert budget_line(policy, "crm-east", "JPY") == BudgetLine("USD", Decimal(100))  # the policy currency's
    decision = decide(billing(40.0, "EUR"), policy, "v", CaseFacts(month_spent=10))
    # 40.00 EUR of the EUR line: 50 − 10 = 40 left, enough
    assert (decision.outcome, decision.budget) == ("granted", BudgetCharge("EUR", Decimal("40.00")))


def test_without_a_policy_currency_line_the_first_line_written_is_spent():
    policy = policy_from(SMALL_POLICY.replace("pricing:", "budgets:\n  '*': {EUR: 50}\npricing:"))
    decision = decide(billing(3000, "JPY", source="crm-west"), policy, "v", CaseFacts(month_spent=32))
    # 3,000 JPY / 150 = 20 USD × 0.9 = 18.00 EUR; 50 − 32 = 18 EUR left: just enough
    assert (decision.outcome, decision.budget) == ("granted", BudgetCharge("EUR", Decimal("18.00")))


def test_a_pending_decision_knows_what_it_will_spend_once_approved():
    decision = decide(billing(120.0, "EUR"), policy_from(USD_BUDGET), "v")
    # over the 45 EUR agent limit; once approved it spends 120 / 0.9 = 133.333… → 133.33 USD
    assert (decision.outcome, decision.budget) == ("pending_approval", BudgetCharge("USD", Decimal("133.33")))


def test_no_budget_means_nothing_to_spend(small_policy):
    assert decide(billing(40.0, "EUR"), small_policy, "v").budget is None


# ---------- refused at load ----------
def test_a_budget_in_a_currency_without_exchange_rate_is_refused_naming_the_field():
    text = SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100, CHF: 90}\npricing:")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("budgets:"))
    with pytest.raises(PolicyError) as refused:
        policy_from(text, "config/compensation.yaml")
    assert str(refused.value) == (
        f"config/compensation.yaml:{line}: budgets: Value error, budget of crm-east in CHF but no exchange rate "
        "from USD to it; add it to `exchange_rates`")


def test_a_limit_in_a_currency_without_exchange_rate_is_refused_naming_the_field():
    text = SMALL_POLICY.replace("limits: {EUR: 45}", "limits: {EUR: 45, GBP: 40}")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if row.startswith("authority:"))
    with pytest.raises(PolicyError, match=rf"test.yaml:{line}: authority: Value error, role agent: limit in GBP "
                                          r"but no exchange rate from USD to it"):
        policy_from(text)


def test_a_budget_in_the_policy_currency_or_a_listed_one_is_accepted():
    policy = policy_from(SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100, JPY: 9000}\npricing:"))
    assert policy.budgets["crm-east"] == {"USD": Decimal(100), "JPY": Decimal(9000)}
