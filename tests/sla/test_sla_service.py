"""The sla service as a real process on real Kafka and PostgreSQL, with a policy of seconds.

Test policy (tests/sla/sla_fast.yaml): first contact 4s, update 6s, resolution 10s, warnings at
50% and 75%, escalations 2s and 4s after a breach, 24x7. Times are checked against the deadline
with a tolerance; nothing asserts how fast the machine is. A classification starts two clocks,
first contact and resolution; the update clock starts at first contact (issue 12).
"""
from __future__ import annotations

import asyncio
import collections
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from shared.events import CASE_ACTIVITY, CLASSIFIED, REJECTED, SLA
from tests.builders import activity_event, classified_json

pytestmark = pytest.mark.integration

LATE_TOLERANCE = timedelta(seconds=3)  # a timer fires after its due time, never before


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_case() -> str:
    return f"CRM-{uuid.uuid4().hex[:10]}"


def classified(case_id: str, received_at: datetime | None = None, priority: str = "P2") -> dict[str, Any]:
    received_at = received_at or utcnow()
    return classified_json(case_id=case_id, customer_id="C-881", category="delay", temperament="upset",
                           loyalty="loyal", priority=priority, occurred_at=received_at, received_at=received_at)


def activity(case_id: str, type_: str, occurred_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    return activity_event(type_, case_id, occurred_at, **fields)


def of_case(records: list[dict[str, Any]], case_id: str, type_: str | None = None, clock: str | None = None):
    return [r for r in records if r.get("case_id") == case_id and (type_ is None or r["type"] == type_)
            and (clock is None or r["clock"] == clock)]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def signature(record: dict[str, Any]) -> tuple:
    return (record["case_id"], record["type"], record["clock"], record.get("promise_id"),
            record.get("threshold"), record.get("level"))


async def wait_sla(ns, predicate, timeout: float = 30.0) -> list[dict[str, Any]]:
    return await ns.kafka.wait_for(SLA, predicate, timeout=timeout)


async def test_customer_contacted_in_time_is_met_with_no_breach(ns_fast):
    ns_fast.service("sla")
    case = new_case()
    await ns_fast.kafka.publish(CLASSIFIED, classified(case))
    await wait_sla(ns_fast, lambda rs: len(of_case(rs, case, "sla.started")) == 2)  # issue 12: update starts at the contact
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted"))
    records = await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.met", "first_contact"))
    met = of_case(records, case, "sla.met", "first_contact")[0]
    assert met["breached"] is False and met["priority"] == "P2"
    await asyncio.sleep(5)  # past the 4s first-contact deadline
    records = await ns_fast.kafka.read_all(SLA)
    assert of_case(records, case, "sla.breached", "first_contact") == []
    assert of_case(records, case, "sla.warning", "first_contact") == []


async def test_nobody_calls_back_warnings_then_breach_then_escalations_at_the_right_times(ns_fast):
    sla = ns_fast.service("sla")
    case, received = new_case(), utcnow()
    await ns_fast.kafka.publish(CLASSIFIED, classified(case, received))
    records = await wait_sla(ns_fast, lambda rs: len(of_case(rs, case, "sla.escalated", "first_contact")) == 2)
    story = of_case(records, case, clock="first_contact")
    assert [r["type"] for r in story] == [
        "sla.started", "sla.warning", "sla.warning", "sla.breached", "sla.escalated", "sla.escalated",
    ]
    expected = [0, 2, 3, 4, 6, 8]  # seconds after the complaint
    for record, seconds in zip(story, expected):
        due = received + timedelta(seconds=seconds)
        assert due - timedelta(milliseconds=50) <= instant(record["occurred_at"]) <= due + LATE_TOLERANCE, record["type"]
    assert [r["threshold"] for r in story if r["type"] == "sla.warning"] == [0.5, 0.75]
    assert [(r["level"], r["notify"]) for r in story if r["type"] == "sla.escalated"] == [(1, "team_lead"), (2, "support_manager")]
    assert instant(story[3]["due_at"]) == received + timedelta(seconds=4)
    text = sla.metrics()
    assert 'helpdesk_sla_breaches_total{clock="first_contact",priority="P2"}' in text
    assert "helpdesk_sla_timer_fire_lag_seconds_bucket" in text
    assert 'helpdesk_sla_target_seconds{clock="first_contact",priority="P2"} 4.0' in text
    assert 'helpdesk_sla_open_clocks{clock="resolution",priority="P2",state=' in text
    assert 'helpdesk_sla_consumer_lag_records{group="helpdesk-sla.' in text  # the group, without the test's prefix
    assert case not in text  # no case ids in labels


async def test_a_promise_kept_is_met_and_a_promise_missed_is_breached(ns_fast):
    ns_fast.service("sla")
    case = new_case()
    await ns_fast.kafka.publish(CLASSIFIED, classified(case))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted"))
    due = (utcnow() + timedelta(seconds=3)).isoformat()
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.promise_made", promise_id="refund", due_at=due))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.promise_made", promise_id="call-back", due_at=due))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.promise_kept", promise_id="refund"))
    records = await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.breached", "promise"))
    await asyncio.sleep(1)
    records = await ns_fast.kafka.read_all(SLA)
    promises = {(r["promise_id"], r["type"]) for r in of_case(records, case, clock="promise")}
    assert ("refund", "sla.met") in promises and ("refund", "sla.breached") not in promises
    assert ("call-back", "sla.breached") in promises and ("call-back", "sla.met") not in promises
    breach = of_case(records, case, "sla.breached", "promise")[0]
    assert instant(breach["due_at"]) == instant(due)


async def test_time_waiting_on_the_customer_does_not_count_toward_resolution(ns_fast):
    ns_fast.service("sla")
    case, received = new_case(), utcnow()
    await ns_fast.kafka.publish(CLASSIFIED, classified(case, received))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted"))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.paused", received + timedelta(seconds=1)))
    await asyncio.sleep(5)
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.resumed", received + timedelta(seconds=5)))
    records = await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.breached", "resolution"), timeout=40)
    breach = of_case(records, case, "sla.breached", "resolution")[0]
    moved_due = received + timedelta(seconds=14)  # 10s target + 4s paused
    assert instant(breach["due_at"]) == moved_due
    assert moved_due <= instant(breach["occurred_at"]) <= moved_due + LATE_TOLERANCE


async def test_activity_that_arrives_before_its_classification_is_applied_when_it_comes(ns_fast):
    ns_fast.service("sla")
    case, received = new_case(), utcnow()
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.contacted", received + timedelta(seconds=1)))
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(
        case, "case.promise_made", received + timedelta(seconds=1), promise_id="p1",
        due_at=(received + timedelta(seconds=60)).isoformat(), description="call you back",
    ))
    await asyncio.sleep(2)  # the activity is handled (and kept) before the classification arrives
    await ns_fast.kafka.publish(CLASSIFIED, classified(case, received))
    records = await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.started", "promise"))
    met = of_case(records, case, "sla.met", "first_contact")
    assert len(met) == 1 and met[0]["breached"] is False
    await asyncio.sleep(4)
    assert of_case(await ns_fast.kafka.read_all(SLA), case, "sla.breached", "first_contact") == []


async def test_duplicates_are_no_ops_and_bad_activity_is_rejected_while_the_rest_flows(ns_fast):
    sla = ns_fast.service("sla")
    case = new_case()
    complaint = classified(case)
    contact = activity(case, "case.contacted")
    await ns_fast.kafka.publish(CLASSIFIED, complaint)
    await ns_fast.kafka.publish(CLASSIFIED, complaint)
    await ns_fast.kafka.publish(CASE_ACTIVITY, b"not json", key=case)
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.promise_made", promise_id="p"))  # no due_at
    await ns_fast.kafka.publish(CASE_ACTIVITY, activity(case, "case.teleported"))
    await ns_fast.kafka.publish(CASE_ACTIVITY, contact)
    await ns_fast.kafka.publish(CASE_ACTIVITY, contact)
    rejected = await ns_fast.kafka.wait_for(REJECTED, lambda rs: len(rs) >= 3)
    assert sorted(r["reason"] for r in rejected) == ["invalid_fields", "not_json", "unknown_type"]
    assert all(r["topic"] == CASE_ACTIVITY and r["_key"] == case for r in rejected)
    await wait_sla(ns_fast, lambda rs: of_case(rs, case, "sla.met", "first_contact"))
    await asyncio.sleep(1.5)
    records = of_case(await ns_fast.kafka.read_all(SLA), case)
    assert len([r for r in records if r["type"] == "sla.started" and r["clock"] == "first_contact"]) == 1
    assert len([r for r in records if r["type"] == "sla.met" and r["clock"] == "first_contact"]) == 1
    assert sla.proc.poll() is None


def _expected_after_neglect(case: str) -> set[tuple]:
    """Every event a case nobody touches produces on every clock within the test policy (nobody
    contacts the customer, so no update clock runs: issue 12)."""
    out = set()
    for clock in ("first_contact", "resolution"):
        out |= {(case, "sla.started", clock, None, None, None), (case, "sla.breached", clock, None, None, None)}
        out |= {(case, "sla.warning", clock, None, t, None) for t in (0.5, 0.75)}
        out |= {(case, "sla.escalated", clock, None, None, level) for level in (1, 2)}
    return out


def distinct(records: list[dict[str, Any]], cases: list[str]) -> list[dict[str, Any]]:
    """One record per event id: a redelivered record (same id) is one event; a second firing is not."""
    return list({r["event_id"]: r for r in records if r.get("case_id") in cases}.values())


def _exactly_once(records: list[dict[str, Any]], cases: list[str]) -> None:
    counts = collections.Counter(signature(r) for r in distinct(records, cases))
    expected = set().union(*(_expected_after_neglect(c) for c in cases))
    assert {s: n for s, n in counts.items() if n != 1} == {}
    assert sorted(set(counts) - expected) == []
    assert sorted(expected - set(counts)) == []


async def test_timers_due_while_the_service_was_killed_fire_once_after_restart(ns_fast):
    sla = ns_fast.service("sla")
    cases = [new_case() for _ in range(3)]
    for case in cases:
        await ns_fast.kafka.publish(CLASSIFIED, classified(case))
    await wait_sla(ns_fast, lambda rs: all(len(of_case(rs, c, "sla.started")) == 2 for c in cases))
    sla.kill()
    await asyncio.sleep(15)  # every warning, breach and escalation (up to 14s) falls due while it is down
    sla.start()
    total = 3 * 12  # 3 cases x 2 clocks x (started, 2 warnings, breach, 2 escalations)
    await wait_sla(ns_fast, lambda rs: len(distinct(rs, cases)) >= total)
    await asyncio.sleep(2)
    _exactly_once(await ns_fast.kafka.read_all(SLA), cases)


async def test_two_sla_instances_share_the_timers_and_each_breach_is_sent_once(ns_fast):
    first, second = ns_fast.service("sla"), ns_fast.service("sla")
    cases = [new_case() for _ in range(12)]
    for case in cases:
        await ns_fast.kafka.publish(CLASSIFIED, classified(case))
    total = len(cases) * 12  # 2 clocks x (started, 2 warnings, breach, 2 escalations)
    await wait_sla(ns_fast, lambda rs: len(distinct(rs, cases)) >= total, timeout=60)
    await asyncio.sleep(2)
    _exactly_once(await ns_fast.kafka.read_all(SLA), cases)
    fired = [
        sum(float(line.split()[-1]) for line in p.metrics().splitlines() if line.startswith("helpdesk_sla_timers_fired_total{"))
        for p in (first, second)
    ]
    assert sum(fired) >= len(cases) * 10  # 2 clocks x (2 warnings, breach, 2 escalations)
