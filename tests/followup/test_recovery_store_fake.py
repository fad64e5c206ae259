"""The in-memory recovery store (tests/fakes/recovery_store.py) answers as
services/followup/recovery_store.py does on PostgreSQL: one sequence of calls run on both, every
answer compared. This keeps the fake honest; tests/followup/test_recovery_service.py relies on it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from services.followup import recovery_store, store
from services.followup.domain.recovery import (
    Breached, CaseFacts, Classified, CompensationDecided, Contacted, Resolved, Return, fold,
)
from tests.fakes.recovery_store import MemoryRecoveryStore
from tests.support.memory import migrated_transaction

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def facts(case_id: str, customer: str, resolved: datetime | None, *more: Any) -> CaseFacts:
    out = fold(None, Classified(case_id, customer, "billing", T0 - 10 * DAY, 1))
    for event in ([Resolved(case_id, resolved)] if resolved else []) + list(more):
        out = fold(out, event)
    return out


def normal(answer: Any) -> Any:
    """Order-free answers: cases and returns sorted by id."""
    if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], list):
        return (sorted(answer[0], key=lambda c: c.case_id), sorted(answer[1], key=lambda r: r.event_id))
    return answer


async def sequence(s: Any, conn: Any) -> list[Any]:
    out: list[Any] = []
    await s.enter_live(conn)
    a = facts("A", "C1", T0 - 5 * DAY, Contacted("A", T0 - 9 * DAY), Breached("A"),
              CompensationDecided("A", "d1", "granted", "R1", Decimal("1.852"), "BHD", T0 - 8 * DAY),
              CompensationDecided("A", "d2", "pending", "R1", Decimal("100"), "JPY", T0 - 7 * DAY))
    b = facts("B", "C2", None)
    c = facts("C", "C1", T0 - 40 * DAY)
    out.append(await s.save_cases(conn, [a, b, c]))
    out.append(await s.save_cases(conn, []))
    out.append(await s.load_cases(conn, ["A", "B", "missing"]))
    a2 = fold(a, Resolved("A", T0 - DAY))
    out.append(await s.save_cases(conn, [a2]))
    out.append(await s.load_cases(conn, ["A"]))
    returns = [Return("r1", "C1", "A", T0 - 3 * DAY), Return("r2", "C2", "B", T0 - 2 * DAY),
               Return("r3", "C1", "C", T0 - 50 * DAY)]
    out.append(await s.save_returns(conn, returns))
    out.append(await s.save_returns(conn, returns[:1]))  # a redelivery: nothing new
    out.append(normal(await s.report_facts(conn, T0 - 10 * DAY)))  # A (and C, C1's other case); r1 only
    out.append(normal(await s.report_facts(conn, T0 - 45 * DAY)))  # C1's cases again; r3 (50 days ago) is before the cutoff
    out.append(await s.counts(conn))
    await s.enter_rebuild(conn)
    await s.replace_all(conn, [b], returns[1:2])
    out.append(await s.counts(conn))
    out.append(normal(await s.report_facts(conn, T0 - 100 * DAY)))  # B is not resolved: nothing
    return out


async def test_the_fake_recovery_store_answers_as_postgresql_does(ns):
    async with migrated_transaction(ns.database_url, store) as conn:
        real = await sequence(recovery_store, conn)
    fake = await sequence(MemoryRecoveryStore(), None)
    assert real == fake
    loaded = real[2]
    assert set(loaded) == {"A", "B"} and loaded["A"].granted == {"BHD": Decimal("1.852")}
    assert loaded["A"].decisions["d2"].value == Decimal("100") and loaded["A"].breached
    assert real[5:7] == [3, 0]
    cases, returns = real[7]
    assert [x.case_id for x in cases] == ["A", "C"] and [r.event_id for r in returns] == ["r1"]
    assert real[-2] == (1, 1) and real[-1] == ([], [])
