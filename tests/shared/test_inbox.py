"""Batches of inbound records on real PostgreSQL: one transaction per batch, redeliveries absorbed,
bad records rejected, and a batch that fails handled again one record at a time."""
from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest

from shared import db
from shared.events import Inbound
from shared.batch import Batch
from shared.inbound import Inbox, every_record, parse_event

pytestmark = pytest.mark.integration
SCHEMA = "inboxtest"


class Note(Inbound):
    note: str = ""


def record(offset: int, value: bytes, topic: str = "complaints.v1") -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"case", value=value)


def event(event_id: str, note: str = "") -> bytes:
    return json.dumps({"event_id": event_id, "type": "note", "case_id": "case", "occurred_at": "2026-11-23T10:00:00Z",
                       "source": "crm", "note": note}).encode()


def parse(raw: bytes | None) -> Note:
    return parse_event(raw, Note)


@pytest.fixture
async def inbox(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=4)
    await db.migrate(pool, SCHEMA, [(1, "CREATE TABLE {schema}.notes (event_id text PRIMARY KEY, note text)")])
    yield Inbox(pool, SCHEMA, "inboxtest", "rejected.v1")
    await pool.close()


async def apply(batch: Batch, e: Note) -> str:
    if e.note == "boom":
        raise ValueError("a bug in the handler")
    await batch.conn.execute(f"INSERT INTO {SCHEMA}.notes VALUES ($1, $2)", e.event_id, e.note)
    return "noted"


async def notes(inbox: Inbox) -> list[str]:
    return [r["event_id"] for r in await inbox.pool.fetch(f"SELECT event_id FROM {SCHEMA}.notes ORDER BY event_id")]


async def rejected(inbox: Inbox) -> list[dict]:
    rows = await inbox.pool.fetch(f"SELECT payload FROM {SCHEMA}.outbox WHERE topic = 'rejected.v1' ORDER BY id")
    return [json.loads(r["payload"]) for r in rows]


async def test_a_batch_applies_each_new_event_once_and_rejects_bad_records_with_their_bytes(inbox):
    batch = [record(0, event("e1")), record(1, b"[1, 2]"), record(2, event("e2")), record(3, event("e1"))]
    assert await inbox.handle_batch(batch, every_record(parse, apply)) == ["noted", "rejected", "noted", "duplicate"]
    assert await notes(inbox) == ["e1", "e2"]
    [bad] = await rejected(inbox)
    assert (bad["reason"], base64.b64decode(bad["raw"]), bad["offset"]) == ("not_an_object", b"[1, 2]", 1)

    redelivered = await inbox.handle_batch(batch, every_record(parse, apply))
    assert redelivered == ["duplicate"] * 4, "a redelivered batch changes nothing"
    assert len(await rejected(inbox)) == 1


async def test_locks_are_taken_first_for_the_new_events_only(inbox):
    await inbox.handle(record(0, event("old")), parse, apply)
    prepared: list[list[str]] = []

    async def prepare(batch: Batch, events: list[Inbound]) -> None:
        prepared.append([e.event_id for e in events])

    await inbox.handle_batch([record(0, event("old")), record(1, b"x"), record(2, event("new"))],
                             every_record(parse, apply), prepare)
    assert prepared == [["new"]]


async def test_when_a_batch_fails_the_records_before_the_bad_one_commit_on_their_own(inbox):
    batch = [record(0, event("e1")), record(1, event("e2")), record(2, event("e3", "boom")), record(3, event("e4"))]
    with pytest.raises(ValueError, match="a bug in the handler"):
        await inbox.handle_batch(batch, every_record(parse, apply))
    assert await notes(inbox) == ["e1", "e2"], "no offset is committed, so e3 and e4 come again"
    processed = await inbox.pool.fetch(f"SELECT event_id FROM {SCHEMA}.processed_events ORDER BY event_id")
    assert [r["event_id"] for r in processed] == ["e1", "e2"], "e3's failed transaction left no trace"


async def test_records_a_router_declines_are_not_recorded_at_all(inbox):
    batch = [record(0, event("e1"), topic="other.v1"), record(1, event("e2"))]
    outcomes = await inbox.handle_batch(batch, lambda r: None if r.topic == "other.v1" else every_record(parse, apply)(r))
    assert outcomes == ["noted"]
    assert await notes(inbox) == ["e2"]


async def test_what_a_batch_keeps_ends_with_it_committed_or_failed(inbox):
    # sla, compensation and intake keep batch state in what their prepare step returns (batch.state).
    seen: list[tuple[object, list[str]]] = []
    batches: list[Batch] = []

    async def prepare(batch: Batch, events: list[Inbound]) -> list[str]:
        batches.append(batch)
        state = [e.event_id for e in events]

        async def finish() -> None:
            seen.append((batch.state, state))

        batch.before_commit(finish)
        return state

    async def apply_seeing_state(batch: Batch, e: Note) -> str:
        assert batch.state == [e.event_id] and batch is batches[-1]
        return await apply(batch, e)

    await inbox.handle_batch([record(0, event("ok"))], every_record(parse, apply_seeing_state), prepare)
    assert seen == [(["ok"], ["ok"])]
    with pytest.raises(ValueError):
        await inbox.handle_batch([record(1, event("bad", "boom"))], every_record(parse, apply_seeing_state), prepare)
    assert len(seen) == 1, "a failed batch never reaches its commit"
    await inbox.handle_batch([record(2, event("next"))], every_record(parse, apply_seeing_state), prepare)
    assert seen[-1] == (["next"], ["next"]) and len({id(b) for b in batches}) == 3, "a new Batch for each"
