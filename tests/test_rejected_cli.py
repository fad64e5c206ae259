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
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPLAINTS, REJECTED, dump
from shared.inbound import RecordRef, rejected_event
from shared.kafka import ensure_topics
from tests.intake.factories import complaint_event

pytestmark = pytest.mark.integration
runner = CliRunner()


async def invoke(ns, *args, input: str | None = None):
    """The CLI runs its own event loop, as from a shell: run it off the test's loop."""
    return await asyncio.to_thread(_invoke, ns, list(args), input)


def _invoke(ns, args, input):
    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix}
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
