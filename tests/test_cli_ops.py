"""The `helpdesk` operator commands against the real servers."""
from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.events import CLASSIFIED, COMPLAINTS, REJECTED
from tests.builders import complaint_event

pytestmark = pytest.mark.integration
runner = CliRunner()


async def invoke(ns, *args):
    """The CLI runs its own event loop, as from a shell: run it off the test's loop."""
    return await asyncio.to_thread(_invoke, ns, *args)


def _invoke(ns, *args):
    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix}
    from shared.settings import get_settings

    get_settings.cache_clear()
    try:
        return runner.invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


async def test_ops_list_rejected_records_and_replay_them_after_a_fix(ns):
    ns.service("intake")
    bad = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-BAD-1", channel="fax")
    await ns.kafka.publish(COMPLAINTS, json.dumps(bad).encode(), key="CRM-BAD-1")
    await ns.kafka.publish(COMPLAINTS, b"garbage", key="CRM-BAD-2")
    await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) == 2)

    listed = await invoke(ns, "rejected", "list", "--reason", "invalid_fields")
    assert listed.exit_code == 0, listed.output
    assert "CRM-BAD-1" in listed.output and "CRM-BAD-2" not in listed.output

    dry = await invoke(ns, "rejected", "replay", "--case", "CRM-BAD-2", "--dry-run")
    assert dry.exit_code == 0 and "1 rejected record(s) match" in dry.output
    assert len(await ns.kafka.read_all(REJECTED)) == 2, "a dry run publishes nothing"

    # Still garbage: a replay skips it instead of having it rejected again (tests/test_rejected_cli.py).
    replayed = await invoke(ns, "rejected", "replay", "--case", "CRM-BAD-2")
    assert replayed.exit_code == 0, replayed.output
    assert "0 to be re-published, 1 skipped" in replayed.output and "not_json" in replayed.output
    await asyncio.sleep(1.5)
    assert len(await ns.kafka.read_all(REJECTED)) == 2, "nothing re-published, so nothing rejected again"


async def test_case_show_prints_what_the_services_know_about_a_case(ns):
    ns.service("intake")
    event = complaint_event(event_id=str(uuid.uuid4()), case_id="CRM-SHOW-1", subject="Order is late",
                            description="My delivery is late.")
    await ns.kafka.publish(COMPLAINTS, event)
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) == 1)
    shown = await invoke(ns, "case", "show", "CRM-SHOW-1")
    assert shown.exit_code == 0, shown.output
    assert "Case CRM-SHOW-1 · " in shown.output and "delay" in shown.output and "complaint received" in shown.output
    assert "Sue Miller" not in shown.output, "the helpdesk stores no names"
    raw = await invoke(ns, "case", "show", "CRM-SHOW-1", "--json")
    assert json.loads(raw.output)["tables"]["intake.cases"][0]["category"] == "delay"
    assert (await invoke(ns, "case", "show", "CRM-NOPE")).exit_code == 1


async def test_simulate_publishes_complaints_and_their_activity(ns):
    result = await invoke(ns, "simulate", "--rate", "20", "--duration", "1", "--seed", "7")
    assert result.exit_code == 0, result.output
    complaints = await ns.kafka.read_all(COMPLAINTS)
    assert len(complaints) == 20
    assert all(c["type"] == "complaint.received" for c in complaints)
    assert "generating" in result.output and "draining" in result.output, "two phases, not a bar stuck at 100%"
    assert re.search(r"(\d+)/\1 cases' remaining activity, (\d+)/\2 events", result.output), result.output
