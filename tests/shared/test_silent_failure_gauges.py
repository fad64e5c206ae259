"""The metrics behind the alerts on silent failures (deploy/prometheus/alerts.yml), on a real
PostgreSQL: a timer given up after its retries is counted, the oldest overdue timer and the oldest
unpublished outbox row have an age that keeps growing while nothing moves, and both are 0 when
there is nothing to wait for."""
from __future__ import annotations

import asyncio
import uuid
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from shared import db
from shared.events import Outbound
from shared.kafka import ensure_topics, make_producer
from shared.outbox import OutboxRelay, enqueue
from shared.timers import Timer, TimerEngine, arm, arm_many

pytestmark = pytest.mark.integration
SCHEMA = "silenttest"
TOPIC = "events.v1"


def now() -> datetime:
    return datetime.now(timezone.utc)


def sample(service: str, name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(f"helpdesk_{service}_{name}", labels)


def new_service() -> str:
    return f"sil{uuid.uuid4().hex[:6]}"  # its own metrics: tests never read each other's values


@pytest.fixture
async def pool(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=5)
    await db.migrate(pool, SCHEMA, [])
    yield pool
    await pool.close()


async def fire_nothing(conn, timer: Timer) -> None:
    return None


# ---------- timers ----------

async def test_the_oldest_overdue_timer_is_measured_and_ages_until_it_fires(pool):
    service = new_service()
    engine = TimerEngine(pool, SCHEMA, service=service, fire_one=fire_nothing)
    assert sample(service, "timer_oldest_overdue_seconds") == 0.0, "nothing measured yet: 0"

    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "case-1:breach", "breach", now() - timedelta(minutes=10))
        await arm(conn, SCHEMA, "case-2:breach", "breach", now() - timedelta(minutes=3))
        await arm(conn, SCHEMA, "case-3:breach", "breach", now() + timedelta(hours=1))
    await engine.measure_overdue()
    first = sample(service, "timer_oldest_overdue_seconds")
    assert 600 <= first < 620, "the earliest one counts"
    await asyncio.sleep(0.3)
    assert sample(service, "timer_oldest_overdue_seconds") >= first + 0.25, "ages at scrape time, with no new round"

    assert await engine._round() == 2  # one round: fire, then measure
    assert sample(service, "timer_oldest_overdue_seconds") == 0.0, "only a future timer is left"


async def test_no_timer_armed_or_none_due_is_zero(pool):
    service = new_service()
    engine = TimerEngine(pool, SCHEMA, service=service, fire_one=fire_nothing)
    await engine.measure_overdue()
    assert sample(service, "timer_oldest_overdue_seconds") == 0.0
    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "case-1:warning", "warning", now() + timedelta(seconds=30))
    await engine.measure_overdue()
    assert sample(service, "timer_oldest_overdue_seconds") == 0.0


async def test_a_timer_due_while_the_loop_is_stuck_shows_without_another_query(pool):
    """The loop measured a timer not yet due, then stopped running (stuck, or PostgreSQL away):
    once the timer's time passes, the gauge grows anyway."""
    service = new_service()
    engine = TimerEngine(pool, SCHEMA, service=service, fire_one=fire_nothing)
    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "case-1:breach", "breach", now() + timedelta(seconds=0.3))
    await engine.measure_overdue()
    assert sample(service, "timer_oldest_overdue_seconds") == 0.0
    await asyncio.sleep(0.6)
    assert sample(service, "timer_oldest_overdue_seconds") > 0.2


async def test_a_timer_given_up_after_its_last_attempt_is_counted_as_dropped(pool):
    service = new_service()

    async def fire_one(conn, timer: Timer) -> None:
        if timer.kind == "breach":
            raise RuntimeError("this timer always fails")

    engine = TimerEngine(pool, SCHEMA, service=service, fire_one=fire_one, max_attempts=2)
    async with pool.acquire() as conn:
        await arm_many(conn, SCHEMA, [Timer("case-1:breach", "breach", now() - timedelta(seconds=1)),
                                      Timer("case-2:due", "due", now() - timedelta(seconds=1))])
    assert await engine.fire_due() == 2
    assert sample(service, "timers_failed_total", kind="breach") == 1.0
    assert sample(service, "timers_dropped_total", kind="breach") == 0.0, "retried, not dropped: exported at 0"
    assert sample(service, "timers_dropped_total", kind="due") == 0.0, "a kind that fired is exported at 0 too"

    await pool.execute(f"UPDATE {SCHEMA}.timers SET due_at = now() - interval '1 second'")  # skip the backoff
    assert await engine.fire_due() == 1
    assert sample(service, "timers_failed_total", kind="breach") == 2.0
    assert sample(service, "timers_dropped_total", kind="breach") == 1.0
    assert await pool.fetchval(f"SELECT count(*) FROM {SCHEMA}.timers") == 0, "dropped: no longer armed"
    assert sample(service, "timers_dropped_total", kind="due") == 0.0


# ---------- outbox ----------

class UnreachableKafka:
    async def send(self, *args, **kwargs):
        raise KafkaConnectionError("broker unreachable (test)")


async def add_row(pool, topic: str, case_id: str, age: timedelta) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, SCHEMA, topic, case_id, Outbound(type="sla.breached", case_id=case_id))
        await conn.execute(f"UPDATE {SCHEMA}.outbox SET created_at = now() - $1::interval "
                           f"WHERE id = (SELECT max(id) FROM {SCHEMA}.outbox)", age)


async def test_the_oldest_unpublished_row_ages_while_kafka_is_away_and_is_zero_once_published(ns, pool):
    settings = ns.settings()
    await ensure_topics(settings, (TOPIC,))
    topic = settings.topic(TOPIC)
    service = new_service()
    await add_row(pool, topic, "case-1", timedelta(minutes=10))
    await add_row(pool, topic, "case-2", timedelta(minutes=2))

    stuck = OutboxRelay(pool, SCHEMA, UnreachableKafka(), service=service)  # type: ignore[arg-type]
    assert sample(service, "outbox_oldest_age_seconds") == 0.0, "nothing looked at yet: 0"
    with pytest.raises(KafkaConnectionError):
        await stuck.publish_batch()
    age = sample(service, "outbox_oldest_age_seconds")
    assert 600 <= age < 620, "the oldest row, measured before the send failed"
    assert sample(service, "outbox_backlog_events") == 2.0, "the backlog too"
    await asyncio.sleep(0.3)
    assert sample(service, "outbox_oldest_age_seconds") >= age + 0.25, "ages at scrape time"

    producer = make_producer(settings)
    await producer.start()
    try:
        relay = OutboxRelay(pool, SCHEMA, producer, service=service)
        assert await relay.publish_batch() == 2
    finally:
        await producer.stop()
    assert sample(service, "outbox_oldest_age_seconds") == 0.0
    assert sample(service, "outbox_backlog_events") == 0.0
    assert await relay.publish_batch() == 0
    assert sample(service, "outbox_oldest_age_seconds") == 0.0


async def test_more_than_a_batch_waiting_is_estimated_from_the_ids(pool):
    service = new_service()
    for n in range(5):
        await add_row(pool, "events.v1", f"case-{n}", timedelta(seconds=30))
    stuck = OutboxRelay(pool, SCHEMA, UnreachableKafka(), service=service, batch_size=2)  # type: ignore[arg-type]
    with pytest.raises(KafkaConnectionError):
        await stuck.publish_batch()
    assert sample(service, "outbox_backlog_events") == 5.0
    assert sample(service, "outbox_oldest_age_seconds") >= 30


async def test_an_instance_that_does_not_relay_reports_the_age_too(pool):
    """Another instance holds the relay's lock (and may be stuck): this one still looks at the head."""
    service = new_service()
    await add_row(pool, "events.v1", "case-1", timedelta(minutes=7))
    relay = OutboxRelay(pool, SCHEMA, UnreachableKafka(), service=service)  # type: ignore[arg-type]
    async with pool.acquire() as holder:
        await holder.execute("SELECT pg_advisory_lock($1)", zlib.crc32(f"outbox:{SCHEMA}".encode()))
        try:
            assert await relay.publish_batch() == 0, "not this instance's turn"
        finally:
            await holder.execute("SELECT pg_advisory_unlock_all()")
    assert 420 <= sample(service, "outbox_oldest_age_seconds") < 440
    await pool.execute(f"DELETE FROM {SCHEMA}.outbox")
    relay2 = OutboxRelay(pool, SCHEMA, UnreachableKafka(), service=service)  # type: ignore[arg-type]
    assert await relay2.publish_batch() == 0
    assert sample(service, "outbox_oldest_age_seconds") == 0.0, "an empty outbox is 0"
