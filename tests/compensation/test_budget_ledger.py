"""The monthly budget ledger on real PostgreSQL: grants and approvals count in the month they were
decided, pending, denied and empty decisions do not, and the ledger agrees with the decisions."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from services.compensation import store
from services.compensation.domain import Decision
from shared import db

pytestmark = pytest.mark.integration

NOV = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEC = datetime(2026, 12, 1, tzinfo=timezone.utc)


def decision(outcome: str, value: float, currency: str = "EUR") -> Decision:
    return Decision(outcome=outcome, rule_id="r", offers=[], value=value, currency=currency, authority=None,
                    reason_code="x", reason_codes=("x",), explanation=(), policy_version="v")


@pytest.fixture
async def pool(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool
    await pool.close()


async def record(conn, n: int, outcome: str, value: float, when: datetime, source: str = "web",
                 currency: str = "EUR") -> str:
    decision_id = f"d{n}"
    assert await store.insert_decision(conn, decision_id=decision_id, decision=decision(outcome, value, currency),
                                       case_id=f"case-{n}", customer_id="c", source=source, causation_id=f"e{n}",
                                       grant_round=1, inputs={}, decided_at=when)
    return decision_id


async def test_grants_and_approvals_count_in_their_month_and_nothing_else_does(pool):
    late_november = datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc)
    async with pool.acquire() as conn, conn.transaction():
        await record(conn, 1, "granted", 40.0, late_november)
        await record(conn, 2, "granted", 15.5, DEC)
        approved = await record(conn, 3, "pending_approval", 100.0, late_november)
        denied = await record(conn, 4, "pending_approval", 70.0, late_november)
        await record(conn, 5, "pending_approval", 30.0, late_november)  # still waiting
        await record(conn, 6, "none", 0.0, late_november)
        await record(conn, 7, "granted", 9.0, late_november, source="phone")
        await record(conn, 8, "granted", 5.0, late_november, currency="USD")
        await store.settle(conn, approved, True, "supervisor", "S-1", DEC)  # approved in December, decided in November
        await store.settle(conn, denied, False, "manager", "M-1", DEC)

    async with pool.acquire() as conn:
        assert await store.month_spent(conn, "web", "EUR", NOV) == 140.0
        assert await store.month_spent(conn, "web", "EUR", DEC) == 15.5
        assert await store.month_spent(conn, "web", "USD", NOV) == 5.0
        assert await store.spent_by_source(conn, NOV) == {("web", "EUR"): 140.0, ("phone", "EUR"): 9.0,
                                                          ("web", "USD"): 5.0}
        ledger = await conn.fetch(f"SELECT source, currency, month, spent FROM {store.SCHEMA}.budget_spent ORDER BY 1, 2, 3")
        summed = await conn.fetch(
            f"SELECT source, currency, date_trunc('month', decided_at AT TIME ZONE 'UTC')::date AS month, sum(value) AS spent"
            f" FROM {store.SCHEMA}.decisions WHERE status IN ('granted', 'approved') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
        assert [tuple(r) for r in ledger] == [tuple(r) for r in summed]


async def test_a_refused_duplicate_grant_spends_nothing(pool):
    async with pool.acquire() as conn, conn.transaction():
        await record(conn, 1, "granted", 40.0, NOV)
        again = await store.insert_decision(conn, decision_id="d1b", decision=decision("granted", 40.0), case_id="case-1",
                                            customer_id="c", source="web", causation_id="e1b", grant_round=1,
                                            inputs={}, decided_at=NOV)
        assert again is False, "one compensation per case and round"
    async with pool.acquire() as conn:
        assert await store.month_spent(conn, "web", "EUR", NOV) == 40.0
