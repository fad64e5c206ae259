"""The followup service as a real process on real Kafka and PostgreSQL, with a policy in seconds.

Fast policy (tests/followup/followup_fast.yaml): improvement notice +2s, thank-you +3s, survey +4s,
retention check-ins +6s, +9s, +12s after resolution; survey window 60s; quiet hours off.
"""
from __future__ import annotations

import asyncio
import shutil
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from shared.events import CASE_ACTIVITY, CLASSIFIED, FOLLOWUPS, REJECTED
from tests.builders import activity_event as activity, classified_json

pytestmark = pytest.mark.integration

FAST_POLICY = Path(__file__).with_name("followup_fast.yaml")
ALL_KINDS = ["improvement_notice", "retention_checkin", "retention_checkin", "retention_checkin",
             "satisfaction_survey", "thank_you_note"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def classified(case_id: str, customer_id: str, *, loyalty: str = "standard", category: str = "installation",
               temperament: str = "calm", zone: str = "UTC") -> dict:
    return classified_json(case_id=case_id, customer_id=customer_id, source="", category=category,
                           temperament=temperament, loyalty=loyalty, customer_timezone=zone,
                           received_at=datetime.now(timezone.utc))


def of(records: list[dict], type_: str, **match) -> list[dict]:
    return [r for r in records if r.get("type") == type_ and all(r.get(k) == v for k, v in match.items())]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def followup_config(ns, tmp_path):
    ns.config_dir = tmp_path / "config"
    ns.config_dir.mkdir()
    shutil.copy(FAST_POLICY, ns.config_dir / "followup.yaml")
    return ns


async def open_and_resolve(ns, case_id: str, customer_id: str, **resolution) -> dict:
    await ns.kafka.publish(CLASSIFIED, classified(case_id, customer_id, **resolution.pop("case", {})))
    resolved = activity("case.resolved", case_id, resolution="Replaced the unit", **resolution)
    await ns.kafka.publish(CASE_ACTIVITY, resolved)
    return resolved


async def test_resolved_case_schedules_each_follow_up_and_each_falls_due_at_its_time(followup_config):
    ns = followup_config
    service = ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    resolved = await open_and_resolve(ns, case, customer, improvement="Installers now check the model number",
                                      case={"loyalty": "loyal", "zone": "Asia/Tokyo"})
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.due")) >= 6, timeout=45)
    scheduled, due = of(out, "followup.scheduled"), of(out, "followup.due")
    assert sorted(r["kind"] for r in scheduled) == ALL_KINDS
    assert {r["_key"] for r in out} == {case}
    assert all(r["causation_id"] == resolved["event_id"] and r["customer_id"] == customer for r in scheduled)
    assert {r["kind"]: r["channel"] for r in scheduled}["thank_you_note"] == "mail"  # a loyal customer
    resolved_at = at(resolved["occurred_at"])
    offsets = sorted((at(r["due_at"]) - resolved_at).total_seconds() for r in scheduled)
    assert offsets == pytest.approx([2, 3, 4, 6, 9, 12], abs=0.01)
    planned_for = {r["followup_id"]: at(r["due_at"]) for r in scheduled}
    assert sorted(r["followup_id"] for r in due) == sorted(planned_for)
    for r in due:
        fired = at(r["occurred_at"])
        assert planned_for[r["followup_id"]] <= fired <= planned_for[r["followup_id"]] + timedelta(seconds=10)
    metrics = service.metrics()
    assert 'helpdesk_followup_due_total{channel="mail",kind="thank_you_note"} 1.0' in metrics
    assert 'helpdesk_followup_scheduled_total{channel="email",kind="retention_checkin"} 3.0' in metrics


async def test_customer_who_comes_back_gets_no_more_retention_check_ins(followup_config):
    ns = followup_config
    service = ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    await open_and_resolve(ns, case, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.due", kind="retention_checkin")) == 1, timeout=30)
    returned = activity("customer.returned", case, customer_id=customer)
    await ns.kafka.publish(CASE_ACTIVITY, returned)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.cancelled")) >= 2, timeout=30)
    cancelled = of(out, "followup.cancelled")
    assert [(r["kind"], r["reason"], r["causation_id"]) for r in cancelled] == [
        ("retention_checkin", "customer_returned", returned["event_id"])] * 2
    await asyncio.sleep(5)  # past the last check-in's due time (+12s)
    out = await ns.kafka.read_all(FOLLOWUPS)
    assert len(of(out, "followup.due", kind="retention_checkin")) == 1
    assert "helpdesk_followup_customers_returned_after_recovery_total 1.0" in service.metrics()


async def test_second_case_resolved_within_the_survey_window_gets_no_second_survey(followup_config):
    ns = followup_config
    service = ns.service("followup")
    customer, first, second = new_id("C"), new_id("CRM"), new_id("CRM")
    await open_and_resolve(ns, first, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled", case_id=first)) == 5, timeout=30)
    await open_and_resolve(ns, second, customer)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled", case_id=second)) == 4, timeout=30)
    await asyncio.sleep(1)
    out = await ns.kafka.read_all(FOLLOWUPS)
    surveys = of(out, "followup.scheduled", kind="satisfaction_survey")
    assert [r["case_id"] for r in surveys] == [first]
    assert 'helpdesk_followup_surveys_skipped_total{reason="survey_within_window"} 1.0' in service.metrics()
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.due", kind="satisfaction_survey"), timeout=30)
    assert [r["case_id"] for r in of(out, "followup.due", kind="satisfaction_survey")] == [first]


async def test_reopened_case_cancels_its_note_and_survey_and_the_next_resolution_plans_them_again(followup_config):
    ns = followup_config
    ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    await open_and_resolve(ns, case, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled")) == 5, timeout=30)
    reopened = activity("case.reopened", case)
    await ns.kafka.publish(CASE_ACTIVITY, reopened)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.cancelled")) == 2, timeout=30)
    cancelled = of(out, "followup.cancelled")
    assert sorted(r["kind"] for r in cancelled) == ["satisfaction_survey", "thank_you_note"]
    assert {r["reason"] for r in cancelled} == {"case_reopened"}
    again = activity("case.resolved", case, resolution="Fixed for good")
    await ns.kafka.publish(CASE_ACTIVITY, again)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled", causation_id=again["event_id"])) >= 2, timeout=30)
    await asyncio.sleep(1)
    out = await ns.kafka.read_all(FOLLOWUPS)
    assert sorted(r["kind"] for r in of(out, "followup.scheduled", causation_id=again["event_id"])) == [
        "satisfaction_survey", "thank_you_note"]  # the check-ins of the first resolution still run
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.due", kind="thank_you_note")) == 1, timeout=30)
    cancelled_ids = {r["followup_id"] for r in cancelled}
    assert not cancelled_ids & {r["followup_id"] for r in of(out, "followup.due")}


async def test_follow_ups_pending_through_a_crash_each_fall_due_exactly_once_after_restart(followup_config):
    ns = followup_config
    service = ns.service("followup")
    cases = [(new_id("CRM"), new_id("C")) for _ in range(5)]
    for case, customer in cases:
        await open_and_resolve(ns, case, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled")) == 25, timeout=30)
    service.kill()
    await asyncio.sleep(13)  # every follow-up falls due while the service is down
    service.start()
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.due")) >= 25, timeout=60)
    await asyncio.sleep(2)
    out = await ns.kafka.read_all(FOLLOWUPS)
    scheduled_ids = {r["followup_id"] for r in of(out, "followup.scheduled")}
    due_counts = Counter(r["followup_id"] for r in of(out, "followup.due"))
    assert set(due_counts) == scheduled_ids and set(due_counts.values()) == {1}


async def test_two_instances_send_each_follow_up_exactly_once(followup_config):
    ns = followup_config
    ns.service("followup")
    ns.service("followup")
    cases = [(new_id("CRM"), new_id("C")) for _ in range(8)]
    for case, customer in cases:
        await open_and_resolve(ns, case, customer)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.due")) >= 40, timeout=60)
    await asyncio.sleep(2)
    out = await ns.kafka.read_all(FOLLOWUPS)
    assert len(of(out, "followup.scheduled")) == 40
    due_counts = Counter(r["followup_id"] for r in of(out, "followup.due"))
    assert len(due_counts) == 40 and set(due_counts.values()) == {1}


async def test_resolution_arriving_before_the_classification_is_applied_when_it_arrives(followup_config):
    ns = followup_config
    ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    resolved = activity("case.resolved", case, resolution="Refunded")
    await ns.kafka.publish(CASE_ACTIVITY, resolved)
    await asyncio.sleep(2)
    assert of(await ns.kafka.read_all(FOLLOWUPS), "followup.scheduled") == []
    await ns.kafka.publish(CLASSIFIED, classified(case, customer))
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled")) == 5, timeout=30)
    assert {r["causation_id"] for r in out} == {resolved["event_id"]}


async def test_duplicate_resolution_is_a_no_op_and_a_bad_activity_goes_to_the_rejected_topic(followup_config):
    ns = followup_config
    service = ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    resolved = await open_and_resolve(ns, case, customer)
    await ns.kafka.publish(CASE_ACTIVITY, resolved)
    await ns.kafka.publish(CASE_ACTIVITY, {"event_id": "x", "type": "case.resolved", "case_id": case}, key=case)
    rejected = await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) == 1, timeout=30)
    assert rejected[0]["reason"] == "invalid_fields" and rejected[0]["rejected_by"] == "followup"
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: len(of(rs, "followup.scheduled")) >= 5, timeout=30)
    await asyncio.sleep(1)
    assert len(of(await ns.kafka.read_all(FOLLOWUPS), "followup.scheduled")) == 5
    assert "helpdesk_followup_duplicate_events_total" in service.metrics()


async def test_improvement_is_told_to_other_customers_with_a_recent_case_in_the_same_category(followup_config):
    ns = followup_config
    ns.service("followup")
    other_case, other_customer = new_id("CRM"), new_id("C")
    unrelated_case = new_id("CRM")
    await ns.kafka.publish(CLASSIFIED, classified(other_case, other_customer, category="installation"))
    await ns.kafka.publish(CLASSIFIED, classified(unrelated_case, new_id("C"), category="billing"))
    await asyncio.sleep(1)
    case, customer = new_id("CRM"), new_id("C")
    await open_and_resolve(ns, case, customer, improvement="Installers now check the model number")
    out = await ns.kafka.wait_for(
        FOLLOWUPS, lambda rs: of(rs, "followup.due", kind="improvement_notice", customer_id=other_customer), timeout=30,
    )
    notices = of(out, "followup.scheduled", kind="improvement_notice")
    assert sorted((r["customer_id"], r["case_id"]) for r in notices) == sorted([(customer, case), (other_customer, other_case)])
    assert of(out, "followup.due", kind="improvement_notice", customer_id=other_customer)[0]["_key"] == other_case
    conn = await asyncpg.connect(ns.database_url)
    try:  # nothing of the resolution text is kept
        assert await conn.fetchval("SELECT count(*) FROM followup.followups WHERE reason LIKE '%model number%'") == 0
    finally:
        await conn.close()
