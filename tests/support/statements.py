"""Counting the SQL statements a service sends for one inbound batch, on real PostgreSQL.

A batch runs through the real `shared.inbound.Inbox` (parse, `first_times`, the service's
`prepare`, each record's apply, the Batch's commit with its `before_commit` steps and its one outbox
INSERT), on a pool whose connections count every `execute`, `executemany`, `fetch`, `fetchrow` and
`fetchval`. A service whose count for a batch of 1 equals its count for a batch of 50 runs no
statement per complaint (issue #15 item 2).

    pool = await counting_pool(database_url, store)
    count = await statements(pool, store.SCHEMA, "intake", records, route, prepare)
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from shared import db
from shared.inbound import Inbox, Prepare, Router

COUNTED = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


class CountingConnection:
    """An asyncpg connection that counts the statements sent through it (`COUNTED` methods) in
    `counter.statements`, with each one's first words in `counter.log`; everything else (its
    transactions, its type codecs) is the connection's own."""

    def __init__(self, conn: asyncpg.Connection, counter: "Counter") -> None:
        self._conn, self._counter = conn, counter

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name not in COUNTED:
            return attr

        async def counted(query: str, *args: Any, **kwargs: Any) -> Any:
            self._counter.statements += 1
            self._counter.log.append(" ".join(query.split())[:80])
            return await attr(query, *args, **kwargs)
        return counted


@dataclass
class Counter:
    """How many statements were sent (`statements`) and what they began with (`log`)."""

    statements: int = 0
    log: list[str] = field(default_factory=list)


class CountingPool:
    """What the Inbox asks of an asyncpg pool (`acquire`), handing out CountingConnections."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.counter = pool, Counter()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[CountingConnection]:
        async with self.pool.acquire() as conn:
            yield CountingConnection(conn, self.counter)


@asynccontextmanager
async def counting_pool(database_url: str, store: Any) -> AsyncIterator[CountingPool]:
    """A CountingPool on `database_url` with `store`'s schema migrated (`store.SCHEMA`, `store.MIGRATIONS`)."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
        yield CountingPool(pool)
    finally:
        await pool.close()


@dataclass
class Record:
    """A Kafka record as the Inbox reads it."""

    topic: str
    value: bytes
    key: bytes | None
    partition: int = 0
    offset: int = 0


def records(topic: str, events: Sequence[dict[str, Any]], first_offset: int = 0) -> list[Record]:
    """The events (JSON objects with a `case_id`) as records of `topic`, keyed by their case."""
    return [Record(topic, json.dumps(e, default=str).encode(), str(e.get("case_id", "")).encode() or None,
                   offset=first_offset + i) for i, e in enumerate(events)]


async def statements(pool: CountingPool, schema: str, service: str, batch: Sequence[Record], route: Router,
                     prepare: Prepare | None = None) -> tuple[int, list[str]]:
    """How many statements one Inbox batch of `batch` sent, and their beginnings. Raises
    AssertionError when a record was rejected or absorbed as a duplicate (the count would not be
    the batch's); a batch that failed and was handled one record at a time shows as a count that
    grows with the batch."""
    inbox = Inbox(pool, schema, service, "rejected")  # type: ignore[arg-type]
    before = pool.counter.statements, len(pool.counter.log)
    outcomes = await inbox.handle_batch(batch, route, prepare)
    assert "rejected" not in outcomes and "duplicate" not in outcomes, outcomes
    sent = pool.counter.log[before[1]:]
    assert len(sent) == pool.counter.statements - before[0]
    return len(sent), sent
