"""The inbox forgets event ids after PROCESSED_EVENTS_RETENTION: pruned in chunks, counted, and an
id still within the retention stays a duplicate."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from shared import db
from shared.resilience import DependencyWatch
from shared.retention import InboxRetention

pytestmark = pytest.mark.integration
SCHEMA = "retentiontest"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
async def pool(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    await db.migrate(pool, SCHEMA, [])
    await pool.execute(f"TRUNCATE {SCHEMA}.processed_events")
    yield pool
    await pool.close()


async def _record(pool, ids, at: datetime) -> None:
    await pool.execute(f"INSERT INTO {SCHEMA}.processed_events (event_id, processed_at) "
                       "SELECT unnest($1::text[]), $2", ids, at)


async def test_ids_older_than_the_retention_are_forgotten_in_chunks_and_counted(pool):
    await _record(pool, [f"old-{n}" for n in range(25)], NOW - timedelta(days=8))
    await _record(pool, ["edge"], NOW - timedelta(days=7) + timedelta(seconds=1))
    await _record(pool, ["new-1", "new-2"], NOW - timedelta(hours=1))
    retention = InboxRetention(pool, SCHEMA, "retentiontest", timedelta(days=7), 600,
                               DependencyWatch("retentiontest", "retention", ("postgres",)))
    before = REGISTRY.get_sample_value("helpdesk_retentiontest_processed_events_pruned_total") or 0

    assert await db.prune_processed_events(pool, SCHEMA, NOW - timedelta(days=7), chunk=10) == 25
    assert await retention.prune_once(NOW) == 0  # nothing left to forget
    kept = {r["event_id"] for r in await pool.fetch(f"SELECT event_id FROM {SCHEMA}.processed_events")}
    assert kept == {"edge", "new-1", "new-2"}

    await _record(pool, ["old-again"], NOW - timedelta(days=30))
    assert await retention.prune_once(NOW) == 1
    assert REGISTRY.get_sample_value("helpdesk_retentiontest_processed_events_pruned_total") == before + 1
    assert REGISTRY.get_sample_value("helpdesk_retentiontest_processed_events_retention_seconds") == 7 * 86400

    # an id within the retention is still a redelivery for the inbox
    async with pool.acquire() as conn:
        assert await db.first_times(conn, SCHEMA, ["new-1", "fresh"]) == {"fresh"}


async def test_the_prune_index_is_a_brin_on_processed_at(pool):
    definition = await pool.fetchval("SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = $2",
                                     SCHEMA, "processed_events_processed_at")
    assert "USING brin (processed_at)" in definition


async def test_a_naive_cutoff_is_refused(pool):
    with pytest.raises(ValueError, match="zone-aware"):
        await db.prune_processed_events(pool, SCHEMA, datetime(2026, 11, 1))


def test_the_retention_reads_as_a_duration():
    from shared.settings import Settings

    assert Settings().processed_events_retention == timedelta(days=7)
    assert Settings(processed_events_retention="36h").processed_events_retention == timedelta(hours=36)
    with pytest.raises(ValueError):
        Settings(processed_events_retention="a week")
