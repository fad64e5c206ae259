"""What the intake accepts on helpdesk.complaints.v1, and why it rejects the rest."""
from __future__ import annotations

import json

import pytest

from services.intake.contract import RejectedInput, parse_complaint
from shared.events import MAX_RECORD_BYTES
from tests.builders import complaint_event, raw


def rejection(record: bytes) -> RejectedInput:
    with pytest.raises(RejectedInput) as rejected:
        parse_complaint(record)
    return rejected.value


def test_a_complaint_as_in_the_contract_is_accepted():
    event = complaint_event(
        channel="phone", public=False, order={"id": "O-55", "amount": 7800.00, "currency": "USD"},
        customer={"tier": "loyal", "tenure_days": 1460, "lifetime_value": 5400.00, "referrals": 3,
                  "timezone": "America/New_York"},
        subject="Wrong AC unit installed", description="free text")
    parsed = parse_complaint(raw(event))
    assert parsed.case_id == "CRM-10442"
    assert parsed.customer.tier == "loyal"
    assert parsed.customer.timezone == "America/New_York"
    assert parsed.order is not None and parsed.order.amount == 7800.0
    assert parsed.occurred_at.utcoffset().total_seconds() == 0


def test_optional_customer_facts_may_be_left_out():
    event = complaint_event()
    event["customer"] = {"id": "C-1", "name": "A. Customer"}
    del event["public"]
    parsed = parse_complaint(raw(event))
    assert (parsed.customer.tier, parsed.customer.timezone, parsed.public, parsed.order) == (None, "UTC", False, None)


def test_unknown_extra_fields_are_accepted_and_ignored():
    event = complaint_event(crm_internal_flag=7, customer={"shoe_size": 42})
    parsed = parse_complaint(raw(event))
    assert "crm_internal_flag" not in parsed.model_dump()
    assert "shoe_size" not in parsed.customer.model_dump()


def test_a_record_over_one_mebibyte_is_rejected_as_too_large():
    record = raw(complaint_event(description="x" * 10)).replace(b"x" * 10, b"x" * MAX_RECORD_BYTES)
    assert rejection(record).reason == "too_large"


@pytest.mark.parametrize("record", [b"\xff\xfe not utf-8", b"{\"event_id\": ", b"garbage", b" ", b"{\"a\": NaN}"])
def test_bytes_that_are_not_json_are_rejected_as_not_json(record):
    assert rejection(record).reason == "not_json"


@pytest.mark.parametrize("record", [b"", None], ids=["zero bytes", "null"])
def test_a_record_without_a_value_is_empty(record):
    assert rejection(record).reason == "empty"


def test_deeply_nested_json_is_rejected_not_crashing_the_consumer():
    assert rejection(b"[" * 100_000 + b"]" * 100_000).reason == "not_json"


@pytest.mark.parametrize("record", [b"[1, 2]", b"\"complaint\"", b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_rejected(record):
    assert rejection(record).reason == "not_an_object"


@pytest.mark.parametrize(("change", "field"), [
    ({"type": "complaint.updated"}, "type"),
    ({"channel": "carrier_pigeon"}, "channel"),
    ({"public": "true"}, "public"),
    ({"public": 1}, "public"),
    ({"order": {"id": "O-1", "amount": "7800.00", "currency": "USD"}}, "order.amount"),
    ({"order": {"id": "O-1", "amount": -5, "currency": "USD"}}, "order.amount"),
    ({"customer": {"lifetime_value": -1}}, "customer.lifetime_value"),
    ({"customer": {"referrals": -2}}, "customer.referrals"),
    ({"customer": {"tenure_days": "1460"}}, "customer.tenure_days"),
    ({"customer": {"tier": "gold"}}, "customer.tier"),
    ({"customer": {"timezone": "Mars/Olympus_Mons"}}, "customer.timezone"),
    ({"occurred_at": "2026-11-23T10:00:00"}, "occurred_at"),
    ({"occurred_at": 1763892000}, "occurred_at"),  # Unix time: not RFC 3339 (found by the fuzzing suite)
    ({"occurred_at": 1763892000000.0}, "occurred_at"),
    ({"subject": "s" * 501}, "subject"),
    ({"description": "d" * 20_001}, "description"),
])
def test_wrong_fields_are_rejected_naming_the_field(change, field):
    rejected = rejection(raw(complaint_event(**change)))
    assert rejected.reason == "invalid_fields"
    assert any(error.startswith(f"{field}: ") for error in rejected.errors), rejected.errors


@pytest.mark.parametrize("missing", ["event_id", "case_id", "customer", "channel", "subject", "description"])
def test_missing_required_fields_are_rejected(missing):
    event = complaint_event()
    del event[missing]
    rejected = rejection(raw(event))
    assert rejected.reason == "invalid_fields"
    assert rejected.errors == [f"{missing}: Field required"]


def test_unknown_tier_error_lists_the_allowed_tiers():
    rejected = rejection(raw(complaint_event(customer={"tier": "gold"})))
    assert rejected.errors == ["customer.tier: Input should be 'new', 'standard', 'loyal' or 'vip'"]


def test_a_description_of_exactly_twenty_thousand_characters_is_accepted():
    assert len(parse_complaint(raw(complaint_event(description="d" * 20_000))).description) == 20_000


def test_error_strings_never_contain_the_offending_values():
    secret_email = "sue.private@example.com"
    event = complaint_event(
        channel=secret_email, public=secret_email, type=secret_email, occurred_at=secret_email,
        customer={"email": ["not", secret_email], "tier": secret_email, "timezone": secret_email,
                  "tenure_days": secret_email, "name": {"first": secret_email}},
        order={"id": "O-1", "amount": secret_email, "currency": secret_email},
        subject=secret_email * 40)
    rejected = rejection(raw(event))
    assert rejected.reason == "invalid_fields"
    assert len(rejected.errors) >= 10
    text = json.dumps(rejected.errors) + str(rejected)
    assert "sue.private" not in text
    assert "example.com" not in text


def test_text_postgresql_cannot_store_is_rejected_rather_than_crash_looping_the_consumer():
    nul = raw(complaint_event(description="broken\u0000heel"))
    surrogate = b'{"event_id": "x", "subject": "\\ud800"}'
    assert rejection(nul).reason == "invalid_text"
    assert rejection(surrogate).reason == "invalid_text"
    assert "description" in rejection(nul).errors[0]
