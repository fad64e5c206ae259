"""Offsets are committed only after the handler's transaction committed (AckPolicy.NACK_ON_ERROR):
a handler that fails sees the same records again instead of losing them. Records arrive in
batches (one fetch); a failed batch is delivered again from its first record on every partition."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka.annotations import KafkaMessage

from shared.kafka import consumer_options, ensure_topics, make_broker

pytestmark = pytest.mark.integration


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def test_a_record_whose_handler_failed_is_delivered_again_and_committed_only_after_success(ns):
    settings = ns.settings().model_copy(update={"kafka_partitions": 1})
    await ensure_topics(settings, ("acks.v1",))
    topic, group = settings.topic("acks.v1"), settings.group("acktest")
    seen: list[bytes] = []
    offsets_while_failing: list[int | None] = []

    broker = make_broker(settings)

    @broker.subscriber(topic, group_id=group, **consumer_options(settings))
    async def handle(msg: KafkaMessage) -> None:
        seen.extend(record.value for record in msg.raw_message)
        if len(seen) <= 2:  # the database is down, say
            offsets_while_failing.append(await committed_offset(settings.kafka_bootstrap_servers, group, topic))
            raise ConnectionError("database unreachable")

    await broker.start()
    try:
        await ns.kafka.publish("acks.v1", b"complaint-1", key="case-1")
        for _ in range(100):
            if len(seen) >= 3:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    assert seen == [b"complaint-1"] * 3, "retried until it succeeded, then not again"
    assert offsets_while_failing == [None, None], "nothing committed while the handler failed"
    assert await committed_offset(settings.kafka_bootstrap_servers, group, topic) == 1


async def test_a_failed_batch_over_several_partitions_is_delivered_again_from_each_partitions_first_record(ns):
    settings = ns.settings().model_copy(update={"kafka_partitions": 3, "consumer_batch_wait": 0.5})
    await ensure_topics(settings, ("acks.v1",))
    topic, group = settings.topic("acks.v1"), settings.group("acktest")
    batches: list[list[bytes]] = []
    done: list[bytes] = []

    broker = make_broker(settings)

    @broker.subscriber(topic, group_id=group, **consumer_options(settings))
    async def handle(msg: KafkaMessage) -> None:
        batch = [record.value for record in msg.raw_message]
        batches.append(batch)
        if len(batches) == 1:
            raise ConnectionError("database unreachable")
        done.extend(batch)

    sent = [f"complaint-{i}".encode() for i in range(30)]
    for i, value in enumerate(sent):
        await ns.kafka.publish("acks.v1", value, key=f"case-{i}")
    await broker.start()
    try:
        for _ in range(100):
            if len(done) >= len(sent):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
    finally:
        await broker.stop()
    assert len(batches[0]) > 1, "the records came as one batch"
    assert set(batches[0]) <= set(done), "every record of the failed batch came again"
    assert sorted(done) == sorted(sent), "and, once handled, no record came twice"
