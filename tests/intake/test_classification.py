"""Classification rules, applied from the shipped config/classification.yaml (pure: no broker, no DB)."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.domain import (
    assess_loyalty, assess_publicity_risk, assess_severity, assess_temperament, assign_priority,
    classify, classify_category, matched_keywords,
)
from services.intake.policy import ClassificationPolicy
from shared.policy import PolicyError, load_policy, parse_policy
from tests.builders import complaint

CONFIG = Path(__file__).resolve().parents[2] / "config" / "classification.yaml"


@pytest.fixture(scope="module")
def policy() -> ClassificationPolicy:
    return load_policy(CONFIG, ClassificationPolicy)


def usd(amount: float) -> dict:
    return {"id": "O-1", "amount": amount, "currency": "USD"}


# ---------- the demo stories ----------
def test_loyal_customer_whose_contractor_installed_the_unwanted_ac_unit(policy):
    c = complaint(customer={"tier": "loyal"}, order=usd(7800), subject="Wrong AC unit installed",
                  description="I told your contractor clearly that I did not want the rooftop unit. "
                              "He installed it anyway while I was at work.")
    result = classify(c, policy, repeat_contacts=0)
    assert (result.category, result.loyalty, result.severity) == ("wrong_item_or_install", "loyal", "high")
    assert result.priority == "P1"
    assert "order value 7,800 USD is over 1,000" in result.reasons


def test_customer_confused_by_the_ordering_system(policy):
    c = complaint(channel="web", subject="Cannot place an order",
                  description="I spent an hour on your website and could not figure out the ordering system. "
                              "Which plan do I pick? It is so confusing.")
    result = classify(c, policy, 0)
    assert result.category == "confusing_process"
    assert result.severity == "low"


def test_customer_asking_for_a_service_the_company_does_not_offer(policy):
    c = complaint(channel="email", subject="Gutter cleaning?",
                  description="Do you offer gutter cleaning? The store told me you don't do that.")
    assert classify(c, policy, 0).category == "service_not_offered"


def test_coffee_that_was_not_right_is_a_low_severity_satisfaction_case(policy):
    c = complaint(channel="in_person", order=usd(4.5), subject="My latte was not right",
                  description="The latte this morning was lukewarm and tasted sour. Not like the usual.")
    result = classify(c, policy, 0)
    assert (result.category, result.severity, result.priority) == ("satisfaction", "low", "P4")


def test_expensive_shoes_whose_heel_came_off_without_a_receipt_are_a_defect(policy):
    c = complaint(order=usd(450), subject="Heel came off",
                  description="The heel came off two weeks after I bought these shoes. I threw away the "
                              "receipt and the store says they cannot help me.")
    result = classify(c, policy, 0)
    assert result.category == "defect"
    assert result.severity == "medium"


def test_wrecked_suitcase_posted_publicly_is_high_publicity_and_high_priority(policy):
    c = complaint(channel="social", public=True, order={"id": "T-1", "amount": 320, "currency": "EUR"},
                  subject="New suitcase arrived wrecked",
                  description="My brand-new suitcase came off the carousel wrecked: a wheel torn off and "
                              "the shell crushed. Photos are up for everyone to see.")
    result = classify(c, policy, 0)
    assert result.category == "damaged_in_transit"
    assert result.publicity_risk == "high"
    assert result.priority in ("P1", "P2")
    assert "publicity risk high: posted publicly, came in on social" in result.reasons


def test_irate_all_caps_customer_threatening_to_sue_goes_to_the_top(policy):
    c = complaint(channel="email", subject="BROKEN FRIDGE",
                  description="YOUR FRIDGE STOPPED WORKING AFTER THREE DAYS AND NOBODY CALLS BACK!!! "
                              "THIS IS OUTRAGEOUS. I WILL SUE YOU!!!")
    result = classify(c, policy, 0)
    assert result.temperament == "irate"
    assert result.severity in ("high", "critical")
    assert result.priority == "P1"
    assert "customer threatens legal action: 'sue you'" in result.reasons


def test_reasons_never_contain_the_customers_name_email_or_words(policy):
    c = complaint(customer={"name": "Sue Miller", "email": "sue@example.com"}, channel="social",
                  subject="Zanzibar quokka", description="Zanzibar quokka zebra, Sue Miller writing.")
    reasons = " ".join(classify(c, policy, 1).reasons)
    for private in ("Sue", "Miller", "sue@example.com", "Zanzibar", "quokka", "zebra"):
        assert private not in reasons


# ---------- category ----------
def test_keywords_match_whole_words_only(policy):
    assert matched_keywords("I love chocolate", ["late"]) == []
    assert matched_keywords("It came LATE again", ["late"]) == ["late"]


def test_a_starred_keyword_matches_any_ending_and_phrases_span_line_breaks():
    assert matched_keywords("I was overcharged", ["overcharg*"]) == ["overcharg*"]
    assert matched_keywords("I did not\nwant it", ["did not want"]) == ["did not want"]


def test_curly_apostrophes_from_phones_match(policy):
    c = complaint(subject="Installer", description="I didn\u2019t want that model at all")
    assert classify(c, policy, 0).category == "wrong_item_or_install"


def test_complaint_without_any_keyword_falls_back_to_other(policy):
    category, reasons = classify_category("Please call me back about my account.", policy)
    assert category == "other"
    assert reasons == ["category other: no category keyword matched"]


def test_most_matched_category_wins_and_a_tie_goes_to_the_one_listed_first(policy):
    assert classify_category("charged twice on my invoice, also it arrived late", policy)[0] == "billing"
    # 'arrived broken' (damaged_in_transit) and 'broken' (defect): one each, damaged is listed first
    assert classify_category("it arrived broken", policy)[0] == "damaged_in_transit"


# ---------- severity ----------
def test_order_value_raises_severity_by_threshold(policy):
    rules = policy.severity
    assert assess_severity("", "delay", None, 0, rules)[0] == "low"
    assert assess_severity("", "delay", complaint(order=usd(300)).order, 0, rules)[0] == "medium"
    assert assess_severity("", "delay", complaint(order=usd(1500)).order, 0, rules)[0] == "high"
    assert assess_severity("", "delay", complaint(order=usd(25000)).order, 0, rules)[0] == "critical"


def test_order_value_in_another_currency_is_converted_before_comparing(policy):
    yen = complaint(order={"id": "O-2", "amount": 100000, "currency": "JPY"}).order
    severity, reasons = assess_severity("", "delay", yen, 0, policy.severity)
    assert severity == "medium"  # 100,000 read as dollars would be critical
    assert reasons[-1] == "order value 100,000 JPY (about 670 USD) is over 250"


def test_safety_words_make_a_complaint_critical(policy):
    severity, reasons = assess_severity("the heater gave off smoke", "defect", None, 0, policy.severity)
    assert severity == "critical"
    assert "safety concern: 'smoke'" in reasons


def test_threat_to_leave_raises_severity_one_step(policy):
    severity, reasons = assess_severity("I will take my business elsewhere", "delay", None, 0, policy.severity)
    assert severity == "medium"
    assert "customer threatens to leave: 'take my business elsewhere'" in reasons


def test_the_name_sue_is_not_a_threat_to_sue(policy):
    assert assess_severity("Regards, Sue", "delay", None, 0, policy.severity)[0] == "low"


def test_repeat_complaint_raises_severity_and_says_which_complaint_it_is(policy):
    severity, reasons = assess_severity("", "delay", None, 1, policy.severity)
    assert severity == "medium"
    assert "2nd complaint on this case" in reasons
    assert assess_severity("", "delay", None, 5, policy.severity)[0] == "high"  # at most 2 steps


def test_severity_never_goes_above_the_cap(policy):
    capped = policy.severity.model_copy(update={"cap": "high"})
    assert assess_severity("smoke, I will sue you", "defect", None, 3, capped)[0] == "high"
    assert assess_severity("smoke, I will sue you", "defect", None, 3, policy.severity)[0] == "critical"


# ---------- temperament ----------
def test_plain_polite_text_is_calm(policy):
    assert assess_temperament("Hello, my order is late. Could you check? Thanks.", policy.temperament) == ("calm", [])


def test_one_anger_word_makes_a_customer_upset(policy):
    temperament, reasons = assess_temperament("This is unacceptable.", policy.temperament)
    assert temperament == "upset"
    assert reasons == ["upset: anger words 'unacceptable'"]


def test_shouting_in_capitals_makes_a_customer_irate(policy):
    assert assess_temperament("WHERE IS MY ORDER, I HAVE WAITED FOR WEEKS", policy.temperament)[0] == "irate"


def test_a_short_text_in_capitals_is_not_shouting(policy):
    assert assess_temperament("TV BROKEN", policy.temperament)[0] == "calm"


def test_two_upset_signals_together_make_a_customer_irate(policy):
    assert assess_temperament("This is unacceptable!! Fix it.", policy.temperament)[0] == "irate"


# ---------- loyalty ----------
def test_tier_sent_by_the_crm_wins_over_derived_loyalty(policy):
    customer = complaint(customer={"tier": "standard", "tenure_days": 4000}).customer
    assert assess_loyalty(customer, policy.loyalty) == ("standard", ["standard customer (tier from CRM)"])


@pytest.mark.parametrize(("facts", "expected"), [
    ({"lifetime_value": 30000}, "vip"),
    ({"referrals": 12}, "vip"),
    ({"tenure_days": 1460}, "loyal"),
    ({"lifetime_value": 5400}, "loyal"),
    ({"referrals": 3}, "loyal"),
    ({"tenure_days": 20}, "new"),
    ({"tenure_days": 400, "lifetime_value": 800}, "standard"),
    ({}, "standard"),
])
def test_loyalty_is_derived_from_tenure_value_and_referrals(policy, facts, expected):
    assert assess_loyalty(complaint(customer=facts).customer, policy.loyalty)[0] == expected


# ---------- publicity ----------
@pytest.mark.parametrize(("channel", "public", "expected"), [
    ("phone", False, "low"), ("phone", True, "high"), ("social", False, "high"), ("web", True, "high"),
])
def test_publicity_risk_is_high_when_public_or_on_social(policy, channel, public, expected):
    assert assess_publicity_risk(complaint(channel=channel, public=public), policy.publicity)[0] == expected


# ---------- priority ----------
def test_priority_follows_severity_without_bumps(policy):
    got = [assign_priority(s, "calm", "standard", "low", policy.priority)[0] for s in ("low", "medium", "high", "critical")]
    assert got == ["P4", "P3", "P2", "P1"]


def test_irate_vip_on_social_is_bumped_at_most_two_steps(policy):
    priority, reasons = assign_priority("low", "irate", "vip", "high", policy.priority)
    assert priority == "P2"
    assert reasons == ["priority P2: P4 for low severity, raised for irate customer, vip customer, publicity risk"]


def test_priority_never_goes_above_p1(policy):
    assert assign_priority("critical", "irate", "vip", "high", policy.priority)[0] == "P1"


# ---------- the policy file ----------
def test_shipped_policy_covers_the_required_categories(policy):
    required = {"wrong_item_or_install", "defect", "damaged_in_transit", "delay", "billing", "confusing_process",
                "service_not_offered", "staff_behaviour", "satisfaction", "other"}
    assert required <= set(policy.category_names)


def test_policy_with_a_misspelt_key_is_refused_with_file_and_line():
    text = CONFIG.read_text(encoding="utf-8").replace("  max_total_bump: 2", "  max_total_bumps: 2")
    line = text.splitlines().index("  max_total_bumps: 2") + 1
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, ClassificationPolicy, "config/classification.yaml")
    assert f"config/classification.yaml:{line}: priority.max_total_bumps" in str(refused.value)


def test_policy_giving_severity_to_an_unknown_category_is_refused():
    text = CONFIG.read_text(encoding="utf-8").replace("    delay: low\n", "    delays: low\n")
    with pytest.raises(PolicyError, match="unknown categories: delays"):
        parse_policy(text, ClassificationPolicy, "config/classification.yaml")


# ---------- the keyword index finds exactly what each keyword's own pattern finds ----------
from hypothesis import given, settings, strategies as st  # noqa: E402

from services.intake.domain.keywords import _keyword_pattern  # noqa: E402

_WORDS = ["late", "delay", "chocolate", "don't", "provide", "a&e", "no-show", "over", "overcharged", "Brûlé",
          "fire", "STAFF", "i'm", "done", "wrong", "item"]
_KEYWORDS = ["late", "delay*", "don't provide", "a&e", "no-show", "overcharg*", "brûl*", "fire", "staff",
             "i'm done", "wrong item", "over", "-x", "it*"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS + [" ", "  ", "\n", ",", "!", "'", "-"]), max_size=25), st.lists(st.sampled_from(_KEYWORDS), unique=True))
def test_indexed_keyword_matching_agrees_with_each_keywords_own_pattern(parts, keywords):
    text = "".join(parts)
    assert matched_keywords(text, keywords) == [k for k in keywords if _keyword_pattern(k).search(text)]
