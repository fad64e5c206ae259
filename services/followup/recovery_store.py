"""SQL of the recovery read model: `followup.recovery_cases` (one row of facts per case) and
`followup.recovery_returns` (one row per customer.returned), created by migration 3 of
services/followup/store.py. Set-based: a batch's cases are read in one statement and written in one.

Concurrency with `helpdesk report rebuild`: the live consumer's transactions start with
`enter_live` (ROW EXCLUSIVE on recovery_cases), the rebuild's with `enter_rebuild` (EXCLUSIVE,
which conflicts with it): a live batch either commits before the rebuild reads the topics, or starts
after the rebuild committed and folds its events into the rebuilt rows. Facts are idempotent, so
events both saw are harmless.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.followup.domain.recovery import CaseFacts, Decision, Return
from services.followup.store import SCHEMA
from shared.locks import AdvisoryLocks

RECOVERY_LOCKS = AdvisoryLocks("followup:recovery")  # by case_id: one writer of a case's facts at a time

_COLUMNS = ("case_id, customer_id, category, received_at, repeat_contacts, first_contact_at, breached, "
            "resolved_at, reopened_at, decisions")


async def enter_live(conn: asyncpg.Connection) -> None:
    """First statement of a live batch: waits while a rebuild holds the tables (module doc)."""
    await conn.execute(f"LOCK TABLE {SCHEMA}.recovery_cases IN ROW EXCLUSIVE MODE")


async def enter_rebuild(conn: asyncpg.Connection) -> None:
    """First statement of a rebuild: waits for live batches in flight, then keeps new ones waiting
    until the rebuild's transaction ends (reads stay possible)."""
    await conn.execute(f"LOCK TABLE {SCHEMA}.recovery_cases, {SCHEMA}.recovery_returns IN EXCLUSIVE MODE")


def _decisions_json(decisions: dict[str, Decision] | Any) -> str:
    return json.dumps({decision_id: {"status": d.status, "rule_id": d.rule_id, "value": str(d.value),
                                     "currency": d.currency, "at": d.at.isoformat()}
                       for decision_id, d in sorted(decisions.items())}, sort_keys=True)


def _facts(row: Any) -> CaseFacts:
    decisions = {decision_id: Decision(d["status"], d["rule_id"], Decimal(d["value"]), d["currency"],
                                       datetime.fromisoformat(d["at"]))
                 for decision_id, d in json.loads(row["decisions"]).items()}
    return CaseFacts(
        case_id=row["case_id"], customer_id=row["customer_id"], category=row["category"],
        received_at=row["received_at"], repeat_contacts=row["repeat_contacts"],
        first_contact_at=row["first_contact_at"], breached=row["breached"], resolved_at=row["resolved_at"],
        reopened_at=row["reopened_at"], decisions=decisions,
    )


_SELECT = (f"SELECT case_id, customer_id, category, received_at, repeat_contacts, first_contact_at, breached, "
           f"resolved_at, reopened_at, decisions::text AS decisions FROM {SCHEMA}.recovery_cases")


async def load_cases(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, CaseFacts]:
    """The stored facts of `case_ids` (those known), by case id; one statement."""
    rows = await conn.fetch(f"{_SELECT} WHERE case_id = ANY($1::text[])", sorted(set(case_ids)))
    return {row["case_id"]: _facts(row) for row in rows}


async def save_cases(conn: asyncpg.Connection, cases: Sequence[CaseFacts]) -> int:
    """Writes the facts of `cases` (each replaces its row: facts are folded before, never summed
    here); one statement. Returns how many were written."""
    if not cases:
        return 0
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.recovery_cases AS r ({_COLUMNS})
        SELECT c, cu, ca, ra, rc, fc, b, rs, ro, d::jsonb
        FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::timestamptz[],
                    $7::boolean[], $8::timestamptz[], $9::timestamptz[], $10::text[])
             AS t(c, cu, ca, ra, rc, fc, b, rs, ro, d)
        ON CONFLICT (case_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, category = EXCLUDED.category, received_at = EXCLUDED.received_at,
            repeat_contacts = EXCLUDED.repeat_contacts, first_contact_at = EXCLUDED.first_contact_at,
            breached = EXCLUDED.breached, resolved_at = EXCLUDED.resolved_at, reopened_at = EXCLUDED.reopened_at,
            decisions = EXCLUDED.decisions, updated_at = now()
        """,
        [c.case_id for c in cases], [c.customer_id for c in cases], [c.category for c in cases],
        [c.received_at for c in cases], [c.repeat_contacts for c in cases], [c.first_contact_at for c in cases],
        [c.breached for c in cases], [c.resolved_at for c in cases], [c.reopened_at for c in cases],
        [_decisions_json(c.decisions) for c in cases],
    )
    return len(cases)


async def save_returns(conn: asyncpg.Connection, returns: Sequence[Return]) -> int:
    """Records customer returns (a return already recorded, same event id, is left as it is); one
    statement. Returns how many were new."""
    if not returns:
        return 0
    rows = await conn.fetch(
        f"""
        INSERT INTO {SCHEMA}.recovery_returns (event_id, customer_id, case_id, returned_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
        ON CONFLICT (event_id) DO NOTHING RETURNING event_id
        """,
        [r.event_id for r in returns], [r.customer_id for r in returns], [r.case_id for r in returns],
        [r.at for r in returns],
    )
    return len(rows)


async def replace_all(conn: asyncpg.Connection, cases: Sequence[CaseFacts], returns: Sequence[Return]) -> None:
    """The rebuild's write: every row of both tables replaced by `cases` and `returns`. Call it in
    the transaction that began with `enter_rebuild`."""
    await conn.execute(f"DELETE FROM {SCHEMA}.recovery_cases")
    await conn.execute(f"DELETE FROM {SCHEMA}.recovery_returns")
    await save_cases(conn, cases)
    await save_returns(conn, returns)


async def report_facts(conn: asyncpg.Connection, resolved_since: datetime) -> tuple[list[CaseFacts], list[Return]]:
    """What `recovery_report` needs for the cases resolved at or after `resolved_since` (zone-aware):
    those cases and every other case of their customers (for repeat complaints), and those
    customers' returns after `resolved_since`. Two statements."""
    rows = await conn.fetch(
        f"""{_SELECT} WHERE customer_id IN (
                SELECT customer_id FROM {SCHEMA}.recovery_cases WHERE resolved_at >= $1 AND customer_id IS NOT NULL)
        """,
        resolved_since,
    )
    cases = [_facts(row) for row in rows]
    customers = sorted({c.customer_id for c in cases if c.customer_id})
    returned = await conn.fetch(
        f"SELECT event_id, customer_id, case_id, returned_at FROM {SCHEMA}.recovery_returns "
        "WHERE customer_id = ANY($1::text[]) AND returned_at > $2",
        customers, resolved_since,
    )
    returns = [Return(r["event_id"], r["customer_id"], r["case_id"], r["returned_at"]) for r in returned]
    return cases, returns


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """(cases, returns) stored: what a rebuild reports having written."""
    row = await conn.fetchrow(f"SELECT (SELECT count(*) FROM {SCHEMA}.recovery_cases) AS cases, "
                              f"(SELECT count(*) FROM {SCHEMA}.recovery_returns) AS returns")
    return row["cases"], row["returns"]
