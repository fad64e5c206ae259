"""What an admin may and may not write in config/compensation.yaml."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.compensation.domain import decide
from shared.policy import PolicyError

from .conftest import SMALL_POLICY, complaint, policy_from


def test_policy_without_fallback_is_refused_naming_file_and_field():
    text = SMALL_POLICY.split("fallback:")[0]
    with pytest.raises(PolicyError) as refused:
        policy_from(text, "config/compensation.yaml")
    assert "config/compensation.yaml" in str(refused.value)
    assert "fallback: Field required" in str(refused.value)


def test_misspelt_key_is_refused_with_its_line():
    text = SMALL_POLICY.replace("allow_over_cap: true", "allow_overcap: true")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "allow_overcap" in row)
    with pytest.raises(PolicyError, match=rf"test.yaml:{line}: rules.2.allow_overcap: Extra inputs"):
        policy_from(text)


CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_category_intake_never_assigns_is_refused():
    with pytest.raises(PolicyError, match="rules.0.when.category"):
        policy_from(SMALL_POLICY.replace("category: confusing_process", "category: confusing"),
                    str(CONFIG / "compensation.yaml"))


def test_the_categories_are_the_organisations_own(tmp_path):
    # An airline's classification.yaml defines lost_luggage: its compensation rules may name it.
    (tmp_path / "classification.yaml").write_text(
        (CONFIG / "classification.yaml").read_text().replace("  - name: satisfaction\n", "  - name: lost_luggage\n    keywords: []\n  - name: satisfaction\n"))
    text = SMALL_POLICY.replace("category: confusing_process", "category: lost_luggage")
    assert policy_from(text, str(tmp_path / "compensation.yaml")).rules[0].when.category == ["lost_luggage"]
    with pytest.raises(PolicyError, match="category 'lost_luggage' is not in classification.yaml beside this file"):
        policy_from(text, str(CONFIG / "compensation.yaml"))


def test_refund_needs_exactly_one_of_percent_or_amount():
    with pytest.raises(PolicyError, match="exactly one of `percent` or `amount`"):
        policy_from(SMALL_POLICY.replace("{kind: refund, percent: 100}", "{kind: refund, percent: 10, amount: 5}"))


def test_offer_of_unknown_kind_is_refused():
    with pytest.raises(PolicyError, match="rules.0.offers.1"):
        policy_from(SMALL_POLICY.replace("{kind: free_shipping}", "{kind: free_lunch}"))


def test_supervisor_limit_below_agent_limit_is_refused():
    with pytest.raises(PolicyError, match="supervisor may grant less than agent"):
        policy_from(SMALL_POLICY.replace("limit: 500", "limit: 20"))


def test_limit_in_a_currency_without_exchange_rate_is_refused():
    with pytest.raises(PolicyError, match="no exchange rate"):
        policy_from(SMALL_POLICY.replace("limits: {EUR: 45}", "limits: {CHF: 45}"))


def test_two_rules_with_the_same_id_are_refused():
    with pytest.raises(PolicyError, match="repeated: coupon_for_confusion"):
        policy_from(SMALL_POLICY.replace("id: replace_defect", "id: coupon_for_confusion"))


def test_bad_escalation_duration_is_refused():
    with pytest.raises(PolicyError, match="approval_escalation_after"):
        policy_from(SMALL_POLICY.replace("approval_escalation_after: 4h", "approval_escalation_after: soon"))


def test_escalation_time_reads_as_a_duration(small_policy):
    assert small_policy.approval_escalation_after.total_seconds() == 4 * 3600


def test_a_condition_may_be_one_value_or_a_list(small_policy):
    listed = policy_from(SMALL_POLICY.replace("{category: confusing_process}", "{category: [billing, confusing_process]}"))
    assert small_policy.rules[0].when.category == ["confusing_process"]
    assert listed.rules[0].when.category == ["billing", "confusing_process"]


def test_first_matching_rule_in_file_order_wins():
    text = SMALL_POLICY.replace("  - id: big_refund_for_billing", """  - id: catch_all
    when: {}
    offers:
      - {kind: gift, item: pen}
  - id: big_refund_for_billing""")
    decision = decide(complaint(category="billing"), policy_from(text), "v")
    assert decision.rule_id == "catch_all"


def test_explicit_priority_beats_file_order():
    text = SMALL_POLICY.replace("  - id: big_refund_for_billing", """  - id: catch_all
    when: {}
    offers:
      - {kind: gift, item: pen}
  - id: big_refund_for_billing
    priority: 5""")
    decision = decide(complaint(category="billing"), policy_from(text), "v")
    assert decision.rule_id == "big_refund_for_billing"
    assert any("catch_all: would match, but big_refund_for_billing comes first" in line for line in decision.explanation)


def test_order_amount_range_is_inclusive_and_needs_an_order():
    text = SMALL_POLICY.replace("when: {category: confusing_process}",
                                "when: {category: confusing_process, order_amount: {min: 10, max: 100}}")
    policy = policy_from(text)
    assert decide(complaint((100.0, "USD"), category="confusing_process"), policy, "v").rule_id == "coupon_for_confusion"
    assert decide(complaint((100.01, "USD"), category="confusing_process"), policy, "v").rule_id == "apology"
    assert decide(complaint(None, category="confusing_process"), policy, "v").rule_id == "apology"


def test_repeat_contact_and_channel_conditions():
    text = SMALL_POLICY.replace("when: {category: confusing_process}",
                                "when: {repeat_contact: true, channel: [social, web]}")
    policy = policy_from(text)
    assert decide(complaint(channel="social", repeat_contacts=2), policy, "v").rule_id == "coupon_for_confusion"
    assert decide(complaint(channel="social", repeat_contacts=0), policy, "v").rule_id == "apology"
    assert decide(complaint(channel="phone", repeat_contacts=2), policy, "v").rule_id == "apology"
