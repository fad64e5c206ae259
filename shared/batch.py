"""The unit of work of one transaction: an inbound batch (one Kafka fetch, or one record retried
alone) or one claim of due timers.

A `Batch` is created where the transaction is opened (`Inbox` for inbound records, a service's
timer callback for timers) and handed explicitly to every step that works in it. It carries:

- `conn`, `schema`, `service`: the transaction's connection and the service's schema;
- the events to publish (`publish`, `publish_many`): collected in order and written to the outbox
  by `commit` in one statement, still inside the transaction, so they exist exactly when the state
  change does;
- the advisory locks taken (`lock`, `try_lock`, `holds`; see shared/locks.py), recorded by
  namespace in the order they were taken;
- the timers armed and cancelled (`arm`, `arm_many`, `cancel`): written at once (a later read in
  the same batch sees them) and recorded;
- `state`: the service's own per-batch object, whatever its `prepare` step returned (the `Inbox`
  stores it; `apply` reads it from the batch);
- steps to run at the end (`before_commit`), before the outbox rows are written: the place to
  write what the service gathered for the whole batch.

Nothing about a batch lives anywhere else: two batches never share state, committed or not.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from shared import timers
from shared.locks import AdvisoryLocks
from shared.outbox import Row, insert_rows, to_rows

Step = Callable[[], Awaitable[None]]


class Batch:
    """One transaction's unit of work (see the module doc). `commit` runs the `before_commit`
    steps, then writes the outbox rows in one INSERT; committing the transaction stays the
    caller's (a failed batch rolls back, and its Batch is dropped with it)."""

    def __init__(self, conn: asyncpg.Connection, schema: str, service: str = "") -> None:
        self.conn, self.schema, self.service = conn, schema, service
        self.state: Any = None
        self.locked: dict[str, list[str]] = {}  # namespace -> keys, in the order taken
        self.armed: list[str] = []  # timer keys armed (or moved), in order
        self.cancelled: list[str] = []  # timer keys cancelled, in order
        self._rows: list[Row] = []
        self._steps: list[Step] = []
        self._committed = False

    # ---------- events to publish ----------
    def publish(self, topic: str, key: str | bytes | None, event: BaseModel | dict[str, Any]) -> None:
        """Adds one event to the outbox rows this batch writes at `commit`."""
        self._rows.extend(to_rows([(topic, key, event)]))

    def publish_many(self, events: Iterable[tuple[str, str | bytes | None, BaseModel | dict[str, Any]]]) -> int:
        """Adds events (topic, key, event) in order; returns how many."""
        rows = to_rows(events)
        self._rows.extend(rows)
        return len(rows)

    @property
    def pending(self) -> list[Row]:
        """The outbox rows (topic, key bytes, payload bytes) not written yet, in order."""
        return list(self._rows)

    # ---------- locks ----------
    async def lock(self, locks: AdvisoryLocks, keys: Iterable[str]) -> None:
        """`locks.lock` on this batch's transaction (waits; sorted order, one statement), recorded."""
        wanted = list(keys)
        await locks.lock(self.conn, wanted)
        self._note(locks, wanted)

    async def try_lock(self, locks: AdvisoryLocks, keys: Iterable[str]) -> set[str]:
        """`locks.try_lock` (never waits); the keys obtained are recorded and returned."""
        obtained = await locks.try_lock(self.conn, keys)
        self._note(locks, obtained)
        return obtained

    def holds(self, locks: AdvisoryLocks, key: str) -> bool:
        """Whether this batch took the lock of `key` in `locks`' namespace."""
        return key in self.locked.get(locks.namespace, ())

    def _note(self, locks: AdvisoryLocks, keys: Iterable[str]) -> None:
        taken = self.locked.setdefault(locks.namespace, [])
        seen = set(taken)
        taken.extend(k for k in sorted(set(keys)) if k not in seen)

    # ---------- timers ----------
    async def arm(self, key: str, kind: str, due_at: datetime, payload: dict[str, Any] | None = None) -> None:
        """Arms (or moves) one timer of this schema now, in this transaction."""
        await self.arm_many([timers.Timer(key, kind, due_at, payload or {})])

    async def arm_many(self, armed: Iterable[timers.Timer]) -> int:
        """Arms (or moves) timers in one statement now (see timers.arm_many); returns how many."""
        armed = list(armed)
        count = await timers.arm_many(self.conn, self.schema, armed)
        self.armed.extend(t.key for t in armed)
        return count

    async def cancel(self, keys: Iterable[str]) -> int:
        """Cancels timers by key now, in this transaction; returns how many existed."""
        keys = list(keys)
        count = await timers.cancel(self.conn, self.schema, keys)
        self.cancelled.extend(keys)
        return count

    # ---------- the end ----------
    def before_commit(self, step: Step) -> None:
        """Runs `step` at `commit`, before the outbox rows are written (steps in the order given)."""
        self._steps.append(step)

    async def commit(self) -> None:
        """The batch's one write step, inside its transaction: the `before_commit` steps, then every
        published event in one INSERT (with the relay's wake-up). Once only."""
        if self._committed:
            raise RuntimeError("this batch was committed already")
        self._committed = True
        for step in self._steps:
            await step()
        rows, self._rows = self._rows, []
        await self._write_outbox(rows)

    async def _write_outbox(self, rows: list[Row]) -> None:
        """Writes the batch's outbox rows in one INSERT (a test double writes them elsewhere)."""
        await insert_rows(self.conn, self.schema, rows)
