"""The compensation service as a real process on a real Kafka broker and PostgreSQL server."""
from __future__ import annotations

import asyncio
import json
import shutil
import uuid
import zlib
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION, COMPENSATION_APPROVALS, REJECTED
from shared.policy import content_version

from .conftest import DEFAULT_POLICY, complaint

pytestmark = pytest.mark.integration

CONTRACT_FIELDS = {
    "event_id", "type", "occurred_at", "case_id", "causation_id", "decision_id", "customer_id", "offers", "value",
    "currency", "rule_id", "policy_version", "authority",
}
DEFAULT_VERSION = content_version(DEFAULT_POLICY.read_text(encoding="utf-8"))


def classified(case_id: str | None = None, order: tuple[float, str] | None = (100.0, "USD"), **fields) -> dict:
    fields.setdefault("category", "confusing_process")
    event = complaint(order, case_id=case_id or f"CRM-{uuid.uuid4().hex[:8]}",
                      causation_id=str(uuid.uuid4()), **fields)
    return event.model_dump(mode="json", exclude_none=True)


def answer(decision: dict, kind: str, role: str, approver_id: str = "S-1") -> dict:
    return {
        "event_id": str(uuid.uuid4()), "type": f"compensation.{kind}", "occurred_at": "2026-11-23T10:00:00Z",
        "source": "crm-east", "case_id": decision["case_id"], "decision_id": decision["decision_id"],
        "approver": {"role": role, "id": approver_id},
    }


def of_case(records: list[dict], case_id: str, kind: str | None = None) -> list[dict]:
    return [r for r in records if r.get("case_id") == case_id and (kind is None or r["type"] == kind)]


async def wait_for_case(ns, case_id: str, kind: str, count: int = 1, timeout: float = 60.0) -> list[dict]:
    records = await ns.kafka.wait_for(COMPENSATION, lambda rs: len(of_case(rs, case_id, kind)) >= count, timeout)
    return of_case(records, case_id, kind)


async def query(ns, sql: str, *args):
    conn = await asyncpg.connect(ns.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def own_config(ns, tmp_path: Path, *, edit: tuple[str, str] | None = None) -> Path:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    target = config / "compensation.yaml"
    shutil.copy(DEFAULT_POLICY, target)
    if edit:
        text = target.read_text()
        assert edit[0] in text
        target.write_text(text.replace(*edit))
    ns.config_dir = config
    return target


async def test_confusing_process_complaint_is_granted_a_coupon_and_free_shipping_and_audited(ns):
    ns.service("compensation")
    event = classified(category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, event)
    granted = (await wait_for_case(ns, event["case_id"], "compensation.granted"))[0]
    assert CONTRACT_FIELDS <= granted.keys()
    assert granted["_key"] == event["case_id"]
    assert granted["causation_id"] == event["event_id"]
    assert granted["offers"] == [{"kind": "coupon", "percent": 15, "value": 15.0}, {"kind": "free_shipping", "value": 8.0}]
    assert (granted["value"], granted["currency"], granted["authority"]) == (23.0, "USD", "agent")
    assert (granted["rule_id"], granted["policy_version"]) == ("confusing_process", DEFAULT_VERSION)
    rows = await query(ns, "SELECT * FROM compensation.decisions WHERE decision_id = $1", granted["decision_id"])
    assert rows[0]["rule_id"] == "confusing_process" and rows[0]["policy_version"] == DEFAULT_VERSION
    inputs = json.loads(rows[0]["inputs"])
    assert inputs["complaint"]["category"] == "confusing_process" and inputs["facts"]["already_compensated"] is False


async def test_the_same_classified_event_three_times_and_a_repeat_complaint_grant_once(ns):
    service = ns.service("compensation")
    event = classified(category="service_not_offered")
    for _ in range(3):
        await ns.kafka.publish(CLASSIFIED, event)
    repeat = classified(case_id=event["case_id"], category="service_not_offered", repeat_contacts=1)
    await ns.kafka.publish(CLASSIFIED, repeat)
    none = (await wait_for_case(ns, event["case_id"], "compensation.none"))[0]
    assert (none["reason_code"], none["offers"], none["authority"]) == ("already_granted", [], None)
    await asyncio.sleep(1.0)
    records = of_case(await ns.kafka.read_all(COMPENSATION), event["case_id"])
    assert [r["type"] for r in records] == ["compensation.granted", "compensation.none"]
    assert "helpdesk_compensation_duplicate_events_total" in service.metrics()
    # The database itself refuses a second compensation on the case, whatever the code does.
    conn = await asyncpg.connect(ns.database_url)
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO compensation.decisions (decision_id, case_id, customer_id, source, causation_id,"
                " grant_round, outcome, status, policy_version, offers, value, currency, reason_code, reason_codes,"
                " inputs, explanation, decided_at) VALUES ('forged', $1, 'C-1', 'crm-east', 'x', 1, 'granted',"
                " 'granted', 'v', '[]', 5, 'USD', 'within_agent_limit', '{}', '{}', '[]', now())",
                event["case_id"])
    finally:
        await conn.close()


async def test_over_limit_waits_for_a_supervisor_refuses_lower_roles_and_is_approved(ns):
    service = ns.service("compensation")
    event = classified(order=(400.0, "USD"), category="confusing_process")  # 60 coupon + 8 shipping
    await ns.kafka.publish(CLASSIFIED, event)
    pending = (await wait_for_case(ns, event["case_id"], "compensation.pending_approval"))[0]
    assert (pending["value"], pending["authority"], pending["reason_code"]) == (68.0, "supervisor", "over_agent_limit")
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "approved", "agent", "A-7"))
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "approved", "admin", "X-1"))
    refused = await ns.kafka.wait_for(REJECTED, lambda rs: len(of_case(rs, event["case_id"])) >= 2)
    reasons = {r["reason"]: r["errors"][0] for r in of_case(refused, event["case_id"])}
    assert reasons["approver_not_authorised"].startswith("role agent may approve up to 50.00 USD")
    assert reasons["approver_not_authorised"].endswith("it needs supervisor")
    assert reasons["unknown_approver_role"].startswith("unknown approver role 'admin'")
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "approved", "supervisor", "S-3"))
    approved = (await wait_for_case(ns, event["case_id"], "compensation.approved"))[0]
    assert approved["approver"] == {"role": "supervisor", "id": "S-3"}
    assert (approved["decision_id"], approved["value"], approved["offers"]) == (
        pending["decision_id"], 68.0, pending["offers"])
    rows = await query(ns, "SELECT status, approver_role FROM compensation.decisions WHERE decision_id = $1",
                       pending["decision_id"])
    assert (rows[0]["status"], rows[0]["approver_role"]) == ("approved", "supervisor")
    metrics = service.metrics()
    assert 'helpdesk_compensation_approvals_refused_total{reason="approver_not_authorised"} 1.0' in metrics
    assert 'helpdesk_compensation_approvals_refused_total{reason="unknown_approver_role"} 1.0' in metrics
    assert 'helpdesk_compensation_value_granted_total{currency="USD"} 68.0' in metrics


async def test_a_manager_may_deny_and_a_second_answer_is_refused(ns):
    ns.service("compensation")
    event = classified(order=(2000.0, "EUR"), category="wrong_item_or_install", loyalty="vip")
    await ns.kafka.publish(CLASSIFIED, event)
    pending = (await wait_for_case(ns, event["case_id"], "compensation.pending_approval"))[0]
    assert (pending["authority"], pending["currency"]) == ("manager", "EUR")
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "denied", "manager", "M-1"))
    denied = (await wait_for_case(ns, event["case_id"], "compensation.denied"))[0]
    assert denied["approver"] == {"role": "manager", "id": "M-1"}
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "approved", "director", "D-1"))
    await ns.kafka.publish(COMPENSATION_APPROVALS, b"not json at all", key=event["case_id"])
    rejected = await ns.kafka.wait_for(REJECTED, lambda rs: len(of_case(rs, event["case_id"])) >= 2)
    assert {r["reason"] for r in of_case(rejected, event["case_id"])} == {"not_pending", "not_json"}
    assert not of_case(await ns.kafka.read_all(COMPENSATION), event["case_id"], "compensation.approved")


async def test_stale_pending_approval_escalates_to_the_next_role(ns, tmp_path):
    own_config(ns, tmp_path, edit=("approval_escalation_after: 4h", "approval_escalation_after: 2s"))
    ns.service("compensation")
    event = classified(order=(400.0, "USD"), category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, event)
    pendings = await wait_for_case(ns, event["case_id"], "compensation.pending_approval", count=2)
    first, escalated = pendings[0], pendings[1]
    assert first["authority"] == "supervisor" and "escalated" not in first
    assert (escalated["authority"], escalated["escalated"], escalated["escalation_level"]) == ("manager", True, 1)
    assert escalated["decision_id"] == first["decision_id"]
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(first, "approved", "manager", "M-2"))
    await wait_for_case(ns, event["case_id"], "compensation.approved")
    await asyncio.sleep(3.0)  # answered: no further escalation
    after = of_case(await ns.kafka.read_all(COMPENSATION), event["case_id"], "compensation.pending_approval")
    assert [p["authority"] for p in after] in (["supervisor", "manager"], ["supervisor", "manager", "director"])


async def test_kill_between_decision_and_publish_emits_exactly_one_decision_after_restart(ns):
    blocker = await asyncpg.connect(ns.database_url)
    try:
        # Holding the outbox relay's lock from before the service starts keeps it from leading: the
        # decision stays in the outbox, unpublished (a leading relay holds the lock for good).
        await blocker.execute("SELECT pg_advisory_lock($1)", zlib.crc32(b"outbox:compensation"))
        service = ns.service("compensation")
        event = classified(category="service_not_offered")
        await ns.kafka.publish(CLASSIFIED, event)
        for _ in range(120):
            if await blocker.fetchval("SELECT count(*) FROM compensation.outbox"):
                break
            await asyncio.sleep(0.25)
        assert await blocker.fetchval("SELECT count(*) FROM compensation.decisions WHERE case_id = $1",
                                      event["case_id"]) == 1
        service.kill()
        assert not of_case(await ns.kafka.read_all(COMPENSATION), event["case_id"])
    finally:
        await blocker.close()
    service.start()
    await wait_for_case(ns, event["case_id"], "compensation.granted")
    await asyncio.sleep(1.5)
    assert len(of_case(await ns.kafka.read_all(COMPENSATION), event["case_id"])) == 1


async def test_policy_edit_applies_to_the_next_decision_and_a_broken_edit_keeps_the_last_good_one(ns, tmp_path):
    policy_file = own_config(ns, tmp_path)
    service = ns.service("compensation")
    first = classified(category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, first)
    assert (await wait_for_case(ns, first["case_id"], "compensation.granted"))[0]["policy_version"] == DEFAULT_VERSION

    edited = policy_file.read_text().replace("        percent: 15\n", "        percent: 20\n")
    policy_file.write_text(edited)
    await asyncio.sleep(1.0)
    second = classified(category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, second)
    granted = (await wait_for_case(ns, second["case_id"], "compensation.granted"))[0]
    assert granted["policy_version"] == content_version(edited)
    assert granted["offers"][0] == {"kind": "coupon", "percent": 20, "value": 20.0}

    policy_file.write_text(edited.replace("fallback:", "fallbak:"))
    await asyncio.sleep(1.0)
    third = classified(category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, third)
    kept = (await wait_for_case(ns, third["case_id"], "compensation.granted"))[0]
    assert kept["policy_version"] == content_version(edited)
    assert 'helpdesk_compensation_policy_refusals_total{policy="compensation"} 1.0' in service.metrics()
    assert "fallbak: Extra inputs are not permitted" in service.tail(200)


async def test_reopened_case_gets_a_second_grant_where_a_rule_allows_it(ns, tmp_path):
    own_config(ns, tmp_path, edit=("    allow_over_cap: true   # the fix alone",
                                   "    allow_on_reopen: true\n    allow_over_cap: true   # the fix alone"))
    ns.service("compensation")
    event = classified(order=(20.0, "USD"), category="wrong_item_or_install", loyalty="loyal")
    await ns.kafka.publish(CLASSIFIED, event)
    await wait_for_case(ns, event["case_id"], "compensation.pending_approval")  # 20 + 150 visit
    reopened = {"event_id": str(uuid.uuid4()), "type": "case.reopened", "occurred_at": "2026-11-23T12:00:00Z",
                "source": "crm-east", "case_id": event["case_id"]}
    await ns.kafka.publish(CASE_ACTIVITY, reopened)
    await asyncio.sleep(1.5)  # the reopen and the new complaint travel on different topics
    again = classified(case_id=event["case_id"], order=(20.0, "USD"), category="wrong_item_or_install",
                       loyalty="loyal", repeat_contacts=1)
    await ns.kafka.publish(CLASSIFIED, again)
    second = await wait_for_case(ns, event["case_id"], "compensation.pending_approval", count=2)
    assert second[1]["rule_id"] == "wrong_install_loyal_customer"
    third = classified(case_id=event["case_id"], category="wrong_item_or_install", loyalty="loyal", repeat_contacts=2)
    await ns.kafka.publish(CLASSIFIED, third)
    none = (await wait_for_case(ns, event["case_id"], "compensation.none"))[0]
    assert none["reason_code"] == "already_granted"


async def test_yen_are_granted_whole_and_a_euro_grant_spends_a_dollar_budget(ns, tmp_path):
    own_config(ns, tmp_path, edit=("budgets: {}", "budgets:\n  crm-east: {USD: 40}"))
    ns.service("compensation")
    # 15% of 1,234 JPY = 185.1 → a 185 JPY coupon; free shipping, 8 USD × 150 = 1,200 JPY, does not fit
    # in the cap (1,234 − 185 = 1,049 JPY left) and is dropped. crm-west has no budget.
    yen = classified(order=(1234.0, "JPY"), category="confusing_process", source="crm-west")
    await ns.kafka.publish(CLASSIFIED, yen)
    granted = (await wait_for_case(ns, yen["case_id"], "compensation.granted"))[0]
    assert granted["offers"] == [{"kind": "coupon", "percent": 15, "value": 185.0}]
    assert (granted["value"], granted["currency"], granted["reason_code"]) == (185, "JPY", "cap_applied")
    rows = await query(ns, "SELECT value FROM compensation.decisions WHERE decision_id = $1", granted["decision_id"])
    assert str(rows[0]["value"]) == "185"  # numeric, whole yen

    # 100 EUR: coupon 15 EUR + shipping 8 USD × 0.92 = 7.36 EUR = 22.36 EUR, within the agent's
    # 50 USD × 0.92 = 46 EUR; it spends 22.36 / 0.92 = 24.304… → 24.30 USD of crm-east's 40 USD budget
    first = classified(order=(100.0, "EUR"), category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, first)
    granted = (await wait_for_case(ns, first["case_id"], "compensation.granted"))[0]
    assert (granted["value"], granted["currency"], granted["authority"]) == (22.36, "EUR", "agent")
    ledger = await query(ns, "SELECT currency, spent FROM compensation.budget_spent WHERE source = 'crm-east'")
    assert [(r["currency"], r["spent"]) for r in ledger] == [("USD", Decimal("24.30"))]
    # the same again: 24.30 USD > 40 − 24.30 = 15.70 USD left: a supervisor must approve it
    second = classified(order=(100.0, "EUR"), category="confusing_process")
    await ns.kafka.publish(CLASSIFIED, second)
    pending = (await wait_for_case(ns, second["case_id"], "compensation.pending_approval"))[0]
    assert (pending["value"], pending["authority"], pending["reason_code"]) == (22.36, "supervisor", "budget_exceeded")
    await ns.kafka.publish(COMPENSATION_APPROVALS, answer(pending, "approved", "supervisor"))
    await wait_for_case(ns, second["case_id"], "compensation.approved")
    ledger = await query(ns, "SELECT currency, spent FROM compensation.budget_spent WHERE source = 'crm-east'")
    assert [(r["currency"], r["spent"]) for r in ledger] == [("USD", Decimal("48.60"))]  # 24.30 + 24.30 USD
