"""The transactional outbox on real PostgreSQL and Kafka: no event lost, none invented."""
from __future__ import annotations

import asyncio

import pytest

from shared import db
from shared.batch import Batch
from shared.events import Outbound
from shared.kafka import ensure_topics, make_producer
from shared.outbox import OutboxRelay, enqueue

pytestmark = pytest.mark.integration
SCHEMA = "outboxtest"


@pytest.fixture
async def parts(ns):
    settings = ns.settings()
    await ensure_topics(settings, ("events.v1",))
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=5)
    await db.migrate(pool, SCHEMA, [])
    producer = make_producer(settings)
    await producer.start()
    yield pool, producer, settings.topic("events.v1")
    await producer.stop()
    await pool.close()


async def test_an_event_exists_only_if_its_state_change_committed(ns, parts):
    pool, producer, topic = parts
    async with pool.acquire() as conn:
        async with conn.transaction():
            await enqueue(conn, SCHEMA, topic, "case-1", Outbound(type="kept", case_id="case-1"))
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await enqueue(conn, SCHEMA, topic, "case-2", Outbound(type="rolled_back", case_id="case-2"))
                raise RuntimeError("the state change failed")
    relay = OutboxRelay(pool, SCHEMA, producer, service="test")
    assert await relay.publish_batch() == 1
    records = await ns.kafka.read_all("events.v1")
    assert [(r["type"], r["_key"]) for r in records] == [("kept", "case-1")]
    assert await relay.backlog() == 0


async def test_an_inbound_batch_writes_its_events_once_at_its_end_in_order(parts):
    pool, _, topic = parts
    count = f"SELECT count(*) FROM {SCHEMA}.outbox"
    async with pool.acquire() as conn, conn.transaction():
        batch = Batch(conn, SCHEMA)
        for n in range(3):
            batch.publish(topic, f"case-{n}", Outbound(type=f"e{n}", case_id=f"case-{n}"))
        assert await conn.fetchval(count) == 0, "gathered, not written yet"
        await batch.commit()
        assert await conn.fetchval(count) == 3
        await enqueue(conn, SCHEMA, topic, "case-3", Outbound(type="e3", case_id="case-3"))  # outside: at once
        assert await conn.fetchval(count) == 4
    keys = [r["key"] for r in await pool.fetch(f"SELECT key FROM {SCHEMA}.outbox ORDER BY id")]
    assert keys == [b"case-0", b"case-1", b"case-2", b"case-3"]
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(RuntimeError):
            batch = Batch(conn, SCHEMA)
            batch.publish(topic, "case-9", Outbound(type="lost", case_id="case-9"))
            raise RuntimeError("the batch failed")  # before its commit
        assert await conn.fetchval(count) == 4, "a failed batch writes nothing"


async def test_a_crash_between_publish_and_delete_republishes_the_same_event_id(ns, parts):
    pool, producer, topic = parts
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, SCHEMA, topic, "case-1", Outbound(type="sla.breached", case_id="case-1"))

    class DiesAfterPublish(OutboxRelay):
        async def publish_batch(self) -> int:
            async with self.pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                rows = await conn.fetch(f"SELECT topic, key, payload FROM {self.schema}.outbox ORDER BY id")
                for r in rows:
                    await self.producer.send_and_wait(r["topic"], value=r["payload"], key=r["key"])
                await tx.rollback()  # the process died before the delete committed
                return len(rows)

    await DiesAfterPublish(pool, SCHEMA, producer, service="test").publish_batch()
    assert await OutboxRelay(pool, SCHEMA, producer, service="test").publish_batch() == 1
    records = await ns.kafka.read_all("events.v1")
    assert len(records) == 2 and len({r["event_id"] for r in records}) == 1


async def test_only_one_relay_publishes_at_a_time_so_order_is_kept(ns, parts):
    pool, producer, topic = parts
    async with pool.acquire() as conn, conn.transaction():
        for i in range(300):
            await enqueue(conn, SCHEMA, topic, "same-case", Outbound(type="n", case_id="same-case", n=i))
    relays = [OutboxRelay(pool, SCHEMA, producer, service="test", batch_size=25) for _ in range(3)]
    for _ in range(40):
        await asyncio.gather(*(r.publish_batch() for r in relays))
    records = await ns.kafka.read_all("events.v1")
    assert [r["n"] for r in records] == list(range(300))


def test_a_model_is_encoded_by_pydantic_as_the_dict_of_its_fields_would_be():
    # model_dump_json in one step (issue #15 item 4): the same JSON as json.dumps(dump(event)), fields
    # that are None left out, non-ASCII text kept as UTF-8, times and amounts as the contract writes them.
    import json
    from datetime import datetime, timezone

    from shared.events import ComplaintClassified, dump
    from shared.outbox import encode

    event = ComplaintClassified(
        case_id="CRM-ü", causation_id="c-1", customer_id="C-1", source="crm-east", category="delay",
        severity="medium", temperament="calm", loyalty="standard", publicity_risk="low", priority="P3",
        channel="phone", occurred_at=datetime(2026, 11, 23, 10, 0, 0, 123000, tzinfo=timezone.utc),
        category_confidence=0.8123, order={"id": "O-1", "amount": 1234.5, "currency": "EUR"})
    payload = encode(event)
    assert json.loads(payload) == dump(event)
    assert "CRM-ü".encode() in payload and b'": ' not in payload and b', "' not in payload, "compact UTF-8"
    assert b"null" not in payload, "fields that are None are left out"
    assert encode({"b": 1, "a": "é"}) == '{"b":1,"a":"é"}'.encode()
