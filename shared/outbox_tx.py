"""Effectively-once publication of the outbox: no output topic carries an event twice, even after a
`kill -9` at any instant (KAFKA_TRANSACTIONS, on by default).

The at-least-once relay (shared/outbox.py) publishes a batch of outbox rows, then deletes them; a
crash between the two publishes them again. This relay closes that window with a Kafka
transaction:

1. **One leader per schema.** A relay leads while it holds a session-level advisory lock on a
   connection of its own; only the leader publishes. Another instance takes over when that
   connection ends (the process died, PostgreSQL restarted).
2. **Fencing.** The leader's producer has the transactional id `<prefix>helpdesk-<schema>.outbox`.
   A new leader's producer initialises the same id, which aborts whatever transaction the old one
   left open and makes every later send or commit of the old one fail (`ProducerFenced`).
3. **The position travels with the events.** Each batch is one Kafka transaction holding the
   batch's records and one record on the schema's position topic
   (`<prefix>helpdesk.outbox-position.<schema>.v1`, compacted, one partition) naming the outbox
   ids it published. Then, in PostgreSQL, those rows are deleted. A batch starts only after the
   previous batch's rows are deleted, so after any crash at most the last committed batch is still
   in the outbox, and the last position record names it.
4. **Takeover.** A new leader first reads the last committed position record (read_committed),
   deletes the rows it names, and only then publishes: rows published once are never published
   again, rows not yet published are published once.

Readers must read committed records only (`isolation.level=read_committed`: every consumer of
this project does); a reader that does not may see the records of an aborted transaction, which
the next leader publishes again. Ids (not an id range) are recorded because rows can commit out of
id order: an id below the last published one may still be unpublished.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced

from shared.outbox import OutboxRelay, _lost

log = logging.getLogger(__name__)

POSITION_READ_BACK = 20  # records read back from the end of a position topic (control markers included)


def position_topic(prefix: str, schema: str) -> str:
    """The compacted one-partition topic where the relay of `schema` records what it published."""
    return f"{prefix}helpdesk.outbox-position.{schema}.v1"


def transactional_id(prefix: str, schema: str) -> str:
    """The Kafka transactional id of the relay of `schema` (ACL: TransactionalId prefix `<prefix>helpdesk-`)."""
    return f"{prefix}helpdesk-{schema}.outbox"


def id_ranges(ids: Sequence[int]) -> list[list[int]]:
    """Sorted ids as inclusive ranges: [3, 4, 5, 9] -> [[3, 5], [9, 9]] (a batch's ids are mostly consecutive)."""
    ranges: list[list[int]] = []
    for i in sorted(set(ids)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1][1] = i
        else:
            ranges.append([i, i])
    return ranges


def ids_of(ranges: Sequence[Sequence[int]]) -> list[int]:
    """The ids of `id_ranges` output, in order."""
    return [i for low, high in ranges for i in range(int(low), int(high) + 1)]


class TransactionalRelay(OutboxRelay):
    """The outbox relay with Kafka transactions (see the module doc). `producer_factory(txn_id)`
    makes an unstarted transactional producer; `consumer_factory()` an unstarted consumer that reads
    committed records only (both with the deployment's connection settings)."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, service: str, topic_prefix: str,
                 producer_factory: Callable[[str], AIOKafkaProducer],
                 consumer_factory: Callable[[], AIOKafkaConsumer], batch_size: int = 500,
                 idle_wait: float = 0.5) -> None:
        super().__init__(pool, schema, None, service=service, batch_size=batch_size, idle_wait=idle_wait)  # type: ignore[arg-type]
        self.topic_prefix = topic_prefix
        self.position_topic = position_topic(topic_prefix, schema)
        self.transactional_id = transactional_id(topic_prefix, schema)
        self._producer_factory, self._consumer_factory = producer_factory, consumer_factory
        self._lead: asyncpg.Connection | None = None  # holds the session advisory lock while leading

    @property
    def leading(self) -> bool:
        """Whether this relay is the schema's leader now."""
        return self._lead is not None and not _lost(self._lead) and self.producer is not None

    async def publish_batch(self) -> int:
        if not self.leading:
            await self._resign()
            if not await self._take_lead():
                async with self.pool.acquire() as conn:  # a follower still reports the head's age
                    self._oldest_created = await conn.fetchval(
                        f"SELECT created_at FROM {self.schema}.outbox ORDER BY id LIMIT 1")
                return 0
        async with self.pool.acquire() as conn:
            rows = await self._next_rows(conn)
        if not rows:
            return 0
        ids = [r["id"] for r in rows]
        position = json.dumps({"schema": self.schema, "ids": id_ranges(ids),
                               "at": datetime.now(timezone.utc).isoformat()}).encode()
        assert self.producer is not None
        try:
            async with self.producer.transaction():
                futures = [await self.producer.send(r["topic"], value=r["payload"], key=r["key"]) for r in rows]
                futures.append(await self.producer.send(self.position_topic, value=position, key=self.schema.encode()))
                await asyncio.gather(*futures)
        except ProducerFenced:
            log.warning("outbox relay of %s was fenced by a newer leader: it stops publishing", self.schema)
            await self._resign()
            return 0
        await self._after_commit(ids)
        return self._published(rows)

    async def _after_commit(self, ids: list[int]) -> None:
        """Deletes the rows of a committed batch (a crash before this is what takeover repairs)."""
        await self.pool.execute(f"DELETE FROM {self.schema}.outbox WHERE id = ANY($1::bigint[])", ids)

    async def _take_lead(self) -> bool:
        """Tries to become the schema's leader: the session lock, a fencing producer, then the
        repair of the last committed batch. False when another instance leads."""
        conn = await self.pool.acquire()
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_id):
                await self.pool.release(conn)
                return False
        except BaseException:
            await self.pool.release(conn)
            raise
        self._lead = conn
        try:
            producer = self._producer_factory(self.transactional_id)
            await producer.start()  # InitProducerId: fences the previous leader, aborts its open transaction
            self.producer = producer
            repaired = await self._repair()
        except BaseException:
            await self._resign()
            raise
        log.info("outbox relay of %s leads%s", self.schema,
                 f"; {repaired} row(s) of the last batch were published already and are removed" if repaired else "")
        return True

    async def _repair(self) -> int:
        """Deletes the rows the last committed position record names; returns how many were left."""
        last = await self.last_position()
        if not last:
            return 0
        status = await self.pool.execute(f"DELETE FROM {self.schema}.outbox WHERE id = ANY($1::bigint[])", ids_of(last))
        return int(status.split()[-1])

    async def last_position(self) -> list[list[int]]:
        """The id ranges of the last committed batch (empty when the schema never published)."""
        consumer = self._consumer_factory()
        await consumer.start()
        try:
            tp = TopicPartition(self.position_topic, 0)
            if self.position_topic not in await consumer.topics():
                return []
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]  # read_committed: the last stable offset
            if end == 0:
                return []
            consumer.seek(tp, max(0, end - POSITION_READ_BACK))
            last: list[list[int]] = []
            while await consumer.position(tp) < end:
                for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    if record.key == self.schema.encode():
                        last = json.loads(record.value)["ids"]
            return last
        finally:
            await consumer.stop()

    async def _resign(self) -> None:
        """Stops leading: the producer closed, the lock's connection released (which unlocks)."""
        producer, self.producer = self.producer, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception:
                pass
        lead, self._lead = self._lead, None
        if lead is not None:
            try:
                if not _lost(lead):
                    await lead.execute("SELECT pg_advisory_unlock($1)", self._lock_id)
            except Exception:
                pass
            await self.pool.release(lead)

    async def stop(self) -> None:
        await super().stop()
        await self._resign()


async def ensure_position_topic(admin_factory: Callable[[], Any], topic: str, replication: int) -> None:
    """Creates the compacted, one-partition position topic when absent."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = admin_factory()
    await admin.start()
    try:
        if topic in set(await admin.list_topics()):
            return
        try:
            await admin.create_topics([NewTopic(topic, 1, replication, topic_configs={"cleanup.policy": "compact"})])
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()

