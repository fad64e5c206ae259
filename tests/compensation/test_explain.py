"""`explain` tells an admin what the policy decides for a complaint, and why."""
from __future__ import annotations

import pytest

from services.compensation.domain import CaseFacts
from services.compensation.explain import explain

from .conftest import complaint


def event(*order, **fields) -> dict:
    return complaint(*order, **fields).model_dump(mode="json")


def test_explain_names_the_matched_rule_the_misses_and_why(default_policy):
    text = explain(default_policy, event(category="confusing_process"), version="abc123")
    assert "Policy version: abc123" in text
    assert "rule confusing_process: MATCHED" in text
    assert "rule service_not_offered: no: category is confusing_process, rule wants service_not_offered" in text
    assert "extra public_complaint: no: public is no, rule wants yes" in text


def test_explain_lists_offers_cost_and_authority(default_policy):
    text = explain(default_policy, event((400.0, "USD"), category="confusing_process"))
    assert "coupon (percent=15): 60.00 USD [from confusing_process]" in text
    assert "free_shipping: 8.00 USD" in text
    assert "Cost: 68.00 USD" in text
    assert "Authority: supervisor" in text
    assert "Outcome: pending_approval, rule confusing_process" in text
    assert "Reason: over_agent_limit" in text


def test_explain_shows_the_fallback_when_nothing_matches(default_policy):
    text = explain(default_policy, event(category="staff_behaviour"))
    assert "no rule matched: fallback apology_and_gift applies" in text
    assert "Reason: fallback" in text


def test_explain_takes_case_facts_into_account(default_policy):
    text = explain(default_policy, event(category="confusing_process"), facts=CaseFacts(already_compensated=True))
    assert "Outcome: none" in text
    assert "Reason: already_granted" in text


def test_explain_accepts_a_hand_written_event_without_envelope_ids(default_policy):
    minimal = {"category": "service_not_offered", "severity": "low", "temperament": "calm", "loyalty": "new",
               "publicity_risk": "low", "priority": "P4", "channel": "email"}
    assert "rule service_not_offered: MATCHED" in explain(default_policy, minimal)


def test_explain_refuses_a_raw_complaint_with_a_clear_message(default_policy):
    with pytest.raises(ValueError, match="needs a complaint.classified event"):
        explain(default_policy, {"type": "complaint.received", "case_id": "CRM-1"})


def test_explain_says_which_classification_field_is_missing(default_policy):
    broken = event(category="defect")
    del broken["severity"]
    with pytest.raises(ValueError, match="severity: Field required"):
        explain(default_policy, broken)
