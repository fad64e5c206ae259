"""Money (issue 12): exact decimals, each currency's ISO 4217 minor units, half-up rounding.

Every expected value below was worked out by hand; the arithmetic is in the comment beside it.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.compensation.contract import decision_event, settled_event
from services.compensation.contract import ApprovalAnswer
from services.compensation.domain import CaseFacts, check_approval, decide, minor_units, round_money
from services.compensation.domain.money import format_money, round_ceiling

from .conftest import complaint, policy_from

# One rule per worked example; amounts in USD unless a line says otherwise.
MONEY_POLICY = """
currency: USD
exchange_rates: {JPY: 150, EUR: 0.92, BHD: 0.376, KWD: 0.307}
authority:
  - role: agent
    limit: 50
  - role: supervisor
    limit: 500
approval_escalation_after: 4h
pricing: {free_shipping_cost: 8, trial_daily_price: 0.5, gift_cost: 10, order_amount_when_unknown: 40}
rules:
  - id: coupon_15
    when: {category: confusing_process}
    offers: [{kind: coupon, percent: 15}]
  - id: refund_25
    when: {category: billing}
    offers: [{kind: refund, percent: 25}]
  - id: coupon_2_5
    when: {category: delay}
    offers: [{kind: coupon, percent: 2.5}]
  - id: coupon_12_5
    when: {category: other}
    offers: [{kind: coupon, percent: 12.5}]
  - id: gift
    when: {category: staff_behaviour}
    offers: [{kind: gift, item: flowers}]
fallback:
  id: apology
  offers: [{kind: personal_note}]
"""


@pytest.fixture(scope="module")
def money_policy():
    return policy_from(MONEY_POLICY)


def decided(policy, amount: str, currency: str, category: str, **facts):
    return decide(complaint((float(amount), currency), category=category), policy, "v", CaseFacts(**facts))


# ---------- the rule itself ----------
@pytest.mark.parametrize("currency, places", [("JPY", 0), ("USD", 2), ("EUR", 2), ("BHD", 3), ("KWD", 3)])
def test_minor_units_come_from_iso_4217(currency, places):
    assert minor_units(currency) == places


@pytest.mark.parametrize("amount, currency, expected", [
    ("185.1", "JPY", "185"),      # 15% of 1,234 JPY = 185.1 → 185 JPY
    ("249.75", "JPY", "250"),     # 25% of 999 JPY = 249.75 → 250 JPY
    ("14.9985", "USD", "15.00"),  # 15% of 99.99 USD = 14.9985 → 15.00 USD
    ("0.0075", "USD", "0.01"),    # 2.5% of 0.30 USD = 0.0075 → 0.01 USD
    ("0.125", "USD", "0.13"),     # a tie: half-up gives 0.13 (Python's default half-even would give 0.12)
    ("0.0125", "BHD", "0.013"),   # 12.5% of 0.100 BHD = 0.0125 → 0.013 BHD (half-even: 0.012)
    ("1.85175", "BHD", "1.852"),  # 15% of 12.345 BHD = 1.85175 → 1.852 BHD
    ("0.25025", "KWD", "0.250"),  # 25% of 1.001 KWD = 0.25025 → 0.250 KWD
])
def test_amounts_round_half_up_to_the_currency_minor_units(amount, currency, expected):
    rounded = round_money(Decimal(amount), currency)
    assert rounded == Decimal(expected)
    assert str(rounded) == expected  # the exponent too: 185, not 185.0; 0.250, not 0.25


def test_ceilings_round_down_so_they_never_allow_more_than_written():
    # 50 USD at 0.9237 EUR per USD = 46.185 EUR: a limit of 46.18 EUR (46.19 would exceed 50 USD)
    assert round_ceiling(Decimal("46.185"), "EUR") == Decimal("46.18")
    # 1,235 JPY × 0.5 = 617.5 JPY: a cap of 617 JPY
    assert round_ceiling(Decimal("617.5"), "JPY") == Decimal("617")


def test_amounts_are_shown_in_the_currency_minor_units():
    assert format_money(Decimal("185"), "JPY") == "185 JPY"
    assert format_money(Decimal("15"), "USD") == "15.00 USD"
    assert format_money(Decimal("1.852"), "BHD") == "1.852 BHD"


# ---------- the worked examples, through a decision ----------
def test_15_percent_of_1234_yen_is_a_185_yen_coupon(money_policy):
    decision = decided(money_policy, "1234", "JPY", "confusing_process")
    # 0.15 × 1,234 = 185.1 JPY → 185 JPY (JPY has no minor unit)
    assert decision.offers == [{"kind": "coupon", "percent": 15, "value": 185.0}]
    assert (decision.value, decision.currency, decision.outcome) == (Decimal("185"), "JPY", "granted")


def test_25_percent_refund_of_999_yen_is_250_yen(money_policy):
    decision = decided(money_policy, "999", "JPY", "billing")
    # 0.25 × 999 = 249.75 JPY → 250 JPY (half-up; .75 rounds up either way)
    assert decision.offers == [{"kind": "refund", "percent": 25, "amount": 250.0, "value": 250.0}]
    assert decision.value == Decimal("250")


def test_15_percent_of_99_99_dollars_is_15_dollars(money_policy):
    decision = decided(money_policy, "99.99", "USD", "confusing_process")
    # 0.15 × 99.99 = 14.9985 USD → 15.00 USD
    assert decision.offers == [{"kind": "coupon", "percent": 15, "value": 15.0}]
    assert decision.value == Decimal("15.00")


def test_2_5_percent_of_30_cents_is_one_cent(money_policy):
    decision = decided(money_policy, "0.30", "USD", "delay")
    # 0.025 × 0.30 = 0.0075 USD → 0.01 USD (half-up: the 5 in the third decimal rounds up)
    assert decision.offers == [{"kind": "coupon", "percent": 2.5, "value": 0.01}]
    assert decision.value == Decimal("0.01")


def test_12_5_percent_of_a_tenth_of_a_dinar_rounds_half_up_in_fils(money_policy):
    decision = decided(money_policy, "0.100", "BHD", "other")
    # 0.125 × 0.100 = 0.0125 BHD → 0.013 BHD (3 decimals; half-even would give 0.012)
    assert decision.offers == [{"kind": "coupon", "percent": 12.5, "value": 0.013}]
    assert decision.value == Decimal("0.013")


def test_15_percent_of_12_345_dinars_keeps_three_decimals(money_policy):
    decision = decided(money_policy, "12.345", "BHD", "confusing_process")
    # 0.15 × 12.345 = 1.85175 BHD → 1.852 BHD (not 1.85, as 2-decimal rounding gave before)
    assert decision.value == Decimal("1.852")
    assert decision.offers[0]["value"] == 1.852


def test_converted_prices_are_rounded_in_the_order_currency(money_policy):
    # a 10 USD gift: 10 × 150 = 1,500 JPY; 10 × 0.376 = 3.760 BHD; 10 × 0.307 = 3.070 KWD
    assert decided(money_policy, "5000", "JPY", "staff_behaviour").value == Decimal("1500")
    assert str(decided(money_policy, "50", "BHD", "staff_behaviour").value) == "3.760"
    assert str(decided(money_policy, "50", "KWD", "staff_behaviour").value) == "3.070"


def test_a_converted_price_on_a_tie_rounds_half_up():
    policy = policy_from(MONEY_POLICY.replace("EUR: 0.92", "EUR: 0.9225"))
    # 10 USD gift × 0.9225 = 9.225 EUR → 9.23 EUR (half-even would give 9.22)
    assert decided(policy, "100", "EUR", "staff_behaviour").value == Decimal("9.23")


def test_policy_numbers_are_read_as_exact_decimals():
    policy = policy_from(MONEY_POLICY.replace("EUR: 0.92", "EUR: 0.1") + "cap_factor: 1.1\n")
    assert policy.exchange_rates["EUR"] == Decimal("0.1")  # not 0.1000000000000000055511151231257827…
    assert policy.cap_factor == Decimal("1.1")
    assert policy.rules[2].offers[0].percent == Decimal("2.5")
    # cap: 100 USD × 1.1 = 110.0 exactly (in floats 110.00000000000001); 95 granted + the 15% coupon
    # (0.15 × 100 = 15.00) = 110.00: exactly at the cap, so it fits whole, nothing trimmed
    decision = decided(policy, "100", "USD", "confusing_process", granted_total=95)
    assert (decision.value, decision.reason_codes) == (Decimal("15.00"), ("within_agent_limit",))


# ---------- ceilings: limits and the case cap ----------
def test_a_converted_limit_is_rounded_down():
    policy = policy_from(MONEY_POLICY.replace("EUR: 0.92", "EUR: 0.9237"))
    # agent: 50 USD × 0.9237 = 46.185 EUR → 46.18 EUR
    assert check_approval(Decimal("46.18"), "EUR", "agent", policy).ok
    refused = check_approval(Decimal("46.19"), "EUR", "agent", policy)
    assert refused.reason == ("role agent may approve up to 46.18 EUR, this compensation is 46.19 EUR; "
                              "it needs supervisor")


def test_a_limit_in_yen_is_shown_without_decimals(money_policy):
    refused = check_approval(Decimal("9000"), "JPY", "agent", money_policy)
    # agent: 50 USD × 150 = 7,500 JPY
    assert refused.reason == "role agent may approve up to 7500 JPY, this compensation is 9000 JPY; it needs supervisor"


def test_the_case_cap_is_rounded_down_and_a_cut_coupon_fits_in_it():
    policy = policy_from(MONEY_POLICY + "cap_factor: 0.5\n")
    decision = decided(policy, "1235", "JPY", "confusing_process", granted_total=500)
    # cap: 1,235 × 0.5 = 617.5 → 617 JPY; 500 granted leaves 117 JPY;
    # the coupon, 0.15 × 1,235 = 185.25 → 185 JPY, is cut to 117 JPY
    assert decision.offers == [{"kind": "coupon", "percent": 15, "cap": 117.0, "value": 117.0}]
    assert decision.reason_code == "cap_applied"


def test_a_coupon_cut_to_the_room_left_is_rounded_down_to_fit():
    policy = policy_from(MONEY_POLICY + "cap_factor: 0.5\n")
    decision = decided(policy, "99.99", "USD", "confusing_process", granted_total=40)
    # cap: 99.99 × 0.5 = 49.995 → 49.99 USD; 40 granted leaves 9.99; the 15.00 coupon is cut to 9.99
    assert decision.value == Decimal("9.99")


# ---------- the contract: same fields, JSON numbers, minor units ----------
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def test_outbound_events_carry_amounts_as_json_numbers_in_minor_units(money_policy):
    decision = decided(money_policy, "1234", "JPY", "confusing_process")
    event = decision_event(decision, "d-1", "CRM-1", "C-1", "evt-1", NOW)
    text = json.dumps(event)
    assert '"value": 185.0' in text  # a JSON number, whole yen (185.1 before)
    assert isinstance(event["value"], float) and event["offers"][0]["value"] == 185
    dinar = decision_event(decided(money_policy, "12.345", "BHD", "confusing_process"), "d-2", "CRM-2", "C-1",
                           "evt-2", NOW)
    assert '"value": 1.852' in json.dumps(dinar)  # 0.15 × 12.345 = 1.85175 → 1.852 BHD


def test_an_approved_event_repeats_the_stored_decimal_as_a_json_number():
    stored = {"decision_id": "d-1", "customer_id": "C-1", "offers": [], "value": Decimal("185"), "currency": "JPY",
              "rule_id": "r", "policy_version": "v", "authority": "supervisor", "reason_code": "x",
              "reason_codes": ["x"], "case_id": "CRM-1"}
    answer = ApprovalAnswer.model_validate({
        "event_id": "e-1", "type": "compensation.approved", "occurred_at": "2026-11-23T10:00:00Z",
        "decision_id": "d-1", "approver": {"role": "supervisor", "id": "S-1"}})
    event = settled_event(stored, answer, NOW)
    assert event["value"] == 185 and isinstance(event["value"], float)
