"""The Inbox checks every record's key on real PostgreSQL: a key that is not the case_id is rejected
with its bytes, a missing key is accepted and counted, empty values have one reason."""
from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY

from shared import db
from shared.batch import Batch
from shared.events import Inbound
from shared.inbound import Inbox, every_record, parse_event

pytestmark = pytest.mark.integration
SCHEMA = "inboxkeys"
SERVICE = "inboxkeystest"


class Note(Inbound):
    pass


def record(offset: int, value: bytes | None, key: bytes | None) -> SimpleNamespace:
    return SimpleNamespace(topic="p.complaints.v1", partition=0, offset=offset, key=key, value=value)


def event(event_id: str, case_id: str = "CRM-1") -> bytes:
    return json.dumps({"event_id": event_id, "type": "note", "case_id": case_id, "occurred_at": "2026-11-23T10:00:00Z",
                       "source": "crm"}).encode()


async def apply(batch: Batch, e: Note) -> str:
    await batch.conn.execute(f"INSERT INTO {SCHEMA}.notes VALUES ($1)", e.event_id)
    return "noted"


@pytest.fixture
async def inbox(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=4)
    await db.migrate(pool, SCHEMA, [(1, "CREATE TABLE {schema}.notes (event_id text PRIMARY KEY)")])
    yield Inbox(pool, SCHEMA, SERVICE, "rejected.v1", topic_prefix="p.")
    await pool.close()


def without_key() -> float:
    return REGISTRY.get_sample_value(f"helpdesk_{SERVICE}_records_without_key_total", {"topic": "complaints.v1"}) or 0.0


async def test_a_key_other_than_the_case_id_is_rejected_and_a_missing_key_is_counted(inbox):
    before = without_key()
    batch = [record(0, event("e1"), b"CRM-2"), record(1, event("e2"), None), record(2, event("e3"), b""),
             record(3, event("e4"), b"CRM-1"), record(4, b"", b"CRM-1"), record(5, None, b"CRM-1")]
    parse = every_record(lambda raw: parse_event(raw, Note), apply)
    assert await inbox.handle_batch(batch, parse) == ["rejected", "noted", "noted", "noted", "rejected", "rejected"]
    assert without_key() == before + 2

    rows = await inbox.pool.fetch(f"SELECT key, payload FROM {SCHEMA}.outbox WHERE topic = 'rejected.v1' ORDER BY id")
    rejected = [json.loads(r["payload"]) for r in rows]
    mismatch, zero_bytes, null = rejected
    assert (mismatch["reason"], mismatch["case_id"], mismatch["key"]) == ("key_mismatch", "CRM-1", "CRM-2")
    assert base64.b64decode(mismatch["raw"]) == event("e1"), "the original bytes, as for every rejection"
    assert mismatch["topic"] == "complaints.v1" and mismatch["offset"] == 0
    assert rows[0]["key"] == b"CRM-2"
    assert zero_bytes["reason"] == null["reason"] == "empty"
    assert zero_bytes["raw"] == null["raw"] == ""
    assert zero_bytes["errors"] != null["errors"], "the errors still say which it was"

    redelivered = await inbox.handle_batch(batch, parse)
    assert redelivered == ["duplicate"] * 6
    assert without_key() == before + 2, "a redelivery is not counted again"
