"""The pipeline's baseline: raw aiokafka consume → produce on the same topics, shaped like the four
services (intake: complaints → classified; sla: classified → sla.started; compensation: classified →
a decision; followup: reads classified). No database, no validation: the Python ceiling here.

It decodes and encodes JSON and commits offsets after the batch's records were acknowledged, as an
at-least-once consumer must, with the services' producer settings (shared.kafka.make_producer).

`python -m tests.benchmarks.passthrough ROLE` with the services' environment (prefix, bootstrap).
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from datetime import datetime, timezone
from typing import Any

from aiokafka import AIOKafkaConsumer

from shared import kafka
from shared.events import CLASSIFIED, COMPENSATION, COMPLAINTS, SLA
from shared.settings import Settings

ROLES: dict[str, tuple[str, str | None]] = {
    "intake": (COMPLAINTS, CLASSIFIED),
    "sla": (CLASSIFIED, SLA),
    "compensation": (CLASSIFIED, COMPENSATION),
    "followup": (CLASSIFIED, None),
}
OUTPUT_TYPE = {"intake": "complaint.classified", "sla": "sla.started", "compensation": "compensation.none"}


def transform(role: str, event: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "type": OUTPUT_TYPE[role], "case_id": event.get("case_id"),
            "causation_id": event.get("event_id"), "occurred_at": datetime.now(timezone.utc).isoformat()}


async def pass_through(role: str) -> None:
    settings = Settings()
    source, target = ROLES[role]
    consumer = AIOKafkaConsumer(
        settings.topic(source), **kafka.client_args(settings), group_id=f"{settings.group('baseline')}.{role}",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )
    producer = kafka.make_producer(settings)
    await consumer.start()
    await producer.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    print("READY", flush=True)
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            futures = []
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value)
                    if target is not None:
                        value = json.dumps(transform(role, event), separators=(",", ":")).encode()
                        futures.append(await producer.send(settings.topic(target), value=value, key=record.key))
            if futures:
                await asyncio.gather(*futures)
            if batches:
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    role = sys.argv[1]
    if role not in ROLES:
        raise SystemExit(f"role must be one of {', '.join(ROLES)}")
    asyncio.run(pass_through(role))


if __name__ == "__main__":
    main()
