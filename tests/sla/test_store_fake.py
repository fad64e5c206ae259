"""The in-memory sla store (tests/fakes/sla_store.py) answers as the real one does: the same
sequence of calls runs on services/sla/store.py in a fresh PostgreSQL database and on the fake, and
every answer must be the same. This keeps the fake honest for tests/sla/test_service.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from services.sla import store as real_store
from services.sla.domain import CaseSla, Clock
from shared import db
from tests.builders import activity_model
from tests.fakes.sla_store import MemorySlaStore

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)


def clock(case_id: str, kind: str, **fields: Any) -> Clock:
    values: dict[str, Any] = {
        "case_id": case_id, "kind": kind, "priority": "P2", "calendar": "24x7", "started_at": T0,
        "target": timedelta(hours=1), "due_at": T0 + timedelta(hours=1), "started_by": "cls-1",
        "arming": 1, "armed_timers": (f"{case_id}:{kind}:1:breach:0",),
    }
    return Clock(**{**values, **fields})


def rows(records: Any) -> list[tuple]:
    """Gauge rows in a comparable form: sorted (column, value) tuples."""
    return sorted(tuple(sorted(dict(r).items())) for r in records)


async def sequence(store: Any, conn: Any) -> list[Any]:
    """The calls the service layer makes most, in an order that exercises upserts and deletes."""
    seen: list[Any] = []
    seen.append(await store.load_cases(conn, ["CRM-A", "CRM-B"]))
    seen.append(await store.load_case(conn, "CRM-A"))
    case_a = CaseSla("CRM-A", "P2", "crm-east", "cls-1", kept_before_made=frozenset({"P-9"}))
    case_b = CaseSla("CRM-B", "P3", "crm-west", "cls-2", paused_at=T0)
    await store.save_cases(conn, [case_a, case_b])
    await store.save_clocks(conn, [
        clock("CRM-A", "first_contact", warnings_sent=(0.5,)),
        clock("CRM-A", "resolution", target=timedelta(hours=8), due_at=T0 + timedelta(hours=8),
              warnings_sent=(0.5, 0.75)),
        clock("CRM-A", "promise", promise_id="P-1", due_at=T0 + timedelta(minutes=30), target=timedelta(minutes=30)),
        clock("CRM-B", "first_contact", priority="P3", state="paused", paused_at=T0 + timedelta(minutes=5)),
    ])
    seen.append(await store.load_cases(conn, ["CRM-B", "CRM-A", "CRM-C", "CRM-A"]))
    seen.append(await store.load_case(conn, "CRM-A"))
    # upserts: the case's priority and the clocks' state move; the other rows stay
    await store.save_cases(conn, [CaseSla("CRM-A", "P1", "crm-east", "cls-3", resolved=True)])
    await store.save_clocks(conn, [
        clock("CRM-A", "first_contact", priority="P1", state="met", ended_at=T0 + timedelta(minutes=10),
              warnings_sent=(0.5,), arming=2, armed_timers=(), counted_before=timedelta(minutes=3),
              paused_total=timedelta(seconds=90)),
        clock("CRM-A", "resolution", state="breached", breached_at=T0 + timedelta(hours=8), escalations_sent=1,
              warnings_sent=(0.5, 0.75)),
    ])
    seen.append(await store.load_cases(conn, ["CRM-A", "CRM-B"]))
    seen.append(rows(await store.open_clock_counts(conn)))
    seen.append(rows(await store.at_risk_counts(conn)))
    # activity kept for a case not classified yet: once per event id, free text left out, oldest first
    later = activity_model("case.contacted", "CRM-C", T0 + timedelta(minutes=20), event_id="ev-2",
                           description="called back")
    earlier = activity_model("case.promise_made", "CRM-C", T0 + timedelta(minutes=5), event_id="ev-3",
                             promise_id="P-1", due_at=(T0 + timedelta(hours=1)).isoformat(), description="a promise")
    tie = activity_model("case.paused", "CRM-C", T0 + timedelta(minutes=5), event_id="ev-1")
    other = activity_model("case.contacted", "CRM-D", T0, event_id="ev-4")
    for event in (later, earlier, later, tie, other):
        await store.keep_for_later(conn, event)
    seen.append(await store.pending_count(conn))
    seen.append(await store.cases_with_pending(conn, ["CRM-A", "CRM-C", "CRM-D"]))
    seen.append(await store.cases_with_pending(conn, []))
    seen.append(await store.take_pending(conn, "CRM-C"))
    seen.append(await store.take_pending(conn, "CRM-C"))
    seen.append(await store.pending_count(conn))
    seen.append(await store.cases_with_pending(conn, ["CRM-C", "CRM-D"]))
    return seen


async def test_the_fake_store_answers_as_the_real_one(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, real_store.SCHEMA, real_store.MIGRATIONS)
        async with pool.acquire() as conn, conn.transaction():
            real = await sequence(real_store, conn)
        fake = await sequence(MemorySlaStore(), None)
        assert len(real) == len(fake)
        for n, (r, f) in enumerate(zip(real, fake)):
            assert r == f, f"answer {n} differs: real {r!r}, fake {f!r}"
        # and the answers are the ones meant, not two equal mistakes
        assert real[0] == {} and real[1] is None
        assert set(real[2]) == {"CRM-A", "CRM-B"} and set(real[2]["CRM-A"].clocks) == {"first_contact", "resolution", "promise:P-1"}
        assert real[4]["CRM-A"].priority == "P1" and real[4]["CRM-A"].clocks["first_contact"].state == "met"
        assert real[7] == 4 and real[8] == {"CRM-C", "CRM-D"} and real[9] == set()
        assert [d["event_id"] for d in real[10]] == ["ev-1", "ev-3", "ev-2"]
        assert all("description" not in d for d in real[10])
        assert real[11] == [] and real[12] == 1 and real[13] == {"CRM-D"}

        # a clock of an unknown case is refused by both (the foreign key)
        async with pool.acquire() as conn:
            with pytest.raises(Exception):
                await real_store.save_clocks(conn, [clock("CRM-X", "first_contact")])
        with pytest.raises(ValueError):
            await MemorySlaStore().save_clocks(None, [clock("CRM-X", "first_contact")])
    finally:
        await pool.close()
