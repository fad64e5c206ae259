"""Two followup instances handling one case at once, on real PostgreSQL.

The classification and the case activity are on different topics, so their partitions can be
owned by different instances. CI caught a resolution that was held for a case not yet classified
while that case's first classification was committing elsewhere: neither saw the other, the case
stayed open and its five follow-ups were never planned."""
from __future__ import annotations

import asyncio
import json

import pytest

from services.followup import store
from services.followup.service import Followups
from services.followup.policy import FollowupPolicy
from shared import db
from shared.batch import Batch
from shared.inbound import parse_activity, parse_classified
from shared.policy import PolicyHolder
from tests.followup.test_followup_service import FAST_POLICY, activity, classified, new_id
from tests.support.stubs import PlainTopics

pytestmark = pytest.mark.integration


@pytest.fixture
async def followups(ns):
    pool = await db.create_pool(ns.database_url, min_size=2, max_size=4)
    await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
    yield pool, Followups(PlainTopics(), PolicyHolder(FAST_POLICY, FollowupPolicy))  # type: ignore[arg-type]
    await pool.close()


@pytest.mark.parametrize("first", ["activity", "classification"])
async def test_a_resolution_and_the_first_classification_in_two_instances_at_once_plan_the_follow_ups(followups, first):
    pool, service = followups
    case, customer = new_id("CRM"), new_id("C")
    resolved = parse_activity(json.dumps(activity("case.resolved", case, resolution="Replaced the unit")).encode())
    opened = parse_classified(json.dumps(classified(case, customer)).encode())
    handle = {"activity": (service.on_activity, resolved), "classification": (service.on_classified, opened)}
    mine, theirs = handle[first], handle["classification" if first == "activity" else "activity"]

    async def other_instance() -> str:
        async with pool.acquire() as conn, conn.transaction():
            batch = Batch(conn, store.SCHEMA)
            outcome = await theirs[0](batch, theirs[1])
            await batch.commit()
            return outcome

    async with pool.acquire() as conn, conn.transaction():
        batch = Batch(conn, store.SCHEMA)
        await mine[0](batch, mine[1])
        other = asyncio.create_task(other_instance())
        await asyncio.sleep(0.5)
        assert not other.done(), "the other instance must wait for this case's transaction"
        await batch.commit()
    await asyncio.wait_for(other, 10)

    assert await pool.fetchval(f"SELECT status FROM {store.SCHEMA}.cases WHERE case_id = $1", case) == "resolved"
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.followups WHERE case_id = $1", case) == 5
    assert await pool.fetchval(f"SELECT count(*) FROM {store.SCHEMA}.pending_activity WHERE case_id = $1", case) == 0
