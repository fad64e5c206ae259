"""A refused approval answer that left `case_id` out (it is optional: `decision_id` says which) is
reported with the case of the decision it named, so `helpdesk rejected list --case` finds it."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from typer.testing import CliRunner

from services.cli import app
from shared.events import CLASSIFIED, COMPENSATION_APPROVALS, REJECTED

from .test_compensation_service import classified, wait_for_case

pytestmark = pytest.mark.integration


def caseless_answer(decision_id: str, kind: str, role: str) -> dict:
    return {
        "event_id": str(uuid.uuid4()), "type": f"compensation.{kind}", "occurred_at": "2026-11-23T10:00:00Z",
        "source": "crm-east", "decision_id": decision_id, "approver": {"role": role, "id": "A-7"},
    }


def rejected_list(ns, *args: str):
    from shared.settings import get_settings

    env = {"KAFKA_BOOTSTRAP_SERVERS": ns.servers.kafka_bootstrap, "DATABASE_URL": ns.database_url,
           "HELPDESK_TOPIC_PREFIX": ns.prefix, "COLUMNS": "200"}
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["rejected", "list", *args], env=env)
    finally:
        get_settings.cache_clear()


async def test_a_refused_answer_without_case_id_is_reported_under_the_decisions_case(ns):
    ns.service("compensation")
    event = classified(order=(400.0, "USD"), category="confusing_process")  # 68 USD: waits for a supervisor
    case_id = event["case_id"]
    await ns.kafka.publish(CLASSIFIED, event)
    pending = (await wait_for_case(ns, case_id, "compensation.pending_approval"))[0]
    decision_id = pending["decision_id"]

    await ns.kafka.publish(COMPENSATION_APPROVALS, caseless_answer(decision_id, "approved", "agent"), key="ANY-KEY")
    await ns.kafka.publish(COMPENSATION_APPROVALS, caseless_answer(decision_id, "approved", "admin"), key="ANY-KEY")
    await ns.kafka.publish(COMPENSATION_APPROVALS, caseless_answer(decision_id, "denied", "supervisor"), key="ANY-KEY")
    await wait_for_case(ns, case_id, "compensation.denied")
    await ns.kafka.publish(COMPENSATION_APPROVALS, caseless_answer(decision_id, "approved", "manager"), key="ANY-KEY")
    unknown = caseless_answer("no-such-decision", "approved", "manager")
    await ns.kafka.publish(COMPENSATION_APPROVALS, unknown, key="ANY-KEY")

    def refusals(records: list[dict]) -> list[dict]:
        return [r for r in records if r.get("decision_id") in (decision_id, "no-such-decision")]

    records = refusals(await ns.kafka.wait_for(REJECTED, lambda rs: len(refusals(rs)) >= 4))
    by_reason = {r["reason"]: r for r in records}
    assert set(by_reason) == {"approver_not_authorised", "unknown_approver_role", "not_pending", "unknown_decision"}
    for reason in ("approver_not_authorised", "unknown_approver_role", "not_pending"):
        assert by_reason[reason]["case_id"] == case_id, reason
        assert by_reason[reason]["key"] == "ANY-KEY" and by_reason[reason]["_key"] == "ANY-KEY"  # key as it came
    assert by_reason["unknown_decision"].get("case_id") is None  # no decision, no case to name: absent

    listed = await asyncio.to_thread(rejected_list, ns, "--case", case_id)
    assert listed.exit_code == 0, listed.output
    for reason in ("approver_not_authorised", "unknown_approver_role", "not_pending"):
        assert reason in listed.output
    assert "unknown_decision" not in listed.output

