"""The recovery read model through Kafka and PostgreSQL: the followup service's recovery consumer
(group `helpdesk-followup.recovery`) reads the scenario of tests/followup/recovery_scenario.py from
complaints.classified, case-activity, sla.v1 and compensation.v1; `helpdesk report recovery --json`
gives the hand-worked figures; every record published again changes nothing; `helpdesk report
rebuild`, run while the service keeps consuming, rebuilds the same rows from the start of the topics."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.followup.recovery import Recovery
from shared.events import COMPENSATION, REJECTED, SLA
from tests.followup import recovery_scenario as scenario

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def rows(database_url: str) -> tuple[list[dict], list[dict]]:
    """Every row of the read model, without its write time."""
    conn = await asyncpg.connect(database_url)
    try:
        cases = await conn.fetch("SELECT case_id, customer_id, category, received_at, repeat_contacts, "
                                 "first_contact_at, breached, resolved_at, reopened_at, decisions::text AS decisions "
                                 "FROM followup.recovery_cases ORDER BY case_id")
        returns = await conn.fetch("SELECT * FROM followup.recovery_returns ORDER BY event_id")
        return [dict(r) for r in cases], [dict(r) for r in returns]
    finally:
        await conn.close()


async def report(database_url: str):
    conn = await asyncpg.connect(database_url)
    try:
        return await Recovery().report(conn, scenario.SINCE, scenario.WITHIN)
    finally:
        await conn.close()


async def wait_for_report(database_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            scenario.check_report(await report(database_url))
            return
        except (AssertionError, asyncpg.UndefinedTableError):
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


def duplicates(metrics_text: str, topic: str) -> float:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "helpdesk_followup_duplicate_events":
            return sum(s.value for s in family.samples
                       if s.name.endswith("_total") and s.labels.get("topic") == topic)
    return 0.0


async def helpdesk(ns, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args, cwd=ROOT, env={**os.environ, **ns.env()},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-3000:]
    return out.decode()


async def test_the_read_model_reports_redeliveries_change_nothing_and_a_rebuild_gives_the_same_rows(ns):
    service = ns.service("followup")
    now = datetime.now(timezone.utc)
    records = scenario.records(now, tag=ns.prefix)
    published = {topic: list(rs) for topic, rs in records.items()}
    # Not the read model's business: dropped, never reported to the rejected topic.
    await ns.kafka.publish(SLA, b"not json", key="X")
    await ns.kafka.publish(COMPENSATION, {"event_id": "x", "type": "compensation.unknown", "case_id": "X"})
    for topic, rs in published.items():
        await ns.kafka.publish_many(topic, rs)

    tagged = ns.prefix  # the scenario's case and customer ids carry it; the figures do not depend on it
    await wait_for_report(ns.database_url)
    data = json.loads(await helpdesk(ns, "report", "recovery", "--since", "90d", "--within", "30d", "--json"))
    scenario.check_report_json(data)
    human = await helpdesk(ns, "report", "recovery")
    assert "Cost per retained customer" in human and "By time to first contact" in human
    before = await rows(ns.database_url)
    assert [r["case_id"] for r in before[0]] == [f"{tagged}{c}" for c in "ABCD"] and len(before[1]) == 2

    # Every record again: absorbed (the inbox remembers the recovery consumer's ids), nothing changes.
    for topic, rs in published.items():
        await ns.kafka.publish_many(topic, rs)
    deadline = time.monotonic() + 60
    while duplicates(service.metrics(), COMPENSATION) < 4 or duplicates(service.metrics(), SLA) < 1:
        assert time.monotonic() < deadline, "the recovery consumer did not see the redelivered records"
        await asyncio.sleep(0.5)
    assert await rows(ns.database_url) == before

    # Rebuilt from the start of the topics while the service keeps consuming: the same rows, the same report.
    out = await helpdesk(ns, "report", "rebuild")
    assert "4 cases, 2 returns" in out
    assert await rows(ns.database_url) == before
    scenario.check_report(await report(ns.database_url))

    # The rebuild also restores rows lost from the read model.
    conn = await asyncpg.connect(ns.database_url)
    try:
        await conn.execute("DELETE FROM followup.recovery_cases WHERE case_id = $1", f"{tagged}A")
        await conn.execute("DELETE FROM followup.recovery_returns")
    finally:
        await conn.close()
    await helpdesk(ns, "report", "rebuild")
    assert await rows(ns.database_url) == before

    rejected = await ns.kafka.read_all(REJECTED)
    assert not [r for r in rejected if r.get("topic") in (SLA, COMPENSATION)], rejected
