"""Timestamps on every inbound topic are RFC 3339 text with an offset (docs/contract.md).
The fuzzing suite found a complaint whose `occurred_at` was a bare number accepted as Unix time."""
from __future__ import annotations

import json

import pytest

from shared.inbound import RejectedInput, parse_activity


def promise(**fields) -> bytes:
    event = {"event_id": "e-1", "type": "case.promise_made", "occurred_at": "2026-11-23T10:00:00Z", "source": "crm",
             "case_id": "CRM-1", "promise_id": "P-1", "due_at": "2026-11-23T12:00:00+01:00", **fields}
    return json.dumps(event).encode()


def test_rfc3339_text_with_an_offset_is_read_as_utc():
    event = parse_activity(promise())
    assert event.due_at.isoformat() == "2026-11-23T11:00:00+00:00"


@pytest.mark.parametrize("field", ["occurred_at", "due_at"])
@pytest.mark.parametrize("value", [1763892000, 1763892000000, 1763892000.5, True, ["2026-11-23T10:00:00Z"]])
def test_a_timestamp_that_is_not_text_is_rejected_naming_the_field(field, value):
    with pytest.raises(RejectedInput) as caught:
        parse_activity(promise(**{field: value}))
    assert caught.value.reason == "invalid_fields"
    assert caught.value.errors == [f"case.promise_made.{field}: Value error, timestamp must be RFC 3339 text with an offset"]
