"""`helpdesk policy simulate` against the real PostgreSQL and Kafka: a compensation draft replayed
over stored decisions, an SLA draft over the case activity in Kafka, each with figures worked out by
hand (the tables in tests/compensation/test_simulation.py and tests/sla/test_simulation.py); an
invalid draft refused with file, line and field; nothing written or published."""
from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli import app
from services.compensation import store
from services.compensation.domain import CaseFacts, decide, month_start
from services.compensation.policy import CompensationPolicy
from shared.events import CASE_ACTIVITY, CLASSIFIED, SLA, dump
from shared.kafka import ensure_topics
from shared.policy import parse_policy
from tests.builders import classified_event
from tests.compensation import test_simulation as comp
from tests.sla import test_simulation as sla_cases
from tests.support.memory import migrated_transaction

pytestmark = pytest.mark.integration
runner = CliRunner()


async def invoke(ns, config_dir: Path, *args: str):
    """The CLI runs its own event loop, as from a shell: run it off the test's loop."""
    return await asyncio.to_thread(_invoke, ns, config_dir, list(args))


def _invoke(ns, config_dir, args):
    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix, "HELPDESK_CONFIG_DIR": str(config_dir), "COLUMNS": "160"}
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        return runner.invoke(app, args, env=env)
    finally:
        get_settings.cache_clear()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------- compensation ----------
async def store_decisions(database_url: str, nov: datetime, dec: datetime) -> None:
    """The five decisions of tests/compensation/test_simulation.py, decided by the policy in force as
    the service decides them and recorded with the store's own insert (November → `nov`'s month,
    December → `dec`'s)."""
    policy = parse_policy(comp.IN_FORCE_TEXT, CompensationPolicy)
    async with migrated_transaction(database_url, store) as conn:
        spent = Decimal(0)
        for decision_id, case_id, when, source, fields in comp.COMPLAINTS:
            decided_at = (nov if when.month == 11 else dec).replace(day=when.day)
            complaint = classified_event(case_id=case_id, source=source, **fields)
            facts = CaseFacts(month_spent=spent if when.month == 11 and source == "crm-east" else Decimal(0))
            decision = decide(complaint, policy, "v-in-force", facts)
            if decision.outcome == "granted" and when.month == 11 and source == "crm-east":
                spent += decision.value
            assert await store.insert_decision(
                conn, decision_id=decision_id, decision=decision, case_id=case_id, customer_id="C-1", source=source,
                causation_id=complaint.event_id, grant_round=1,
                inputs={"complaint": dump(complaint), "facts": store.facts_as_inputs(facts)}, decided_at=decided_at)


async def snapshot(database_url: str) -> list:
    conn = await asyncpg.connect(database_url)
    try:
        return [await conn.fetch(f"SELECT * FROM compensation.{t} ORDER BY 1") for t in ("decisions", "budget_spent",
                                                                                          "cases", "outbox")]
    finally:
        await conn.close()


async def test_a_compensation_draft_against_stored_decisions(ns, tmp_path):
    this_month = month_start(datetime.now(timezone.utc))
    next_month = month_start(this_month + timedelta(days=32))
    await store_decisions(ns.database_url, this_month, next_month)
    config = tmp_path / "config"
    write(config / "compensation.yaml", comp.IN_FORCE_TEXT)
    draft = write(tmp_path / "drafts" / "coupon25.yaml", comp.DRAFT_TEXT)  # kind from its keys
    before = await snapshot(ns.database_url)

    result = await invoke(ns, config, "policy", "simulate", "--policy", str(draft), "--since", "40d", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["kind"] == "compensation" and report["decisions"] == 5 and report["differs_from_stored"] == 0
    rules = {r["rule"]: r for r in report["rules"]}
    assert rules["coupon_for_confusion"]["in_force"] == {
        "matched": 3, "offers": 6, "value": {"EUR": "22.20", "USD": "61.00"}, "approvals": {}}
    assert rules["coupon_for_confusion"]["draft"] == {
        "matched": 3, "offers": 6, "value": {"EUR": "32.20", "USD": "91.00"}, "approvals": {"supervisor": 2}}
    assert rules["big_refund_for_billing"]["draft"]["approvals"] == {"supervisor": 1}
    assert rules["apology"]["draft"]["value"] == {"USD": "10.00"}
    month = this_month.strftime("%Y-%m")
    assert [(b["month"], b["spent"], b["over"]) for b in report["budget_months"]["in_force"]
            if b["source"] == "crm-east"][0] == (month, "101.00", True)
    assert [(b["month"], b["spent"], b["budget"], b["over"]) for b in report["budget_months"]["draft"]
            if b["source"] == "crm-east"][0] == (month, "131.00", "100.00", True)
    assert report["changed"] == 3
    assert [(c["decision_id"], c["fields"]) for c in report["changes"]] == [
        ("d1", ["outcome", "offers", "value", "authority"]), ("d2", ["outcome", "offers", "value", "authority"]),
        ("d5", ["offers", "value"])]
    assert report["changes"][0]["draft"]["value"] == "33.00" and report["changes"][0]["draft"]["authority"] == "supervisor"

    table = await invoke(ns, config, "policy", "simulate", "--policy", str(draft), "--since", "40d", "--show", "1",
                         "--csv", str(tmp_path / "changes.csv"))
    assert table.exit_code == 0, table.output
    assert "3 decisions would change (the first 1)" in table.output
    assert "CRM-1" in table.output and "CRM-5" not in table.output.split("would change")[1]
    assert "22.20 EUR, 61.00 USD → 32.20 EUR, 91.00 USD" in " ".join(table.output.split())
    assert f"crm-east {month}: 131.00 of 100.00 USD" in table.output
    with (tmp_path / "changes.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["decision_id"], r["in_force_value"], r["draft_value"], r["draft_currency"]) for r in rows] == [
        ("d1", "23.00", "33.00", "USD"), ("d2", "38.00", "58.00", "USD"), ("d5", "22.20", "32.20", "EUR")]
    assert rows[0]["draft_offers"] == "coupon 25.00 USD; free_shipping 8.00 USD"

    only_west = await invoke(ns, config, "policy", "simulate", "--policy", str(draft), "--since", "40d",
                             "--source", "crm-west", "--json")
    assert json.loads(only_west.output)["decisions"] == 1
    assert await snapshot(ns.database_url) == before, "the simulation wrote nothing"


async def test_an_invalid_draft_names_file_line_and_field(ns, tmp_path):
    config = tmp_path / "config"
    write(config / "compensation.yaml", comp.IN_FORCE_TEXT)
    draft = write(tmp_path / "compensation_draft.yaml", comp.DRAFT_TEXT.replace("limit: 500", "limit: lots"))
    result = await invoke(ns, config, "policy", "simulate", "--policy", str(draft))
    assert result.exit_code == 1
    line = comp.DRAFT_TEXT.splitlines().index("    limit: 500") + 1
    assert f"{draft}:{line}: authority.1.limit" in result.output
    assert "Traceback" not in result.output
    missing = await invoke(ns, config, "policy", "simulate", "--policy", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and f"file not found: {tmp_path / 'nope.yaml'}" in missing.output
    wrong_kind = write(tmp_path / "followup_draft.yaml", (Path("config") / "followup.yaml").read_text())
    refused = await invoke(ns, config, "policy", "simulate", "--policy", str(wrong_kind))
    assert refused.exit_code == 1 and "replays compensation and sla policies" in refused.output


# ---------- sla ----------
async def test_an_sla_draft_against_case_activity_in_kafka(ns, tmp_path):
    await ensure_topics(ns.settings(), (CLASSIFIED, CASE_ACTIVITY, SLA))
    t0 = datetime.now(timezone.utc) - timedelta(days=2, hours=1)
    for events in sla_cases.case_events(t0).values():
        for event in events:
            topic = CLASSIFIED if event.type == "complaint.classified" else CASE_ACTIVITY
            await ns.kafka.publish(topic, dump(event), key=event.case_id)
    # an older case, outside --since 3d
    await ns.kafka.publish(CLASSIFIED, dump(classified_event(case_id="OLD", received_at=t0 - timedelta(days=5))))
    # what the service actually published: C's first-contact breach (twice: the outbox republished)
    # and a met-late update of E
    breached = {"type": "sla.breached", "case_id": "C", "clock": "first_contact", "priority": "P2",
                "due_at": (t0 + timedelta(hours=1)).isoformat(), "occurred_at": t0.isoformat(), "event_id": "s-1"}
    await ns.kafka.publish(SLA, breached)
    await ns.kafka.publish(SLA, breached)
    await ns.kafka.publish(SLA, {**breached, "type": "sla.met", "clock": "update", "breached": True, "event_id": "s-2",
                                 "case_id": "E"})
    config = tmp_path / "config"
    write(config / "sla.yaml", sla_cases.IN_FORCE)
    draft = write(tmp_path / "sla_draft.yaml", sla_cases.DRAFT)
    published = {t: len(await ns.kafka.read_all(t)) for t in (CLASSIFIED, CASE_ACTIVITY, SLA)}

    result = await invoke(ns, config, "policy", "simulate", "--policy", str(draft), "--since", "3d", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["kind"] == "sla" and report["cases"] == 5
    rows = {(r["clock"], r["priority"]): (r["actual"], r["in_force"], r["draft"], r["change"])
            for r in report["breaches"]}
    assert rows == {
        ("first_contact", "P2"): (1, 1, 2, 1), ("first_contact", "P3"): (0, 1, 1, 0),
        ("update", "P2"): (1, 2, 2, 0), ("update", "P3"): (0, 1, 1, 0), ("resolution", "P2"): (0, 2, 2, 0),
    }
    assert report["totals"] == {"actual": 2, "in_force": 7, "draft": 8}
    assert report["changed_breaches"] == [{"case_id": "A", "clock": "first_contact", "priority": "P2", "in_force": [],
                                           "draft": [(t0 + timedelta(minutes=30)).isoformat()]}]

    table = await invoke(ns, config, "policy", "simulate", "--policy", str(draft), "--since", "3d",
                         "--csv", str(tmp_path / "breaches.csv"))
    assert table.exit_code == 0, table.output
    assert "sla.breached" in table.output and "1 case clocks would breach differently" in table.output
    with (tmp_path / "breaches.csv").open(encoding="utf-8") as f:
        assert [(r["case_id"], r["clock"], r["in_force_breaches"], r["draft_breaches"]) for r in csv.DictReader(f)] == [
            ("A", "first_contact", "0", "1")]
    first_contact_p2 = next(line for line in table.output.splitlines() if "first_contact" in line and "P2" in line)
    assert [cell.strip() for cell in first_contact_p2.split("│") if cell.strip()] == [
        "first_contact", "P2", "1", "1", "2", "+1"]
    assert {t: len(await ns.kafka.read_all(t)) for t in (CLASSIFIED, CASE_ACTIVITY, SLA)} == published, \
        "the simulation published nothing"


def test_an_unreachable_server_is_one_line_and_exit_2(tmp_path):
    draft = write(tmp_path / "compensation_draft.yaml", comp.DRAFT_TEXT)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", "DATABASE_URL": "postgresql://ops:pw@127.0.0.1:1/x",
           "HELPDESK_CONFIG_DIR": str(Path("config").resolve())}
    result = subprocess.run([sys.executable, "-m", "services.cli", "policy", "simulate", "--policy", str(draft)],
                            capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "unreachable" in result.stderr and "Traceback" not in result.stderr


async def test_a_database_the_compensation_service_never_used_is_said_so(ns, tmp_path):
    config = tmp_path / "config"
    write(config / "compensation.yaml", comp.IN_FORCE_TEXT)
    draft = write(tmp_path / "compensation_draft.yaml", comp.DRAFT_TEXT)
    result = await invoke(ns, config, "policy", "simulate", "--policy", str(draft))
    assert result.exit_code == 1 and "no compensation.decisions table" in result.output
