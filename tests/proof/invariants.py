"""The four invariants of at-least-once delivery made safe, checked from the output topics."""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from typing import Any

from shared.events import CLASSIFIED, COMPENSATION, FOLLOWUPS, SLA


def check(published_complaints: set[str], topics: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Violations (empty when all hold). `topics` maps short names to decoded records."""
    violations: list[str] = []

    # 1. every valid complaint classified exactly once (distinct causations), nothing else
    causes = {r["causation_id"] for r in topics["classified"]}
    if causes != published_complaints:
        violations.append(f"classified: {len(published_complaints - causes)} missing, {len(causes - published_complaints)} invented")

    # 2. no case with two automatic grants
    grants: dict[str, set[str]] = defaultdict(set)
    for r in topics["compensation"]:
        if r["type"] == "compensation.granted" and r.get("authority") == "agent":
            grants[r["case_id"]].add(r["decision_id"])
    doubled = [c for c, ids in grants.items() if len(ids) > 1]
    if doubled:
        violations.append(f"compensation: {len(doubled)} case(s) granted twice automatically")

    # 3. one breach per breached clock; no breach for a clock met in time
    breaches: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    met_in_time: set[tuple[str, str, str]] = set()
    for r in topics["sla"]:
        clock = (r["case_id"], r.get("clock", ""), str(r.get("promise_id", "")))
        if r["type"] == "sla.breached":
            breaches[clock].add(r.get("due_at", "") + "|" + r["event_id"])
        elif r["type"] == "sla.met" and not r.get("breached"):
            met_in_time.add((clock, r.get("due_at", "")))
    for clock, ids in breaches.items():
        by_deadline: dict[str, int] = defaultdict(int)
        for item in ids:
            by_deadline[item.split("|")[0]] += 1
        if any(n > 1 for n in by_deadline.values()):
            violations.append(f"sla: clock {clock[1]} of a case breached more than once for one deadline")
        for due in by_deadline:
            if (clock, due) in met_in_time:
                violations.append(f"sla: clock {clock[1]} met in time but also breached")

    # 4. every follow-up scheduled and not cancelled has exactly one due event
    scheduled, cancelled, due = set(), set(), defaultdict(set)
    for r in topics["followups"]:
        if r["type"] == "followup.scheduled":
            scheduled.add(r["followup_id"])
        elif r["type"] == "followup.cancelled":
            cancelled.add(r["followup_id"])
        elif r["type"] == "followup.due":
            due[r["followup_id"]].add(r["event_id"])
    for fid in scheduled - cancelled:
        if len(due.get(fid, ())) != 1:
            violations.append(f"followup {fid}: {len(due.get(fid, ()))} due events")
    return violations


async def check_resolutions(database_url: str, resolved_cases: list[str], timeout: float = 60) -> list[str]:
    """Violations of: every resolution published was applied by followup (the case is resolved there
    and has its follow-ups planned), and no case activity is still held for a classification. The
    topic invariants cannot see a resolution that was lost before anything was planned for it.
    Waits up to `timeout` for the last resolutions still on their way through Kafka."""
    deadline = time.monotonic() + timeout
    while (violations := await _unapplied_resolutions(database_url, resolved_cases)) and time.monotonic() < deadline:
        await asyncio.sleep(2)
    return violations


async def _unapplied_resolutions(database_url: str, resolved_cases: list[str]) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        not_resolved = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::text[]) AS r(case_id) LEFT JOIN followup.cases c USING (case_id)"
            " WHERE c.status IS DISTINCT FROM 'resolved'", resolved_cases)
        unplanned = await conn.fetchval(
            "SELECT count(*) FROM unnest($1::text[]) AS r(case_id)"
            " WHERE NOT EXISTS (SELECT 1 FROM followup.followups f WHERE f.case_id = r.case_id)", resolved_cases)
        held = await conn.fetchval("SELECT count(*) FROM followup.pending_activity")
    finally:
        await conn.close()
    violations = []
    if not_resolved:
        violations.append(f"followup: {not_resolved} resolved case(s) not resolved there")
    if unplanned:
        violations.append(f"followup: {unplanned} resolved case(s) with no follow-up planned or skipped")
    if held:
        violations.append(f"followup: {held} case activity record(s) still held for a classification")
    return violations


async def drain_and_read(kafka: Any, database_url: str, published: set[str], *, classify_timeout: float = 180,
                         settle_timeout: float = 150) -> dict[str, list[dict[str, Any]]]:
    """Waits until every published complaint is classified, every durable timer of sla and
    followup has fired (deferred follow-ups included) and every outbox is empty, then returns the
    output topics by short name."""
    import asyncpg

    await kafka.wait_for(CLASSIFIED, lambda rs: {r["causation_id"] for r in rs} >= published, timeout=classify_timeout)
    deadline = time.monotonic() + settle_timeout
    conn = await asyncpg.connect(database_url)
    try:
        while True:
            pending = 0
            for schema in ("intake", "sla", "compensation", "followup"):
                pending += await conn.fetchval(f"SELECT count(*) FROM {schema}.outbox")
                if schema in ("sla", "followup"):
                    pending += await conn.fetchval(f"SELECT count(*) FROM {schema}.timers")
            if pending == 0:
                break
            if time.monotonic() > deadline:
                # Not a violation of the invariants: the load outran this machine. Say so plainly.
                raise AssertionError(f"the system did not drain within {settle_timeout:.0f}s: {pending} timers or "
                                     "outbox rows still pending; lower CHAOS_RATE or raise the settle time")
            await asyncio.sleep(2)
    finally:
        await conn.close()
    await asyncio.sleep(1)
    return {name: await kafka.read_all(topic) for name, topic in
            (("classified", CLASSIFIED), ("compensation", COMPENSATION), ("sla", SLA), ("followups", FOLLOWUPS))}
