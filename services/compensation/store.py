"""Compensation's tables: cases (how often reopened), decisions (the audit trail) and approval answers.

One compensation per case and grant round is a database constraint, not only a check in code: the
partial unique index `one_compensation_per_round` refuses a second granted or pending decision for
the same case and round, whatever races two instances run into. A round is 1 + how often the case
was reopened (domain/rounds.py), so a reopened case can get a second grant where a rule allows it,
and never a third in the same round.

Amounts are `numeric` (PostgreSQL's exact decimal, without a fixed scale since migration 3, so 185 JPY
and 1.852 BHD are stored as they are) and pass through asyncpg as `Decimal`, never as floats.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import asyncpg

from services import registry
from services.compensation.domain import CaseFacts, CaseHistory, Decision
from shared import locks
from shared.batch import Batch

SCHEMA = registry.COMPENSATION.schema

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE {schema}.cases (
            case_id    text PRIMARY KEY,
            reopens    int NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- One row per decision: what was decided, by which rule and policy version, from which inputs.
        CREATE TABLE {schema}.decisions (
            decision_id    text PRIMARY KEY,
            case_id        text NOT NULL,
            customer_id    text NOT NULL,
            source         text NOT NULL,
            causation_id   text NOT NULL,
            grant_round    int  NOT NULL,
            outcome        text NOT NULL CHECK (outcome IN ('granted', 'pending_approval', 'none')),
            status         text NOT NULL CHECK (status IN ('granted', 'pending', 'approved', 'denied', 'none')),
            rule_id        text,
            policy_version text NOT NULL,
            offers         jsonb NOT NULL,
            value          numeric(16, 2) NOT NULL CHECK (value >= 0),
            currency       text NOT NULL,
            authority      text,
            reason_code    text NOT NULL,
            reason_codes   text[] NOT NULL,
            inputs         jsonb NOT NULL,
            explanation    jsonb NOT NULL,
            decided_at     timestamptz NOT NULL,
            settled_at     timestamptz,
            approver_role  text,
            approver_id    text,
            escalations    int NOT NULL DEFAULT 0
        );
        CREATE UNIQUE INDEX one_compensation_per_round ON {schema}.decisions (case_id, grant_round)
            WHERE outcome IN ('granted', 'pending_approval');
        CREATE INDEX decisions_case ON {schema}.decisions (case_id);
        CREATE INDEX decisions_budget ON {schema}.decisions (source, currency, decided_at)
            WHERE status IN ('granted', 'approved');
        CREATE INDEX decisions_pending ON {schema}.decisions (decided_at) WHERE status = 'pending';
        -- Every answer to a pending decision, accepted or refused, and why.
        CREATE TABLE {schema}.approval_answers (
            event_id      text PRIMARY KEY,
            decision_id   text NOT NULL,
            answer        text NOT NULL,
            approver_role text NOT NULL,
            approver_id   text NOT NULL,
            accepted      boolean NOT NULL,
            reason        text NOT NULL,
            received_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX approval_answers_decision ON {schema}.approval_answers (decision_id);
        """,
    ),
    (
        2,
        """
        -- What each source spent per calendar month (UTC, by decision time): a budget check reads one
        -- row instead of summing the month's decisions, which grows with every grant.
        CREATE TABLE {schema}.budget_spent (
            source   text NOT NULL,
            currency text NOT NULL,
            month    date NOT NULL,
            spent    numeric(16, 2) NOT NULL,
            PRIMARY KEY (source, currency, month)
        );
        INSERT INTO {schema}.budget_spent (source, currency, month, spent)
        SELECT source, currency, date_trunc('month', decided_at AT TIME ZONE 'UTC')::date, sum(value)
        FROM {schema}.decisions WHERE status IN ('granted', 'approved') GROUP BY 1, 2, 3;
        """,
    ),
    (
        3,
        """
        -- Amounts in each currency's own minor units: numeric(16, 2) would round 1.852 BHD to 1.85.
        ALTER TABLE {schema}.decisions ALTER COLUMN value TYPE numeric;
        ALTER TABLE {schema}.budget_spent ALTER COLUMN spent TYPE numeric;
        -- What a decision spends of a monthly budget, in the budget line's currency (a EUR grant
        -- spends a USD budget, converted when decided); NULL in older rows: the decision's own.
        ALTER TABLE {schema}.decisions ADD COLUMN budget_currency text,
            ADD COLUMN budget_value numeric CHECK (budget_value >= 0);
        """,
    ),
]

# The ledger row a granted or approved decision adds to (`spending` is the decision's row).
_SPEND = f"""
    INSERT INTO {SCHEMA}.budget_spent AS b (source, currency, month, spent)
    SELECT source, coalesce(budget_currency, currency), date_trunc('month', decided_at AT TIME ZONE 'UTC')::date,
           coalesce(budget_value, value) FROM spending
    WHERE status IN ('granted', 'approved') AND coalesce(budget_value, value) > 0
    ON CONFLICT (source, currency, month) DO UPDATE SET spent = b.spent + EXCLUDED.spent
"""


# Decisions and reopens of one case; the spending of one budget line. Cases are locked before budgets.
CASE_LOCKS = locks.AdvisoryLocks("compensation:case")
BUDGET_LOCKS = locks.AdvisoryLocks("compensation:budget")


async def lock_case(batch: Batch, case_id: str) -> int:
    """Serialises decisions and reopens on one case; returns how often it was reopened."""
    await batch.lock(CASE_LOCKS, [case_id])
    conn = batch.conn
    select = f"SELECT reopens FROM {SCHEMA}.cases WHERE case_id = $1"
    reopens = await conn.fetchval(select, case_id)
    if reopens is None:
        await conn.execute(f"INSERT INTO {SCHEMA}.cases (case_id) VALUES ($1) ON CONFLICT DO NOTHING", case_id)
        reopens = await conn.fetchval(select, case_id)
    return reopens


async def lock_cases(batch: Batch, case_ids: Iterable[str]) -> dict[str, int]:
    """`lock_case` for a batch of events, taken in sorted order (shared.locks): two batches never
    wait on each other in a circle. Returns each case's reopens."""
    ordered = locks.ordered(case_ids)
    await batch.lock(CASE_LOCKS, ordered)
    conn = batch.conn
    await conn.execute(f"INSERT INTO {SCHEMA}.cases (case_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", ordered)
    rows = await conn.fetch(f"SELECT case_id, reopens FROM {SCHEMA}.cases WHERE case_id = ANY($1::text[])", ordered)
    return {r["case_id"]: r["reopens"] for r in rows}


async def record_reopen(conn: asyncpg.Connection, case_id: str) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.cases AS c (case_id, reopens) VALUES ($1, 1) "
        "ON CONFLICT (case_id) DO UPDATE SET reopens = c.reopens + 1, updated_at = now()",
        case_id,
    )


async def lock_budget(batch: Batch, source: str, currency: str) -> None:
    """Two cases of one team decided at once must not both spend the budget's last euros.
    `currency` is the budget line's (domain/budgets.py), not the grant's: a EUR and a USD grant
    that spend one USD line take the same lock."""
    await lock_budgets(batch, [(source, currency)])


async def lock_budgets(batch: Batch, budgets: Iterable[tuple[str, str]]) -> None:
    """Budget locks (source, budget line currency) for a batch, in sorted order (after the case locks)."""
    await batch.lock(BUDGET_LOCKS, [f"{source}:{currency}" for source, currency in budgets])


async def case_history(conn: asyncpg.Connection, case_id: str, reopens: int, currency: str, source: str,
                       month_start: datetime, budget_currency: str | None = None) -> CaseHistory:
    """The raw facts of a case reopened `reopens` times, for a decision in `currency`: the round of each
    compensation it got, what it was granted (in `currency`) and what `source` spent this month of its
    budget line in `budget_currency` (default: `currency`). domain/rounds.py reads them."""
    row = await conn.fetchrow(
        f"""
        SELECT coalesce(array_agg(grant_round), '{{}}') AS rounds,
               coalesce(sum(value) FILTER (WHERE currency = $2 AND status IN ('granted', 'pending', 'approved')), 0)
                   AS granted_total
               , (SELECT spent FROM {SCHEMA}.budget_spent WHERE source = $3 AND currency = $5 AND month = $4)
                   AS month_spent
        FROM {SCHEMA}.decisions WHERE case_id = $1 AND outcome IN ('granted', 'pending_approval')
        """,
        case_id, currency, source, _month(month_start), budget_currency or currency,
    )
    return CaseHistory(
        reopens=reopens,
        compensated_rounds=tuple(row["rounds"]),
        granted_total=row["granted_total"],
        month_spent=row["month_spent"] or Decimal(0),
    )


async def month_spent(conn: asyncpg.Connection, source: str, currency: str, month_start: datetime) -> Decimal:
    """What `source` spent of its budget line in `currency` in the month of `month_start` (UTC)."""
    spent = await conn.fetchval(
        f"SELECT spent FROM {SCHEMA}.budget_spent WHERE source = $1 AND currency = $2 AND month = $3",
        source, currency, _month(month_start),
    )
    return spent if spent is not None else Decimal(0)


def _month(month_start: datetime) -> date:
    return month_start.astimezone(timezone.utc).date().replace(day=1)


async def insert_decision(conn: asyncpg.Connection, *, decision_id: str, decision: Decision, case_id: str,
                          customer_id: str, source: str, causation_id: str, grant_round: int,
                          inputs: dict[str, Any], decided_at: datetime) -> bool:
    """False when the one-compensation-per-round constraint refused it (another decision won the race)."""
    status = {"granted": "granted", "pending_approval": "pending", "none": "none"}[decision.outcome]
    # the budget line it spends once granted or approved; without one, its own currency and value
    budget_currency, budget_value = ((decision.budget.currency, decision.budget.amount) if decision.budget
                                     else (decision.currency, decision.value))
    # DO NOTHING rather than catching the violation: no savepoint (two round trips) per decision.
    inserted = await conn.fetchval(
        f"""
        WITH spending AS (
            INSERT INTO {SCHEMA}.decisions (decision_id, case_id, customer_id, source, causation_id,
                grant_round, outcome, status, rule_id, policy_version, offers, value, currency, authority,
                reason_code, reason_codes, inputs, explanation, decided_at, budget_currency, budget_value)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14, $15, $16, $17::jsonb,
                    $18::jsonb, $19, $20, $21)
            ON CONFLICT DO NOTHING
            RETURNING source, currency, decided_at, value, status, budget_currency, budget_value
        ), spend AS ({_SPEND})
        SELECT count(*) FROM spending
        """,
        decision_id, case_id, customer_id, source, causation_id, grant_round, decision.outcome, status,
        decision.rule_id, decision.policy_version, json.dumps(decision.offers), decision.value,
        decision.currency, decision.authority, decision.reason_code, list(decision.reason_codes),
        json.dumps(inputs, default=_json_default), json.dumps(list(decision.explanation)), decided_at,
        budget_currency, budget_value,
    )
    return inserted == 1


def facts_as_inputs(facts: CaseFacts) -> dict[str, Any]:
    return asdict(facts)


def _json_default(value: Any) -> Any:
    # amounts in the audit's JSON are numbers, as in the events; anything else as text
    return float(value) if isinstance(value, Decimal) else str(value)


def _decision_row(row: asyncpg.Record | None) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)  # `value` stays a Decimal
    out["offers"] = json.loads(out["offers"]) if isinstance(out["offers"], str) else out["offers"]
    out["reason_codes"] = list(out["reason_codes"])
    return out


async def decision_for_update(conn: asyncpg.Connection, decision_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT decision_id, case_id, customer_id, causation_id, status, offers, value, currency, rule_id, "
        f"policy_version, authority, reason_code, reason_codes, decided_at, escalations "
        f"FROM {SCHEMA}.decisions WHERE decision_id = $1 FOR UPDATE",
        decision_id,
    )
    return _decision_row(row)


async def settle(conn: asyncpg.Connection, decision_id: str, approved: bool, approver_role: str, approver_id: str,
                 settled_at: datetime) -> None:
    await conn.execute(
        f"WITH spending AS (UPDATE {SCHEMA}.decisions SET status = $2, approver_role = $3, approver_id = $4, "
        "settled_at = $5 WHERE decision_id = $1 "
        "RETURNING source, currency, decided_at, value, status, budget_currency, budget_value) " + _SPEND,
        decision_id, "approved" if approved else "denied", approver_role, approver_id, settled_at,
    )


async def record_answer(conn: asyncpg.Connection, *, event_id: str, decision_id: str, answer: str,
                        approver_role: str, approver_id: str, accepted: bool, reason: str) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.approval_answers (event_id, decision_id, answer, approver_role, approver_id, accepted, "
        "reason) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
        event_id, decision_id, answer, approver_role, approver_id, accepted, reason,
    )


async def escalate(conn: asyncpg.Connection, decision_id: str, to_role: str) -> int:
    return await conn.fetchval(
        f"UPDATE {SCHEMA}.decisions SET authority = $2, escalations = escalations + 1 "
        "WHERE decision_id = $1 RETURNING escalations",
        decision_id, to_role,
    )


# ---------- for gauges ----------
async def pending_count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.decisions WHERE status = 'pending'")


async def spent_by_source(conn: asyncpg.Connection, month_start: datetime) -> dict[tuple[str, str], Decimal]:
    """(source, budget line currency) → spent in the month of `month_start`."""
    rows = await conn.fetch(
        f"SELECT source, currency, spent FROM {SCHEMA}.budget_spent WHERE month = $1", _month(month_start),
    )
    return {(r["source"], r["currency"]): r["spent"] for r in rows}
