"""`helpdesk rejected list` and `helpdesk rejected replay` against the real broker: list in time order
with UTC times; replay re-checks each record first, publishes each original once, skips and lists
what would be rejected again, and needs a filter or a confirmed --all."""
from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION_APPROVALS, COMPLAINTS, REJECTED, dump
from shared.inbound import RecordRef, rejected_event
from shared.kafka import ensure_topics
from tests.builders import complaint_event

pytestmark = pytest.mark.integration
runner = CliRunner()


async def invoke(ns, *args, input: str | None = None):
    """The CLI runs its own event loop, as from a shell: run it off the test's loop."""
    return await asyncio.to_thread(_invoke, ns, list(args), input)


def _invoke(ns, args, input):
    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix, "COLUMNS": None}  # tables DEFAULT_WIDTH wide, whatever the shell says
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        return runner.invoke(app, args, env=env, input=input)
    finally:
        get_settings.cache_clear()


def rejection(topic: str, offset: int, value: bytes | None, key: str | None, reason: str, by: str,
              at: datetime | None = None, partition: int = 0) -> dict:
    """A `complaint.rejected` event as a service writes it (built by the same code)."""
    ref = RecordRef(topic=topic, partition=partition, offset=offset, key=key.encode() if key else None, value=value)
    event = rejected_event(ref, reason, ["(as the service said)"], by)
    if at is not None:
        event.occurred_at = at
    return dump(event)


async def test_list_is_oldest_first_across_partitions_with_times_in_utc(ns):
    await ensure_topics(ns.settings(), (REJECTED,))
    base = datetime(2026, 11, 29, 17, 3, 11, tzinfo=timezone.utc)
    # Published newest first, under keys that spread them over the partitions; one written with an offset.
    cases = [f"CRM-T{n}" for n in range(6)]
    for n in reversed(range(6)):
        at = base + timedelta(minutes=n)
        if n == 0:
            at = at.astimezone(timezone(timedelta(hours=1)))  # 18:03:11+01:00 is 17:03:11Z
        event = rejection(COMPLAINTS, n, b"nope", cases[n], "not_json", "intake", at)
        await ns.kafka.publish(REJECTED, event, key=cases[n])

    result = await invoke(ns, "rejected", "list")
    assert result.exit_code == 0, result.output
    order = [c for line in result.output.splitlines() for c in re.findall(r"CRM-T\d", line)]
    assert order == cases, "oldest first, newest last"
    assert "(UTC)" in result.output
    assert "2026-11-29 17:03:11Z" in result.output and "2026-11-29 17:08:11Z" in result.output

    last_two = await invoke(ns, "rejected", "list", "--limit", "2")
    assert [c for c in re.findall(r"CRM-T\d", last_two.output)] == cases[-2:]
    assert "showing the last 2" in last_two.output

    as_json = await invoke(ns, "rejected", "list", "--json", "--limit", "3")
    assert as_json.exit_code == 0, as_json.output
    lines = [json.loads(line) for line in as_json.output.splitlines()]
    assert [line["case_id"] for line in lines] == cases[-3:]
    assert lines[-1]["rejected_at"] == "2026-11-29 17:08:11Z" and lines[-1]["reason"] == "not_json"
    assert all("raw" not in line for line in lines), "the original bytes may hold personal data"


async def test_replay_needs_a_filter_or_a_confirmed_all(ns):
    await ensure_topics(ns.settings(), (REJECTED, COMPLAINTS))
    valid = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-OK-1")
    await ns.kafka.publish(REJECTED, rejection(COMPLAINTS, 3, json.dumps(valid).encode(), "CRM-OK-1", "invalid_fields", "intake"))

    bare = await invoke(ns, "rejected", "replay")
    assert bare.exit_code == 2 and "--all" in bare.output and "--reason" in bare.output

    both = await invoke(ns, "rejected", "replay", "--all", "--case", "CRM-OK-1")
    assert both.exit_code == 2

    no_stdin = await invoke(ns, "rejected", "replay", "--all")
    assert no_stdin.exit_code == 1
    assert "not confirmed" in no_stdin.output and "--yes" in no_stdin.output
    declined = await invoke(ns, "rejected", "replay", "--all", input="n\n")
    assert declined.exit_code == 1 and "not confirmed" in declined.output
    dry = await invoke(ns, "rejected", "replay", "--all", "--dry-run")
    assert dry.exit_code == 0 and "1 would be re-published" in dry.output and "CRM-OK-1" in dry.output
    assert await ns.kafka.read_all(COMPLAINTS) == [], "nothing published without a confirmation"

    confirmed = await invoke(ns, "rejected", "replay", "--all", input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    scripted = await invoke(ns, "rejected", "replay", "--all", "--yes")
    assert scripted.exit_code == 0, scripted.output
    published = await ns.kafka.read_all(COMPLAINTS)
    assert [p["event_id"] for p in published] == [valid["event_id"]] * 2


async def test_replay_publishes_what_would_now_be_accepted_once_and_skips_and_lists_the_rest(ns):
    ns.service("intake")
    bad = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-BAD-1", channel="fax")
    await ns.kafka.publish(COMPLAINTS, json.dumps(bad).encode(), key="CRM-BAD-1")
    await ns.kafka.publish(COMPLAINTS, b"garbage", key="CRM-BAD-2")
    mismatched = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-BAD-3")
    await ns.kafka.publish(COMPLAINTS, json.dumps(mismatched).encode(), key="CRM-ELSEWHERE")
    await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) == 3)

    # Records a service refused that would be accepted now (the sender's mistake was on the service's
    # side, say, and is fixed): a keyless complaint, and an activity record two services rejected.
    fixed = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-FIXED")
    await ns.kafka.publish(REJECTED, rejection(COMPLAINTS, 900, json.dumps(fixed).encode(), None, "invalid_fields", "intake"))
    contact = {"event_id": str(uuid.uuid4()), "type": "case.contacted", "occurred_at": "2026-11-23T10:00:00Z",
               "source": "crm", "case_id": "CRM-FIXED"}
    for by in ("sla", "followup"):
        await ns.kafka.publish(REJECTED, rejection(CASE_ACTIVITY, 901, json.dumps(contact).encode(), "CRM-FIXED",
                                                   "invalid_fields", by))

    dry = await invoke(ns, "rejected", "replay", "--reason", "not_json", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "0 would be re-published, 1 skipped" in dry.output
    assert re.search(rf"{re.escape(COMPLAINTS)}\[\d+\]@\d+  case CRM-BAD-2  not_json", dry.output), dry.output

    skipped = await invoke(ns, "rejected", "replay", "--topic", COMPLAINTS)
    assert skipped.exit_code == 0, skipped.output
    assert "1 to be re-published, 3 skipped" in skipped.output
    assert "case CRM-BAD-1  invalid_fields: channel" in skipped.output
    assert "case CRM-BAD-3  key_mismatch" in skipped.output and "CRM-ELSEWHERE" in skipped.output
    assert "re-published 1 record(s), skipped 3" in skipped.output

    classified = await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) >= 1)
    assert [c["causation_id"] for c in classified] == [fixed["event_id"]], "the fixed complaint went through"
    complaints = await ns.kafka.read_all(COMPLAINTS)
    [republished] = [c for c in complaints if c["event_id"] == fixed["event_id"]]
    assert republished["_key"] == "CRM-FIXED", "a keyless original goes back keyed by its case_id"
    assert [c["event_id"] for c in complaints].count(bad["event_id"]) == 1, "what would be refused again stays put"

    activity = await invoke(ns, "rejected", "replay", "--case", "CRM-FIXED", "--topic", CASE_ACTIVITY)
    assert activity.exit_code == 0, activity.output
    assert "1 rejected record(s) match: 1 to be re-published" in activity.output, "two rejections, one original"
    assert [a["event_id"] for a in await ns.kafka.read_all(CASE_ACTIVITY)] == [contact["event_id"]]
    await asyncio.sleep(1.0)
    assert len(await ns.kafka.read_all(REJECTED)) == 6, "nothing replayed was rejected again"


def test_replay_help_names_the_safety_options():
    result = runner.invoke(app, ["rejected", "replay", "--help"])
    assert result.exit_code == 0
    for option in ("--all", "--yes", "--dry-run", "--reason", "--topic", "--case"):
        assert option in result.output


def test_records_rejected_by_several_services_are_one_original():
    from services.rejected_cli import originals

    raw = b"{}"
    events = [rejection(CASE_ACTIVITY, 7, raw, "C-1", "invalid_fields", by) for by in ("sla", "followup")]
    events.append(rejection(CASE_ACTIVITY, 7, raw, "C-1", "invalid_fields", "sla", partition=1))
    found = originals(events)
    assert [(o.partition, o.offset, o.reasons) for o in found] == [(0, 7, ("invalid_fields", "invalid_fields")),
                                                                   (1, 7, ("invalid_fields",))]
    assert found[0].raw == raw and found[0].case_id == "C-1"


# ---------- review of issue 13: refused approvals, filters, untrusted text, width ----------
def answer(decision_id: str, role: str = "agent", case_id: str | None = None) -> dict:
    value = {"event_id": str(uuid.uuid4()), "type": "compensation.approved", "occurred_at": "2026-11-23T10:00:00Z",
             "decision_id": decision_id, "approver": {"role": role, "id": "A-3"}}
    if case_id is not None:
        value["case_id"] = case_id
    return value


@pytest.mark.parametrize("reason", ["unknown_decision", "not_pending", "unknown_approver_role", "approver_not_authorised"])
def test_an_approval_answer_compensation_refused_is_never_replayable(reason):
    """Its event_id was recorded when it was refused: the same bytes again would be a duplicate."""
    from services.rejected_cli import ANSWER_AGAIN, inbound_parsers, originals, recheck

    value = json.dumps(answer("D-1", case_id="CRM-A1")).encode()
    [original] = originals([rejection(COMPENSATION_APPROVALS, 5, value, "CRM-A1", reason, "compensation")])
    verdict = recheck(original, inbound_parsers())
    assert verdict.rejection is not None and verdict.rejection.reason == "not_replayable"
    assert ANSWER_AGAIN in verdict.rejection.errors[0] and reason in verdict.rejection.errors[0]
    # The same answer rejected for its form (say a field the parser now accepts) is replayable.
    [parsed_badly] = originals([rejection(COMPENSATION_APPROVALS, 6, value, "CRM-A1", "invalid_fields", "compensation")])
    assert recheck(parsed_badly, inbound_parsers()).rejection is None


async def test_replay_skips_refused_approval_answers_and_lists_them_as_answer_again(ns):
    await ensure_topics(ns.settings(), (REJECTED, COMPENSATION_APPROVALS))
    for n, reason in enumerate(("approver_not_authorised", "not_pending")):
        value = json.dumps(answer(f"D-{n}", case_id="CRM-APPR")).encode()
        await ns.kafka.publish(REJECTED, rejection(COMPENSATION_APPROVALS, n, value, "CRM-APPR", reason, "compensation"))

    dry = await invoke(ns, "rejected", "replay", "--all", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "0 would be re-published, 2 skipped (0 would be rejected again, 2 cannot be replayed)" in dry.output
    assert "would re-publish" not in dry.output
    after = dry.output.split("skipped, cannot be replayed:", 1)[1]
    assert after.count("the approver must answer again from the CRM (a new event_id)") == 2
    assert "approver_not_authorised" in after and "not_pending" in after

    real = await invoke(ns, "rejected", "replay", "--case", "CRM-APPR")
    assert real.exit_code == 0, real.output
    assert "re-published" not in real.output.replace("to be re-published", ""), "no success is claimed"
    await asyncio.sleep(0.5)
    assert await ns.kafka.read_all(COMPENSATION_APPROVALS) == []


async def test_filters_are_checked_and_the_topic_may_carry_the_prefix(ns):
    await ensure_topics(ns.settings(), (REJECTED,))
    await ns.kafka.publish(REJECTED, rejection(COMPLAINTS, 1, b"nope", "CRM-P1", "not_json", "intake"))

    for args in (["rejected", "list"], ["rejected", "replay"]):
        prefixed = await invoke(ns, *args, "--topic", ns.prefix + COMPLAINTS, *(["--dry-run"] if "replay" in args else []))
        assert prefixed.exit_code == 0, prefixed.output
        assert "CRM-P1" in prefixed.output, "the prefixed topic name matches too"
        bogus = await invoke(ns, *args, "--reason", "bogus")
        assert bogus.exit_code == 2
        assert "unknown reason 'bogus'" in bogus.output and "key_mismatch" in bogus.output
        assert "approver_not_authorised" in bogus.output
        elsewhere = await invoke(ns, *args, "--topic", "helpdesk.nowhere.v1")
        assert elsewhere.exit_code == 2 and ns.prefix + COMPLAINTS in elsewhere.output
    plain = await invoke(ns, "rejected", "list", "--topic", COMPLAINTS, "--reason", "not_json")
    assert plain.exit_code == 0 and "CRM-P1" in plain.output
    for limit in ("0", "-1"):
        bad = await invoke(ns, "rejected", "list", "--limit", limit)
        assert bad.exit_code == 2, bad.output


async def test_untrusted_text_is_printed_escaped_and_every_error_is_accounted_for(ns):
    await ensure_topics(ns.settings(), (REJECTED,))
    nasty = "CRM-\x1b[31mRED\x1b[0m\x00[bold]x"
    event = rejection(COMPLAINTS, 1, json.dumps({"case_id": nasty}).encode(), None, "invalid_fields", "intake")
    event["errors"] = [f"field{n}: wrong \x07" for n in range(8)]
    await ns.kafka.publish(REJECTED, event)

    listed = await invoke(ns, "rejected", "list")
    assert listed.exit_code == 0, listed.output
    assert "\x1b" not in listed.output and "\x00" not in listed.output and "\x07" not in listed.output
    flat = "".join(listed.output.split())  # the table may fold a cell over lines
    assert r"CRM-\x1b[31mRED\x1b[0m\x00[bold]x" in flat, "escaped, and markup shown as text"
    assert "+3more" in flat and r"field4:wrong\x07" in flat and "field5" not in flat

    replay = await invoke(ns, "rejected", "replay", "--reason", "invalid_fields", "--dry-run")
    assert "\x1b" not in replay.output and "\x00" not in replay.output
    assert r"case CRM-\x1b[31mRED\x1b[0m\x00[bold]x" in replay.output


async def test_list_fits_columns_when_not_a_terminal(ns):
    await ensure_topics(ns.settings(), (REJECTED,))
    await ns.kafka.publish(REJECTED, rejection(COMPLAINTS, 1, b"nope", "CRM-W1", "not_json", "intake"))
    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix}

    def run(columns: str | None):
        from shared.settings import get_settings

        get_settings.cache_clear()
        try:
            return runner.invoke(app, ["rejected", "list"], env={**env, "COLUMNS": columns})
        finally:
            get_settings.cache_clear()

    narrow = await asyncio.to_thread(run, "80")
    assert narrow.exit_code == 0, narrow.output
    assert max(len(line) for line in narrow.output.splitlines()) <= 80
    wide = await asyncio.to_thread(run, None)
    assert 80 < max(len(line) for line in wide.output.splitlines()) <= 160


def test_console_width_is_columns_else_the_terminal_else_a_default():
    from services.rejected_cli import DEFAULT_WIDTH, console_width

    assert console_width({"COLUMNS": "80"}, is_tty=False) == 80
    assert console_width({"COLUMNS": "80"}, is_tty=True) == 80
    assert console_width({}, is_tty=True) is None
    assert console_width({"COLUMNS": "wide"}, is_tty=False) == console_width({}, is_tty=False) == DEFAULT_WIDTH


def test_printable_escapes_control_and_bidi_characters_only():
    from services.rejected_cli import printable

    assert printable("CRM-\x1b[31m\x00\u202e\n") == r"CRM-\x1b[31m\x00\u202e\x0a"
    assert printable("Zoë-20417 é") == "Zoë-20417 é"
    assert printable(None) == ""


def test_the_known_reasons_are_the_reasons_table_of_the_contract():
    from deploy.contract_docs import CONTRACT_MD
    from services.rejected_cli import REASONS

    section = CONTRACT_MD.read_text(encoding="utf-8").split("### Reasons", 1)[1].split("###", 1)[0]
    assert set(REASONS) == set(re.findall(r"^\| `(\w+)` \|", section, re.M))


def test_a_rejection_names_the_event_it_reports_and_no_key_as_a_case_of_an_answer_without_one():
    from shared.events import ComplaintRejected

    value = answer("D-9")
    ref = RecordRef(topic=COMPENSATION_APPROVALS, partition=0, offset=1, key=b"ANY-KEY", value=json.dumps(value).encode())
    event = rejected_event(ref, "unknown_decision", ["no compensation decision has this id"], "compensation")
    assert event.case_id is None and event.key == "ANY-KEY"
    assert event.causation_id == value["event_id"]
    with_case = rejected_event(ref.model_copy(update={"value": json.dumps({**value, "case_id": "CRM-9"}).encode()}),
                               "unknown_decision", [], "compensation")
    assert with_case.case_id == "CRM-9"
    unreadable = rejected_event(ref.model_copy(update={"value": b"{oops"}), "not_json", [], "compensation")
    assert unreadable.case_id == "ANY-KEY" and unreadable.causation_id is None, "the key is the only hint left"
    complaint = rejected_event(RecordRef(topic=COMPLAINTS, partition=0, offset=2, key=b"CRM-1", value=b"[]"),
                               "not_an_object", [], "intake")
    assert complaint.case_id == "CRM-1" and complaint.causation_id is None
    assert "decision_id" in ComplaintRejected.model_fields, "a refused answer's decision, in the contract"
