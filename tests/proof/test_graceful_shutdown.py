"""SIGTERM drains: in-flight work commits, the outbox is published, and a clean restart causes
no duplicate — not even one with the same event id."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.events import CLASSIFIED, COMPLAINTS
from tests.builders import complaint_event

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_a_clean_stop_mid_stream_and_restart_classifies_each_complaint_once_without_duplicates(ns):
    intake = ns.service("intake")
    events = [complaint_event(event_id=str(uuid.uuid4()), case_id=f"CRM-{uuid.uuid4().hex[:8]}") for _ in range(400)]
    publishing = asyncio.create_task(ns.kafka.publish_many(COMPLAINTS, events))
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) >= 30, timeout=60)
    # uvicorn re-raises SIGTERM once its graceful shutdown finished, so the status is "terminated by 15"
    assert intake.stop() in (0, -15), f"SIGTERM should exit cleanly:\n{intake.tail()}"
    assert "intake stopped" in intake.tail(), "the shutdown ran to its end (consumers, relay, pool)"
    await publishing
    intake.start()
    wanted = {e["event_id"] for e in events}
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: wanted <= {r["causation_id"] for r in rs}, timeout=120)
    await asyncio.sleep(1)
    out = await ns.kafka.read_all(CLASSIFIED)
    assert len(out) == len(wanted), f"{len(out) - len(wanted)} duplicate(s) after a clean shutdown"
