"""One `parse_classified` for every service downstream of intake: sla and followup take a record
that leaves out its `type` (the model's default), compensation asks for it (`type_required`)."""
from __future__ import annotations

import pytest

from services.compensation.contract import parse_classified as compensation_parse
from shared.inbound import RejectedInput, parse_classified
from tests.builders import classified_json, raw


def without_type() -> bytes:
    event = classified_json()
    del event["type"]
    return raw(event)


def test_a_record_without_type_is_a_classified_complaint_unless_the_type_is_required():
    assert parse_classified(without_type()).type == "complaint.classified"
    for strict in (lambda r: parse_classified(r, type_required=True), compensation_parse):
        with pytest.raises(RejectedInput) as caught:
            strict(without_type())
        assert caught.value.reason == "unknown_type"


def test_another_type_is_invalid_fields_or_unknown_type_when_the_type_is_required():
    other = raw({**classified_json(), "type": "complaint.received"})
    with pytest.raises(RejectedInput) as caught:
        parse_classified(other)
    assert caught.value.reason == "invalid_fields"
    with pytest.raises(RejectedInput) as caught:
        compensation_parse(other)
    assert caught.value.reason == "unknown_type"


def test_a_whole_event_is_read_the_same_either_way():
    record = raw(classified_json(case_id="CRM-9"))
    assert parse_classified(record) == compensation_parse(record) == parse_classified(record, type_required=True)
