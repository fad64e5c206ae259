"""The default policy (config/compensation.yaml) does what the service-recovery practice says."""
from __future__ import annotations

from decimal import Decimal

from services.compensation.domain import decide

from .conftest import complaint


def kinds(decision) -> list[str]:
    return [offer["kind"] for offer in decision.offers]


def test_confusing_process_gets_15_percent_coupon_and_free_shipping_at_once(default_policy):
    decision = decide(complaint(category="confusing_process"), default_policy, "v1")
    assert decision.offers == [
        {"kind": "coupon", "percent": 15, "value": 15.0},
        {"kind": "free_shipping", "value": 8.0},
    ]
    assert (decision.outcome, decision.value, decision.authority) == ("granted", 23.0, "agent")
    assert decision.rule_id == "confusing_process"
    assert decision.reason_code == "within_agent_limit"
    assert decision.policy_version == "v1"


def test_service_we_do_not_offer_gets_a_60_day_free_trial(default_policy):
    decision = decide(complaint(category="service_not_offered"), default_policy, "v1")
    assert decision.offers == [{"kind": "free_trial", "days": 60, "value": 30.0}]
    assert decision.outcome == "granted"


def test_drink_or_meal_not_right_is_replaced_at_once(default_policy):
    decision = decide(complaint((6.5, "USD"), category="satisfaction"), default_policy, "v1")
    assert decision.rule_id == "meal_or_drink_not_right"
    assert kinds(decision) == ["replacement"]
    assert (decision.outcome, decision.value, decision.authority) == ("granted", 6.5, "agent")


def test_dissatisfaction_with_a_large_order_is_not_treated_as_a_meal(default_policy):
    decision = decide(complaint((900.0, "USD"), category="satisfaction"), default_policy, "v1")
    assert decision.rule_id == "apology_and_gift"


def test_defective_item_is_replaced_without_receipt_plus_a_small_gift(default_policy):
    decision = decide(complaint((30.0, "USD"), category="defect"), default_policy, "v1")
    assert decision.offers[0] == {"kind": "replacement", "note": "no receipt needed", "value": 30.0}
    assert decision.offers[1]["kind"] == "gift"
    # replacement plus gift goes past the order total: the rule allows it, the gift is the "little more"
    assert (decision.outcome, decision.value, decision.reason_code) == ("granted", 40.0, "within_agent_limit")


def test_item_damaged_in_transit_follows_the_defect_rule(default_policy):
    decision = decide(complaint((30.0, "USD"), category="damaged_in_transit"), default_policy, "v1")
    assert decision.rule_id == "defect_or_damage"


def test_loyal_customer_with_wrong_install_gets_a_creative_extra(default_policy):
    decision = decide(complaint((1000.0, "USD"), category="wrong_item_or_install", loyalty="loyal"),
                      default_policy, "v1")
    assert decision.rule_id == "wrong_install_loyal_customer"
    assert {"kind": "gesture", "description": "free maintenance visit", "value": 150.0} in decision.offers
    assert {"kind": "personal_note", "handwritten": True, "value": 0.0} in decision.offers
    assert decision.extras == ("loyal_customer_note",)
    assert (decision.outcome, decision.value, decision.authority) == ("pending_approval", 1150.0, "manager")


def test_standard_customer_with_wrong_install_gets_the_fix_without_the_extra(default_policy):
    decision = decide(complaint((20.0, "USD"), category="wrong_item_or_install"), default_policy, "v1")
    assert decision.rule_id == "wrong_item_or_install"
    assert kinds(decision) == ["replacement"]


def test_public_complaint_gets_generous_compensation_on_top(default_policy):
    private = decide(complaint((100.0, "USD"), category="confusing_process"), default_policy, "v1")
    public = decide(complaint((100.0, "USD"), category="confusing_process", public=True), default_policy, "v1")
    assert public.extras == ("public_complaint",)
    assert {"kind": "refund", "percent": 25, "amount": 25.0, "value": 25.0} in public.offers
    # values are exact Decimals now (Decimal + float is a TypeError): 23.00 + 25 = 48.00 USD
    assert public.value == private.value + 25


def test_complaint_no_rule_covers_still_gets_an_apology_and_a_gift(default_policy):
    decision = decide(complaint(category="delay"), default_policy, "v1")
    assert decision.rule_id == "apology_and_gift"
    assert kinds(decision) == ["personal_note", "gift"]
    assert (decision.outcome, decision.value, decision.reason_code) == ("granted", 10.0, "fallback")


def test_complaint_without_an_order_is_priced_from_policy_defaults(default_policy):
    decision = decide(complaint(None, category="confusing_process"), default_policy, "v1")
    # 15% of the assumed 40 USD order, plus 8 USD shipping
    assert (decision.value, decision.currency) == (14.0, "USD")


def test_order_in_euros_is_priced_and_limited_in_euros(default_policy):
    decision = decide(complaint((100.0, "EUR"), category="service_not_offered"), default_policy, "v1")
    assert decision.currency == "EUR"
    # 60 days × 0.5 USD × 0.92 = 27.6 EUR, an exact Decimal in cents (Decimal("27.60") != the float 27.6)
    assert decision.value == Decimal("27.60")


def test_a_loyal_customer_on_the_fallback_gets_one_handwritten_note_not_two(default_policy):
    decision = decide(complaint(category="other", loyalty="loyal"), default_policy, "v1")
    assert decision.rule_id == "apology_and_gift" and "loyal_customer_note" in decision.extras
    assert kinds(decision).count("personal_note") == 1
    assert kinds(decision) == ["personal_note", "gift"]
    assert any("loyal_customer_note: its personal_note is offered already, not twice" in line
               for line in decision.explanation)
    # a rule without a note still gets the loyal customers' note
    coupon = decide(complaint(category="confusing_process", loyalty="vip"), default_policy, "v1")
    assert kinds(coupon) == ["coupon", "free_shipping", "personal_note"]
