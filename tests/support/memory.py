"""In memory, what a service layer's batch works on in PostgreSQL: the outbox, the timers and the
advisory locks. With a store fake (tests/fakes/<service>_store.py) a service's layer runs whole
batches without a database or a broker; the real Batch and stores stay covered by the integration
tests.

    world = MemoryWorld()
    outcomes = await world.run(service.prepare, service.apply, [event1, event2])
    world.published  # [(topic, key, payload dict), ...], in order, committed batches only
    world.timers     # {key: Timer}, armed and not cancelled or fired
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from shared import db, timers
from shared.batch import Batch
from shared.locks import AdvisoryLocks
from shared.outbox import Row
from shared.policy import LoadedPolicy
from shared.settings import Settings

P = TypeVar("P")


class MemoryBatch(Batch):
    """A `Batch` whose locks, timers and outbox live in a `MemoryWorld` (no connection: `conn` is
    None, so a store fake must ignore it). Locks always succeed unless the world marks a key busy."""

    def __init__(self, world: MemoryWorld, schema: str = "memory", service: str = "memory") -> None:
        super().__init__(None, schema, service)  # type: ignore[arg-type]
        self.world = world

    async def lock(self, locks: AdvisoryLocks, keys: Iterable[str]) -> None:
        self._note(locks, list(keys))

    async def try_lock(self, locks: AdvisoryLocks, keys: Iterable[str]) -> set[str]:
        obtained = {k for k in keys if (locks.namespace, k) not in self.world.busy}
        self._note(locks, obtained)
        return obtained

    async def arm_many(self, armed: Iterable[timers.Timer]) -> int:
        armed = list(armed)
        for timer in armed:
            self.world.timers[timer.key] = timer
        self.armed.extend(t.key for t in armed)
        return len(armed)

    async def cancel(self, keys: Iterable[str]) -> int:
        keys = list(keys)
        existed = sum(self.world.timers.pop(k, None) is not None for k in keys)
        self.cancelled.extend(keys)
        return existed

    async def _write_outbox(self, rows: list[Row]) -> None:
        for topic, key, payload in rows:
            self.world.published.append((topic, None if key is None else key.decode(), json.loads(payload)))


class MemoryWorld:
    """The outbox (`published`), the timer table (`timers`) and busy lock keys (`busy`) that
    MemoryBatches share. A batch that raises publishes nothing; its timer changes are undone, as a
    rolled-back transaction's would be."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str | None, dict[str, Any]]] = []
        self.timers: dict[str, timers.Timer] = {}
        self.busy: set[tuple[str, str]] = set()  # (lock namespace, key) held by someone else

    def batch(self) -> MemoryBatch:
        return MemoryBatch(self)

    async def run(self, prepare: Callable[[Batch, list[Any]], Awaitable[Any]] | None,
                  apply: Callable[[Batch, Any], Awaitable[Any]], events: Sequence[Any]) -> list[Any]:
        """One inbound batch as the Inbox runs it: `prepare` (its result becomes `batch.state`),
        `apply` per event in order, then `commit`. Returns apply's outcomes."""
        saved = dict(self.timers)
        batch = self.batch()
        try:
            if prepare is not None:
                batch.state = await prepare(batch, list(events))
            outcomes = [await apply(batch, event) for event in events]
            await batch.commit()
        except BaseException:
            self.timers = saved
            raise
        return outcomes

    def due(self, at: datetime) -> list[timers.Timer]:
        """The timers due at `at`, removed from the table as the timer engine's claim does, in the
        order they fall due."""
        due = sorted((t for t in self.timers.values() if t.due_at <= at), key=lambda t: (t.due_at, t.key))
        for timer in due:
            del self.timers[timer.key]
        return due

    def types(self, topic: str | None = None) -> list[str]:
        """The `type` of each published event (on `topic`, or any), in order."""
        return [p["type"] for t, _k, p in self.published if topic is None or t == topic]


class StubRuntime:
    """What a service layer asks of its `ServiceRuntime` outside a subscriber: its name, the full
    name of a topic (`topic(name)`, with the deployment's prefix) and the settings that carry it."""

    def __init__(self, name: str = "memory", prefix: str = "") -> None:
        self.name, self.prefix = name, prefix
        self.settings = Settings(helpdesk_topic_prefix=prefix)

    def topic(self, name: str) -> str:
        return self.prefix + name


class FixedPolicy(Generic[P]):
    """A PolicyHolder that always answers `policy`, as version `version`."""

    def __init__(self, policy: P, version: str = "policy-v1") -> None:
        self.loaded = LoadedPolicy(policy, version, 0.0)

    def current(self) -> LoadedPolicy[P]:
        return self.loaded

    @property
    def policy(self) -> P:
        return self.loaded.policy


@asynccontextmanager
async def migrated_transaction(database_url: str, store: Any) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `database_url` with `store`'s schema migrated (`store.SCHEMA`,
    `store.MIGRATIONS`), inside a transaction that commits when the block ends: where a store fake's
    conformance test runs its sequence on the real store."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
        async with pool.acquire() as conn, conn.transaction():
            yield conn
    finally:
        await pool.close()
