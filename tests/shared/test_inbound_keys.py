"""Keys are checked and empty records have one reason: pure parsing, no servers."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from services.intake.contract import parse_complaint
from shared.inbound import (
    RejectedInput, check_key, parse_activity, parse_classified, parse_event, parse_json_object, parse_keyed,
)
from tests.builders import activity_event, complaint_event


def reason_of(call, *args) -> RejectedInput:
    with pytest.raises(RejectedInput) as caught:
        call(*args)
    return caught.value


@pytest.mark.parametrize("raw", [None, b""], ids=["null", "zero bytes"])
@pytest.mark.parametrize("parse", [parse_json_object, parse_complaint, parse_activity, parse_classified])
def test_a_null_value_and_a_zero_byte_value_are_both_empty(parse, raw):
    rejection = reason_of(parse, raw)
    assert rejection.reason == "empty"
    assert rejection.errors and "no value" in rejection.errors[0]


def test_whitespace_is_still_not_json():
    assert reason_of(parse_json_object, b"  ").reason == "not_json"


def complaint(case_id: str = "CRM-1") -> bytes:
    return json.dumps(complaint_event(case_id=case_id)).encode()


def activity(case_id: str = "CRM-1") -> bytes:
    return json.dumps(activity_event("case.contacted", case_id, "2026-11-23T10:00:00Z", event_id="a-1",
                                      source="crm")).encode()


@pytest.mark.parametrize("raw, parse", [(complaint(), parse_complaint), (activity(), parse_activity)],
                         ids=["complaint", "activity"])
def test_a_key_that_is_not_the_case_id_is_a_key_mismatch_naming_both(raw, parse):
    rejection = reason_of(parse_keyed, SimpleNamespace(key=b"CRM-2", value=raw), parse)
    assert rejection.reason == "key_mismatch"
    [error] = rejection.errors
    assert "'CRM-2'" in error and "'CRM-1'" in error and error.startswith("key:")


def test_the_matching_key_is_accepted():
    event = parse_keyed(SimpleNamespace(key=b"CRM-1", value=complaint()), parse_complaint)
    assert event.case_id == "CRM-1"
    assert check_key(b"CRM-1", event) is True


@pytest.mark.parametrize("key", [None, b""], ids=["no key", "zero-byte key"])
def test_a_missing_key_stands_for_the_case_id(key):
    event = parse_complaint(complaint())
    assert check_key(key, event) is False, "accepted, and reported as keyless so it can be counted"


def test_a_mismatch_never_echoes_long_text():
    long_key = ("x" * 500).encode()
    rejection = reason_of(check_key, long_key, parse_complaint(complaint()))
    assert rejection.reason == "key_mismatch"
    assert "x" * 65 not in rejection.errors[0] and "(500 characters)" in rejection.errors[0]


def test_a_key_that_is_not_utf8_is_a_mismatch():
    rejection = reason_of(check_key, b"\xff\xfe", parse_complaint(complaint()))
    assert rejection.reason == "key_mismatch" and "not UTF-8" in rejection.errors[0]


def test_keys_differing_only_in_case_or_spaces_are_a_mismatch():
    event = parse_complaint(complaint())
    for key in (b"crm-1", b"CRM-1 ", b" CRM-1"):
        assert reason_of(check_key, key, event).reason == "key_mismatch"


def test_an_event_without_case_id_accepts_any_key():
    from services.compensation.contract import APPROVAL_TYPES, ApprovalAnswer

    answer = parse_event(json.dumps({"event_id": "ap-1", "type": "compensation.approved",
                                     "occurred_at": "2026-11-23T10:00:00Z", "decision_id": "d-1",
                                     "approver": {"role": "manager", "id": "M-1"}}).encode(), ApprovalAnswer, APPROVAL_TYPES)
    assert answer.case_id is None
    assert check_key(b"d-1", answer) is True


def test_a_bad_record_keeps_its_own_reason_whatever_its_key():
    rejection = reason_of(parse_keyed, SimpleNamespace(key=b"CRM-9", value=b"not json"), parse_complaint)
    assert rejection.reason == "not_json"
