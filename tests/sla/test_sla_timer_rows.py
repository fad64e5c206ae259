"""How many rows one complaint keeps in `sla.timers` (issue 15: one timer per clock, for its next
event), counted on real PostgreSQL through the sla service layer with real Batches and the shared
timer engine's claim, under the shipped policy (config/sla.yaml: P2 on 24x7, warnings at 50% and
75%, three escalation levels). docs/benchmarks.md ("Timers per clock") quotes these counts.

Before issue 15 a clock armed one row per pending warning, one for its breach and, once breached,
one per escalation level: 6 rows for a new complaint (first contact and resolution, 3 each), 6
after first contact (resolution and update), and a breached first-contact clock 3 escalation rows.
Now every open clock has exactly one row, for its next event.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.sla import store
from services.sla.policy import SlaPolicy
from services.sla.service import Sla
from shared import db
from shared.batch import Batch
from shared.events import ComplaintClassified, Inbound
from shared.policy import PolicyHolder
from shared.timers import Timer, TimerEngine
from tests.builders import activity_model, classified_event
from tests.support.stubs import PlainTopics

pytestmark = pytest.mark.integration
SHIPPED_POLICY = Path(__file__).resolve().parents[2] / "config" / "sla.yaml"


@pytest.fixture
async def sla(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool, Sla(PlainTopics(), PolicyHolder(SHIPPED_POLICY, SlaPolicy))  # type: ignore[arg-type]
    await pool.close()


async def handle(pool, service: Sla, event: Inbound) -> None:
    """One inbound event in a transaction of its own, through a real Batch."""
    async with pool.acquire() as conn, conn.transaction():
        batch = Batch(conn, store.SCHEMA, "sla")
        if isinstance(event, ComplaintClassified):
            await service.on_classified(batch, event)
        else:
            await service.on_activity(batch, event)
        await batch.commit()


def engine(pool, service: Sla) -> TimerEngine:
    """The shared timer engine on the sla schema, firing through `service.fire` as the runtime does."""
    async def fire_batch(conn, due: Sequence[Timer]) -> None:
        batch = Batch(conn, store.SCHEMA, "sla")
        await service.fire(batch, list(due))
        await batch.commit()

    return TimerEngine(pool, store.SCHEMA, service="sla", fire_one=lambda conn, t: fire_batch(conn, [t]),
                       fire_batch=fire_batch)


async def timer_rows(pool, case_id: str) -> list[tuple[str, str]]:
    """(clock key, kind) of the case's rows in sla.timers."""
    rows = await pool.fetch(f"SELECT payload FROM {store.SCHEMA}.timers")
    payloads = [json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"] for r in rows]
    return sorted((p["clock_key"], p["kind"]) for p in payloads if p["case_id"] == case_id)


async def emitted(pool, case_id: str) -> list[tuple]:
    rows = await pool.fetch(f"SELECT payload FROM {store.SCHEMA}.outbox ORDER BY id")
    payloads = [json.loads(r["payload"]) for r in rows]
    return [(p["type"], p["clock"], p.get("threshold"), p.get("level")) for p in payloads if p["case_id"] == case_id]


async def test_a_complaint_keeps_one_timer_row_per_open_clock(sla):
    pool, service = sla
    received = datetime.now(timezone.utc)

    await handle(pool, service, classified_event(case_id="CRM-1", priority="P2", occurred_at=received, received_at=received))
    assert await timer_rows(pool, "CRM-1") == [("first_contact", "warning"), ("resolution", "warning")]

    await handle(pool, service, activity_model("case.contacted", "CRM-1", received + timedelta(minutes=5)))
    assert await timer_rows(pool, "CRM-1") == [("resolution", "warning"), ("update", "warning")]

    await handle(pool, service, activity_model("case.resolved", "CRM-1", received + timedelta(minutes=9)))
    assert await timer_rows(pool, "CRM-1") == []


async def test_a_clock_late_past_four_events_fires_them_in_one_claim_and_keeps_one_row(sla):
    pool, service = sla
    # First contact (1h) of a complaint received 95 minutes ago: its 50% and 75% warnings, its breach
    # and its first escalation (30m after the breach) are all past; the second (2h after) is not.
    received = datetime.now(timezone.utc) - timedelta(minutes=95)
    await handle(pool, service, classified_event(case_id="CRM-2", priority="P2", occurred_at=received, received_at=received))
    assert await timer_rows(pool, "CRM-2") == [("first_contact", "warning"), ("resolution", "warning")]

    assert await engine(pool, service).fire_due() == 1  # one row claimed: the clock's only timer

    assert [e for e in await emitted(pool, "CRM-2") if e[1] == "first_contact" and e[0] != "sla.started"] == [
        ("sla.warning", "first_contact", 0.5, None), ("sla.warning", "first_contact", 0.75, None),
        ("sla.breached", "first_contact", None, None), ("sla.escalated", "first_contact", None, 1),
    ]
    assert await timer_rows(pool, "CRM-2") == [("first_contact", "escalation"), ("resolution", "warning")]
    clock = await pool.fetchrow(f"SELECT armed_timers, escalations_sent FROM {store.SCHEMA}.clocks "
                                "WHERE case_id = 'CRM-2' AND clock_key = 'first_contact'")
    assert clock["armed_timers"] == ["CRM-2:first_contact"] and clock["escalations_sent"] == 1
    assert await engine(pool, service).fire_due() == 0  # nothing else is due: no event twice
