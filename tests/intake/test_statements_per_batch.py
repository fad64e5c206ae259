"""No statement per complaint (issue #15 item 2): a batch of 50 complaints sends intake as many SQL
statements as a batch of one, counted on real PostgreSQL through the real Inbox and Batch
(tests/support/statements.py). The batch mixes new cases, cases already on record and a case
complained about three times within the batch."""
from __future__ import annotations

import uuid

import pytest

from services.intake import store
from services.intake.contract import parse_complaint
from services.intake.service import Intake
from shared.events import COMPLAINTS
from shared.inbound import every_record
from tests.builders import complaint_event
from tests.support.memory import FixedPolicy, StubRuntime
from tests.support.statements import counting_pool, records, statements

pytestmark = pytest.mark.integration


def complaints(case_ids: list[str]) -> list[dict]:
    texts = ["The parcel arrived two weeks late", "The agent was rude to me", "I was charged twice", "Hello"]
    return [complaint_event(event_id=str(uuid.uuid4()), case_id=case_id, subject=texts[i % len(texts)],
                            occurred_at=f"2026-11-23T10:{i % 60:02d}:00Z")
            for i, case_id in enumerate(case_ids)]


async def test_a_batch_of_50_complaints_sends_as_many_statements_as_a_batch_of_one(ns, shipped_policy):
    intake = Intake(StubRuntime("intake"), FixedPolicy(shipped_policy.model_copy(update={"model": None})))
    route = every_record(parse_complaint, intake.on_complaint)
    async with counting_pool(ns.database_url, store) as pool:
        known = [f"CRM-known-{i}" for i in range(10)]
        await statements(pool, store.SCHEMA, "intake", records(COMPLAINTS, complaints(known)), route, intake.prepare)

        one, _ = await statements(pool, store.SCHEMA, "intake", records(COMPLAINTS, complaints(["CRM-one"])),
                                  route, intake.prepare)
        many_cases = known + [f"CRM-new-{i}" for i in range(37)] + ["CRM-thrice"] * 3
        many, sent = await statements(pool, store.SCHEMA, "intake", records(COMPLAINTS, complaints(many_cases)),
                                      route, intake.prepare)
        async with pool.pool.acquire() as conn:
            counts = dict(await conn.fetch(f"SELECT case_id, complaints FROM {store.SCHEMA}.cases"))
            recorded = await conn.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.complaints")
            outbox = await conn.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.outbox")

    assert many == one, sent
    assert one <= 6, "processed ids, locks, earlier complaints, cases, complaints, outbox"
    assert (counts["CRM-known-0"], counts["CRM-thrice"], counts["CRM-new-0"], counts["CRM-one"]) == (2, 3, 1, 1)
    assert (recorded, outbox) == (61, 61)
