"""The durable timer engine on a real PostgreSQL server: one contract, checked once."""
from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from shared import db
from shared.timers import Timer, TimerEngine, arm, arm_many, cancel, cancel_prefix

pytestmark = pytest.mark.integration
SCHEMA = "timertest"
MIGRATIONS = [(1, "CREATE TABLE {schema}.fired (key text, kind text, fired_by text)")]


def now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
async def pool(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=10)
    await db.migrate(pool, SCHEMA, MIGRATIONS)
    yield pool
    await pool.close()


def recorder(name: str):
    async def fire_one(conn, timer: Timer) -> None:
        await conn.execute(f"INSERT INTO {SCHEMA}.fired VALUES ($1, $2, $3)", timer.key, timer.kind, name)

    return fire_one


async def fired(pool) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await pool.fetch(f"SELECT key, kind, fired_by FROM {SCHEMA}.fired")]


async def test_a_deadline_fires_once_at_its_time_and_not_before(pool):
    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "case-1:breach", "breach", now() + timedelta(seconds=1))
    engine = TimerEngine(pool, SCHEMA, service="test", fire_one=recorder("a"), poll_interval=0.05)
    assert await engine.fire_due() == 0
    await asyncio.sleep(1.1)
    assert await engine.fire_due() == 1
    assert await engine.fire_due() == 0
    assert await fired(pool) == [("case-1:breach", "breach", "a")]


async def test_rearming_moves_the_deadline_and_cancel_removes_it(pool):
    past = now() - timedelta(seconds=1)
    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "c:first_contact:breach", "breach", past)
        await arm(conn, SCHEMA, "c:first_contact:breach", "breach", now() + timedelta(hours=1))
        await arm_many(conn, SCHEMA, [Timer(f"c:promise:{i}", "breach", past) for i in range(3)])
        await arm(conn, SCHEMA, "c_other:promise:0", "breach", past)  # '_' must not act as a wildcard
        assert await cancel_prefix(conn, SCHEMA, "c:promise:") == 3
        assert await cancel(conn, SCHEMA, ["nope"]) == 0
    engine = TimerEngine(pool, SCHEMA, service="test", fire_one=recorder("a"))
    assert await engine.fire_due() == 1
    assert await fired(pool) == [("c_other:promise:0", "breach", "a")]


async def test_timers_that_fell_due_while_nobody_ran_fire_at_once_after_a_restart(pool):
    async with pool.acquire() as conn:
        await arm_many(conn, SCHEMA, [Timer(f"k{i}", "breach", now() - timedelta(minutes=5)) for i in range(50)])
    engine = TimerEngine(pool, SCHEMA, service="test", fire_one=recorder("restarted"), batch_size=20)
    assert [await engine.fire_due() for _ in range(4)] == [20, 20, 10, 0]
    assert len(await fired(pool)) == 50


async def test_two_instances_share_the_work_and_fire_each_timer_exactly_once(pool):
    async with pool.acquire() as conn:
        await arm_many(conn, SCHEMA, [Timer(f"k{i}", "breach", now() + timedelta(milliseconds=i)) for i in range(2000)])

    async def slow_recorder(name):
        record = recorder(name)

        async def fire(conn, timer):
            await record(conn, timer)
            await asyncio.sleep(0)

        return fire

    engines = [TimerEngine(pool, SCHEMA, service="test", fire_one=await slow_recorder(n), batch_size=50,
                           poll_interval=0.01) for n in ("a", "b")]
    tasks = [asyncio.create_task(e.run()) for e in engines]
    for _ in range(200):
        await asyncio.sleep(0.1)
        if len(await fired(pool)) >= 2000:
            break
    for e in engines:
        await e.stop()
    await asyncio.gather(*tasks)
    rows = await fired(pool)
    keys = Counter(k for k, _, _ in rows)
    assert len(keys) == 2000 and max(keys.values()) == 1
    assert {by for _, _, by in rows} == {"a", "b"}, "both instances took a share"


async def test_one_bad_timer_never_holds_back_the_batch_and_is_retried_later(pool):
    async with pool.acquire() as conn:
        await arm_many(conn, SCHEMA, [Timer(f"k{i}", "breach", now() - timedelta(seconds=1), {"n": i}) for i in range(5)])
    calls = Counter()

    async def fire_one(conn, timer):
        calls[timer.key] += 1
        if timer.payload["n"] == 2:
            raise RuntimeError("bad timer")
        await recorder("a")(conn, timer)

    async def fire_batch(conn, timers):
        for t in timers:
            await fire_one(conn, t)

    engine = TimerEngine(pool, SCHEMA, service="test", fire_one=fire_one, fire_batch=fire_batch)
    assert await engine.fire_due() == 5
    assert sorted(k for k, _, _ in await fired(pool)) == ["k0", "k1", "k3", "k4"]
    retry = await pool.fetchrow(f"SELECT attempts, due_at FROM {SCHEMA}.timers WHERE key = 'k2'")
    assert retry["attempts"] == 1 and retry["due_at"] > now()


async def test_a_firing_that_rearms_its_own_key_keeps_the_new_deadline(pool):
    async with pool.acquire() as conn:
        await arm(conn, SCHEMA, "case:escalation", "escalation", now() - timedelta(seconds=1), {"level": 1})

    async def escalate(conn, timer):
        await recorder("a")(conn, timer)
        await arm(conn, SCHEMA, timer.key, "escalation", now() + timedelta(hours=1), {"level": timer.payload["level"] + 1})

    engine = TimerEngine(pool, SCHEMA, service="test", fire_one=escalate)
    assert await engine.fire_due() == 1
    level = await pool.fetchval(f"SELECT payload->>'level' FROM {SCHEMA}.timers WHERE key = 'case:escalation'")
    assert level == "2"
