"""Keys through the real broker: intake refuses a complaint whose key is not its case_id, takes a
keyless one (counting it), and gives a null and a zero-byte value the same reason."""
from __future__ import annotations

import base64
import json
import uuid

import pytest

from shared.events import CLASSIFIED, COMPLAINTS, REJECTED
from tests.builders import complaint_event

pytestmark = pytest.mark.integration


async def test_a_complaint_keyed_by_another_case_is_rejected_and_a_keyless_one_is_counted(ns):
    intake = ns.service("intake")
    case, other = f"CRM-{uuid.uuid4().hex[:8]}", f"CRM-{uuid.uuid4().hex[:8]}"
    mismatched = json.dumps(complaint_event(event_id=str(uuid.uuid4()), case_id=case)).encode()
    keyless = complaint_event(event_id=str(uuid.uuid4()), case_id=f"CRM-{uuid.uuid4().hex[:8]}")
    await ns.kafka.publish(COMPLAINTS, mismatched, key=other)
    await ns.kafka.publish(COMPLAINTS, json.dumps(keyless).encode(), key=None)
    await ns.kafka.publish(COMPLAINTS, b"", key=case)
    await ns.kafka.publish(COMPLAINTS, None, key=case)

    rejected = await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) >= 3)
    classified = await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) >= 1)
    assert [c["causation_id"] for c in classified] == [keyless["event_id"]], "the keyless complaint is accepted"
    assert classified[0]["_key"] == keyless["case_id"], "and its classification is keyed by its case_id"

    by_reason = sorted((r["reason"], r["_key"]) for r in rejected)
    assert by_reason == [("empty", case), ("empty", case), ("key_mismatch", other)]
    [mismatch] = [r for r in rejected if r["reason"] == "key_mismatch"]
    assert base64.b64decode(mismatch["raw"]) == mismatched
    assert (mismatch["case_id"], mismatch["key"], mismatch["rejected_by"]) == (case, other, "intake")
    assert any(case in e and other in e for e in mismatch["errors"])

    metrics = intake.metrics()
    assert f'helpdesk_intake_records_without_key_total{{topic="{COMPLAINTS}"}} 1.0' in metrics
    assert f'helpdesk_intake_rejected_events_total{{reason="key_mismatch",topic="{COMPLAINTS}"}} 1.0' in metrics
    assert intake.proc.poll() is None
