"""The timer benchmark's three contestants, each doing the same work per fired timer: build one
`sla.breached` event and write it to the outbox (shared.outbox) in a transaction.

- `ours`: shared.timers.TimerEngine with the service defaults (batch claims, `fire_batch` writing
  the batch's events with one `enqueue_many`).
- `pgqueuer`: PgQueuer jobs deferred with `execute_after`; each job's handler writes its event.
- `procrastinate`: procrastinate tasks deferred with `schedule_at`; each task writes its event.

Run as a worker process: `python -m tests.benchmarks.timer_systems SYSTEM DATABASE_URL EXPECTED`.
It prints `READY` once it polls, then one `REPORT {json}` line when EXPECTED timers fired (or at
its time limit): fired count, first and last firing instants, fire lags and its memory.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from shared import db
from shared.events import SLA, Outbound
from shared.outbox import enqueue, enqueue_many
from shared.settings import Settings
from shared.timers import Timer, TimerEngine, arm_many
from tests.benchmarks.common import report_line, rss_mib

SCHEMA = "bench"
KIND = "breach"
SYSTEMS = ("ours", "pgqueuer", "procrastinate")


def breach_event(case_id: str, clock: str, key: str, due_at: datetime) -> Outbound:
    return Outbound(type="sla.breached", case_id=case_id, causation_id=key, clock=clock, due_at=due_at)


def planned_timers(count: int, start: datetime, window: float, seed: int = 7, prefix: str = "") -> list[Timer]:
    """`count` SLA breach deadlines spread evenly at random over `window` seconds from `start`."""
    rng = random.Random(seed)
    clocks = ("first_contact", "update", "resolution")
    out = []
    for i in range(count):
        case_id = f"{prefix}CASE-{i:07d}"
        clock = clocks[i % 3]
        due = start + timedelta(seconds=rng.uniform(0, window))
        out.append(Timer(f"{case_id}:{clock}:breach", KIND, due, {"case_id": case_id, "clock": clock}))
    return out


# ---------- arming (in the benchmark process) ----------
async def prepare(system: str, url: str) -> None:
    """Creates what the system needs in a fresh database: our schema (outbox, timers) always."""
    pool = await db.create_pool(url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, SCHEMA, [])
    finally:
        await pool.close()
    if system == "pgqueuer":
        from pgqueuer import Queries

        conn = await asyncpg.connect(url)
        try:
            await Queries.from_asyncpg_connection(conn).install()
        finally:
            await conn.close()
    elif system == "procrastinate":
        app = procrastinate_app(url)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()


async def arm(system: str, url: str, timers: Sequence[Timer], chunk: int = 10_000) -> float:
    """Arms the timers the way each system's users would in bulk; returns seconds taken."""
    started = time.perf_counter()
    if system == "ours":
        conn = await asyncpg.connect(url)
        try:
            for i in range(0, len(timers), chunk):
                async with conn.transaction():
                    await arm_many(conn, SCHEMA, timers[i:i + chunk])
        finally:
            await conn.close()
    elif system == "pgqueuer":
        from pgqueuer import Queries

        conn = await asyncpg.connect(url)
        try:
            queries = Queries.from_asyncpg_connection(conn)
            for i in range(0, len(timers), chunk):
                part = timers[i:i + chunk]
                db_now = await conn.fetchval("SELECT now()")
                await queries.enqueue(
                    [KIND] * len(part),
                    [json.dumps({**t.payload, "key": t.key}).encode() for t in part],
                    [0] * len(part),
                    [t.due_at - db_now for t in part],
                )
        finally:
            await conn.close()
    elif system == "procrastinate":
        app = procrastinate_app(url)
        async with app.open_async():
            task = app.tasks[KIND]
            # One schedule_at per deferral call: group deadlines by their 10 ms slot.
            slots: dict[datetime, list[dict[str, Any]]] = {}
            for t in timers:
                slot = t.due_at.replace(microsecond=t.due_at.microsecond // 10_000 * 10_000)
                slots.setdefault(slot, []).append({**t.payload, "key": t.key})
            for slot, kwargs in slots.items():
                await task.configure(schedule_at=slot).batch_defer_async(*kwargs)
    else:
        raise ValueError(system)
    return time.perf_counter() - started


async def copy_armed(url: str, timers_iter: Any, total: int, chunk: int = 100_000) -> float:
    """Arms many timers fast with COPY (for the million-timer run); returns seconds taken."""
    started = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        batch: list[tuple[str, str, datetime, str]] = []
        for t in timers_iter:
            batch.append((t.key, t.kind, t.due_at, json.dumps(t.payload)))
            if len(batch) >= chunk:
                await conn.copy_records_to_table("timers", schema_name=SCHEMA, records=batch,
                                                 columns=["key", "kind", "due_at", "payload"])
                batch = []
        if batch:
            await conn.copy_records_to_table("timers", schema_name=SCHEMA, records=batch,
                                             columns=["key", "kind", "due_at", "payload"])
        await conn.execute(f"ANALYZE {SCHEMA}.timers")
    finally:
        await conn.close()
    return time.perf_counter() - started


# ---------- firing (in the worker process) ----------
class Tally:
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.lags: list[float] = []
        self.first = self.last = 0.0
        self.done = asyncio.Event()

    def fired(self, at: float, due_timestamps: Sequence[float]) -> None:
        if not self.lags:
            self.first = at
        self.last = at
        self.lags.extend(at - due for due in due_timestamps)
        if len(self.lags) >= self.expected:
            self.done.set()

    def report(self, **extra: Any) -> dict[str, Any]:
        lags = sorted(self.lags)
        return {"fired": len(lags), "first": self.first, "last": self.last,
                "lags": lags[:: max(1, len(lags) // 20_000)], "rss_mib": rss_mib_self(), **extra}


def rss_mib_self() -> float:
    import os

    return rss_mib(os.getpid())


async def run_ours(url: str, tally: Tally, limit: float) -> dict[str, Any]:
    settings = Settings()
    pool = await db.create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    topic = settings.topic(SLA)

    async def fire_batch(conn: asyncpg.Connection, timers: Sequence[Timer]) -> None:
        events = [(topic, t.payload["case_id"], breach_event(t.payload["case_id"], t.payload["clock"], t.key, t.due_at))
                  for t in timers]
        await enqueue_many(conn, SCHEMA, events)
        # The engine commits right after this returns: its one remaining round trip.
        tally.fired(time.time(), [t.due_at.timestamp() for t in timers])

    async def fire_one(conn: asyncpg.Connection, timer: Timer) -> None:
        await fire_batch(conn, [timer])

    engine = TimerEngine(pool, SCHEMA, service="bench", fire_one=fire_one, fire_batch=fire_batch,
                         batch_size=settings.timer_batch_size, poll_interval=settings.timer_poll_interval)
    task = asyncio.create_task(engine.run())
    print("READY", flush=True)
    await wait_or_limit(tally, limit)
    await engine.stop()
    await task
    await pool.close()
    return {"batch_size": settings.timer_batch_size, "poll_interval": settings.timer_poll_interval}


async def run_pgqueuer(url: str, tally: Tally, limit: float, batch_size: int) -> dict[str, Any]:
    from pgqueuer import AsyncpgDriver, Queries, QueueManager
    from pgqueuer.models import Job

    logging.getLogger("pgqueuer").setLevel(logging.WARNING)
    settings = Settings()
    pool = await db.create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    topic = settings.topic(SLA)
    qm = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(url))))

    @qm.entrypoint(KIND)
    async def breach(job: Job) -> None:
        data = json.loads(job.payload or b"{}")
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, SCHEMA, topic, data["case_id"],
                          breach_event(data["case_id"], data["clock"], data["key"], job.execute_after))
        # Fired = its event committed (PgQueuer starts a task per dequeued job at once; they queue on the pool).
        tally.fired(time.time(), [job.execute_after.timestamp()])

    async def stop_when_done() -> None:
        await wait_or_limit(tally, limit)
        qm.shutdown.set()

    stopper = asyncio.create_task(stop_when_done())
    print("READY", flush=True)
    # In-flight jobs bounded as PgQueuer advises for production (unbounded, 100,000 due jobs become
    # 100,000 tasks queueing on the pool, and jobs outlive their heartbeat and are picked twice).
    await qm.run(batch_size=batch_size, dequeue_timeout=timedelta(seconds=1), max_concurrent_tasks=4 * batch_size)
    await stopper
    await pool.close()
    return {"batch_size": batch_size}


def procrastinate_app(url: str) -> Any:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name=KIND, pass_context=True)
    async def breach(context: Any, case_id: str, clock: str, key: str) -> None:
        tally: Tally | None = app_state.get("tally")
        pool: asyncpg.Pool | None = app_state.get("pool")
        due = context.job.scheduled_at
        assert tally is not None and pool is not None
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, SCHEMA, Settings().topic(SLA), case_id, breach_event(case_id, clock, key, due))
        tally.fired(time.time(), [due.timestamp()])

    return app


app_state: dict[str, Any] = {}


async def run_procrastinate(url: str, tally: Tally, limit: float, concurrency: int) -> dict[str, Any]:
    # Its "App is instantiated in the main Python module" warning is expected: this module is the worker.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    settings = Settings()
    app_state["tally"] = tally
    app_state["pool"] = await db.create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
    app = procrastinate_app(url)
    async with app.open_async():
        worker = asyncio.create_task(app.run_worker_async(
            concurrency=concurrency, wait=True, install_signal_handlers=False, listen_notify=True,
            fetch_job_polling_interval=settings.timer_poll_interval, delete_jobs="successful",
        ))
        print("READY", flush=True)
        await wait_or_limit(tally, limit)
        worker.cancel()
        try:
            await asyncio.wait_for(worker, 30)
        except (asyncio.CancelledError, asyncio.TimeoutError):
            pass
    await app_state["pool"].close()
    return {"concurrency": concurrency}


async def exit_when_orphaned() -> None:
    """A worker whose benchmark process died stops at once instead of loading the machine on its own."""
    import os

    parent = os.getppid()
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            os._exit(3)


async def wait_or_limit(tally: Tally, limit: float) -> None:
    try:
        await asyncio.wait_for(tally.done.wait(), limit)
    except asyncio.TimeoutError:
        pass


async def worker_main(system: str, url: str, expected: int, limit: float, tuning: int) -> None:
    tally = Tally(expected)
    started = time.time()
    settings = Settings()
    tunings = {"ours": {"batch_size": settings.timer_batch_size, "poll_interval": settings.timer_poll_interval},
               "pgqueuer": {"batch_size": tuning or 100}, "procrastinate": {"concurrency": tuning or 10}}

    async def report_when_done() -> None:
        # Reported before the worker shuts down: PgQueuer's shutdown alone can take half a minute.
        await wait_or_limit(tally, limit)
        print(report_line(tally.report(system=system, started=started, **tunings[system])), flush=True)

    reporter = asyncio.create_task(report_when_done())
    orphan_watch = asyncio.create_task(exit_when_orphaned())
    if system == "ours":
        await run_ours(url, tally, limit)
    elif system == "pgqueuer":
        await run_pgqueuer(url, tally, limit, tuning or 100)
    else:
        await run_procrastinate(url, tally, limit, tuning or 10)
    await reporter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("system", choices=SYSTEMS)
    parser.add_argument("database_url")
    parser.add_argument("expected", type=int)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds to wait for all firings at most")
    parser.add_argument("--tuning", type=int, default=0, help="PgQueuer batch size / procrastinate concurrency")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(worker_main(args.system, args.database_url, args.expected, args.limit, args.tuning))


if __name__ == "__main__":
    main()
