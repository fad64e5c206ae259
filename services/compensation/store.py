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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
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

# The ledger rows granted or approved decisions add to (`spending` holds the decisions' rows; several
# spending one ledger row are summed first: an upsert may touch a row only once per statement).
_SPEND = f"""
    INSERT INTO {SCHEMA}.budget_spent AS b (source, currency, month, spent)
    SELECT source, coalesce(budget_currency, currency), date_trunc('month', decided_at AT TIME ZONE 'UTC')::date,
           sum(coalesce(budget_value, value)) FROM spending
    WHERE status IN ('granted', 'approved') AND coalesce(budget_value, value) > 0
    GROUP BY 1, 2, 3
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
    """One more reopen of the case (a case first seen here starts at 1)."""
    await record_reopens(conn, {case_id: 1})


async def record_reopens(conn: asyncpg.Connection, reopens: Mapping[str, int]) -> None:
    """Adds `reopens[case_id]` reopens to each case, in one statement (a case first seen here
    starts at its count)."""
    if not reopens:
        return
    await conn.execute(
        f"INSERT INTO {SCHEMA}.cases AS c (case_id, reopens) SELECT * FROM unnest($1::text[], $2::int[]) "
        "ON CONFLICT (case_id) DO UPDATE SET reopens = c.reopens + EXCLUDED.reopens, updated_at = now()",
        list(reopens), list(reopens.values()),
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


@dataclass(frozen=True)
class Compensated:
    """One granted or pending_approval decision of a case, as `case_history` reads it: its grant
    round, its value in its currency, and its status since (granted, pending, approved or denied)."""

    grant_round: int
    currency: str
    value: Decimal
    status: str


async def compensations_of_cases(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, list[Compensated]]:
    """The granted and pending_approval decisions of each case, in one statement: {case_id: [...]}
    (a case without any is missing). With `history_of`, what `case_history` reads for a batch's
    cases at once; call it holding the cases' locks."""
    rows = await conn.fetch(
        f"SELECT case_id, grant_round, currency, value, status FROM {SCHEMA}.decisions"
        " WHERE case_id = ANY($1::text[]) AND outcome IN ('granted', 'pending_approval') ORDER BY decided_at",
        list(set(case_ids)),
    )
    out: dict[str, list[Compensated]] = {}
    for r in rows:
        out.setdefault(r["case_id"], []).append(Compensated(r["grant_round"], r["currency"], r["value"], r["status"]))
    return out


def history_of(reopens: int, compensated: Iterable[Compensated], currency: str, month_spent: Decimal) -> CaseHistory:
    """`case_history`'s answer from a case's `compensations_of_cases` rows: their rounds, the total
    of those in `currency` still granted, pending or approved, and `month_spent` as given."""
    compensated = list(compensated)
    return CaseHistory(
        reopens=reopens,
        compensated_rounds=tuple(c.grant_round for c in compensated),
        granted_total=sum((c.value for c in compensated
                           if c.currency == currency and c.status in ("granted", "pending", "approved")), Decimal(0)),
        month_spent=month_spent,
    )


def round_taken(compensated: Iterable[Compensated], grant_round: int) -> bool:
    """Whether `one_compensation_per_round` would refuse another granted or pending_approval
    decision of the case in `grant_round` (it has one already, whatever its status since)."""
    return any(c.grant_round == grant_round for c in compensated)


async def months_spent(conn: asyncpg.Connection, budgets: Iterable[tuple[str, str]],
                       month_start: datetime) -> dict[tuple[str, str], Decimal]:
    """What each (source, budget line currency) spent in the month of `month_start` (UTC), in one
    statement; 0 for a line without spending."""
    wanted = sorted(set(budgets))
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT source, currency, spent FROM {SCHEMA}.budget_spent"
        " WHERE month = $3 AND (source, currency) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [b[0] for b in wanted], [b[1] for b in wanted], _month(month_start),
    )
    found = {(r["source"], r["currency"]): r["spent"] for r in rows}
    return {budget: found.get(budget, Decimal(0)) for budget in wanted}


async def month_spent(conn: asyncpg.Connection, source: str, currency: str, month_start: datetime) -> Decimal:
    """What `source` spent of its budget line in `currency` in the month of `month_start` (UTC)."""
    spent = await conn.fetchval(
        f"SELECT spent FROM {SCHEMA}.budget_spent WHERE source = $1 AND currency = $2 AND month = $3",
        source, currency, _month(month_start),
    )
    return spent if spent is not None else Decimal(0)


def _month(month_start: datetime) -> date:
    return month_start.astimezone(timezone.utc).date().replace(day=1)


@dataclass(frozen=True)
class NewDecision:
    """A decision to record (the arguments of `insert_decision`)."""

    decision_id: str
    decision: Decision
    case_id: str
    customer_id: str
    source: str
    causation_id: str
    grant_round: int
    inputs: dict[str, Any]
    decided_at: datetime


async def insert_decision(conn: asyncpg.Connection, *, decision_id: str, decision: Decision, case_id: str,
                          customer_id: str, source: str, causation_id: str, grant_round: int,
                          inputs: dict[str, Any], decided_at: datetime) -> bool:
    """False when the one-compensation-per-round constraint refused it (another decision won the race)."""
    new = NewDecision(decision_id, decision, case_id, customer_id, source, causation_id, grant_round, inputs, decided_at)
    return decision_id in await insert_decisions(conn, [new])


async def insert_decisions(conn: asyncpg.Connection, decisions: Sequence[NewDecision]) -> set[str]:
    """Records decisions in one statement, and what the granted ones spend of their budget lines;
    returns the ids inserted. One is left out (ON CONFLICT DO NOTHING, no savepoint per decision)
    when its id exists or the one-compensation-per-round constraint refuses it."""
    if not decisions:
        return set()
    status = {"granted": "granted", "pending_approval": "pending", "none": "none"}
    # the budget line each spends once granted or approved; without one, its own currency and value
    budgets = [(d.decision.budget.currency, d.decision.budget.amount) if d.decision.budget
               else (d.decision.currency, d.decision.value) for d in decisions]
    columns: list[list[Any]] = [
        [n.decision_id for n in decisions], [n.case_id for n in decisions], [n.customer_id for n in decisions],
        [n.source for n in decisions], [n.causation_id for n in decisions], [n.grant_round for n in decisions],
        [n.decision.outcome for n in decisions], [status[n.decision.outcome] for n in decisions],
        [n.decision.rule_id for n in decisions], [n.decision.policy_version for n in decisions],
        [json.dumps(n.decision.offers) for n in decisions], [n.decision.value for n in decisions],
        [n.decision.currency for n in decisions], [n.decision.authority for n in decisions],
        [n.decision.reason_code for n in decisions],
        # text[] per row: unnest would flatten a 2-D array, so each row's codes travel as one JSON array
        [json.dumps(list(n.decision.reason_codes)) for n in decisions],
        [json.dumps(n.inputs, default=_json_default) for n in decisions],
        [json.dumps(list(n.decision.explanation)) for n in decisions], [n.decided_at for n in decisions],
        [b[0] for b in budgets], [b[1] for b in budgets],
    ]
    rows = await conn.fetch(
        f"""
        WITH spending AS (
            INSERT INTO {SCHEMA}.decisions (decision_id, case_id, customer_id, source, causation_id,
                grant_round, outcome, status, rule_id, policy_version, offers, value, currency, authority,
                reason_code, reason_codes, inputs, explanation, decided_at, budget_currency, budget_value)
            SELECT d, c, cu, s, ca, g, o, st, r, pv, of, v, cur, a, rc,
                   ARRAY(SELECT jsonb_array_elements_text(rcs)), i, e, da, bc, bv
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[],
                        $8::text[], $9::text[], $10::text[], $11::jsonb[], $12::numeric[], $13::text[],
                        $14::text[], $15::text[], $16::jsonb[], $17::jsonb[], $18::jsonb[], $19::timestamptz[],
                        $20::text[], $21::numeric[])
                AS u(d, c, cu, s, ca, g, o, st, r, pv, of, v, cur, a, rc, rcs, i, e, da, bc, bv)
            ON CONFLICT DO NOTHING
            RETURNING decision_id, source, currency, decided_at, value, status, budget_currency, budget_value
        ), spend AS ({_SPEND})
        SELECT decision_id FROM spending
        """,
        *columns,
    )
    return {r["decision_id"] for r in rows}


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


_DECISION_COLUMNS = ("decision_id, case_id, customer_id, causation_id, status, offers, value, currency, rule_id, "
                     "policy_version, authority, reason_code, reason_codes, decided_at, escalations")


async def decision_for_update(conn: asyncpg.Connection, decision_id: str) -> dict[str, Any] | None:
    """The decision's row, locked for this transaction (offers decoded, value a Decimal); None when unknown."""
    row = await conn.fetchrow(
        f"SELECT {_DECISION_COLUMNS} FROM {SCHEMA}.decisions WHERE decision_id = $1 FOR UPDATE", decision_id,
    )
    return _decision_row(row)


async def decisions_for_update(conn: asyncpg.Connection, decision_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`decision_for_update` for several decisions in one statement, locked in id order: {decision_id:
    row} of those that exist."""
    rows = await conn.fetch(
        f"SELECT {_DECISION_COLUMNS} FROM {SCHEMA}.decisions WHERE decision_id = ANY($1::text[])"
        " ORDER BY decision_id FOR UPDATE",
        sorted(set(decision_ids)),
    )
    return {r["decision_id"]: _decision_row(r) for r in rows}  # type: ignore[misc]


async def settle(conn: asyncpg.Connection, decision_id: str, approved: bool, approver_role: str, approver_id: str,
                 settled_at: datetime) -> None:
    """Approves or denies one decision (`settle_many` for one)."""
    await settle_many(conn, [Settlement(decision_id, approved, approver_role, approver_id, settled_at)])


@dataclass(frozen=True)
class Settlement:
    """An approver's accepted answer to a pending decision."""

    decision_id: str
    approved: bool
    approver_role: str
    approver_id: str
    settled_at: datetime


async def settle_many(conn: asyncpg.Connection, settlements: Sequence[Settlement]) -> None:
    """Approves or denies decisions, whatever their status (the caller checked it), in one statement;
    an approval spends its budget line in the month the decision was taken. Unknown ids are ignored;
    each decision is settled once per call (the first of its settlements)."""
    first: dict[str, Settlement] = {}
    for one in settlements:
        first.setdefault(one.decision_id, one)
    if not first:
        return
    chosen = list(first.values())
    await conn.execute(
        f"WITH spending AS (UPDATE {SCHEMA}.decisions AS d SET status = u.status, approver_role = u.role, "
        "approver_id = u.approver, settled_at = u.at "
        "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS u(id, status, role, approver, at) "
        "WHERE d.decision_id = u.id "
        "RETURNING d.source, d.currency, d.decided_at, d.value, d.status, d.budget_currency, d.budget_value) " + _SPEND,
        [c.decision_id for c in chosen], ["approved" if c.approved else "denied" for c in chosen],
        [c.approver_role for c in chosen], [c.approver_id for c in chosen], [c.settled_at for c in chosen],
    )


async def record_answer(conn: asyncpg.Connection, *, event_id: str, decision_id: str, answer: str,
                        approver_role: str, approver_id: str, accepted: bool, reason: str) -> None:
    """Keeps one answer, accepted or refused (`record_answers` for one)."""
    await record_answers(conn, [Answer(event_id, decision_id, answer, approver_role, approver_id, accepted, reason)])


@dataclass(frozen=True)
class Answer:
    """One approval answer as `approval_answers` keeps it."""

    event_id: str
    decision_id: str
    answer: str
    approver_role: str
    approver_id: str
    accepted: bool
    reason: str


async def record_answers(conn: asyncpg.Connection, answers: Sequence[Answer]) -> None:
    """Keeps answers in one statement; an event id recorded already (or earlier in `answers`) keeps its first row."""
    if not answers:
        return
    await conn.execute(
        f"INSERT INTO {SCHEMA}.approval_answers (event_id, decision_id, answer, approver_role, approver_id, accepted, "
        "reason) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[], $7::text[])"
        " ON CONFLICT (event_id) DO NOTHING",
        [a.event_id for a in answers], [a.decision_id for a in answers], [a.answer for a in answers],
        [a.approver_role for a in answers], [a.approver_id for a in answers], [a.accepted for a in answers],
        [a.reason for a in answers],
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


# ---------- for `helpdesk policy simulate` (read only) ----------
async def decisions_for_simulation(conn: asyncpg.Connection, since: datetime,
                                   source: str | None = None) -> list[dict[str, Any]]:
    """Every decision made at or after `since` (from `source` only, when given), oldest first, with
    what a replay needs: ids, source, `decided_at`, `inputs` (decoded: the complaint and the case
    facts it was decided from) and what was decided (outcome, rule, offers, value, currency,
    authority). One SELECT; it writes nothing."""
    rows = await conn.fetch(
        f"""
        SELECT decision_id, case_id, source, decided_at, inputs, outcome, rule_id, offers, value, currency, authority
        FROM {SCHEMA}.decisions
        WHERE decided_at >= $1 AND ($2::text IS NULL OR source = $2)
        ORDER BY decided_at, decision_id
        """,
        since, source,
    )
    out = []
    for r in rows:
        row = dict(r)
        for column in ("inputs", "offers"):
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
        out.append(row)
    return out
