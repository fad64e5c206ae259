"""The recovery read model's service layer (services/followup/recovery.py) on the in-memory store
(tests/fakes/recovery_store.py) and batch: the scenario of tests/followup/recovery_scenario.py read
through the contract's parsers, in one batch or one record at a time, in any order, redelivered, and
rebuilt; the report's figures are the hand-worked ones."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from services.followup.contract import RECOVERY_PARSERS, RecoveryIgnored
from services.followup.handlers import recovery_route
from services.followup.recovery import Recovery, parse_records
from shared.events import CASE_ACTIVITY, COMPENSATION, SLA
from tests.fakes.recovery_store import MemoryRecoveryStore
from tests.followup import recovery_scenario as scenario
from tests.support.memory import MemoryWorld

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def raw_records(now: datetime = NOW) -> list[tuple[str, bytes]]:
    return [(topic, json.dumps(record).encode()) for topic, rs in scenario.records(now).items() for record in rs]


def harness() -> tuple[Recovery, MemoryRecoveryStore, MemoryWorld]:
    store = MemoryRecoveryStore()
    return Recovery(store=store, clock=lambda: NOW), store, MemoryWorld()


async def test_the_scenario_in_one_batch_gives_the_hand_worked_report():
    recovery, store, world = harness()
    inputs = parse_records(raw_records())
    outcomes = await world.run(recovery.prepare, recovery.on_event, inputs)
    assert set(outcomes) == {"recorded"}
    assert store.entered == ["live"]
    assert sorted(store.cases) == ["A", "B", "C", "D"] and len(store.returns) == 2
    scenario.check_report(await recovery.report(None, scenario.SINCE, scenario.WITHIN))
    assert world.published == []  # a read model publishes nothing


async def test_one_record_at_a_time_backwards_and_redelivered_gives_the_same_facts():
    recovery, store, world = harness()
    inputs = parse_records(raw_records())
    await world.run(recovery.prepare, recovery.on_event, inputs)
    once = (dict(store.cases), dict(store.returns))

    again, store2, world2 = harness()
    for item in reversed(inputs):
        await world2.run(again.prepare, again.on_event, [item])
    await world2.run(again.prepare, again.on_event, inputs)  # every record redelivered
    assert (store2.cases, store2.returns) == once


async def test_a_rebuild_replaces_every_row_with_what_the_topics_say():
    recovery, store, world = harness()
    topics = raw_records()
    await world.run(recovery.prepare, recovery.on_event, parse_records(topics))
    expected = (dict(store.cases), dict(store.returns))
    store.cases["stray"] = store.cases.pop("A")  # the read model drifted (say, a lost table)

    async def read():
        return topics

    assert await recovery.rebuild(None, read) == (4, 2)
    assert store.entered[-1] == "rebuild"
    assert (store.cases, store.returns) == expected
    scenario.check_report(await recovery.report(None, scenario.SINCE, scenario.WITHIN))


@pytest.mark.parametrize("topic, value", [
    (SLA, b"not json"),
    (SLA, json.dumps({"event_id": "e", "type": "sla.warning", "case_id": "K"}).encode()),
    (SLA, json.dumps({"event_id": "e", "type": "sla.met", "case_id": "K", "breached": False}).encode()),
    (COMPENSATION, json.dumps({"event_id": "e", "type": "compensation.granted", "case_id": "K"}).encode()),
    (COMPENSATION, json.dumps({"event_id": "e", "type": "compensation.granted", "occurred_at": "2026-01-01T00:00:00Z",
                               "case_id": "K", "decision_id": "d", "value": 1, "currency": "usd"}).encode()),
    (CASE_ACTIVITY, json.dumps({"event_id": "e", "type": "case.contacted", "occurred_at": "2026-01-01T00:00:00Z",
                                "source": "crm", "case_id": "K", "by": "bot"}).encode()),
    (CASE_ACTIVITY, json.dumps({"event_id": "e", "type": "case.paused", "occurred_at": "2026-01-01T00:00:00Z",
                                "source": "crm", "case_id": "K"}).encode()),
    (CASE_ACTIVITY, b"\x00\x01"),
])
def test_records_the_read_model_does_not_use_are_dropped_never_rejected(topic, value):
    with pytest.raises(RecoveryIgnored):
        RECOVERY_PARSERS[topic](value)
    record = SimpleNamespace(topic="p." + topic, key=b"K", value=value, partition=0, offset=1)
    assert recovery_route(record, Recovery(store=MemoryRecoveryStore()), "p.") is None


def test_a_record_keyed_by_another_case_is_dropped_and_a_good_one_is_routed_under_its_own_id():
    value = json.dumps({"event_id": "e1", "type": "sla.breached", "case_id": "K", "occurred_at": "2026-01-01T00:00:00Z"})
    recovery = Recovery(store=MemoryRecoveryStore())
    assert recovery_route(SimpleNamespace(topic="p." + SLA, key=b"other", value=value.encode()), recovery, "p.") is None
    route = recovery_route(SimpleNamespace(topic="p." + SLA, key=b"K", value=value.encode()), recovery, "p.")
    assert route is not None
    event = route.parse(None)
    assert event.event_id == "recovery:e1" and event.case_id == "K"  # apart from the inbound consumer's "e1"
    assert recovery_route(SimpleNamespace(topic="p.helpdesk.followups.v1", key=b"K", value=value.encode()),
                          recovery, "p.") is None
