"""The sla service's tables: one row per case, one per clock, and activity that came before its case.

Everything about one case is done under a per-case advisory lock (`CASE_LOCKS`), so a timer firing
in one instance and an activity handled in another never interleave. Timers themselves live in the
shared `timers` table (shared.timers); a clock row lists the keys of its armed timers.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from services import registry
from services.sla.domain import CaseSla, Clock
from shared.locks import AdvisoryLocks

SCHEMA = registry.SLA.schema

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE {schema}.cases (
            case_id          text PRIMARY KEY,
            priority         text NOT NULL,
            source           text NOT NULL,
            classified_by    text NOT NULL,
            resolved         boolean NOT NULL DEFAULT false,
            paused_at        timestamptz,
            kept_before_made text[] NOT NULL DEFAULT '{{}}',
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE {schema}.clocks (
            case_id          text NOT NULL REFERENCES {schema}.cases (case_id),
            clock_key        text NOT NULL,
            kind             text NOT NULL,
            promise_id       text,
            priority         text NOT NULL,
            calendar         text NOT NULL,
            started_at       timestamptz NOT NULL,
            target           interval NOT NULL,
            due_at           timestamptz NOT NULL,
            state            text NOT NULL,
            started_by       text,
            paused_at        timestamptz,
            paused_total     interval NOT NULL DEFAULT '0',
            breached_at      timestamptz,
            ended_at         timestamptz,
            warnings_sent    double precision[] NOT NULL DEFAULT '{{}}',
            escalations_sent int NOT NULL DEFAULT 0,
            arming           int NOT NULL DEFAULT 0,
            armed_timers     text[] NOT NULL DEFAULT '{{}}',
            updated_at       timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (case_id, clock_key)
        );
        -- The gauges count open clocks only: keep that scan small with a million closed ones.
        CREATE INDEX clocks_open ON {schema}.clocks (kind, priority, state)
            WHERE state IN ('running', 'paused', 'breached');
        -- Activity for a case not classified yet. Free text (descriptions, resolutions) is not kept.
        CREATE TABLE {schema}.pending_activity (
            event_id    text PRIMARY KEY,
            case_id     text NOT NULL,
            occurred_at timestamptz NOT NULL,
            event       jsonb NOT NULL,
            kept_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX pending_activity_case ON {schema}.pending_activity (case_id, occurred_at);
        """,
    ),
    (
        2,
        """
        -- Working time a clock counted before a repeat complaint raised the case's priority (issue 12).
        ALTER TABLE {schema}.clocks ADD COLUMN counted_before interval NOT NULL DEFAULT '0';
        """,
    ),
]

FREE_TEXT_FIELDS = {"description", "resolution", "root_cause", "improvement"}
# One lock per case, taken by every change to a case and every timer firing on one (through the
# Batch: `batch.lock` for a batch's events, `batch.try_lock` when firing timers, which never waits).
# The namespace is the bare service name: the lock ids are those sla took before shared.locks existed.
CASE_LOCKS = AdvisoryLocks("sla")


# ---------- reading ----------
def _clock(row: asyncpg.Record) -> Clock:
    return Clock(
        case_id=row["case_id"], kind=row["kind"], priority=row["priority"], calendar=row["calendar"],
        started_at=row["started_at"], target=row["target"], due_at=row["due_at"], promise_id=row["promise_id"],
        state=row["state"], started_by=row["started_by"], paused_at=row["paused_at"],
        paused_total=row["paused_total"], counted_before=row["counted_before"], breached_at=row["breached_at"],
        ended_at=row["ended_at"],
        warnings_sent=tuple(row["warnings_sent"]), escalations_sent=row["escalations_sent"],
        arming=row["arming"], armed_timers=tuple(row["armed_timers"]),
    )


def _case(row: asyncpg.Record, clocks: Iterable[Clock]) -> CaseSla:
    return CaseSla(
        case_id=row["case_id"], priority=row["priority"], source=row["source"],
        classified_by=row["classified_by"], resolved=row["resolved"], paused_at=row["paused_at"],
        kept_before_made=frozenset(row["kept_before_made"]), clocks={c.key: c for c in clocks},
    )


async def load_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> dict[str, CaseSla]:
    # A join on unnest, not `= ANY($1)`: the cached generic plan of the latter was seen scanning the
    # whole table; this one walks the primary key once per id whatever the plan.
    ids = list(case_ids)
    case_rows = await conn.fetch(f"SELECT c.* FROM unnest($1::text[]) AS i(case_id) JOIN {SCHEMA}.cases c USING (case_id)", ids)
    clock_rows = await conn.fetch(f"SELECT c.* FROM unnest($1::text[]) AS i(case_id) JOIN {SCHEMA}.clocks c USING (case_id)", ids)
    clocks: dict[str, list[Clock]] = {}
    for row in clock_rows:
        clocks.setdefault(row["case_id"], []).append(_clock(row))
    return {row["case_id"]: _case(row, clocks.get(row["case_id"], [])) for row in case_rows}


async def load_case(conn: asyncpg.Connection, case_id: str) -> CaseSla | None:
    # `= $1`, not load_cases' `= ANY($1)`: a cached generic plan for ANY assumes ten ids and was
    # seen scanning the whole clocks table for the one id of every inbound event.
    row = await conn.fetchrow(f"SELECT * FROM {SCHEMA}.cases WHERE case_id = $1", case_id)
    if row is None:
        return None
    clock_rows = await conn.fetch(f"SELECT * FROM {SCHEMA}.clocks WHERE case_id = $1", case_id)
    return _case(row, [_clock(r) for r in clock_rows])


# ---------- writing ----------
async def save_cases(conn: asyncpg.Connection, cases: Iterable[CaseSla]) -> None:
    rows = [
        (c.case_id, c.priority, c.source, c.classified_by, c.resolved, c.paused_at, sorted(c.kept_before_made))
        for c in cases
    ]
    if rows:
        await conn.executemany(
            f"""
            INSERT INTO {SCHEMA}.cases (case_id, priority, source, classified_by, resolved, paused_at, kept_before_made)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (case_id) DO UPDATE SET
                priority = EXCLUDED.priority, source = EXCLUDED.source, classified_by = EXCLUDED.classified_by,
                resolved = EXCLUDED.resolved, paused_at = EXCLUDED.paused_at,
                kept_before_made = EXCLUDED.kept_before_made, updated_at = now()
            """,
            rows,
        )


async def save_clocks(conn: asyncpg.Connection, clocks: Iterable[Clock]) -> None:
    rows = [
        (c.case_id, c.key, c.kind, c.promise_id, c.priority, c.calendar, c.started_at, c.target, c.due_at,
         c.state, c.started_by, c.paused_at, c.paused_total, c.breached_at, c.ended_at, list(c.warnings_sent),
         c.escalations_sent, c.arming, list(c.armed_timers), c.counted_before)
        for c in clocks
    ]
    if not rows:
        return
    await conn.executemany(
        f"""
        INSERT INTO {SCHEMA}.clocks (case_id, clock_key, kind, promise_id, priority, calendar, started_at, target,
            due_at, state, started_by, paused_at, paused_total, breached_at, ended_at, warnings_sent,
            escalations_sent, arming, armed_timers, counted_before)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
        ON CONFLICT (case_id, clock_key) DO UPDATE SET
            priority = EXCLUDED.priority, calendar = EXCLUDED.calendar, started_at = EXCLUDED.started_at,
            target = EXCLUDED.target, due_at = EXCLUDED.due_at, state = EXCLUDED.state,
            started_by = EXCLUDED.started_by, paused_at = EXCLUDED.paused_at, paused_total = EXCLUDED.paused_total,
            breached_at = EXCLUDED.breached_at, ended_at = EXCLUDED.ended_at, warnings_sent = EXCLUDED.warnings_sent,
            escalations_sent = EXCLUDED.escalations_sent, arming = EXCLUDED.arming,
            armed_timers = EXCLUDED.armed_timers, counted_before = EXCLUDED.counted_before, updated_at = now()
        """,
        rows,
    )


# ---------- activity that came before its classification ----------
async def keep_for_later(conn: asyncpg.Connection, event: Any) -> None:
    document = event.model_dump(mode="json", exclude=FREE_TEXT_FIELDS)
    await conn.execute(
        f"INSERT INTO {SCHEMA}.pending_activity (event_id, case_id, occurred_at, event) VALUES ($1, $2, $3, $4::jsonb)"
        " ON CONFLICT (event_id) DO NOTHING",
        event.event_id, event.case_id, event.occurred_at, json.dumps(document),
    )


async def cases_with_pending(conn: asyncpg.Connection, case_ids: Sequence[str]) -> set[str]:
    rows = await conn.fetch(
        f"SELECT DISTINCT p.case_id FROM unnest($1::text[]) AS i(case_id) JOIN {SCHEMA}.pending_activity p USING (case_id)",
        list(case_ids),
    )
    return {r["case_id"] for r in rows}


async def take_pending(conn: asyncpg.Connection, case_id: str) -> list[dict[str, Any]]:
    """Removes and returns the case's kept activity, oldest first."""
    rows = await conn.fetch(
        f"DELETE FROM {SCHEMA}.pending_activity WHERE case_id = $1 RETURNING event, occurred_at, event_id", case_id
    )
    ordered = sorted(rows, key=lambda r: (r["occurred_at"], r["event_id"]))
    return [json.loads(r["event"]) if isinstance(r["event"], str) else r["event"] for r in ordered]


# ---------- gauges ----------
async def open_clock_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT kind, priority, state, count(*) AS n FROM {SCHEMA}.clocks"
        " WHERE state IN ('running', 'paused', 'breached') GROUP BY kind, priority, state"
    )


async def at_risk_counts(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Clocks still within target that have passed a warning threshold."""
    return await conn.fetch(
        f"SELECT kind, priority, threshold, count(*) AS n FROM {SCHEMA}.clocks, unnest(warnings_sent) AS threshold"
        " WHERE state = 'running' GROUP BY kind, priority, threshold"
    )


async def pending_count(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.pending_activity")
