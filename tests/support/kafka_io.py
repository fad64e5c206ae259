"""Publishing to and reading from the real broker in tests."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer


class KafkaIO:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self._producer: AIOKafkaProducer | None = None

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    async def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, max_request_size=8 * 1024 * 1024)
            await self._producer.start()
        return self._producer

    async def publish(self, topic: str, value: dict[str, Any] | bytes | None, key: str | None = None,
                      headers: list[tuple[str, bytes]] | None = None) -> None:
        producer = await self.producer()
        if isinstance(value, dict):
            key = key if key is not None else value.get("case_id")
            value = json.dumps(value).encode()
        await producer.send_and_wait(self.topic(topic), value=value, key=key.encode() if isinstance(key, str) else key,
                                     headers=headers)

    async def publish_many(self, topic: str, events: list[dict[str, Any] | bytes]) -> None:
        producer = await self.producer()
        futures = []
        for event in events:
            key = event.get("case_id") if isinstance(event, dict) else None
            value = json.dumps(event).encode() if isinstance(event, dict) else event
            futures.append(await producer.send(self.topic(topic), value=value, key=key.encode() if key else None))
        await asyncio.gather(*futures)

    async def read_all(self, topic: str) -> list[dict[str, Any]]:
        """Every record now in the topic, decoded, with `_key` added."""
        from shared.kafka_reader import read_topic
        from shared.settings import Settings

        return await read_topic(Settings(kafka_bootstrap_servers=self.bootstrap, helpdesk_topic_prefix=self.prefix), topic)

    async def wait_for(
        self, topic: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Polls the topic until `predicate(all_records)` holds; returns the records."""
        deadline = time.monotonic() + timeout
        while True:
            records = await self.read_all(topic)
            if predicate(records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting on {topic}; {len(records)} records there")
            await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Removes a test's topics, so the broker does not accumulate thousands of partitions
    (they slow its recovery after an unclean stop)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    except Exception:
        pass  # best effort: a test's leftovers are harmless
    finally:
        await admin.close()
