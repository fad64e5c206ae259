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
from services.case_view import case_rows, to_json
from services.cli import app
from services.registry import NAMES

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
    clock = {"case_id": CASE, "priority": "P1", "calendar": "24x7", "started_by": "cls-1", "paused_at": None,
             "paused_total": timedelta(0), "breached_at": None, "ended_at": None, "warnings_sent": [],
             "escalations_sent": 0, "arming": 1, "armed_timers": [], "counted_before": timedelta(0), "promise_id": None}
    # as sla stores them: the first clocks started by the classification (`classified_by`), the
    # update and promise clocks by the contact that started them
    followup = {"case_id": CASE, "customer_id": "C-881", "channel": "email", "reason": "", "causation_id": "e-9",
                "closed_at": None}
    return {
        "intake.cases": [{"case_id": CASE, "customer_id": "C-881", "source": "crm-east", "channel": "phone",
                          "category": "wrong_item_or_install", "severity": "high", "temperament": "upset", "loyalty": "loyal",
                          "publicity_risk": "low", "priority": "P1", "complaints": 2, "first_received_at": at(0),
                          "last_received_at": at(600)}],
        "intake.complaints": [
            {"event_id": "e-1", "case_id": CASE, "occurred_at": at(0), "repeat_contacts": 0,
             "classification": {**classification, "priority": "P2"}, "policy_version": "v1", "recorded_at": at(1)},
            {"event_id": "e-2", "case_id": CASE, "occurred_at": at(600), "repeat_contacts": 1,
             "classification": classification, "policy_version": "v1", "recorded_at": at(601)},
        ],
        "sla.cases": [{"case_id": CASE, "priority": "P1", "source": "crm-east", "classified_by": "cls-1", "resolved": True,
                       "paused_at": None, "kept_before_made": []}],
        "sla.clocks": [
            {**clock, "clock_key": "first_contact", "kind": "first_contact", "started_at": at(0), "target": timedelta(hours=1),
             "due_at": at(3600), "state": "met", "ended_at": at(1200)},
            {**clock, "clock_key": "promise:P-callback-1", "kind": "promise", "promise_id": "P-callback-1",
             "started_at": at(1200), "target": timedelta(hours=2), "due_at": at(1200 + 7200), "state": "met", "started_by": "k-1",
             "breached_at": at(1200 + 7200), "ended_at": at(1200 + 9000)},
            {**clock, "clock_key": "update", "kind": "update", "started_at": at(1200), "started_by": "k-1", "target": timedelta(hours=4),
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
             "status": "cancelled", "created_at": at(86400), "closed_at": at(9 * 86400), "reason": "customer_returned"},
            {**followup, "followup_id": "f-4", "kind": "satisfaction_survey", "due_at": at(86400), "status": "skipped",
             "created_at": at(86400), "reason": "open_case"},
        ],
        "followup.survey_responses": [{"event_id": "s-1", "customer_id": "C-881", "case_id": CASE, "followup_id": "f-1",
                                       "answered_at": at(3 * 86400), "score": 9.0}],
    }


def rendered(width: int = 100, tables: dict[str, list[dict]] | None = None, case: str = CASE) -> str:
    console = Console(width=width, file=io.StringIO(), highlight=False, color_system=None)
    render(build_view(case, case_tables() if tables is None else tables), console)
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
    for status in ("sent at 09:00:02", "planned", "cancelled at 2026-03-11", "the customer returned",
                   "skipped: open_case"):
        assert status in text, status
    assert "gesture 150.00 EUR (free maintenance visit)" in " ".join(text.split()), "wrapped, not folded"


def test_the_timeline_is_in_time_order():
    timeline = rendered().split("Timeline (UTC)")[1]
    expected = ["complaint received: P2", "first contact clock started",
                "needs approval: 7950.00 EUR", "complaint received (repeat contact 1): P1",
                "answer 'approve' from manager M-7: refused", "approved by director D-1",
                "case resolved", "planned: thank_you_note, retention_checkin ×2", "satisfaction_survey skipped: open_case",
                "thank_you_note sent", "survey answered: score 9",
                "the customer returned: retention_checkin cancelled"]
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


def _invoke(ns, *args, columns: str | None = "100"):
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args), env={"DATABASE_URL": ns.database_url, "COLUMNS": columns})
    finally:
        get_settings.cache_clear()


@pytest.mark.integration
async def test_case_show_reads_every_service_schema(ns):
    await _store(ns.database_url, case_tables())
    shown = await asyncio.to_thread(_invoke, ns, "case", "show", CASE)
    assert shown.exit_code == 0, shown.output
    assert shown.output == rendered(), "the command shows what the rows say"
    narrow = await asyncio.to_thread(lambda: _invoke(ns, "case", "show", CASE, columns="80"))
    assert narrow.exit_code == 0 and narrow.output == rendered(80), "COLUMNS=80 is respected"

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
    assert result.exit_code == 2 and "cannot read the case from PostgreSQL at 127.0.0.1:9/x" in result.output
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
    from tests.builders import complaint_event

    for name in NAMES:
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
    await ns.kafka.publish(CASE_ACTIVITY, activity("case.resolved", 10, resolution="new coffee"), key=case)
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

    await ns.kafka.publish(CASE_ACTIVITY, activity("case.reopened", 12), key=case)
    await ns.kafka.wait_for(SLA, lambda rs: sum(r["type"] == "sla.started" and r.get("clock") == "resolution"
                                                and r["case_id"] == case for r in rs) >= 2, timeout=60)
    shown = await asyncio.to_thread(_invoke, ns, "case", "show", case)
    assert shown.exit_code == 0, shown.output
    flat = " ".join(shown.output.split())
    assert "reopened 1×" in shown.output.splitlines()[0] and "resolution clock restarted" in flat
    assert flat.index("case resolved") < flat.index("case reopened: resolution and update clocks restart")


def test_without_intake_rows_the_header_comes_from_the_other_services():
    tables = {k: v for k, v in case_tables().items() if k.startswith("compensation")}
    tables["compensation.decisions"][0]["inputs"]["complaint"].update(
        priority="P2", category="delay", loyalty="vip", temperament="calm", customer_id="C-9", channel="email")
    console = Console(width=100, file=io.StringIO(), highlight=False, color_system=None)
    render(build_view(CASE, tables), console)
    text = console.file.getvalue()
    assert f"Case {CASE} · P2 delay · open" in text and "customer C-9 (vip, calm) · zone Europe/Berlin" in text
    assert "intake has no row for this case" in text and "?" not in text


# ---------- width, padding ----------
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("columns", [80, 100])
def test_the_command_respects_columns_and_pads_no_line(monkeypatch, columns):
    """Through the command's own console: COLUMNS sets the width, no line is longer or ends in blanks."""
    from services import case_cli

    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setenv("COLUMNS", str(columns))
    case_cli.render(build_view(CASE, case_tables()), case_cli._console())
    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) == columns, "the wide tables use the width they get"
    assert not [line for line in lines if line != line.rstrip()], "trailing blanks"
    assert "…" not in out.getvalue(), "nothing cut with an ellipsis"
    for word in ("wrong_install_loyal_customer", "satisfaction_survey", "retention_checkin", "promise P-callback-1",
                 "2026-03-02 09:00:05", "7950.00 EUR", "03-02 11:00 CET"):
        assert word in out.getvalue(), word


def test_without_columns_it_is_100_wide_off_a_terminal_and_the_terminal_width_on_one(monkeypatch):
    from services.case_cli import console_width

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert console_width() == 100
    monkeypatch.setattr("sys.stdout", Tty())
    monkeypatch.setattr("shutil.get_terminal_size", lambda fallback=(80, 24): __import__("os").terminal_size((132, 40)))
    assert console_width() == 132
    monkeypatch.setenv("COLUMNS", "72")
    assert console_width() == 72, "COLUMNS wins, also on a terminal"
    monkeypatch.setenv("COLUMNS", "12")
    assert console_width() == 40, "never narrower than 40"


@pytest.mark.parametrize("width", [80, 100])
def test_no_line_ends_in_blanks_in_colour_either(width):
    console = Console(width=width, file=io.StringIO(), highlight=False, force_terminal=True, color_system="standard")
    render(build_view(CASE, case_tables()), console)
    text = console.file.getvalue()
    assert "\x1b[" in text, "coloured"
    for line in text.splitlines():
        plain = ANSI.sub("", line)
        assert plain == plain.rstrip() and len(plain) <= width, repr(line)


# ---------- durations ----------
def test_durations_read_as_days_hours_minutes():
    from services.case_cli import human_duration

    assert human_duration(timedelta(minutes=3018)) == "2d 2h 18m"
    assert human_duration(timedelta(minutes=3018), days=False) == "50h 18m", "working time: hours, not days"
    assert human_duration(timedelta(hours=2)) == "2h"
    assert human_duration(timedelta(seconds=90)) == "1m 30s"
    assert human_duration(timedelta(seconds=3630)) == "1h 0m 30s"
    assert human_duration(timedelta(0)) == "0s" and human_duration(timedelta(seconds=-60)) == "-1m"
    tables = case_tables()
    promise = tables["sla.clocks"][1]
    promise.update(target=timedelta(minutes=3018), due_at=promise["started_at"] + timedelta(minutes=3018))
    text = rendered(tables=tables)
    assert "3018m" not in text and "promise P-callback-1  2d 2h 18m" in text
    assert "resolution            72h" in text, "a business-calendar target in working hours"


# ---------- completeness: what the services store about pause, reopen, returns, automated contact ----------
def reopened_tables() -> dict[str, list[dict]]:
    """A case resolved, then reopened: sla restarted resolution and update (one row per clock, the
    first round's runs overwritten); followup kept the first resolution's time and cancelled the
    note and survey; compensation counted the reopen."""
    tables = case_tables()
    reopen = at(2 * 86400)
    for clock in tables["sla.clocks"]:
        if clock["kind"] in ("resolution", "update"):
            clock.update(started_at=reopen, started_by="reopen-1", state="running", ended_at=None, breached_at=None,
                         warnings_sent=[], due_at=reopen + clock["target"])
    tables["sla.cases"][0]["resolved"] = False
    tables["compensation.cases"][0]["reopens"] = 1
    tables["followup.cases"][0]["status"] = "open"
    tables["followup.followups"] = [
        {**tables["followup.followups"][1], "followup_id": "f-5", "kind": "thank_you_note", "status": "cancelled",
         "due_at": at(3 * 86400), "closed_at": reopen + timedelta(seconds=3), "reason": "case_reopened"},
        {**tables["followup.followups"][1], "followup_id": "f-6", "kind": "satisfaction_survey", "status": "cancelled",
         "due_at": at(4 * 86400), "closed_at": reopen + timedelta(seconds=3), "reason": "case_reopened"},
    ]
    tables.pop("followup.survey_responses")
    return tables


def test_a_reopen_shows_both_rounds_as_far_as_they_are_stored():
    text = rendered(tables=reopened_tables())
    assert text.splitlines()[0].endswith("· open, reopened 1×")
    timeline = " ".join(text.split("Timeline (UTC)")[1].split())
    expected = ["first contact met", "case resolved", "planned: thank_you_note",
                "case reopened: resolution and update clocks restart (sla keeps only this run; the earlier "
                "round's clocks are not stored)", "resolution clock restarted: 72h", "update clock started: 4h",
                "the case was reopened: thank_you_note, satisfaction_survey cancelled"]
    positions = [timeline.find(t) for t in expected]
    assert -1 not in positions and positions == sorted(positions), (positions, timeline)
    clocks = " ".join(text.split("SLA clocks")[1].split("Compensation")[0].split())
    assert "running · restarted by the reopen at 2026-03-04 09:00:00" in clocks
    assert "resolution met" not in timeline, "the first round's verdict is not stored: not invented"


def test_a_repeat_complaint_that_raised_the_priority_reads_as_a_re_target():
    tables = case_tables()
    first = tables["sla.clocks"][0]
    first.update(started_at=at(600), started_by="cls-2", counted_before=timedelta(minutes=10), priority="P1",
                 due_at=at(600 + 3000))
    text = " ".join(rendered(tables=tables).split())
    assert "first contact clock re-targeted to P1: 1h, due 10:00:00, 10m already counted" in text
    assert "re-targeted to P1 at 09:10:00" in text, "in the clock's state too"
    assert text.find("complaint received (repeat contact 1)") < text.find("first contact clock re-targeted")


def test_a_pause_shows_while_it_lasts_and_after_as_time_not_counted():
    tables = case_tables()
    tables["sla.cases"][0].update(resolved=False, paused_at=at(5400))
    clocks = {c["clock_key"]: c for c in tables["sla.clocks"]}
    clocks["resolution"].update(state="paused", paused_at=at(5400), ended_at=None)
    clocks["update"].update(state="paused", paused_at=at(5400), ended_at=None, paused_total=timedelta(minutes=30))
    clocks["first_contact"].update(paused_total=timedelta(0))
    clocks["promise:P-callback-1"]["calendar"] = "24x7"
    tables["followup.cases"][0].update(status="open")
    text = rendered(tables=tables)
    assert text.splitlines()[0].endswith("· paused")
    flat = " ".join(text.split())
    assert "2026-03-02 10:30:00 sla case paused (waiting on the customer): resolution and update clocks stop" in flat
    assert "paused since 10:30:00, 30m paused before" in flat
    # a pause that ended is stored only as the working time it kept off the clock
    clocks["update"].update(state="met", paused_at=None, ended_at=at(7200), paused_total=timedelta(hours=1))
    tables["sla.cases"][0]["paused_at"] = None
    flat = " ".join(rendered(tables=tables).split())
    assert "met at 11:00:00, 1h paused not counted" in flat and "update met (1h paused, not counted)" in flat
    assert "case paused" not in flat, "no pause time is invented once it is over"


def test_activity_waiting_for_its_classification_says_when_it_was_automated():
    tables = case_tables()
    tables["sla.pending_activity"] = [
        {"event_id": "p-1", "case_id": CASE, "occurred_at": at(30), "kept_at": at(31),
         "event": {"type": "case.contacted", "by": "bot", "automated": False}},
        {"event_id": "p-2", "case_id": CASE, "occurred_at": at(40), "kept_at": at(41),
         "event": {"type": "case.contacted", "by": "agent"}},
    ]
    text = " ".join(rendered(tables=tables).split())
    assert "case.contacted (automated) waits for the complaint's classification" in text
    assert "case.contacted waits for the complaint's classification" in text


def test_a_survey_skipped_when_due_is_shown_when_it_was_skipped():
    tables = case_tables()
    skipped = tables["followup.followups"][3]
    skipped.update(closed_at=at(2 * 86400), reason="cooldown_after_response")
    text = " ".join(rendered(tables=tables).split())
    assert "2026-03-04 09:00:00 followup satisfaction_survey skipped when due: cooldown_after_response" in text


# ---------- contradictions: met before its due time, yet breached ----------
def backdated_tables(recorded_after: timedelta, reported: datetime | None = None) -> dict[str, list[dict]]:
    """A complaint dated 06:30 (first contact due 08:30) and a contact the CRM dates 07:41 that
    reached sla after its breach timer had fired: the clock is met at 07:41 with breached_at 08:30."""
    case = "CRM-77002"
    complained = datetime(2026, 3, 2, 6, 30, tzinfo=timezone.utc)
    clock = {"case_id": case, "priority": "P2", "calendar": "24x7", "started_by": "cls-9", "paused_at": None,
             "paused_total": timedelta(0), "warnings_sent": [0.5], "escalations_sent": 0, "arming": 3,
             "armed_timers": [], "counted_before": timedelta(0), "promise_id": None, "clock_key": "first_contact",
             "kind": "first_contact", "started_at": complained, "target": timedelta(hours=2),
             "due_at": complained + timedelta(hours=2), "state": "met", "breached_at": complained + timedelta(hours=2),
             "ended_at": complained + timedelta(minutes=71), "updated_at": reported}
    return {
        "intake.complaints": [{"event_id": "e-9", "case_id": case, "occurred_at": complained, "repeat_contacts": 0,
                               "classification": {"priority": "P2", "category": "delay", "decided_by": "keywords"},
                               "policy_version": "v1", "recorded_at": complained + recorded_after}],
        "sla.cases": [{"case_id": case, "priority": "P2", "source": "crm-east", "classified_by": "cls-9",
                       "resolved": False, "paused_at": None, "kept_before_made": []}],
        "sla.clocks": [clock],
    }


def test_a_complaint_that_arrived_after_its_due_time_reads_breached_on_arrival():
    text = rendered(tables=backdated_tables(timedelta(hours=2, minutes=30)), case="CRM-77002")
    flat = " ".join(text.split())
    assert "breached on arrival (due 08:30:00 had passed when the complaint arrived at 09:00:00); met at 07:41:00 " \
           "per the CRM" in flat
    assert "met late" not in flat, "met in time by the CRM's clock: never 'met late'"
    timeline = flat.split("Timeline (UTC)")[1]
    expected = ["06:30:00 intake complaint received: P2 delay, by keywords; reached intake 2h 30m later",
                "07:41:00 sla first contact met per the CRM, before its due time; sla learned of it after its due "
                "time: counted as breached",
                "08:30:00 sla first contact breached on arrival: its due time had passed when the complaint arrived "
                "at 09:00:00"]
    positions = [timeline.find(t) for t in expected]
    assert -1 not in positions and positions == sorted(positions), (positions, timeline)


def test_a_contact_reported_after_the_due_time_reads_counted_as_breached():
    reported = datetime(2026, 3, 2, 9, 5, tzinfo=timezone.utc)
    flat = " ".join(rendered(tables=backdated_tables(timedelta(seconds=2), reported), case="CRM-77002").split())
    assert "counted as breached: met at 07:41:00 per the CRM, before its due time, but sla learned of it only " \
           "after the due time at 09:05:00" in flat
    assert "08:30:00 sla first contact breached: sla knew of no first contact by its due time" in flat
    assert "met late" not in flat and "breached on arrival" not in flat and "reached intake" not in flat


# ---------- ordering within one instant ----------
def test_at_one_instant_what_started_comes_before_what_ended_whatever_the_row_order():
    import random

    tables = case_tables()
    same = at(86400)
    # one transaction (one now()) planned a check-in and cancelled another; a clock started as another ended
    tables["followup.followups"][2].update(closed_at=same)
    tables["sla.clocks"].append({**tables["sla.clocks"][2], "clock_key": "promise:P-2", "kind": "promise",
                                 "promise_id": "P-2", "started_at": same, "due_at": same + timedelta(hours=1),
                                 "state": "running", "ended_at": None})
    timeline = rendered(tables=tables).split("Timeline (UTC)")[1]
    expected = ["case resolved", "promise P-2 clock started", "planned: thank_you_note", "resolution met",
                "update cancelled", "satisfaction_survey skipped", "the customer returned: retention_checkin cancelled"]
    positions = [timeline.find(t) for t in expected]
    assert -1 not in positions and positions == sorted(positions), (positions, timeline)
    for seed in range(5):  # a stable order: the rows' order in the store does not matter
        shuffled = {name: random.Random(seed).sample(rows, len(rows)) for name, rows in tables.items()}
        assert rendered(tables=shuffled).split("Timeline (UTC)")[1] == timeline
