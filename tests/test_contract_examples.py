"""Every example record of docs/contract.md, published through Kafka to the four running services:
the valid ones are accepted, each invalid one is rejected on the rejected topic with the reason the
document gives. A CRM developer copying them gets exactly what the document says."""
from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from deploy.contract_docs import Example, examples
from services.registry import NAMES
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION, COMPENSATION_APPROVALS, COMPLAINTS, REJECTED
from tests.compensation.test_compensation_service import classified

pytestmark = pytest.mark.integration

# Who reports a bad record of each inbound topic (compensation reads case activity only for
# case.reopened and leaves its rejections to sla and followup).
REPORTED_BY = {COMPLAINTS: {"intake"}, CASE_ACTIVITY: {"sla", "followup"}, COMPENSATION_APPROVALS: {"compensation"}}
APPROVAL_REFUSALS = {"unknown_decision", "not_pending", "unknown_approver_role", "approver_not_authorised"}


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.5)


def rejections_of(records: list[dict[str, Any]], example: Example) -> list[dict[str, Any]]:
    raw = base64.b64encode(example.value or b"").decode("ascii")
    return [r for r in records if r["topic"] == example.topic and r["raw"] == raw and r.get("key") == example.key]


async def pending_decisions(ns, documented_ids: list[str]) -> dict[str, dict[str, Any]]:
    """A real pending compensation (68 USD, waiting for a supervisor) for each decision id the
    approval examples name: documented id → the pending_approval event."""
    out = {}
    for documented in documented_ids:
        event = classified(order=(400.0, "USD"), category="confusing_process")
        await ns.kafka.publish(CLASSIFIED, event)
        records = await ns.kafka.wait_for(COMPENSATION, lambda rs, case=event["case_id"]: any(
            r["case_id"] == case and r["type"] == "compensation.pending_approval" for r in rs), timeout=90)
        out[documented] = next(r for r in records if r["case_id"] == event["case_id"])
        assert out[documented]["authority"] == "supervisor"
    return out


def answering(example: Example, pending: dict[str, dict[str, Any]]) -> Example:
    """An approval example made to answer the real decision standing for its documented one."""
    document = example.document
    if example.topic != COMPENSATION_APPROVALS or document is None or document.get("decision_id") not in pending:
        return example
    decision = pending[document["decision_id"]]
    key = decision["case_id"] if example.key == document.get("case_id") else example.key
    value = {**document, "decision_id": decision["decision_id"], "case_id": decision["case_id"]}
    return replace(example, key=key, value=json.dumps(value).encode("utf-8"))


async def processed(ns, schema: str, event_ids: list[str]) -> set[str]:
    conn = await asyncpg.connect(ns.database_url)
    try:
        rows = await conn.fetch(f"SELECT event_id FROM {schema}.processed_events WHERE event_id = ANY($1::text[])",
                                event_ids)
    finally:
        await conn.close()
    return {r["event_id"] for r in rows}


async def test_every_example_record_of_the_contract_is_accepted_or_rejected_as_documented(ns):
    for name in NAMES:
        ns.service(name)
    documented = examples()
    valid = [e for e in documented if e.reason is None]
    invalid = [e for e in documented if e.reason is not None]
    assert {e.topic for e in valid} == {e.topic for e in invalid} == set(REPORTED_BY)

    # Approval answers need decisions that are really pending: one per decision id the examples name
    # (not the one an example names to show `unknown_decision`).
    unknown = {e.document["decision_id"] for e in invalid if e.reason == "unknown_decision"}
    named = [e.document["decision_id"] for e in documented
             if e.topic == COMPENSATION_APPROVALS and e.document and e.document.get("decision_id")]
    pending = await pending_decisions(ns, [d for d in dict.fromkeys(named) if d not in unknown])
    valid = [answering(e, pending) for e in valid]
    invalid = [answering(e, pending) for e in invalid]

    async def publish(example: Example) -> None:
        await ns.kafka.publish(example.topic, example.value, key=example.key)

    # 1. Complaints: each is classified.
    complaints = [e for e in valid if e.topic == COMPLAINTS]
    for example in complaints:
        await publish(example)
    ids = {e.document["event_id"] for e in complaints}
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: ids <= {r["causation_id"] for r in rs}, timeout=90)

    # 2. Case activity: sla and followup both take every event (recorded as processed, not rejected).
    activity = [e for e in valid if e.topic == CASE_ACTIVITY]
    for example in activity:
        await publish(example)
    ids = [e.document["event_id"] for e in activity]
    for schema in ("sla", "followup"):
        await until(lambda s=schema: _all(processed(ns, s, ids), len(ids)), f"{schema} to take the activity examples")

    # 3. Approval answers: each settles its decision.
    for example in (e for e in valid if e.topic == COMPENSATION_APPROVALS):
        await publish(example)
        settled = example.document["type"]
        decision = example.document["decision_id"]
        await ns.kafka.wait_for(COMPENSATION, lambda rs, d=decision, t=settled: any(
            r["type"] == t and r["decision_id"] == d for r in rs), timeout=60)

    # 4. Every invalid example: rejected by each service reading its topic, with the documented reason.
    for example in invalid:
        await publish(example)

    def all_reported(records: list[dict[str, Any]]) -> bool:
        return all({r["rejected_by"] for r in rejections_of(records, e)} >= REPORTED_BY[e.topic] for e in invalid)

    rejected = await ns.kafka.wait_for(REJECTED, all_reported, timeout=90)
    wrong = {f"line {e.line}: {e.reason}": sorted({r["reason"] for r in rejections_of(rejected, e)})
             for e in invalid if {r["reason"] for r in rejections_of(rejected, e)} != {e.reason}}
    assert not wrong, f"rejected for other reasons than documented: {wrong}"
    for example in invalid:
        for record in rejections_of(rejected, example):
            assert record["partition"] >= 0 and record["offset"] >= 0 and record["errors"]
            if isinstance(example.document, dict) and example.reason != "too_large":  # event_id readable: named
                assert record.get("causation_id") == example.document.get("event_id"), example.line
            if example.reason in APPROVAL_REFUSALS:  # and a refused answer names its decision
                assert record["decision_id"] == example.document["decision_id"], example.line

    # ...and nothing valid was rejected by anyone.
    accepted_but_rejected = [e.line for e in valid if rejections_of(rejected, e)]
    assert not accepted_but_rejected, f"valid examples rejected: lines {accepted_but_rejected}"
    # The refusals left the decision they named pending; the valid answers settled theirs.
    compensation = await ns.kafka.read_all(COMPENSATION)
    settled = {r["decision_id"] for r in compensation if r["type"] in ("compensation.approved", "compensation.denied")}
    answered = {e.document["decision_id"] for e in valid if e.topic == COMPENSATION_APPROVALS}
    assert settled == answered


async def _all(found: Awaitable[set[str]], count: int) -> bool:
    return len(await found) == count
