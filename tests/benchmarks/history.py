"""A year of history in the four services' schemas, for the pipeline benchmark's "cost as the data
grows" phase (issue #15 item 6).

`seed(url, scale)` runs every service's migrations (shared.db.migrate with the stores' own
MIGRATIONS), then COPYs (asyncpg `copy_records_to_table`, binary) generated rows into the stores'
real tables, the four schemas at once on four connections, and ends with VACUUM ANALYZE of every
table it filled, as autovacuum would have left a year-old database.

At `scale` 1.0 (`FULL_YEAR`, the issue's figures): 5,000,000 handled events (processed_events,
split evenly over the four services, processed over the past 360 days), 1,000,000 cases, each with its
complaint in intake, its row and three clocks in sla, its row and one decision in compensation,
and its row, one follow-up and (where the schema has it) its recovery read-model row in followup;
and 100,000 open timers: 25,000 open sla cases, each
with a running resolution clock and its four armed timers (two warnings, the breach, the first
escalation), due 1 to 30 days ahead, so none fires during the benchmark. The other cases are
closed: clocks met or breached, follow-ups sent, cancelled or skipped, decisions settled. Case and
event ids never collide with the benchmark's (prefix `hist-`); customers are drawn from the CRM
simulator's own range (SC-1 … SC-49999), so per-customer lookups meet a year of the customer's
cases. Every decision is dated before the current month, so the month's budgets start empty as
in the empty database (the shipped policy sets no budget anyway).

A smaller `scale` multiplies every count. Sizes and seconds are returned in `Seeded`.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import asyncpg

from services.compensation.store import MIGRATIONS as COMPENSATION_MIGRATIONS
from services.followup.store import MIGRATIONS as FOLLOWUP_MIGRATIONS
from services.intake.store import MIGRATIONS as INTAKE_MIGRATIONS
from services.sla.store import MIGRATIONS as SLA_MIGRATIONS
from shared import db

FULL_YEAR = {"handled_events": 5_000_000, "cases": 1_000_000, "open_timers": 100_000}
TIMERS_PER_OPEN_CASE = 4
CHUNK = 20_000  # rows per COPY call: bounds the harness's memory
MIGRATIONS: dict[str, Sequence[tuple[int, str]]] = {
    "intake": INTAKE_MIGRATIONS, "sla": SLA_MIGRATIONS, "compensation": COMPENSATION_MIGRATIONS,
    "followup": FOLLOWUP_MIGRATIONS,
}
PRIORITIES = ("P1", "P2", "P3", "P3", "P4", "P4")
CATEGORIES = ("delivery", "product_quality", "billing", "service", "website")
CHANNELS = ("email", "chat", "phone", "web")
DAY = timedelta(days=1)


@dataclass
class Seeded:
    """What `seed` stored: the counts (rows), the scale, and how long it took (seconds)."""

    scale: float
    handled_events: int
    cases: int
    open_timers: int
    rows: int
    seconds: float
    database_mib: float


def sizes(scale: float) -> dict[str, int]:
    """The issue's full-year counts times `scale` (0 < scale ≤ 1 in practice); at least one open case."""
    if scale <= 0:
        raise ValueError("history scale must be positive")
    out = {name: int(round(count * scale)) for name, count in FULL_YEAR.items()}
    out["open_timers"] = max(TIMERS_PER_OPEN_CASE, out["open_timers"] - out["open_timers"] % TIMERS_PER_OPEN_CASE)
    out["cases"] = max(out["cases"], out["open_timers"] // TIMERS_PER_OPEN_CASE)
    return out


def _case(i: int) -> str:
    return f"hist-{i:08d}"


def _customer(rng: random.Random) -> str:
    return f"SC-{rng.randrange(1, 50_000)}"


class _Clock:
    """Timestamps spread over the year before `now` (case i of n: older as i is smaller)."""

    def __init__(self, now: datetime, n: int, oldest: timedelta = timedelta(days=365),
                 newest: timedelta = timedelta(0)) -> None:
        self.now, self.n, self.span, self.newest = now, max(1, n), oldest - newest, newest

    def at(self, i: int) -> datetime:
        return self.now - self.newest - self.span * (1 - i / self.n)


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    chunk: list[tuple[Any, ...]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _copy(conn: asyncpg.Connection, schema: str, table: str, columns: Sequence[str],
                rows: Iterator[tuple[Any, ...]]) -> int:
    count = 0
    for chunk in _chunks(rows):
        await conn.copy_records_to_table(table, schema_name=schema, columns=list(columns), records=chunk)
        count += len(chunk)
    return count


def _processed(now: datetime, count: int, schema: str) -> Iterator[tuple[Any, ...]]:
    # Within the benchmark's PROCESSED_EVENTS_RETENTION (365d, the most it takes): none is pruned.
    clock = _Clock(now, count, oldest=timedelta(days=360))
    for i in range(count):
        yield (f"hist-{schema}-{i:09d}", clock.at(i))


# ---------- per service ----------
async def _intake(conn: asyncpg.Connection, n: int, events: int, now: datetime) -> int:
    rng = random.Random(1)
    clock = _Clock(now, n, newest=2 * DAY)
    reasons = json.dumps(["keyword:late", "severity:order_value", "loyalty:tenure", "priority:matrix"])

    def cases() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = clock.at(i)
            yield (_case(i), _customer(rng), "crm-sim", rng.choice(CHANNELS), rng.choice(CATEGORIES), "medium",
                   "upset", "standard", "low", rng.choice(PRIORITIES), 1, at, at, at)

    def complaints() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = clock.at(i)
            classification = ('{"category": "delivery", "severity": "medium", "temperament": "upset", '
                              '"loyalty": "standard", "publicity_risk": "low", "priority": "P3", "reasons": '
                              + reasons + ', "decided_by": "keywords", "needs_review": false, "confidence": null}')
            yield (f"hist-complaint-{i:09d}", _case(i), at, 0, classification, "history", at)

    rows = await _copy(conn, "intake", "cases", (
        "case_id", "customer_id", "source", "channel", "category", "severity", "temperament", "loyalty",
        "publicity_risk", "priority", "complaints", "first_received_at", "last_received_at", "updated_at"), cases())
    rows += await _copy(conn, "intake", "complaints", (
        "event_id", "case_id", "occurred_at", "repeat_contacts", "classification", "policy_version", "recorded_at"),
        complaints())
    rows += await _copy(conn, "intake", "processed_events", ("event_id", "processed_at"),
                        _processed(now, events, "intake"))
    return rows


async def _sla(conn: asyncpg.Connection, n: int, open_cases: int, events: int, now: datetime) -> int:
    rng = random.Random(2)
    closed = n - open_cases
    clock = _Clock(now, closed, newest=2 * DAY)
    targets = {"first_contact": timedelta(hours=4), "update": timedelta(days=1), "resolution": timedelta(days=3)}

    def cases() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = clock.at(i) if i < closed else now - timedelta(hours=rng.randrange(1, 48))
            yield (_case(i), rng.choice(PRIORITIES), "crm-sim", "keywords", i < closed, at)

    def clocks() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            case_id = _case(i)
            priority = PRIORITIES[i % len(PRIORITIES)]
            if i < closed:
                started = clock.at(i)
                for kind, target in targets.items():
                    breached = rng.random() < 0.08
                    ended = started + target * (1.3 if breached else 0.6)
                    yield (case_id, kind, kind, priority, _calendar(priority), started, target, started + target,
                           "breached" if breached and kind != "resolution" else "met", "complaint.classified",
                           (started + target) if breached else None, ended, [0.5, 0.8], 0, 1, [], ended,
                           target * 0.6)
            else:  # open: its resolution clock runs, with its timers armed; the others were met
                started = now - timedelta(hours=2)
                due = _open_due(now, i)
                keys = [_timer_key(case_id, kind, n_) for kind, n_, _ in _TIMERS]
                for kind, target in targets.items():
                    if kind == "resolution":
                        yield (case_id, kind, kind, priority, _calendar(priority), started, target, due, "running",
                               "complaint.classified", None, None, [], 0, 1, keys, started, timedelta(0))
                    else:
                        yield (case_id, kind, kind, priority, _calendar(priority), started, target, started + target / 2,
                               "met", "complaint.classified", None, started + target / 2, [], 0, 1, [],
                               started + target / 2, target / 2)

    def timers() -> Iterator[tuple[Any, ...]]:
        for i in range(closed, n):
            case_id = _case(i)
            due = _open_due(now, i)
            for kind, n_, share in _TIMERS:
                payload = {"case_id": case_id, "clock_key": "resolution", "arming": 1, "kind": kind, "n": n_}
                if kind == "warning":
                    payload["threshold"] = share
                if kind == "escalation":
                    payload["notify"] = "team_lead"
                yield (_timer_key(case_id, kind, n_), kind, due - timedelta(hours=24) * (1 - share),
                       json.dumps(payload), 0, now - timedelta(hours=2))

    rows = await _copy(conn, "sla", "cases", ("case_id", "priority", "source", "classified_by", "resolved",
                                              "updated_at"), cases())
    rows += await _copy(conn, "sla", "clocks", (
        "case_id", "clock_key", "kind", "priority", "calendar", "started_at", "target", "due_at", "state",
        "started_by", "breached_at", "ended_at", "warnings_sent", "escalations_sent", "arming", "armed_timers",
        "updated_at", "counted_before"), clocks())
    rows += await _copy(conn, "sla", "timers", ("key", "kind", "due_at", "payload", "attempts", "armed_at"), timers())
    rows += await _copy(conn, "sla", "processed_events", ("event_id", "processed_at"), _processed(now, events, "sla"))
    return rows


# (kind, n, share of the target when due): the four timers of an open resolution clock.
_TIMERS = (("warning", 1, 0.5), ("warning", 2, 0.8), ("breach", 0, 1.0), ("escalation", 1, 1.0))


def _calendar(priority: str) -> str:
    # config/sla.yaml: P1 and P2 run round the clock, the rest on the default office calendar.
    return "24x7" if priority in ("P1", "P2") else "us_office"


def _open_due(now: datetime, i: int) -> datetime:
    # An open resolution clock's deadline: 1 to 30 days ahead, so no timer of it fires in the run.
    return now + timedelta(days=1 + i % 29, minutes=i % 1440)


def _timer_key(case_id: str, kind: str, n: int) -> str:
    # The sla domain's key layout (services/sla/domain/effects.py, TimerDue.key).
    return f"{quote(case_id, safe='')}:resolution:1:{kind}:{n}"


async def _compensation(conn: asyncpg.Connection, n: int, events: int, now: datetime) -> int:
    rng = random.Random(3)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    clock = _Clock(now, n, oldest=timedelta(days=365), newest=now - month + DAY)
    explanation = json.dumps(["rule late-delivery-coupon matched", "within the agent's limit"])
    inputs = json.dumps({"category": "delivery", "severity": "medium", "loyalty": "standard", "order_amount": 78.0})
    spent: dict[tuple[str, str, datetime], Decimal] = {}

    def decisions() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = clock.at(i)
            roll = rng.random()
            if roll < 0.55:
                outcome, status, value, offers = "granted", "granted", Decimal("750"), '[{"kind": "coupon", "percent": 10}]'
            elif roll < 0.65:
                outcome, status, value, offers = "pending_approval", rng.choice(("approved", "denied")), Decimal("4500"), \
                    '[{"kind": "refund", "amount": 45.0}]'
            else:
                outcome, status, value, offers = "none", "none", Decimal("0"), "[]"
            if status in ("granted", "approved"):
                key = ("crm-sim", "USD", at.date().replace(day=1))
                spent[key] = spent.get(key, Decimal(0)) + value
            settled = at + timedelta(hours=3) if outcome == "pending_approval" else None
            yield (f"hist-decision-{i:09d}", _case(i), _customer(rng), "crm-sim", f"hist-classified-{i:09d}", 1,
                   outcome, status, None if outcome == "none" else "late-delivery-coupon", "history", offers, value,
                   "USD", None if outcome == "none" else "agent", "rule_matched" if outcome != "none" else "no_rule",
                   ["rule_matched"] if outcome != "none" else ["no_rule"], inputs, explanation, at, settled,
                   "supervisor" if settled else None, "sup-1" if settled else None, 0)

    rows = await _copy(conn, "compensation", "cases", ("case_id", "reopens", "updated_at"),
                       ((_case(i), 0, clock.at(i)) for i in range(n)))
    rows += await _copy(conn, "compensation", "decisions", (
        "decision_id", "case_id", "customer_id", "source", "causation_id", "grant_round", "outcome", "status",
        "rule_id", "policy_version", "offers", "value", "currency", "authority", "reason_code", "reason_codes",
        "inputs", "explanation", "decided_at", "settled_at", "approver_role", "approver_id", "escalations"),
        decisions())
    rows += await _copy(conn, "compensation", "budget_spent", ("source", "currency", "month", "spent"),
                        iter([(s, c, m, v) for (s, c, m), v in spent.items()]))
    rows += await _copy(conn, "compensation", "processed_events", ("event_id", "processed_at"),
                        _processed(now, events, "compensation"))
    return rows


async def _followup(conn: asyncpg.Connection, n: int, open_cases: int, events: int, now: datetime) -> int:
    rng = random.Random(4)
    closed = n - open_cases
    clock = _Clock(now, n, newest=2 * DAY)

    def cases() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            at = clock.at(i)
            resolved = i < closed
            yield (_case(i), _customer(rng), rng.choice(CATEGORIES), "upset", "standard", "UTC", at,
                   "resolved" if resolved else "open", at + 2 * DAY if resolved else None, at)

    def followups() -> Iterator[tuple[Any, ...]]:
        for i in range(closed):
            at = clock.at(i) + 2 * DAY
            roll = rng.random()
            status = "due" if roll < 0.7 else "cancelled" if roll < 0.85 else "skipped"
            yield (f"hist-followup-{i:09d}", _case(i), _customer(rng), "satisfaction_survey", "email", at + DAY,
                   status, "" if status == "due" else "min_gap", f"hist-resolved-{i:09d}", at,
                   None if status == "skipped" else at + DAY)

    rows = await _copy(conn, "followup", "cases", ("case_id", "customer_id", "category", "temperament", "loyalty",
                                                   "timezone", "received_at", "status", "resolved_at", "updated_at"),
                       cases())
    rows += await _copy(conn, "followup", "followups", ("followup_id", "case_id", "customer_id", "kind", "channel",
                                                        "due_at", "status", "reason", "causation_id", "created_at",
                                                        "closed_at"), followups())
    rows += await _copy(conn, "followup", "processed_events", ("event_id", "processed_at"),
                        _processed(now, events, "followup"))
    if await conn.fetchval("SELECT to_regclass('followup.recovery_cases') IS NOT NULL"):
        # The recovery read model (services/followup/recovery_store.py), where this schema has it.
        rng2 = random.Random(5)

        def recovery() -> Iterator[tuple[Any, ...]]:
            for i in range(n):
                at = clock.at(i)
                resolved = i < closed
                decisions = ('{"hist-decision-%09d": {"at": "%s", "currency": "USD", "rule_id": '
                             '"late-delivery-coupon", "status": "granted", "value": "750"}}' % (i, at.isoformat()))
                yield (_case(i), _customer(rng2), rng2.choice(CATEGORIES), at, 0, at + timedelta(hours=3),
                       rng2.random() < 0.08, at + 2 * DAY if resolved else None, decisions, at)

        rows += await _copy(conn, "followup", "recovery_cases", (
            "case_id", "customer_id", "category", "received_at", "repeat_contacts", "first_contact_at", "breached",
            "resolved_at", "decisions", "updated_at"), recovery())
    return rows


async def _vacuum(url: str, schema: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        tables = [r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1",
                                                            schema)]
        for table in tables:
            await conn.execute(f"VACUUM (ANALYZE) {schema}.{table}")
    finally:
        await conn.close()


async def seed(url: str, scale: float, say: Callable[[str], None] = lambda _: None) -> Seeded:
    """Migrates the four schemas in the (empty) database `url` and fills them with `scale` × a year
    of history (module docstring). Raises asyncpg errors as they come; the database is then half
    filled, and the caller drops it."""
    started = time.monotonic()
    size = sizes(scale)
    n, events, open_cases = size["cases"], size["handled_events"] // 4, size["open_timers"] // TIMERS_PER_OPEN_CASE
    pool = await db.create_pool(url, min_size=1, max_size=4)
    try:
        for schema, migrations in MIGRATIONS.items():
            await db.migrate(pool, schema, migrations)
    finally:
        await pool.close()
    now = datetime.now(timezone.utc)

    async def one(schema: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                if schema == "intake":
                    rows = await _intake(conn, n, events, now)
                elif schema == "sla":
                    rows = await _sla(conn, n, open_cases, events, now)
                elif schema == "compensation":
                    rows = await _compensation(conn, n, events, now)
                else:
                    rows = await _followup(conn, n, open_cases, events, now)
        finally:
            await conn.close()
        say(f"  history: {schema} {rows:,} rows after {time.monotonic() - started:.0f}s")
        return rows

    rows = sum(await asyncio.gather(*(one(schema) for schema in MIGRATIONS)))
    await asyncio.gather(*(_vacuum(url, schema) for schema in MIGRATIONS))
    conn = await asyncpg.connect(url)
    try:
        mib = await conn.fetchval("SELECT pg_database_size(current_database())") / 1024 / 1024
    finally:
        await conn.close()
    return Seeded(scale, events * 4, n, open_cases * TIMERS_PER_OPEN_CASE, rows, time.monotonic() - started, mib)


def as_dict(seeded: Seeded) -> dict[str, Any]:
    return asdict(seeded)
