"""Followup's tables: what we know of each case, every follow-up planned, activity that came early,
and when customers answered a survey.

No free text is stored: of a resolution only whether it named an improvement.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services import registry
from services.followup.domain import (
    CategoryCase, Contact, CustomerCase, CustomerFacts, PendingFollowup, PlannedFollowup, SkippedFollowup,
)
from shared.events import ComplaintClassified, SurveyAnswered
from shared.locks import AdvisoryLocks

SCHEMA = registry.FOLLOWUP.schema

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE {schema}.cases (
            case_id      text PRIMARY KEY,
            customer_id  text NOT NULL,
            category     text NOT NULL,
            temperament  text NOT NULL,
            loyalty      text NOT NULL,
            timezone     text NOT NULL DEFAULT 'UTC',
            received_at  timestamptz NOT NULL,
            status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
            resolved_at  timestamptz,
            updated_at   timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX cases_customer ON {schema}.cases (customer_id);
        CREATE INDEX cases_category_received ON {schema}.cases (category, received_at);

        -- status: scheduled (timer armed) → due (sent to the CRM) | cancelled | skipped (never scheduled).
        CREATE TABLE {schema}.followups (
            followup_id  text PRIMARY KEY,
            case_id      text NOT NULL,
            customer_id  text NOT NULL,
            kind         text NOT NULL,
            channel      text NOT NULL,
            due_at       timestamptz NOT NULL,
            status       text NOT NULL CHECK (status IN ('scheduled', 'due', 'cancelled', 'skipped')),
            reason       text NOT NULL DEFAULT '',
            causation_id text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            closed_at    timestamptz
        );
        CREATE INDEX followups_customer ON {schema}.followups (customer_id) WHERE status IN ('scheduled', 'due');
        CREATE INDEX followups_case ON {schema}.followups (case_id);
        CREATE INDEX followups_retention ON {schema}.followups (customer_id)
            WHERE kind = 'retention_checkin' AND status = 'scheduled';

        -- Resolutions and reopenings that arrived before the case's classification.
        CREATE TABLE {schema}.pending_activity (
            event_id     text PRIMARY KEY,
            case_id      text NOT NULL,
            type         text NOT NULL,
            occurred_at  timestamptz NOT NULL,
            improvement  boolean NOT NULL DEFAULT false
        );
        CREATE INDEX pending_activity_case ON {schema}.pending_activity (case_id, occurred_at);
        """,
    ),
    (
        2,
        """
        -- survey.answered: when a customer answered a survey (the cooldown_after_response rule reads it).
        CREATE TABLE {schema}.survey_responses (
            event_id     text PRIMARY KEY,
            customer_id  text NOT NULL,
            case_id      text NOT NULL,
            followup_id  text,
            answered_at  timestamptz NOT NULL,
            score        double precision
        );
        CREATE INDEX survey_responses_customer ON {schema}.survey_responses (customer_id, answered_at);
        """,
    ),
    (
        3,
        """
        -- The recovery read model (services/followup/recovery_store.py): each case's facts as the
        -- output topics tell them, and every customer.returned. Rebuilt from the topics by
        -- `helpdesk report rebuild`; nothing else reads or writes these tables.
        CREATE TABLE {schema}.recovery_cases (
            case_id           text PRIMARY KEY,
            customer_id       text,
            category          text,
            received_at       timestamptz,
            repeat_contacts   integer NOT NULL DEFAULT 0,
            first_contact_at  timestamptz,
            breached          boolean NOT NULL DEFAULT false,
            resolved_at       timestamptz,
            reopened_at       timestamptz,
            decisions         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
            updated_at        timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX recovery_cases_resolved ON {schema}.recovery_cases (resolved_at);
        CREATE INDEX recovery_cases_customer ON {schema}.recovery_cases (customer_id);
        CREATE TABLE {schema}.recovery_returns (
            event_id     text PRIMARY KEY,
            customer_id  text NOT NULL,
            case_id      text NOT NULL,
            returned_at  timestamptz NOT NULL
        );
        CREATE INDEX recovery_returns_customer ON {schema}.recovery_returns (customer_id, returned_at);
        """,
    ),
]

_FOLLOWUP_COLUMNS = "followup_id, kind, case_id, customer_id, due_at, channel"


# ---------- cases ----------
async def upsert_case(conn: asyncpg.Connection, event: ComplaintClassified) -> asyncpg.Record | None:
    """Records a classification; returns the case as it was before (None for a new case)."""
    before = await case_for_update(conn, event.case_id)
    received_at = event.received_at or event.occurred_at
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.cases AS c (case_id, customer_id, category, temperament, loyalty, timezone, received_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (case_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, category = EXCLUDED.category, temperament = EXCLUDED.temperament,
            loyalty = EXCLUDED.loyalty, timezone = EXCLUDED.timezone,
            received_at = greatest(c.received_at, EXCLUDED.received_at), updated_at = now()
        """,
        event.case_id, event.customer_id, event.category, event.temperament, event.loyalty,
        event.customer_timezone or "UTC", received_at,
    )
    return before


async def upsert_cases(conn: asyncpg.Connection, events: Sequence[ComplaintClassified]) -> None:
    """Records a batch's classifications in one statement, as `upsert_case` one after the other
    would: a case classified more than once takes its last classification, and its received_at
    moves forward only (the latest of the batch's and the stored one)."""
    if not events:
        return
    last: dict[str, ComplaintClassified] = {}
    received: dict[str, datetime] = {}
    for event in events:
        last[event.case_id] = event
        at = event.received_at or event.occurred_at
        received[event.case_id] = max(received.get(event.case_id, at), at)
    rows = list(last.values())
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.cases AS c (case_id, customer_id, category, temperament, loyalty, timezone, received_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[])
        ON CONFLICT (case_id) DO UPDATE SET
            customer_id = EXCLUDED.customer_id, category = EXCLUDED.category, temperament = EXCLUDED.temperament,
            loyalty = EXCLUDED.loyalty, timezone = EXCLUDED.timezone,
            received_at = greatest(c.received_at, EXCLUDED.received_at), updated_at = now()
        """,
        [e.case_id for e in rows], [e.customer_id for e in rows], [e.category for e in rows],
        [e.temperament for e in rows], [e.loyalty for e in rows], [e.customer_timezone or "UTC" for e in rows],
        [received[e.case_id] for e in rows],
    )


async def cases_for_update(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, asyncpg.Record]:
    """`case_for_update` for several cases in one statement, locked in id order: {case_id: row} of
    those classified already."""
    rows = await conn.fetch(
        f"SELECT * FROM {SCHEMA}.cases WHERE case_id = ANY($1::text[]) ORDER BY case_id FOR UPDATE",
        sorted(set(case_ids)),
    )
    return {r["case_id"]: r for r in rows}


async def case_for_update(conn: asyncpg.Connection, case_id: str) -> asyncpg.Record | None:
    """The case's row (every column of `cases`), locked for this transaction; None if not classified yet."""
    return await conn.fetchrow(f"SELECT * FROM {SCHEMA}.cases WHERE case_id = $1 FOR UPDATE", case_id)


async def set_case_status(conn: asyncpg.Connection, case_id: str, status: str, resolved_at: datetime | None = None) -> None:
    await conn.execute(
        f"UPDATE {SCHEMA}.cases SET status = $2, resolved_at = coalesce($3, resolved_at), updated_at = now()"
        " WHERE case_id = $1",
        case_id, status, resolved_at,
    )


async def category_candidates(
    conn: asyncpg.Connection, category: str, since: datetime, exclude_customer: str, limit: int = 1000,
) -> list[CategoryCase]:
    rows = await conn.fetch(
        f"SELECT customer_id, case_id, category, received_at FROM {SCHEMA}.cases"
        " WHERE category = $1 AND received_at >= $2 AND customer_id <> $3 ORDER BY received_at DESC LIMIT $4",
        category, since, exclude_customer, limit,
    )
    return [CategoryCase(r["customer_id"], r["case_id"], r["category"], r["received_at"]) for r in rows]


# ---------- activity that arrived before the classification ----------
async def hold_activity(conn: asyncpg.Connection, event_id: str, case_id: str, type_: str, occurred_at: datetime, improvement: bool) -> None:
    await conn.execute(
        f"INSERT INTO {SCHEMA}.pending_activity (event_id, case_id, type, occurred_at, improvement)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        event_id, case_id, type_, occurred_at, improvement,
    )


async def take_held_activity(conn: asyncpg.Connection, case_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"DELETE FROM {SCHEMA}.pending_activity WHERE case_id = $1"
        " RETURNING event_id, case_id, type, occurred_at, improvement",
        case_id,
    )


async def take_held_activities(conn: asyncpg.Connection, case_ids: Iterable[str]) -> dict[str, list[asyncpg.Record]]:
    """`take_held_activity` for several cases in one statement: {case_id: its held rows} of the
    cases with any."""
    rows = await conn.fetch(
        f"DELETE FROM {SCHEMA}.pending_activity WHERE case_id = ANY($1::text[])"
        " RETURNING event_id, case_id, type, occurred_at, improvement",
        sorted(set(case_ids)),
    )
    out: dict[str, list[asyncpg.Record]] = {}
    for r in rows:
        out.setdefault(r["case_id"], []).append(r)
    return out


# ---------- what the rules need to know of a customer ----------
async def customer_facts(
    conn: asyncpg.Connection, customer_id: str, *, timezone: str, loyalty: str,
    exclude_case: str | None = None, exclude_followup: str | None = None,
) -> CustomerFacts:
    """What the rules need to know of one customer (`customers_facts` for one)."""
    facts = await customers_facts(
        conn, {customer_id: (timezone, loyalty)}, exclude_case=exclude_case, exclude_followup=exclude_followup,
    )
    return facts[customer_id]


async def customers_facts(
    conn: asyncpg.Connection, profiles: Mapping[str, tuple[str, str]], *,
    exclude_case: str | None = None, exclude_followup: str | None = None,
) -> dict[str, CustomerFacts]:
    """The facts of each customer in `profiles` ({customer_id: (timezone, loyalty)}), read at once:
    their follow-ups scheduled or sent (`at`: when sent, else when due) but `exclude_followup`, their
    cases but `exclude_case`, and when they answered a survey, earliest first."""
    ids = list(profiles)
    if not ids:
        return {}
    contacts = await conn.fetch(
        f"SELECT customer_id, kind, case_id, status, coalesce(closed_at, due_at) AS at FROM {SCHEMA}.followups"
        " WHERE customer_id = ANY($1::text[]) AND status IN ('scheduled', 'due')"
        " AND followup_id IS DISTINCT FROM $2",
        ids, exclude_followup,
    )
    cases = await conn.fetch(
        f"SELECT customer_id, case_id, status, temperament FROM {SCHEMA}.cases"
        " WHERE customer_id = ANY($1::text[]) AND case_id IS DISTINCT FROM $2",
        ids, exclude_case,
    )
    answered = await conn.fetch(
        f"SELECT customer_id, answered_at FROM {SCHEMA}.survey_responses WHERE customer_id = ANY($1::text[])"
        " ORDER BY answered_at",
        ids,
    )
    return {
        customer_id: CustomerFacts(
            customer_id=customer_id,
            timezone=timezone,
            loyalty=loyalty,
            contacts=tuple(Contact(r["kind"], r["at"], r["case_id"], pending=r["status"] == "scheduled")
                           for r in contacts if r["customer_id"] == customer_id),
            survey_responses=tuple(r["answered_at"] for r in answered if r["customer_id"] == customer_id),
            cases=tuple(CustomerCase(r["case_id"], r["status"] == "open", r["temperament"] == "irate")
                        for r in cases if r["customer_id"] == customer_id),
        )
        for customer_id, (timezone, loyalty) in profiles.items()
    }


# ---------- survey answers ----------
async def record_survey_response(conn: asyncpg.Connection, event: SurveyAnswered) -> bool:
    """Keeps when the customer answered (and the score, no free text); False if already recorded."""
    return bool(await conn.fetchval(
        f"INSERT INTO {SCHEMA}.survey_responses (event_id, customer_id, case_id, followup_id, answered_at, score)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        event.event_id, event.customer_id, event.case_id, event.followup_id, event.occurred_at, event.score,
    ))


# ---------- follow-ups ----------
async def record_planned(conn: asyncpg.Connection, rows: Sequence[tuple[str, PlannedFollowup]], causation_id: str) -> list[str]:
    """Inserts planned follow-ups in one statement; returns the ids that were new, in the order
    given (a replay inserts nothing)."""
    return await _insert_followups(conn, [(fid, p, p.due_at, p.reason) for fid, p in rows], causation_id, "scheduled")


async def record_skipped(conn: asyncpg.Connection, rows: Sequence[tuple[str, SkippedFollowup]], causation_id: str) -> list[str]:
    """Records follow-ups the rules refused when planning, in one statement; returns the ids that
    were new, in the order given (a replay inserts nothing, so it publishes no second
    `followup.skipped`)."""
    return await _insert_followups(conn, [(fid, s, s.would_have_been_due, s.reason) for fid, s in rows], causation_id,
                                   "skipped")


async def _insert_followups(conn: asyncpg.Connection, rows: Sequence[tuple[str, Any, datetime, str]], causation_id: str,
                            status: str) -> list[str]:
    """(followup_id, planned or skipped follow-up, due_at, reason) rows with `status`, one
    statement; a skipped one is closed at once. Returns the new ids in the order given."""
    if not rows:
        return []
    inserted = {r["followup_id"] for r in await conn.fetch(
        f"INSERT INTO {SCHEMA}.followups (followup_id, case_id, customer_id, kind, channel, due_at, status, reason,"
        " causation_id, closed_at) SELECT id, c, cu, k, ch, d, $9, r, $8, CASE WHEN $9 = 'skipped' THEN now() END"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[])"
        " AS u(id, c, cu, k, ch, d, r) ON CONFLICT DO NOTHING RETURNING followup_id",
        [fid for fid, *_ in rows], [f.case_id for _, f, *_ in rows], [f.customer_id for _, f, *_ in rows],
        [f.kind for _, f, *_ in rows], [f.channel for _, f, *_ in rows], [due for *_, due, _ in rows],
        [reason for *_, reason in rows], causation_id, status,
    )}
    return _first_of(rows, inserted)


def _first_of(rows: Sequence[tuple[Any, ...]], inserted: set[str]) -> list[str]:
    """The ids (first item) of `rows` in `inserted`, in the order given, each once (its first row is the one inserted)."""
    out, seen = [], set()
    for followup_id, *_ in rows:
        if followup_id in inserted and followup_id not in seen:
            seen.add(followup_id)
            out.append(followup_id)
    return out


def _pending(row: asyncpg.Record) -> PendingFollowup:
    return PendingFollowup(row["followup_id"], row["kind"], row["case_id"], row["customer_id"], row["due_at"], row["channel"])


async def _scheduled_where(conn: asyncpg.Connection, column: str, value: str) -> list[PendingFollowup]:
    rows = await conn.fetch(
        f"SELECT {_FOLLOWUP_COLUMNS} FROM {SCHEMA}.followups WHERE {column} = $1 AND status = 'scheduled'"
        " ORDER BY due_at FOR UPDATE",
        value,
    )
    return [_pending(r) for r in rows]


async def scheduled_of_customer(conn: asyncpg.Connection, customer_id: str) -> list[PendingFollowup]:
    """The customer's still-scheduled follow-ups (any case), locked, earliest due first."""
    return await _scheduled_where(conn, "customer_id", customer_id)


async def scheduled_of_case(conn: asyncpg.Connection, case_id: str) -> list[PendingFollowup]:
    """The case's still-scheduled follow-ups, locked, earliest due first."""
    return await _scheduled_where(conn, "case_id", case_id)


async def scheduled_by_ids(conn: asyncpg.Connection, ids: Iterable[str]) -> list[tuple[PendingFollowup, str]]:
    """The still-scheduled follow-ups among `ids`, locked, each with its causation id."""
    rows = await conn.fetch(
        f"SELECT {_FOLLOWUP_COLUMNS}, causation_id FROM {SCHEMA}.followups"
        " WHERE followup_id = ANY($1::text[]) AND status = 'scheduled' ORDER BY due_at FOR UPDATE",
        list(ids),
    )
    return [(_pending(r), r["causation_id"]) for r in rows]


async def customer_profiles(conn: asyncpg.Connection, customer_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """(timezone, loyalty) of each customer, from their latest case."""
    rows = await conn.fetch(
        f"SELECT DISTINCT ON (customer_id) customer_id, timezone, loyalty FROM {SCHEMA}.cases"
        " WHERE customer_id = ANY($1::text[]) ORDER BY customer_id, received_at DESC",
        list(set(customer_ids)),
    )
    return {r["customer_id"]: (r["timezone"], r["loyalty"]) for r in rows}


async def close_followups(conn: asyncpg.Connection, ids: Sequence[str], status: str, reason: str) -> None:
    await conn.execute(
        f"UPDATE {SCHEMA}.followups SET status = $2, reason = $3, closed_at = now()"
        " WHERE followup_id = ANY($1::text[]) AND status = 'scheduled'",
        list(ids), status, reason,
    )


async def move_due(conn: asyncpg.Connection, followup_id: str, due_at: datetime, reason: str) -> None:
    await conn.execute(
        f"UPDATE {SCHEMA}.followups SET due_at = $2, reason = $3 WHERE followup_id = $1", followup_id, due_at, reason,
    )


async def customers_in_retention(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        f"SELECT count(DISTINCT customer_id) FROM {SCHEMA}.followups"
        " WHERE kind = 'retention_checkin' AND status = 'scheduled'"
    )


# Taken through the Batch (`batch.lock`, `batch.try_lock` when firing), cases before customers,
# each set in sorted order. The ids are those followup took before shared.locks existed.
# - A case's lock serialises its classification and its activity, which may arrive through two
#   instances at once: without it a resolution held for a missing case and the case's first
#   classification each commit without seeing the other, and the resolution is never applied.
# - A customer's lock serialises planning, sending and survey answers for one customer across
#   partitions: two cases resolved at once must still see each other's survey.
CASE_LOCKS = AdvisoryLocks("followup:case")
CUSTOMER_LOCKS = AdvisoryLocks("followup:customer")


async def customers_of_cases(conn: asyncpg.Connection, case_ids: Iterable[str]) -> list[str]:
    rows = await conn.fetch(
        f"SELECT DISTINCT customer_id FROM {SCHEMA}.cases WHERE case_id = ANY($1::text[])", list(set(case_ids))
    )
    return [r["customer_id"] for r in rows]


async def customers_of_followups(conn: asyncpg.Connection, followup_ids: Iterable[str]) -> dict[str, str]:
    rows = await conn.fetch(
        f"SELECT followup_id, customer_id FROM {SCHEMA}.followups WHERE followup_id = ANY($1::text[])",
        list(followup_ids),
    )
    return {r["followup_id"]: r["customer_id"] for r in rows}
