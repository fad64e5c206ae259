"""Every complaint gets something (issue 12): when the case cap leaves the matched rule with no
offer, the fallback's offers that fit are offered instead, with the extras that fit."""
from __future__ import annotations

from decimal import Decimal

from services.compensation.domain import CaseFacts, decide

from .conftest import SMALL_POLICY, complaint, policy_from

NOTE = {"kind": "personal_note", "handwritten": True, "value": 0.0}
GIFT = {"kind": "gift", "item": "small thank-you gift", "value": 10.0}


def test_a_trial_too_big_for_a_small_order_gives_way_to_the_note_and_gift(default_policy):
    decision = decide(complaint((20.0, "USD"), category="service_not_offered"), default_policy, "v")
    # trial: 60 days × 0.5 USD = 30 USD > cap 20 USD (order total × 1.0): dropped, the rule has nothing left;
    # fallback: note 0 + gift 10 = 10 USD ≤ 20: both fit
    assert (decision.outcome, decision.rule_id, decision.authority) == ("granted", "apology_and_gift", "agent")
    assert decision.offers == [NOTE, GIFT]
    assert decision.value == Decimal("10.00")
    assert decision.reason_codes == ("cap_applied", "fallback", "within_agent_limit")
    assert any("the cap leaves rule service_not_offered no offer: offering the fallback apology_and_gift"
               in line for line in decision.explanation)


def test_the_same_in_yen(default_policy):
    decision = decide(complaint((2000, "JPY"), category="service_not_offered"), default_policy, "v")
    # trial: 60 × 0.5 USD × 150 = 4,500 JPY > cap 2,000 JPY: dropped; gift: 10 USD × 150 = 1,500 JPY fits
    assert decision.offers == [NOTE, dict(GIFT, value=1500.0)]
    assert (decision.outcome, decision.value, decision.currency) == ("granted", Decimal("1500"), "JPY")


def test_only_the_fallback_offers_that_fit_are_offered(default_policy):
    decision = decide(complaint((5.0, "USD"), category="service_not_offered"), default_policy, "v")
    # cap 5 USD: the trial (30) and the gift (10) do not fit; the note (0) does
    assert decision.offers == [NOTE]
    assert (decision.outcome, decision.rule_id, decision.value) == ("granted", "apology_and_gift", Decimal("0.00"))


def test_extras_that_fit_stay_on_top_of_the_fallback(default_policy):
    decision = decide(complaint((20.0, "USD"), category="service_not_offered", public=True), default_policy, "v")
    # trial 30 > cap 20: dropped; public refund 25% × 20 = 5 USD fits, but the rule has no offer left:
    # fallback note 0 + gift 10 + refund 5 = 15 USD ≤ 20
    assert decision.offers == [NOTE, GIFT, {"kind": "refund", "percent": 25, "amount": 5.0, "value": 5.0}]
    assert (decision.rule_id, decision.extras, decision.value) == ("apology_and_gift", ("public_complaint",),
                                                                   Decimal("15.00"))


def test_a_case_at_its_cap_still_gets_the_free_note(small_policy):
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), small_policy, "v",
                      CaseFacts(granted_total=100))
    # cap 100, 100 granted: 0 left; the 15 coupon and 8 shipping are dropped; the fallback's mug
    # (10) does not fit, its note (0) does
    assert decision.offers == [NOTE]
    assert (decision.outcome, decision.rule_id, decision.reason_code) == ("granted", "apology", "cap_applied")


def test_a_rule_that_keeps_a_cut_down_offer_is_not_replaced(small_policy):
    decision = decide(complaint((100.0, "USD"), category="confusing_process"), small_policy, "v",
                      CaseFacts(granted_total=90))
    # 10 left: the coupon (15) is cut to 10 and still comes from the rule
    assert decision.rule_id == "coupon_for_confusion"
    assert "fallback" not in decision.reason_codes


def test_no_fallback_on_a_second_grant_the_fallback_does_not_allow():
    # the reopened_apology rule (flowers, 20 USD) may grant again on a reopened case; the fallback may not
    decision = decide(complaint((10.0, "USD"), category="delay"), policy_from(SMALL_POLICY), "v",
                      CaseFacts(already_compensated=True, reopened=True))
    # flowers 20 > cap 10: dropped; no fallback on this second grant: nothing
    assert (decision.outcome, decision.offers, decision.reason_code) == ("none", [], "cap_reached")


def test_a_fallback_allowed_on_reopen_stands_in_on_a_second_grant():
    text = SMALL_POLICY.replace("fallback:\n  id: apology\n", "fallback:\n  id: apology\n  allow_on_reopen: true\n")
    decision = decide(complaint((10.0, "USD"), category="delay"), policy_from(text), "v",
                      CaseFacts(already_compensated=True, reopened=True))
    # flowers 20 > cap 10: dropped; fallback note 0 + mug 10 = 10 ≤ 10: both fit
    assert [o["kind"] for o in decision.offers] == ["personal_note", "gift"]
    assert (decision.outcome, decision.value) == ("granted", Decimal("10.00"))


def test_an_order_total_with_float_noise_still_gets_its_replacement(default_policy):
    # A CRM's 3 × 1.15 arrives as 3.4499999999999997 USD: the order is 3.45 USD (minor units, half-up)
    # both as the replacement's worth and as the cap (order total × 1.0), so the replacement fits.
    decision = decide(complaint((3 * 1.15, "USD"), category="wrong_item_or_install"), default_policy, "v")
    assert decision.rule_id != "apology_and_gift"
    assert any(offer["kind"] == "replacement" and offer["value"] == 3.45 for offer in decision.offers)


def test_a_case_already_over_its_cap_still_gets_the_free_note():
    # A first grant allowed over the cap (110 on a 100 order) leaves no room: the free note still fits.
    policy = policy_from("""currency: USD
authority: [{role: agent, limit: 50}, {role: supervisor, limit: 500}]
approval_escalation_after: 4h
rules:
  - {id: sorry_again, when: {category: delay}, allow_on_reopen: true, offers: [{kind: personal_note, handwritten: true}, {kind: coupon, percent: 10}]}
fallback: {id: apology, allow_on_reopen: true, offers: [{kind: personal_note, handwritten: true}]}
""")
    facts = CaseFacts(granted_total=Decimal("110"), already_compensated=True, reopened=True)
    decision = decide(complaint((100.0, "USD"), category="delay"), policy, "v", facts)
    assert (decision.outcome, decision.offers) == ("granted", [NOTE])
