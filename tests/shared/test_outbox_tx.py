"""Effectively-once publication (shared/outbox_tx.py) on real PostgreSQL and Kafka: a crash between
the Kafka commit and the outbox delete, a leader that loses its lock, a fenced zombie: every event
on the topic once, none lost."""
from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared import db, kafka
from shared.events import Outbound
from shared.kafka import ensure_topics
from shared.outbox import enqueue_many
from shared.outbox_tx import TransactionalRelay, ensure_position_topic, id_ranges, ids_of

pytestmark = pytest.mark.integration
SCHEMA = "outboxtxtest"


class Crash(Exception):
    """Stands for the process dying at that instant (nothing after it runs)."""


@pytest.fixture
async def parts(ns):
    settings = ns.settings()
    await ensure_topics(settings, ("events.v1",))
    pool = await db.create_pool(ns.database_url, min_size=2, max_size=8)
    await db.migrate(pool, SCHEMA, [])
    relays: list[TransactionalRelay] = []

    def relay(batch_size: int = 5) -> TransactionalRelay:
        made = TransactionalRelay(
            pool, SCHEMA, service="outboxtxtest", topic_prefix=settings.helpdesk_topic_prefix,
            producer_factory=lambda txn: kafka.make_producer(settings, transactional_id=txn),
            consumer_factory=lambda: kafka.make_committed_reader(settings), batch_size=batch_size)
        relays.append(made)
        return made

    await ensure_position_topic(lambda: AIOKafkaAdminClient(**kafka.client_args(settings)),
                                relay().position_topic, 1)
    yield pool, relay, settings.topic("events.v1")
    for made in relays:
        await made.stop()
    await pool.close()


async def write(pool: asyncpg.Pool, topic: str, first: int, count: int) -> list[str]:
    ids = [f"ev-{n}" for n in range(first, first + count)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue_many(conn, SCHEMA, [(topic, f"case-{n}", Outbound(event_id=i, type="e", case_id=f"case-{n}"))
                                          for n, i in zip(range(first, first + count), ids)])
    return ids


async def published(ns) -> Counter:
    return Counter(r["event_id"] for r in await ns.kafka.read_all("events.v1"))


async def drain(relay: TransactionalRelay) -> None:
    while await relay.publish_batch() > 0:
        pass


def test_ids_travel_as_ranges():
    assert id_ranges([9, 3, 4, 5, 5]) == [[3, 5], [9, 9]]
    assert ids_of(id_ranges([1, 2, 7, 8, 10])) == [1, 2, 7, 8, 10]
    assert id_ranges([]) == []


async def test_a_crash_after_the_kafka_commit_does_not_publish_the_batch_again(ns, parts):
    pool, relay, topic = parts
    wanted = await write(pool, topic, 0, 12)
    first = relay()

    async def crash(_ids):
        raise Crash()

    first._after_commit = crash  # committed in Kafka, then dead before the outbox rows were deleted
    with pytest.raises(Crash):
        await first.publish_batch()
    assert await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 12
    await first._resign()  # its connection and lock go with the process

    second = relay()
    await drain(second)
    counts = await published(ns)
    assert counts == Counter({i: 1 for i in wanted}), "each event once, none lost"
    assert await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 0


async def test_one_leader_at_a_time_and_a_fenced_zombie_publishes_nothing(ns, parts):
    pool, relay, topic = parts
    wanted = await write(pool, topic, 0, 7)
    leader, follower = relay(), relay()
    assert await leader.publish_batch() == 5 and leader.leading
    assert await follower.publish_batch() == 0 and not follower.leading  # the lock is taken

    # The leader's database session ends (its PostgreSQL connection is cut): the follower takes
    # over; the old leader's producer is fenced, so a batch it still tries cannot commit.
    await pool.execute("SELECT pg_terminate_backend($1)", await leader._lead.fetchval("SELECT pg_backend_pid()"))
    zombie_producer = leader.producer
    await asyncio.sleep(0.2)
    wanted += await write(pool, topic, 7, 3)
    await drain(follower)
    assert follower.leading
    with pytest.raises(Exception):
        async with zombie_producer.transaction():
            await (await zombie_producer.send(topic, value=b'{"event_id": "zombie"}'))
    counts = await published(ns)
    assert counts == Counter({i: 1 for i in wanted})
    assert "zombie" not in counts


async def test_rows_committed_out_of_id_order_are_not_skipped(ns, parts):
    pool, relay, topic = parts
    slow = await pool.acquire()
    tx = slow.transaction()
    await tx.start()
    await enqueue_many(slow, SCHEMA, [(topic, "case-slow", Outbound(event_id="ev-slow", type="e", case_id="case-slow"))])
    fast = await write(pool, topic, 0, 3)  # higher ids, committed first
    only = relay()
    await drain(only)
    await tx.commit()
    await pool.release(slow)
    await drain(only)
    assert await published(ns) == Counter({i: 1 for i in [*fast, "ev-slow"]})
