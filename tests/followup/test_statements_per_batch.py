"""No statement per classification (issue #15 item 2): a batch of 50 `complaint.classified` records
sends followup as many SQL statements as a batch of one, counted on real PostgreSQL through the real
Inbox and Batch (tests/support/statements.py): their cases are read, their held activity taken and
their rows written one statement each. The batch mixes new cases, cases classified before and a case
classified three times.

Case activity that plans follow-ups (a resolution) still costs statements per event: see
docs/benchmarks.md, "Statements per complaint"."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.followup import store
from services.followup.contract import parse_activity, parse_classified
from services.followup.policy import FollowupPolicy
from services.followup.service import Followups
from shared.events import CASE_ACTIVITY, CLASSIFIED
from shared.inbound import Route
from shared.policy import load_policy
from tests.builders import classified_json
from tests.support.memory import FixedPolicy, StubRuntime
from tests.support.statements import counting_pool, records, statements

pytestmark = pytest.mark.integration

POLICY = Path(__file__).resolve().parents[2] / "config" / "followup.yaml"
T0 = datetime.now(timezone.utc) - timedelta(hours=1)


def classified(case_ids: list[str]) -> list[dict]:
    return [dict(classified_json(case_id=c, customer_id=f"C-{c}", received_at=T0 + timedelta(seconds=i),
                                 category=("delay", "billing")[i % 2]), event_id=str(uuid.uuid4()))
            for i, c in enumerate(case_ids)]


async def test_a_batch_of_50_classifications_sends_as_many_statements_as_a_batch_of_one(ns):
    followups = Followups(StubRuntime("followup"), FixedPolicy(load_policy(POLICY, FollowupPolicy)))
    by_topic = {CLASSIFIED: Route(parse_classified, followups.on_classified),
                CASE_ACTIVITY: Route(parse_activity, followups.on_activity)}

    async def count(events):
        return await statements(pool, store.SCHEMA, "followup", records(CLASSIFIED, events),
                                lambda record: by_topic[record.topic], followups.prepare)

    async with counting_pool(ns.database_url, store) as pool:
        known = [f"CRM-known-{i}" for i in range(10)]
        await count(classified(known))
        one, _ = await count(classified(["CRM-one"]))
        many, sent = await count(classified(known + [f"CRM-new-{i}" for i in range(37)] + ["CRM-thrice"] * 3))
        async with pool.pool.acquire() as conn:
            cases = {r["case_id"]: r for r in await conn.fetch(f"SELECT * FROM {store.SCHEMA}.cases")}

    assert many == one, sent
    assert len(cases) == 10 + 1 + 37 + 1
    assert cases["CRM-thrice"]["received_at"] == T0 + timedelta(seconds=49), "the latest of the three"
    assert cases["CRM-thrice"]["category"] == "billing", "the last classification"
    assert cases["CRM-known-1"]["category"] == "billing" and cases["CRM-known-1"]["status"] == "open"
