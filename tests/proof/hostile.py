"""Hypothesis strategies for hostile inbound records: each one is invalid by construction."""
from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import strategies as st

from shared.events import MAX_RECORD_BYTES


def valid_complaint(case_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "type": "complaint.received", "occurred_at": "2026-11-23T10:00:00Z",
        "source": "crm-fuzz", "case_id": case_id or f"FZ-{uuid.uuid4().hex[:10]}", "channel": "email",
        "public": False, "customer": {"id": "C-1", "name": "Fuzz Customer"},
        "order": {"id": "O-1", "amount": 25.0, "currency": "USD"},
        "subject": "Late order", "description": "My order is late.",
    }


def valid_activity(case_id: str | None = None) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": "case.contacted", "occurred_at": "2026-11-23T10:05:00Z",
            "source": "crm-fuzz", "case_id": case_id or f"FZ-{uuid.uuid4().hex[:10]}"}


weird_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), weird_text)
json_values = st.recursive(json_scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(weird_text, children, max_size=4)), max_leaves=12)


def _dump(event: Any) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def hostile_record(draw: st.DrawFn, kind: str) -> tuple[str, bytes]:
    """(what was done to it, the record bytes) for kind 'complaint' or 'activity'."""
    base = valid_complaint() if kind == "complaint" else valid_activity()
    field = draw(st.sampled_from(sorted(base)))
    how = draw(st.sampled_from([
        "not_utf8", "not_json", "not_an_object", "missing_field", "wrong_type", "huge_string", "deep_nesting",
        "nul_byte", "lone_surrogate", "no_offset", "year_9999", "negative_amount", "unknown_type", "oversized",
    ]))
    event = dict(base)
    if how == "not_utf8":
        return how, b"\xff\xfe" + draw(st.binary(max_size=64))
    if how == "not_json":
        return how, b"{" + draw(weird_text).encode("utf-8") + b"'"
    if how == "not_an_object":
        return how, _dump(draw(st.one_of(json_scalars, st.lists(json_values, max_size=5))))
    if how == "missing_field":
        required = [f for f in base if f not in {"public", "order"}]
        event.pop(draw(st.sampled_from(required)))
    elif how == "wrong_type":
        target = field if field not in {"public", "order"} else "case_id"
        event[target] = draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.dictionaries(weird_text, st.integers(), max_size=2)))
    elif how == "huge_string":
        event["case_id"] = "x" * draw(st.integers(201, 50_000))
    elif how == "deep_nesting":
        depth = draw(st.integers(2_000, 200_000))
        return how, b'{"event_id": ' + b"[" * depth + b"]" * depth + b"}"
    elif how == "nul_byte":
        event["source"] = "crm\u0000" + draw(weird_text)
    elif how == "lone_surrogate":
        return how, _dump(event).replace(b'"crm-fuzz"', b'"crm\\ud800fuzz"')
    elif how == "no_offset":
        event["occurred_at"] = "2026-11-23T10:00:00"
    elif how == "year_9999":
        event["occurred_at"] = "9999-12-31T23:59:59Z"
    elif how == "negative_amount":
        if kind == "complaint":
            event["order"] = {"id": "O-1", "amount": -draw(st.floats(0.01, 1e6)), "currency": "USD"}
        else:
            event["type"] = "case.promise_made"
            event["promise_id"] = "P-1"
            event["due_at"] = "not a time"
    elif how == "unknown_type":
        event["type"] = draw(st.sampled_from(["case.exploded", "complaint.deleted", "", "CASE.CONTACTED"]))
    elif how == "oversized":
        event["description"] = "x" * (MAX_RECORD_BYTES + draw(st.integers(1, 1000)))
    return how, _dump(event)
