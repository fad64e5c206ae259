"""sla applies a fetched batch in one transaction and writes its effects once, at the end
(service.Writes). Events of one case in one batch must come out exactly as if each had been
handled alone: the later ones see the earlier ones' changes before anything is written."""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from services.sla import store
from services.sla.service import Sla
from services.sla.policy import SlaPolicy
from shared import db
from shared.inbound import Inbox, Route, parse_activity, parse_classified
from shared.policy import PolicyHolder
from tests.sla.test_sla_service import activity, classified, utcnow
from tests.support.stubs import PlainTopics

pytestmark = pytest.mark.integration
FAST_POLICY = Path(__file__).with_name("sla_fast.yaml")


@pytest.fixture
async def sla(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=4)
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    service = Sla(PlainTopics(), PolicyHolder(FAST_POLICY, SlaPolicy))  # type: ignore[arg-type]
    yield pool, service, Inbox(pool, store.SCHEMA, "sla", "rejected.v1")
    await pool.close()


def records(events: list[tuple[str, dict[str, Any]]]) -> list[SimpleNamespace]:
    return [SimpleNamespace(topic=topic, partition=0, offset=n, key=e["case_id"].encode(), value=json.dumps(e).encode())
            for n, (topic, e) in enumerate(events)]


def route(service: Sla):
    def choose(record: SimpleNamespace) -> Route:
        if record.topic == "classified":
            return Route(parse_classified, service.on_classified)
        return Route(parse_activity, service.on_activity)
    return choose


async def state(pool) -> dict[str, Any]:
    clocks = await pool.fetch(f"SELECT case_id, clock_key, state FROM {store.SCHEMA}.clocks ORDER BY case_id, clock_key")
    armed = await pool.fetch(f"SELECT key FROM {store.SCHEMA}.timers ORDER BY key")
    events = await pool.fetch(f"SELECT payload FROM {store.SCHEMA}.outbox ORDER BY id")
    return {
        "clocks": [tuple(r) for r in clocks],
        "timers": [r["key"] for r in armed],
        "events": [(p["type"], p["case_id"], p.get("clock")) for p in (json.loads(r["payload"]) for r in events)],
    }


async def test_a_case_classified_contacted_and_promised_in_one_batch_ends_as_if_handled_one_by_one(sla):
    pool, service, inbox = sla
    received = utcnow()
    batch = records([
        ("activity", activity("CRM-early", "case.contacted", received)),  # before its classification: kept
        ("classified", classified("CRM-1", received)),
        ("activity", activity("CRM-1", "case.contacted", received + timedelta(seconds=1))),
        ("activity", activity("CRM-1", "case.promise_made", received + timedelta(seconds=1), promise_id="P-1",
                              due_at=(received + timedelta(minutes=5)).isoformat(), description="call back")),
        ("classified", classified("CRM-2", received)),
        ("classified", classified("CRM-early", received - timedelta(seconds=1))),
    ])
    assert await inbox.handle_batch(batch, route(service), service.prepare) == [
        "kept_for_later", "processed", "processed", "processed", "processed", "processed"]
    together = await state(pool)

    await pool.execute(f"TRUNCATE {store.SCHEMA}.clocks, {store.SCHEMA}.cases, {store.SCHEMA}.timers, "
                       f"{store.SCHEMA}.outbox, {store.SCHEMA}.processed_events, {store.SCHEMA}.pending_activity")
    for one in batch:
        await inbox.handle_batch([one], route(service), service.prepare)
    alone = await state(pool)

    assert together == alone
    clocks = {(case, key.split(":")[0]): s for case, key, s in together["clocks"]}
    assert clocks[("CRM-1", "first_contact")] == "met" and clocks[("CRM-early", "first_contact")] == "met"
    assert clocks[("CRM-2", "first_contact")] == "running"
    # CRM-1's first-contact timers were armed and withdrawn within the batch: they never reached the table
    assert not [k for k in together["timers"] if "CRM-1" in k and "first_contact" in k]
    assert [k for k in together["timers"] if "CRM-2" in k and "first_contact" in k]
    assert ("sla.met", "CRM-1", "first_contact") in together["events"]
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.pending_activity") == 0
