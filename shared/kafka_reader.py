"""Reading a whole topic once, for operator tools (the `helpdesk` CLI, the demo, tests)."""
from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.kafka import client_args
from shared.settings import Settings


async def read_topic(settings: Settings, name: str, *, limit: int | None = None,
                     positions: bool = False) -> list[dict[str, Any]]:
    """Every JSON object now in `name` (prefix applied), oldest first per partition (partitions one
    after another, so not in time order across them: see `by_time`), with the record's key added as
    `_key`. With `positions`, also `_partition`, `_offset` and `_timestamp` (the record's Kafka
    timestamp, milliseconds since the Unix epoch)."""
    # read_committed: never the records of an aborted transaction (shared/outbox_tx.py)
    consumer = AIOKafkaConsumer(**client_args(settings), enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level="read_committed")
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # closes what the failed start opened (no "Unclosed AIOKafkaConsumer")
        raise
    try:
        topic = settings.topic(name)
        if topic not in await consumer.topics():
            return []
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            # A consumer without subscriptions has no partition metadata yet; aiokafka has no
            # public call for it.
            await consumer._client.force_metadata_update()  # noqa: SLF001
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[dict[str, Any]] = []

        async def behind() -> list[TopicPartition]:
            return [tp for tp in tps if await consumer.position(tp) < ends[tp]]

        while (lagging := await behind()) and (limit is None or len(out) < limit):
            batch = await consumer.getmany(*lagging, timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    try:
                        value = json.loads(r.value)
                    except Exception:
                        continue
                    if isinstance(value, dict):
                        value["_key"] = r.key.decode("utf-8", "replace") if r.key else None
                        if positions:
                            value.update(_partition=r.partition, _offset=r.offset, _timestamp=r.timestamp)
                        out.append(value)
        return out
    finally:
        try:
            await consumer.stop()
        except asyncio.CancelledError:
            # aiokafka can leak the cancellation of its own coordinator task from stop() when a
            # group-less consumer stops right after starting; only a real cancel must propagate.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise


def event_time(record: dict[str, Any]) -> datetime:
    """When an event read by `read_topic` happened, as an aware UTC datetime: its `occurred_at`
    (RFC 3339 text), else the record's Kafka timestamp (`_timestamp`), else the Unix epoch."""
    text = record.get("occurred_at")
    if isinstance(text, str):
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is not None and when.tzinfo is not None:
            return when.astimezone(timezone.utc)
    stamp = record.get("_timestamp")
    if isinstance(stamp, int) and stamp >= 0:
        return datetime.fromtimestamp(stamp / 1000, timezone.utc)
    return datetime.fromtimestamp(0, timezone.utc)


def by_time(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`records` oldest first across all partitions (by `event_time`; ties keep partition and
    offset order)."""
    return sorted(records, key=lambda r: (event_time(r), r.get("_partition", 0), r.get("_offset", 0)))
