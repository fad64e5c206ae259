"""No statement per complaint (issue #15 item 2): for each of compensation's consumers, a batch of 50
records sends as many SQL statements as a batch of one, counted on real PostgreSQL through the real
Inbox and Batch (tests/support/statements.py).

- classified complaints: grants, pending approvals (escalation timers) and refusals mixed, on new
  cases, on cases decided before, and a case twice in the batch (its second decision refused);
- approvers' answers: approvals and denials, and an answer to a decision the batch settled already;
- reopens: new and known cases, one case reopened twice in the batch."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.compensation import store
from services.compensation.contract import parse_answer, parse_classified, parse_reopened
from services.compensation.service import Compensation
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION_APPROVALS
from shared.inbound import RecordRef, Route, every_record
from tests.builders import activity_event
from tests.support.memory import FixedPolicy, StubRuntime
from tests.support.statements import counting_pool, records, statements

from .conftest import SMALL_POLICY, complaint, policy_from

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
BUDGETED = SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 100000}\npricing:")
CATEGORIES = ["confusing_process", "billing", "delay"]  # granted (23 USD), pending (100 USD), granted (mug)


def classified(case_ids: list[str], first: int = 0) -> list[dict]:
    """Complaints on `case_ids`, their categories taking turns from CATEGORIES[first]."""
    return [complaint(category=CATEGORIES[(first + i) % 3], case_id=case_id, causation_id=str(uuid.uuid4())
                      ).model_dump(mode="json") for i, case_id in enumerate(case_ids)]


def answer(decision_id: str, kind: str, case_id: str) -> dict:
    return {"event_id": str(uuid.uuid4()), "type": f"compensation.{kind}", "occurred_at": "2026-11-23T12:00:00Z",
            "source": "crm-east", "case_id": case_id, "decision_id": decision_id,
            "approver": {"role": "manager", "id": "M-1"}}


async def test_each_consumer_sends_as_many_statements_for_50_records_as_for_one(ns):
    service = Compensation(StubRuntime("compensation"), FixedPolicy(policy_from(BUDGETED)), clock=lambda: NOW)
    decide = every_record(parse_classified, service.on_classified)

    def answers(record) -> Route:  # as handlers.on_approvals routes them: a refusal reports its record
        ref = RecordRef.of(record)
        return Route(parse_answer, lambda batch, a: service.on_approval(batch, a, ref))

    reopen = every_record(parse_reopened, service.on_reopened)

    async def count(topic, events, route, prepare) -> tuple[int, list[str]]:
        return await statements(pool, store.SCHEMA, "compensation", records(topic, events), route, prepare)

    async with counting_pool(ns.database_url, store) as pool:
        known = [f"CRM-known-{i}" for i in range(9)]
        first = classified(known)
        await count(CLASSIFIED, first, decide, service.prepare)

        # one pending approval: its decision, its budget's lock and its escalation timer
        one, _ = await count(CLASSIFIED, classified(["CRM-one"], first=1), decide, service.prepare)
        many, sent = await count(CLASSIFIED, classified(known + [f"CRM-new-{i}" for i in range(39)] + ["CRM-twice"] * 2),
                                 decide, service.prepare)
        assert many == one, sent

        # every pending decision so far (billing: 100 USD), approved or denied; one answered twice
        async with pool.pool.acquire() as conn:
            pending = await conn.fetch(f"SELECT decision_id, case_id FROM {store.SCHEMA}.decisions WHERE status = 'pending'"
                                       " ORDER BY decision_id")
        assert len(pending) >= 17
        one, _ = await count(COMPENSATION_APPROVALS, [answer(pending[0]["decision_id"], "approved", pending[0]["case_id"])],
                             answers, service.prepare_approvals)
        batch = [answer(p["decision_id"], ("approved", "denied")[i % 2], p["case_id"]) for i, p in enumerate(pending[1:])]
        batch.append(answer(pending[1]["decision_id"], "denied", pending[1]["case_id"]))  # settled above: refused
        many, sent = await count(COMPENSATION_APPROVALS, batch, answers, service.prepare_approvals)
        assert many == one, sent

        one, _ = await count(CASE_ACTIVITY, [activity_event("case.reopened", case_id="CRM-one")], reopen,
                             service.prepare_activity)
        reopened = known + [f"CRM-other-{i}" for i in range(39)] + ["CRM-one"] * 2
        many, sent = await count(CASE_ACTIVITY, [activity_event("case.reopened", case_id=c, event_id=str(uuid.uuid4()))
                                                 for c in reopened], reopen, service.prepare_activity)
        assert many == one, sent

        async with pool.pool.acquire() as conn:
            twice = await conn.fetch(f"SELECT outcome, reason_code FROM {store.SCHEMA}.decisions WHERE case_id = 'CRM-twice'"
                                     " ORDER BY decided_at, decision_id")
            statuses = dict(await conn.fetch(f"SELECT status, count(*) FROM {store.SCHEMA}.decisions GROUP BY 1"))
            refused = await conn.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.approval_answers WHERE NOT accepted")
            reopens = dict(await conn.fetch(f"SELECT case_id, reopens FROM {store.SCHEMA}.cases"
                                            " WHERE case_id IN ('CRM-one', 'CRM-known-0')"))
            timers = await conn.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.timers")
            spent = await conn.fetchval(f"SELECT sum(spent) FROM {store.SCHEMA}.budget_spent")
    assert sorted(r["outcome"] for r in twice) == ["granted", "none"] and "already_granted" in {r["reason_code"] for r in twice}
    assert statuses.get("pending", 0) == 0 and statuses["approved"] + statuses["denied"] == len(pending)
    assert refused == 1
    assert reopens == {"CRM-one": 3, "CRM-known-0": 1}
    assert timers == 0, "every escalation timer armed was cancelled by its answer"
    assert spent > Decimal(0)
