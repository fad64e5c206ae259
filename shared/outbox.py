"""Transactional outbox and its relay to Kafka.

A service writes the events it emits into `<schema>.outbox` in the same transaction as the state
change that caused them, so an event exists exactly when its state change does. The relay
publishes outbox rows in order and deletes them only after Kafka acknowledged them: a crash between
publish and delete re-publishes the same rows (same `event_id`, which consumers de-duplicate);
nothing is lost and nothing is invented.

While Kafka (or the relay) is stuck the rows wait: `helpdesk_<service>_outbox_oldest_age_seconds` is
the age of the oldest unpublished row (read with the batch, before it is sent, and aged at scrape
time, so it keeps growing while sends fail) and `helpdesk_<service>_outbox_backlog_events` how many
wait (exact below one batch, estimated from the ids above).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from shared.metrics import service_metrics
from shared.resilience import KAFKA, POSTGRES, DependencyWatch, Retrier, short_reason

log = logging.getLogger(__name__)


def encode(event: BaseModel | dict[str, Any]) -> bytes:
    """An event as the outbox's JSON payload bytes (UTF-8, compact). A model is serialised by
    pydantic in one step (`model_dump_json`, fields that are None left out, as `shared.events.dump`
    gives them), without building a dict first; a dict goes through `json.dumps`."""
    if isinstance(event, BaseModel):
        return event.model_dump_json(exclude_none=True).encode("utf-8")
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


async def enqueue(
    conn: asyncpg.Connection, schema: str, topic: str, key: str | bytes | None, event: BaseModel | dict[str, Any]
) -> None:
    """Writes one event to the outbox now; call inside the state change's transaction. Work done in
    a `shared.batch.Batch` publishes through it instead (one INSERT per batch)."""
    await enqueue_many(conn, schema, [(topic, key, event)])


Row = tuple[str, bytes | None, bytes]


def to_rows(events: Iterable[tuple[str, str | bytes | None, BaseModel | dict[str, Any]]]) -> list[Row]:
    """Events (topic, key, event) as outbox rows: (topic, key bytes, JSON payload bytes)."""
    return [
        (topic, key.encode("utf-8") if isinstance(key, str) else key, encode(event))
        for topic, key, event in events
    ]


async def enqueue_many(
    conn: asyncpg.Connection,
    schema: str,
    events: Iterable[tuple[str, str | bytes | None, BaseModel | dict[str, Any]]],
) -> int:
    """Writes events to the outbox now, in one statement; returns how many."""
    rows = to_rows(events)
    await insert_rows(conn, schema, rows)
    return len(rows)


async def insert_rows(conn: asyncpg.Connection, schema: str, rows: list[Row]) -> None:
    """Writes outbox rows in one statement (nothing when there are none)."""
    if not rows:
        return
    topics, keys, payloads = zip(*rows)
    # One round trip: the rows and the relay's wake-up (delivered at commit, once per transaction).
    await conn.execute(
        f"WITH added AS (INSERT INTO {schema}.outbox (topic, key, payload) "
        "SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])) SELECT pg_notify($4, '')",
        list(topics), list(keys), list(payloads), f"{schema}_outbox",
    )


def _lost(conn: asyncpg.Connection) -> bool:
    """True when a pooled connection is closed (the pool detaches a connection that died)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


class OutboxRelay:
    """Publishes a schema's outbox to Kafka; one active relay per schema at a time (advisory lock),
    so events leave in the order they were written even with several instances running."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        producer: AIOKafkaProducer,
        *,
        service: str,
        batch_size: int = 500,
        idle_wait: float = 0.5,
    ) -> None:
        self.pool, self.schema, self.producer = pool, schema, producer
        self.service, self.batch_size, self.idle_wait = service, batch_size, idle_wait
        self._lock_id = zlib.crc32(f"outbox:{schema}".encode())
        self._wake = asyncio.Event()
        self._stopping = False
        self._listen_conn: asyncpg.Connection | None = None
        self._channel = f"{schema}_outbox"
        self.metrics = service_metrics(service)
        self._oldest_created: datetime | None = None  # of the unpublished rows, at the last look
        self.metrics.outbox_oldest_age.set_function(self.oldest_age_seconds)
        # An outage of PostgreSQL or Kafka: one line when it starts, one when it ends, backoff between.
        self.watch = DependencyWatch(service, "outbox", (POSTGRES, KAFKA), logger=log)
        self._retrier = Retrier(self.watch)

    def oldest_age_seconds(self) -> float:
        """Age now of the oldest unpublished row seen at the last look; 0 when the outbox was empty."""
        if self._oldest_created is None:
            return 0.0
        return max(0.0, time.time() - self._oldest_created.timestamp())

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Publishes until `stop()`. A failing batch (PostgreSQL or Kafka unreachable) is retried
        with backoff (see shared.resilience); its rows stay in the outbox meanwhile."""
        await self._listen()
        while not self._stopping:
            try:
                published = await self._retrier.call(self.publish_batch)
            except Exception:
                if self._stopping:
                    break  # halted while the database or broker was away: the next start publishes
                raise
            if self._listen_conn is not None and _lost(self._listen_conn):
                await self._listen()  # the LISTEN connection died with an outage: listen again
            if published < self.batch_size:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.idle_wait)
                except asyncio.TimeoutError:
                    pass

    async def publish_batch(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_id):
                # Another instance relays this schema now; look at the head anyway (primary key, one
                # row), so every instance reports the age even when the one relaying is stuck.
                self._oldest_created = await conn.fetchval(
                    f"SELECT created_at FROM {self.schema}.outbox ORDER BY id LIMIT 1"
                )
                return 0
            rows = await self._next_rows(conn)
            if not rows:
                return 0
            futures = [await self.producer.send(r["topic"], value=r["payload"], key=r["key"]) for r in rows]
            await asyncio.gather(*futures)  # every record acknowledged before any row is deleted
            await conn.execute(f"DELETE FROM {self.schema}.outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        return self._published(rows)

    async def _next_rows(self, conn: asyncpg.Connection) -> list[asyncpg.Record]:
        """The next batch of outbox rows in id order (id, topic, key, payload, created_at), with the
        backlog gauges set before anything is sent: while Kafka is away the sends fail and these stay
        the last word."""
        rows = await conn.fetch(
            f"SELECT id, topic, key, payload, created_at FROM {self.schema}.outbox ORDER BY id LIMIT $1",
            self.batch_size,
        )
        if not rows:
            self._oldest_created = None
            self.metrics.outbox_backlog.set(0)
            return []
        self._oldest_created = rows[0]["created_at"]
        if len(rows) < self.batch_size:
            self.metrics.outbox_backlog.set(len(rows))
        else:  # more than a batch waits: the id span is an estimate (rolled-back inserts leave gaps)
            last = await conn.fetchval(f"SELECT max(id) FROM {self.schema}.outbox")
            self.metrics.outbox_backlog.set(max(len(rows), last - rows[0]["id"] + 1))
        return list(rows)

    def _published(self, rows: list[asyncpg.Record]) -> int:
        """Counts a published batch (per topic, and each row's delay since it was written); returns its size."""
        now = time.time()
        for r in rows:
            self.metrics.outbox_published.labels(r["topic"]).inc()
            self.metrics.outbox_delay.observe(max(0.0, now - r["created_at"].timestamp()))
        if len(rows) < self.batch_size:
            self.metrics.outbox_backlog.set(0)
            self._oldest_created = None  # rows written since are seen at the next look
        return len(rows)

    async def publish_until_empty(self, timeout: float) -> None:
        """On shutdown: publish what the last handlers wrote, so a clean stop leaves nothing behind."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and await self.publish_batch() > 0:
                pass
        except Exception:
            log.warning("outbox of %s not drained on shutdown; the next start publishes it", self.schema)

    async def _listen(self) -> None:
        if self._listen_conn is not None:  # lost: the pool took it back already (release is a no-op then)
            await self.pool.release(self._listen_conn)
            self._listen_conn = None
        conn = None
        try:
            conn = await self.pool.acquire()
            await conn.add_listener(self._channel, self._on_notify)
            self._listen_conn = conn
        except Exception as exc:
            log.warning("outbox relay of %s could not LISTEN (%s); polling only", self.schema, short_reason(exc))
            if conn is not None:
                await self.pool.release(conn)

    async def stop(self) -> None:
        self._stopping = True
        self._retrier.halt()
        self._wake.set()
        if self._listen_conn is not None:
            try:
                await self._listen_conn.remove_listener(self._channel, self._on_notify)
            except Exception:
                pass
            await self.pool.release(self._listen_conn)
            self._listen_conn = None

    async def backlog(self) -> int:
        async with self.pool.acquire() as conn:
            count = await conn.fetchval(f"SELECT count(*) FROM {self.schema}.outbox")
        self.metrics.outbox_backlog.set(count)
        return count
