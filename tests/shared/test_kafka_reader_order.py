"""Records read from a topic put in time order across partitions, in UTC (no servers)."""
from __future__ import annotations

from datetime import datetime, timezone

from shared.kafka_reader import by_time, event_time


def test_event_time_is_utc_from_occurred_at_else_the_kafka_timestamp():
    assert event_time({"occurred_at": "2026-11-29T18:03:11+01:00"}) == datetime(2026, 11, 29, 17, 3, 11, tzinfo=timezone.utc)
    assert event_time({"occurred_at": "2026-11-29T17:03:11Z"}).tzinfo == timezone.utc
    stamp = int(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).timestamp() * 1000)
    assert event_time({"occurred_at": "not a time", "_timestamp": stamp}) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    naive = {"occurred_at": "2026-11-29T17:03:11", "_timestamp": stamp}
    assert event_time(naive) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "a time without zone is not trusted"
    assert event_time({}) == datetime(1970, 1, 1, tzinfo=timezone.utc)


def test_by_time_merges_partitions_oldest_first():
    records = [  # as read: partition 0 in full, then partition 1
        {"id": "b", "occurred_at": "2026-11-29T17:05:00Z", "_partition": 0, "_offset": 0},
        {"id": "d", "occurred_at": "2026-11-29T17:09:00Z", "_partition": 0, "_offset": 1},
        {"id": "a", "occurred_at": "2026-11-29T18:01:00+01:00", "_partition": 1, "_offset": 0},
        {"id": "c", "occurred_at": "2026-11-29T17:07:00Z", "_partition": 1, "_offset": 1},
    ]
    assert [r["id"] for r in by_time(records)] == ["a", "b", "c", "d"]
