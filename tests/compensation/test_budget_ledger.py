"""The monthly budget ledger on real PostgreSQL: grants and approvals count in the month they were
decided, pending, denied and empty decisions do not, and the ledger agrees with the decisions."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.compensation import store
from services.compensation.domain import BudgetCharge, Decision
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


async def test_amounts_keep_their_currency_decimals_and_a_charge_goes_to_its_budget_line(pool):
    # Migration 3: numeric without a fixed scale (numeric(16, 2) stored 1.852 BHD as 1.85), and the
    # ledger adds what a decision spends of its budget line, in the line's currency.
    dinar = replace(decision("granted", 0), value=Decimal("1.852"), currency="BHD")  # 15% × 12.345 BHD
    euro = replace(decision("granted", 0), value=Decimal("22.36"), currency="EUR",
                   budget=BudgetCharge("USD", Decimal("24.30")))  # 22.36 EUR / 0.92 = 24.304… → 24.30 USD
    async with pool.acquire() as conn, conn.transaction():
        for n, made in enumerate((dinar, euro), 1):
            assert await store.insert_decision(conn, decision_id=f"d{n}", decision=made, case_id=f"case-{n}",
                                               customer_id="c", source="web", causation_id=f"e{n}", grant_round=1,
                                               inputs={}, decided_at=NOV)
    async with pool.acquire() as conn:
        stored = await conn.fetchval(f"SELECT value FROM {store.SCHEMA}.decisions WHERE decision_id = 'd1'")
        assert str(stored) == "1.852"
        assert await store.month_spent(conn, "web", "BHD", NOV) == Decimal("1.852")
        assert await store.month_spent(conn, "web", "USD", NOV) == Decimal("24.30")  # the EUR grant, in USD
        assert await store.month_spent(conn, "web", "EUR", NOV) == 0


async def test_a_decision_pending_across_the_upgrade_spends_its_own_currency_when_approved(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS[:2])  # the schema before issue 12
        async with pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {store.SCHEMA}.decisions (decision_id, case_id, customer_id, source, causation_id,"
                " grant_round, outcome, status, policy_version, offers, value, currency, reason_code, reason_codes,"
                " inputs, explanation, decided_at) VALUES ('old', 'case-old', 'c', 'web', 'e', 1, 'pending_approval',"
                " 'pending', 'v', '[]', 12.50, 'EUR', 'over_agent_limit', '{}', '{}', '[]', $1)", NOV)
        assert await db.migrate(pool, store.SCHEMA, store.MIGRATIONS) == 1  # migration 3 only
        async with pool.acquire() as conn, conn.transaction():
            await store.settle(conn, "old", True, "supervisor", "S-1", DEC)
        async with pool.acquire() as conn:
            assert await store.month_spent(conn, "web", "EUR", NOV) == Decimal("12.50")  # no budget line recorded
    finally:
        await pool.close()
