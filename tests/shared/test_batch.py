"""shared/batch.py on real PostgreSQL: a Batch writes its events once, in order, in one INSERT at
its commit (after its before-commit steps), nothing when it fails; records the locks it took; arms
and cancels timers at once. And no ContextVar is left in services/ or shared/."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from shared import db
from shared.batch import Batch
from shared.events import Outbound
from shared.locks import AdvisoryLocks

SCHEMA = "batchtest"
CASES = AdvisoryLocks("batchtest:case")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def pool(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=3)
    await db.migrate(pool, SCHEMA, [])
    yield pool
    await pool.close()


async def outbox(pool) -> list[tuple[str, bytes | None, str]]:
    rows = await pool.fetch(f"SELECT topic, key, payload FROM {SCHEMA}.outbox ORDER BY id")
    return [(r["topic"], r["key"], json.loads(r["payload"])["type"]) for r in rows]


@pytest.mark.integration
async def test_events_are_written_at_commit_in_order_in_one_statement_after_the_steps(pool):
    statements: list[str] = []
    async with pool.acquire() as conn, conn.transaction():
        conn.add_query_logger(lambda q: statements.append(q.query))
        batch = Batch(conn, SCHEMA, "batchtest")
        batch.publish("a.v1", "k1", Outbound(type="first", case_id="k1"))

        async def step() -> None:
            batch.publish("b.v1", None, {"type": "from_step"})

        batch.before_commit(step)
        assert batch.publish_many([("a.v1", b"k2", Outbound(type="second", case_id="k2"))]) == 1
        assert [key for _, key, _ in batch.pending] == [b"k1", b"k2"]
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 0, "nothing written before commit"
        statements.clear()
        await batch.commit()
        assert len([q for q in statements if "outbox" in q]) == 1, "one INSERT for the whole batch"
        assert batch.pending == []
        with pytest.raises(RuntimeError):
            await batch.commit()
    assert await outbox(pool) == [("a.v1", b"k1", "first"), ("a.v1", b"k2", "second"), ("b.v1", None, "from_step")]


@pytest.mark.integration
async def test_a_batch_that_fails_before_its_commit_writes_nothing(pool):
    with pytest.raises(ValueError):
        async with pool.acquire() as conn, conn.transaction():
            batch = Batch(conn, SCHEMA)
            batch.publish("a.v1", "k", Outbound(type="lost", case_id="k"))
            raise ValueError("the batch failed")
    async with pool.acquire() as conn, conn.transaction():
        await Batch(conn, SCHEMA).commit()  # an empty batch writes nothing at all
    assert await outbox(pool) == []


@pytest.mark.integration
async def test_locks_are_recorded_in_the_order_taken_and_try_lock_records_what_it_got(pool):
    async with pool.acquire() as other, other.transaction():
        await CASES.lock(other, ["busy"])
        async with pool.acquire() as conn, conn.transaction():
            batch = Batch(conn, SCHEMA)
            await batch.lock(CASES, ["c2", "c1", "c2"])
            assert await batch.try_lock(CASES, ["busy", "c3"]) == {"c3"}
            assert batch.locked == {"batchtest:case": ["c1", "c2", "c3"]}
            assert batch.holds(CASES, "c1") and not batch.holds(CASES, "busy")
            assert await CASES.try_lock(other, ["c1"]) == set(), "held by the batch's transaction"


@pytest.mark.integration
async def test_timers_are_armed_and_cancelled_at_once_and_recorded(pool):
    due = datetime.now(timezone.utc) + timedelta(hours=1)
    async with pool.acquire() as conn, conn.transaction():
        batch = Batch(conn, SCHEMA)
        await batch.arm("t1", "kind", due, {"n": 1})
        await batch.arm("t2", "kind", due)
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.timers") == 2, "armed at once"
        assert await batch.cancel(["t1", "missing"]) == 1
        assert (batch.armed, batch.cancelled) == (["t1", "t2"], ["t1", "missing"])
    assert [r["key"] for r in await pool.fetch(f"SELECT key FROM {SCHEMA}.timers")] == ["t2"]


# The one context variable allowed: the ids a log line is about (read-only context for logs, never
# state that correctness depends on; see its module doc).
LOG_IDS = ROOT / "shared" / "logcontext.py"


def test_no_context_variable_is_left_in_services_or_shared():
    found = [f"{path.relative_to(ROOT)}:{n}" for folder in ("services", "shared") for path in (ROOT / folder).rglob("*.py")
             if path != LOG_IDS
             for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"ContextVar|contextvars", line)]
    assert found == [], "batch state belongs in shared.batch.Batch, passed explicitly"
    assert "ContextVar" in LOG_IDS.read_text() and "never" in LOG_IDS.read_text()
