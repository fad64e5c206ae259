"""`helpdesk case show`: a timeline people read at 100 columns, and `--json` for the raw rows."""
from __future__ import annotations

import asyncio
import io
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from rich.console import Console
from typer.testing import CliRunner

from services.case_cli import build_view, render
from services.cli import app
from shared.case_view import case_rows, to_json

runner = CliRunner()
CASE = "CRM-77001"
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def case_tables() -> dict[str, list[dict]]:
    """One case as the four services store it: a repeat complaint, clocks in every state, an
    escalated and approved compensation with a refused answer, follow-ups in every status."""
    classification = {"priority": "P1", "category": "wrong_item_or_install", "severity": "high", "temperament": "upset",
                      "loyalty": "loyal", "publicity_risk": "low", "decided_by": "keywords", "needs_review": False,
                      "confidence": None, "reasons": ["category wrong_item_or_install: mentions 'install*'",
                                                      "threat to sue: 'my solicitor'"]}
    clock = {"case_id": CASE, "priority": "P1", "calendar": "24x7", "started_by": "e-1", "paused_at": None,
             "paused_total": timedelta(0), "breached_at": None, "ended_at": None, "warnings_sent": [],
             "escalations_sent": 0, "arming": 1, "armed_timers": [], "counted_before": timedelta(0), "promise_id": None}
    followup = {"case_id": CASE, "customer_id": "C-881", "channel": "email", "reason": "", "causation_id": "e-9",
                "closed_at": None}
    return {
        "intake.cases": [{"case_id": CASE, "customer_id": "C-881", "source": "crm-east", "channel": "phone",
                          "category": "wrong_item_or_install", "severity": "high", "temperament": "upset", "loyalty": "loyal",
                          "publicity_risk": "low", "priority": "P1", "complaints": 2, "first_received_at": at(0),
                          "last_received_at": at(600)}],
        "intake.complaints": [
            {"event_id": "e-1", "case_id": CASE, "occurred_at": at(0), "repeat_contacts": 0,
             "classification": {**classification, "priority": "P2"}, "policy_version": "v1"},
            {"event_id": "e-2", "case_id": CASE, "occurred_at": at(600), "repeat_contacts": 1,
             "classification": classification, "policy_version": "v1"},
        ],
        "sla.cases": [{"case_id": CASE, "priority": "P1", "source": "crm-east", "classified_by": "c-2", "resolved": True,
                       "paused_at": None, "kept_before_made": []}],
        "sla.clocks": [
            {**clock, "clock_key": "first_contact", "kind": "first_contact", "started_at": at(0), "target": timedelta(hours=1),
             "due_at": at(3600), "state": "met", "ended_at": at(1200)},
            {**clock, "clock_key": "promise:P-callback-1", "kind": "promise", "promise_id": "P-callback-1",
             "started_at": at(1200), "target": timedelta(hours=2), "due_at": at(1200 + 7200), "state": "met",
             "breached_at": at(1200 + 7200), "ended_at": at(1200 + 9000)},
            {**clock, "clock_key": "update", "kind": "update", "started_at": at(1200), "target": timedelta(hours=4),
             "due_at": at(1200 + 14400), "state": "cancelled", "ended_at": at(86400)},
            {**clock, "clock_key": "resolution", "kind": "resolution", "calendar": "berlin_office", "started_at": at(0),
             "target": timedelta(days=3), "due_at": at(3 * 86400), "state": "met", "ended_at": at(86400),
             "warnings_sent": [0.5]},
        ],
        "compensation.cases": [{"case_id": CASE, "reopens": 0}],
        "compensation.decisions": [{
            "decision_id": "d-1", "case_id": CASE, "customer_id": "C-881", "source": "crm-east", "causation_id": "c-1",
            "grant_round": 1, "outcome": "pending_approval", "status": "approved", "rule_id": "wrong_install_loyal_customer",
            "policy_version": "p1", "offers": [{"kind": "replacement", "value": 7800.0, "note": "the right item"},
                                               {"kind": "gesture", "value": 150.0, "description": "free maintenance visit"},
                                               {"kind": "personal_note", "value": 0.0, "handwritten": True}],
            "value": Decimal("7950.00"), "currency": "EUR", "authority": "director", "reason_code": "over_agent_limit",
            "reason_codes": ["over_agent_limit"], "inputs": {"complaint": {"customer_timezone": "Europe/Berlin"}},
            "explanation": ["rule wrong_install_loyal_customer: MATCHED"], "decided_at": at(5),
            "settled_at": at(7200), "approver_role": "director", "approver_id": "D-1", "escalations": 1,
            "budget_currency": "USD", "budget_value": Decimal("8600.00")}],
        "compensation.approval_answers": [
            {"event_id": "a-1", "decision_id": "d-1", "answer": "approve", "approver_role": "manager",
             "approver_id": "M-7", "accepted": False, "reason": "approver_not_authorised", "received_at": at(3600)},
            {"event_id": "a-2", "decision_id": "d-1", "answer": "approve", "approver_role": "director",
             "approver_id": "D-1", "accepted": True, "reason": "ok", "received_at": at(7200)},
        ],
        "followup.cases": [{"case_id": CASE, "customer_id": "C-881", "category": "wrong_item_or_install",
                            "temperament": "upset", "loyalty": "loyal", "timezone": "Europe/Berlin", "received_at": at(0),
                            "status": "resolved", "resolved_at": at(86400)}],
        "followup.followups": [
            {**followup, "followup_id": "f-1", "kind": "thank_you_note", "due_at": at(2 * 86400), "status": "due",
             "created_at": at(86400), "closed_at": at(2 * 86400 + 2)},
            {**followup, "followup_id": "f-2", "kind": "retention_checkin", "due_at": at(8 * 86400), "status": "scheduled",
             "created_at": at(86400), "reason": "retention check-in +7d"},
            {**followup, "followup_id": "f-3", "kind": "retention_checkin", "due_at": at(31 * 86400),
             "status": "cancelled", "created_at": at(86400), "closed_at": at(9 * 86400), "reason": "customer returned"},
            {**followup, "followup_id": "f-4", "kind": "satisfaction_survey", "due_at": at(86400), "status": "skipped",
             "created_at": at(86400), "reason": "open_case"},
        ],
        "followup.survey_responses": [{"event_id": "s-1", "customer_id": "C-881", "case_id": CASE, "followup_id": "f-1",
                                       "answered_at": at(3 * 86400), "score": 9.0}],
    }


def rendered(width: int = 100) -> str:
    console = Console(width=width, file=io.StringIO(), highlight=False, color_system=None)
    render(build_view(CASE, case_tables()), console)
    return console.file.getvalue()


def test_the_timeline_fits_100_columns_and_folds_no_id():
    text = rendered()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert len(lines) < 60, "one case is a screen, not 300 lines"
    for word in ("wrong_install_loyal_customer", "satisfaction_survey", "retention_checkin", "promise P-callback-1",
                 "2026-03-02 09:00:05", "7950.00 EUR", "7800.00 EUR", "approved by director D-1, escalated 1×"):
        assert any(word in line for line in lines), f"{word!r} is cut or folded:\n{text}"


def test_the_header_says_what_the_case_is_in_whose_zone_without_names():
    text = rendered()
    header = text.split("SLA clocks")[0]
    assert f"Case {CASE} · P1 wrong_item_or_install (by keywords) · resolved" in header
    assert "customer C-881 (loyal, upset) · zone Europe/Berlin" in header
    assert "2 complaint(s), the first 2026-03-02 09:00:00 UTC" in header and "my solicitor" in header
    assert "Times are UTC; 'local' is the customer's time (Europe/Berlin)" in header


def test_clocks_offers_and_followups_say_their_state_in_words():
    text = rendered()
    assert "met at 09:20:00" in text  # first contact within its hour
    assert "met late at 11:50:00" in text  # the promise kept half an hour after its due time
    assert "cancelled at 2026-03-03 09:00:00" in text
    assert "counts berlin_office hours" in text
    assert "2026-03-02 10:00:00  03-02 11:00 CET" in text, "due times in UTC and in the customer's zone"
    for status in ("sent at 09:00:02", "planned", "cancelled at 2026-03-11", "customer returned",
                   "skipped: open_case"):
        assert status in text, status
    assert "gesture 150.00 EUR (free maintenance visit)" in " ".join(text.split()), "wrapped, not folded"


def test_the_timeline_is_in_time_order():
    timeline = rendered().split("Timeline (UTC)")[1]
    expected = ["complaint received: P2", "first contact clock started",
                "needs approval: 7950.00 EUR", "complaint received (repeat contact 1): P1",
                "answer 'approve' from manager M-7: refused", "approved by director D-1",
                "case resolved", "planned: thank_you_note, retention_checkin ×2", "satisfaction_survey skipped: open_case",
                "thank_you_note sent", "survey answered: score 9", "retention_checkin cancelled"]
    positions = [timeline.find(text) for text in expected]
    assert -1 not in positions, [t for t, p in zip(expected, positions) if p < 0]
    assert positions == sorted(positions), timeline
    whens = [line[:19] for line in timeline.splitlines() if line[:4] == "2026"]
    assert whens == sorted(whens)


def test_json_keeps_offsets_exact_decimals_and_durations():
    data = json.loads(to_json(CASE, case_tables()))
    assert data["case_id"] == CASE
    decision = data["tables"]["compensation.decisions"][0]
    assert decision["value"] == "7950.00" and decision["decided_at"] == "2026-03-02T09:00:05+00:00"
    assert data["tables"]["sla.clocks"][0]["target"] == "PT1H"
    assert decision["offers"][1]["description"] == "free maintenance visit"


# ---------- against PostgreSQL, through the command ----------
async def _store(database_url: str, tables: dict[str, list[dict]]) -> None:
    """The services' own migrations, then the rows inserted as they are."""
    from services.compensation import store as compensation
    from services.followup import store as followup
    from services.intake import store as intake
    from services.sla import store as sla
    from shared.db import create_pool, migrate

    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        for module in (intake, sla, compensation, followup):
            async with pool.acquire() as conn:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {module.SCHEMA}")
            await migrate(pool, module.SCHEMA, module.MIGRATIONS)
        async with pool.acquire() as conn:
            for name in ("json", "jsonb"):
                await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
            for table, rows in tables.items():
                for row in rows:
                    columns = ", ".join(row)
                    values = ", ".join(f"${i}" for i in range(1, len(row) + 1))
                    await conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({values})", *row.values())
            await conn.execute("INSERT INTO sla.timers (key, kind, due_at) VALUES ('CRM-77001:x', 'breach', now())")
            await conn.execute("UPDATE sla.clocks SET armed_timers = '{CRM-77001:x}' WHERE clock_key = 'update'")
    finally:
        await pool.close()


def _invoke(ns, *args):
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args), env={"DATABASE_URL": ns.database_url})
    finally:
        get_settings.cache_clear()


@pytest.mark.integration
async def test_case_show_reads_every_service_schema(ns):
    await _store(ns.database_url, case_tables())
    shown = await asyncio.to_thread(_invoke, ns, "case", "show", CASE)
    assert shown.exit_code == 0, shown.output
    assert shown.output == rendered(), "the command shows what the rows say"

    raw = await asyncio.to_thread(_invoke, ns, "case", "show", CASE, "--json")
    assert raw.exit_code == 0, raw.output
    tables = json.loads(raw.output)["tables"]
    assert {"intake.cases", "intake.complaints", "sla.cases", "sla.clocks", "compensation.decisions",
            "compensation.approval_answers", "followup.followups", "followup.survey_responses", "sla.timers"} <= set(tables)
    assert tables["compensation.decisions"][0]["value"] == "7950.00"
    assert tables["intake.complaints"][0]["classification"]["reasons"], "jsonb as JSON, not as a string"
    assert tables["sla.timers"][0]["key"] == "CRM-77001:x"
    assert await case_rows(ns.database_url, CASE) and not await case_rows(ns.database_url, "CRM-OTHER")


@pytest.mark.integration
async def test_an_unknown_case_is_a_message_and_exit_1(ns):
    await _store(ns.database_url, {})
    for args in (["case", "show", "CRM-NOPE"], ["case", "show", "CRM-NOPE", "--json"]):
        result = await asyncio.to_thread(_invoke, ns, *args)
        assert result.exit_code == 1 and "case CRM-NOPE not found" in result.output
        assert "Traceback" not in result.output and "helpdesk:helpdesk" not in result.output


def test_an_unreachable_database_is_a_message_not_a_traceback():
    result = runner.invoke(app, ["case", "show", CASE], env={"DATABASE_URL": "postgresql://u:secret@127.0.0.1:9/x"})
    assert result.exit_code == 1 and "cannot read the case from PostgreSQL at 127.0.0.1:9/x" in result.output
    assert "secret" not in result.output and isinstance(result.exception, SystemExit), "no traceback"


def test_open_clocks_say_running_paused_or_breached():
    from services.case_cli import _clock_state

    clock = {"state": "running", "due_at": at(3600), "breached_at": None, "ended_at": None, "paused_at": None,
             "warnings_sent": [0.5, 0.8], "escalations_sent": 0}
    assert _clock_state(clock) == "running, warned at 50%, 80%"
    assert _clock_state({**clock, "state": "paused", "paused_at": at(600)}) == "paused since 09:10:00"
    assert _clock_state({**clock, "state": "breached", "breached_at": at(3600), "escalations_sent": 2}) == \
        "breached at 10:00:00, still open, escalated 2×"


@pytest.mark.integration
async def test_case_show_after_the_four_services_handled_a_case(ns):
    """The real services' rows (not hand-written ones) read as a timeline with clocks, offers and follow-ups."""
    from shared.events import CASE_ACTIVITY, COMPENSATION, COMPLAINTS, FOLLOWUPS, SLA
    from tests.intake.factories import complaint_event

    for name in ("intake", "sla", "compensation", "followup"):
        ns.service(name)
    case = "CRM-E2E-1"
    now = datetime.now(timezone.utc) - timedelta(seconds=30)  # all in the past, as a CRM reports it

    def activity(kind: str, seconds: float, **fields) -> dict:
        return {"event_id": f"{kind}-{case}", "type": kind, "occurred_at": (now + timedelta(seconds=seconds)).isoformat(),
                "source": "crm-east", "case_id": case, **fields}

    await ns.kafka.publish(COMPLAINTS, complaint_event(
        event_id="complaint-e2e-1", case_id=case, occurred_at=now.isoformat(), channel="phone",
        customer={"id": "C-E2E", "timezone": "Europe/Berlin", "tier": "loyal"},
        order={"id": "O-1", "amount": 49.5, "currency": "EUR"},
        subject="Coffee not right", description="My latte was cold and the taste was not right."), key=case)
    await ns.kafka.wait_for(COMPENSATION, lambda rs: any(r["case_id"] == case for r in rs), timeout=60)
    await ns.kafka.publish(CASE_ACTIVITY, activity("case.contacted", 1), key=case)
    await ns.kafka.publish(CASE_ACTIVITY, activity("case.resolved", 2, resolution="new coffee"), key=case)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: any(r["type"] == "followup.scheduled" for r in rs), timeout=60)
    await ns.kafka.wait_for(SLA, lambda rs: any(r["type"] == "sla.met" and r.get("clock") == "resolution" for r in rs),
                            timeout=60)

    shown = await asyncio.to_thread(_invoke, ns, "case", "show", case)
    assert shown.exit_code == 0, shown.output
    text = shown.output
    assert max(len(line) for line in text.splitlines()) <= 100
    assert f"Case {case} · " in text and "resolved" in text.splitlines()[0]
    assert "zone Europe/Berlin" in text and "customer C-E2E (loyal" in text
    for section in ("SLA clocks", "Compensation", "Follow-ups", "Timeline (UTC)"):
        assert section in text, section
    assert "first contact" in text and "met at" in text
    assert re.search(r"\d+\.\d\d EUR", text), "amounts with their currency"
    assert "planned" in text and "thank_you_note" in text and "CET" in text
    timeline = text.split("Timeline (UTC)")[1]
    assert timeline.index("complaint received") < timeline.index("first contact met") < timeline.index("case resolved")
    assert "latte" not in text.lower() or "mentions" in text, "no free text but the matched keywords"


def test_without_intake_rows_the_header_comes_from_the_other_services():
    tables = {k: v for k, v in case_tables().items() if k.startswith("compensation")}
    tables["compensation.decisions"][0]["inputs"]["complaint"].update(
        priority="P2", category="delay", loyalty="vip", temperament="calm", customer_id="C-9", channel="email")
    console = Console(width=100, file=io.StringIO(), highlight=False, color_system=None)
    render(build_view(CASE, tables), console)
    text = console.file.getvalue()
    assert f"Case {CASE} · P2 delay · open" in text and "customer C-9 (vip, calm) · zone Europe/Berlin" in text
    assert "intake has no row for this case" in text and "?" not in text
