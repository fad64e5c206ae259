"""Durable timers in PostgreSQL, shared by the sla, compensation and followup services.

Every armed deadline is a row in `<schema>.timers`; nothing lives only in memory. A firing loop
claims due rows in batches (`DELETE … FOR UPDATE SKIP LOCKED … RETURNING`) and hands them to the
service inside the same transaction, so the state change and the events it writes to the outbox
commit together with the timer's removal. Two instances share the work without firing a timer
twice, and after a restart whatever fell due while the service was down fires at once.

Memory stays bounded with a million armed timers: one loop, one batch at a time, no task per timer.

Silent failures show in the metrics: `helpdesk_<service>_timers_dropped_total{kind}` counts timers
given up after `max_attempts` failed firings (a deadline lost), and
`helpdesk_<service>_timer_oldest_overdue_seconds` is how long the earliest armed timer is past its
due time, read from `min(due_at)` (the `timers_due_at` index) each round and aged at scrape time, so
it keeps growing while the loop is stuck or PostgreSQL is away.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg

from shared.metrics import service_metrics
from shared.resilience import UNREACHABLE_DB_ERRORS, DependencyWatch, Retrier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timer:
    key: str  # unique: arming the same key again moves the deadline
    kind: str  # what the service does when it fires, e.g. "breach", "followup_due"
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0


FireOne = Callable[[asyncpg.Connection, Timer], Awaitable[None]]
FireBatch = Callable[[asyncpg.Connection, Sequence[Timer]], Awaitable[None]]


async def arm(
    conn: asyncpg.Connection, schema: str, key: str, kind: str, due_at: datetime, payload: dict[str, Any] | None = None
) -> None:
    await arm_many(conn, schema, [Timer(key, kind, due_at, payload or {})])


async def arm_many(conn: asyncpg.Connection, schema: str, timers: Iterable[Timer]) -> int:
    """Arms (or moves) timers in one statement; a key given twice keeps its last deadline."""
    last = {t.key: t for t in timers}  # one statement may not upsert the same row twice
    if last:
        await conn.execute(
            f"INSERT INTO {schema}.timers (key, kind, due_at, payload) "
            "SELECT k, n, d, p::jsonb FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS t(k, n, d, p) "
            "ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, due_at = EXCLUDED.due_at, "
            "payload = EXCLUDED.payload, attempts = 0, armed_at = now()",
            list(last), [t.kind for t in last.values()], [t.due_at for t in last.values()],
            [json.dumps(t.payload, default=str) for t in last.values()],
        )
    return len(last)


async def cancel(conn: asyncpg.Connection, schema: str, keys: Iterable[str]) -> int:
    result = await conn.execute(f"DELETE FROM {schema}.timers WHERE key = ANY($1::text[])", list(keys))
    return int(result.split()[-1])


async def cancel_prefix(conn: asyncpg.Connection, schema: str, prefix: str) -> int:
    """Cancels every timer whose key starts with `prefix` (keys are C-collated: the index serves it)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    result = await conn.execute(f"DELETE FROM {schema}.timers WHERE key LIKE $1", escaped + "%")
    return int(result.split()[-1])


def _connection_lost(conn: asyncpg.Connection, error: BaseException) -> bool:
    """True when `error` came from the database going away rather than from the timer."""
    return isinstance(error, UNREACHABLE_DB_ERRORS) and conn.is_closed()


def _to_timer(row: asyncpg.Record) -> Timer:
    payload = row["payload"]
    return Timer(row["key"], row["kind"], row["due_at"], json.loads(payload) if isinstance(payload, str) else payload, row["attempts"])


class TimerEngine:
    """Fires due timers of one schema. Give it `fire_one`, and `fire_batch` where the service can
    handle a whole batch in fewer round trips; a failing batch is retried one timer at a time so
    one bad timer never holds back the others."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        service: str,
        fire_one: FireOne,
        fire_batch: FireBatch | None = None,
        batch_size: int = 500,
        poll_interval: float = 0.2,
        max_attempts: int = 8,
    ) -> None:
        self.pool, self.schema, self.service = pool, schema, service
        self.fire_one, self.fire_batch = fire_one, fire_batch
        self.batch_size, self.poll_interval, self.max_attempts = batch_size, poll_interval, max_attempts
        self.metrics = service_metrics(service)
        self._stopping = False
        self._last_count = 0.0
        self._earliest_due: datetime | None = None  # of the armed timers, at the last round
        self.metrics.timer_oldest_overdue.set_function(self.oldest_overdue_seconds)
        # PostgreSQL away: one line when it goes, one when it is back, backoff between.
        self.watch = DependencyWatch(service, "timers", logger=log)
        self._retrier = Retrier(self.watch)

    async def run(self) -> None:
        """Fires due timers until `stop()`. A failing round (PostgreSQL unreachable) is retried
        with backoff (see shared.resilience); its timers stay armed meanwhile."""
        while not self._stopping:
            try:
                fired = await self._retrier.call(self._round)
            except Exception:
                if self._stopping:
                    break  # halted while the database was away: the timers are still armed
                raise
            if fired < self.batch_size and not self._stopping:
                await asyncio.sleep(self.poll_interval)

    async def _round(self) -> int:
        fired = await self.fire_due()
        await self.measure_overdue()
        await self._count_armed()
        return fired

    def oldest_overdue_seconds(self) -> float:
        """How long the earliest armed timer (as of the last round) is past due now; 0 when it is not
        due yet or nothing is armed. Aged at each scrape: a loop that stopped running shows."""
        if self._earliest_due is None:
            return 0.0
        return max(0.0, (datetime.now(timezone.utc) - self._earliest_due).total_seconds())

    async def measure_overdue(self) -> None:
        """Reads the earliest due time of the schema's timers (one index lookup: `timers_due_at`)."""
        async with self.pool.acquire() as conn:
            self._earliest_due = await conn.fetchval(f"SELECT min(due_at) FROM {self.schema}.timers")

    async def stop(self) -> None:
        self._stopping = True
        self._retrier.halt()

    async def fire_due(self) -> int:
        """Claims and fires one batch of due timers; returns how many were claimed."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"DELETE FROM {self.schema}.timers WHERE key IN ("
                f" SELECT key FROM {self.schema}.timers WHERE due_at <= now()"
                "  ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED"
                ") RETURNING key, kind, due_at, payload, attempts",
                self.batch_size,
            )
            if not rows:
                return 0
            timers = sorted((_to_timer(r) for r in rows), key=lambda t: (t.due_at, t.key))
            now = datetime.now(timezone.utc)
            for t in timers:
                self.metrics.fire_lag.labels(t.kind).observe(max(0.0, (now - t.due_at).total_seconds()))
                self.metrics.timers_dropped.labels(t.kind)  # exported at 0 before any drop: increase() sees the first
            dropped: list[Timer] = []
            if not (self.fire_batch and await self._fire_as_batch(conn, timers)):
                for t in timers:
                    if await self._fire_alone(conn, t):
                        dropped.append(t)
        for t in timers:
            self.metrics.timers_fired.labels(t.kind).inc()
        for t in dropped:  # counted once the claim committed: a rolled-back round retries them instead
            self.metrics.timers_dropped.labels(t.kind).inc()
        return len(timers)

    async def _fire_as_batch(self, conn: asyncpg.Connection, timers: Sequence[Timer]) -> bool:
        try:
            async with conn.transaction():
                await self.fire_batch(conn, timers)  # type: ignore[misc]
            return True
        except Exception as exc:
            if _connection_lost(conn, exc):
                raise  # the database went away: the whole claim rolls back, the loop retries it
            log.warning("batch of %d timers failed in %s; firing them one by one", len(timers), self.schema, exc_info=True)
            return False

    async def _fire_alone(self, conn: asyncpg.Connection, timer: Timer) -> bool:
        """Fires one timer; a failure re-arms it with backoff. True when it was given up (dropped)."""
        try:
            async with conn.transaction():
                await self.fire_one(conn, timer)
        except Exception as exc:
            if _connection_lost(conn, exc):
                raise  # not this timer's fault: the claim rolls back and the loop retries it
            self.metrics.timers_failed.labels(timer.kind).inc()
            attempts = timer.attempts + 1
            if attempts >= self.max_attempts:
                log.error("timer %s (%s, key %s) failed %d times; dropped", timer.kind, self.schema, timer.key, attempts,
                          exc_info=True)
                return True
            retry_at = datetime.now(timezone.utc) + timedelta(seconds=min(300, 2**attempts))
            log.warning("timer %s (%s) failed; retry %d at %s", timer.kind, self.schema, attempts, retry_at, exc_info=True)
            await conn.execute(
                f"INSERT INTO {self.schema}.timers (key, kind, due_at, payload, attempts) "
                "VALUES ($1, $2, $3, $4::jsonb, $5) ON CONFLICT (key) DO NOTHING",
                timer.key, timer.kind, retry_at, json.dumps(timer.payload, default=str), attempts,
            )
        return False

    async def _count_armed(self) -> None:
        if time.monotonic() - self._last_count < 10:
            return
        self._last_count = time.monotonic()
        async with self.pool.acquire() as conn:
            # The planner's estimate is enough for a gauge and stays cheap with a million rows.
            estimate = await conn.fetchval(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = $1::regclass", f"{self.schema}.timers"
            )
            if estimate is None or estimate < 10_000:
                estimate = await conn.fetchval(f"SELECT count(*) FROM {self.schema}.timers")
        self.metrics.timers_armed.set(max(0, estimate))
