"""The intake service as a real process on a real Kafka broker and PostgreSQL server."""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import asyncpg
import pytest

from shared.events import CLASSIFIED, COMPLAINTS, REJECTED
from tests.builders import complaint_event

pytestmark = pytest.mark.integration

CONTRACT_FIELDS = {
    "event_id", "type", "occurred_at", "case_id", "causation_id", "customer_id", "category", "severity",
    "temperament", "loyalty", "publicity_risk", "priority", "reasons", "channel", "public", "order",
    "customer_timezone", "repeat_contacts",
}


def new_complaint(**overrides):
    overrides.setdefault("event_id", str(uuid.uuid4()))
    overrides.setdefault("case_id", f"CRM-{uuid.uuid4().hex[:8]}")
    return complaint_event(**overrides)


async def test_suitcase_wrecked_and_posted_publicly_is_classified_for_downstream_services(ns):
    ns.service("intake")
    event = new_complaint(
        channel="social", public=True,
        customer={"id": "C-77", "name": "Dan Carter", "email": "dan@example.com", "tier": "loyal",
                  "timezone": "Europe/Berlin"},
        order={"id": "O-9", "amount": 450.0, "currency": "EUR"},
        subject="My brand new suitcase arrived wrecked",
        description="The airline destroyed my new suitcase, the handle is torn off and the shell is cracked.",
    )
    await ns.kafka.publish(COMPLAINTS, event)
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) >= 1)
    classified = out[0]
    assert CONTRACT_FIELDS <= classified.keys()
    assert classified["type"] == "complaint.classified"
    assert classified["causation_id"] == event["event_id"]
    assert classified["_key"] == event["case_id"] == classified["case_id"]
    assert classified["category"] == "damaged_in_transit"
    assert classified["publicity_risk"] == "high"
    assert classified["loyalty"] == "loyal"
    assert classified["priority"] in {"P1", "P2"}
    assert classified["order"] == {"id": "O-9", "amount": 450.0, "currency": "EUR"}
    assert classified["customer_timezone"] == "Europe/Berlin"
    assert classified["repeat_contacts"] == 0
    text = json.dumps(classified)
    assert "Dan Carter" not in text and "dan@example.com" not in text and "handle is torn" not in text


async def test_the_same_complaint_delivered_twice_makes_one_case_and_one_classification(ns):
    intake = ns.service("intake")
    event = new_complaint(subject="The coffee was cold", description="My latte was not right.")
    await ns.kafka.publish(COMPLAINTS, event)
    await ns.kafka.publish(COMPLAINTS, event)
    marker = new_complaint()
    await ns.kafka.publish(COMPLAINTS, marker)  # same partition order is not guaranteed: wait for both ids
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: {marker["event_id"], event["event_id"]} <= {r["causation_id"] for r in rs})
    await asyncio.sleep(1.0)
    out = await ns.kafka.read_all(CLASSIFIED)
    assert [r["causation_id"] for r in out].count(event["event_id"]) == 1
    conn = await asyncpg.connect(ns.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.cases WHERE case_id = $1", event["case_id"]) == 1
        assert await conn.fetchval("SELECT count(*) FROM intake.complaints WHERE case_id = $1", event["case_id"]) == 1
    finally:
        await conn.close()
    assert "helpdesk_intake_duplicate_events_total" in intake.metrics()


async def test_a_customer_who_has_to_complain_again_is_a_repeat_contact_with_higher_severity(ns):
    ns.service("intake")
    first = new_complaint(subject="Late delivery", description="My order is late.")
    again = new_complaint(case_id=first["case_id"], subject="Late delivery", description="My order is still late.")
    await ns.kafka.publish(COMPLAINTS, first)
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) == 1)
    await ns.kafka.publish(COMPLAINTS, again)
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) == 2)
    by_cause = {r["causation_id"]: r for r in out}
    order = ["low", "medium", "high", "critical"]
    assert by_cause[again["event_id"]]["repeat_contacts"] == 1
    assert order.index(by_cause[again["event_id"]]["severity"]) > order.index(by_cause[first["event_id"]]["severity"])


async def test_bad_records_go_to_the_rejected_topic_and_good_ones_after_them_still_flow(ns):
    intake = ns.service("intake")
    case = f"CRM-{uuid.uuid4().hex[:8]}"
    bad = [
        b"this is not json",
        b"[1, 2, 3]",
        json.dumps(new_complaint(case_id=case, channel="carrier pigeon")).encode(),
        json.dumps(new_complaint(case_id=case, occurred_at="2026-11-23T10:00:00")).encode(),
        json.dumps(new_complaint(case_id=case, description="x" * 20_001)).encode(),
        b"{" * 100_000,
        b'{"a": "' + b"x" * (1024 * 1024 + 10) + b'"}',
    ]
    good = new_complaint(case_id=case)
    for raw in bad:
        await ns.kafka.publish(COMPLAINTS, raw, key=case)
    await ns.kafka.publish(COMPLAINTS, good)
    rejected = await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) >= len(bad), timeout=90)
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: any(r["causation_id"] == good["event_id"] for r in rs))
    assert len(rejected) == len(bad)
    reasons = sorted(r["reason"] for r in rejected)
    assert reasons == sorted(["not_json", "not_an_object", "invalid_fields", "invalid_fields", "invalid_fields",
                              "not_json", "too_large"])
    for r in rejected:
        assert r["type"] == "complaint.rejected"
        assert r["topic"] == COMPLAINTS and isinstance(r["offset"], int) and isinstance(r["partition"], int)
        assert r["errors"] and r["_key"] == case
        assert base64.b64decode(r["raw"]) in bad
    assert any("channel" in e for r in rejected for e in r["errors"])
    assert intake.proc.poll() is None, "the consumer must survive bad input"
    assert 'helpdesk_intake_rejected_events_total{reason="not_json"' in intake.metrics()


async def test_records_with_header_values_that_are_not_utf8_are_still_handled(ns):
    # FastStream decodes header values as UTF-8 before any handler runs; one bad header used to
    # fail the whole fetch. No handler reads headers, so such values no longer matter.
    intake = ns.service("intake")
    case = f"CRM-{uuid.uuid4().hex[:8]}"
    good = new_complaint(case_id=case)
    await ns.kafka.publish(COMPLAINTS, b"not json", key=case, headers=[("trace", b"\xff\xfe")])
    await ns.kafka.publish(COMPLAINTS, good, headers=[("trace", b"\xc3\x28"), ("ok", b"fine")])
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: any(r["causation_id"] == good["event_id"] for r in rs))
    [rejected] = await ns.kafka.wait_for(REJECTED, lambda rs: len(rs) >= 1)
    assert rejected["reason"] == "not_json" and base64.b64decode(rejected["raw"]) == b"not json"
    assert intake.proc.poll() is None


async def test_intake_killed_mid_stream_classifies_every_complaint_exactly_once_after_restart(ns):
    intake = ns.service("intake")
    events = [new_complaint() for _ in range(300)]
    publishing = asyncio.create_task(ns.kafka.publish_many(COMPLAINTS, events))
    await ns.kafka.wait_for(CLASSIFIED, lambda rs: len(rs) >= 20, timeout=60)
    intake.kill()
    await publishing
    intake.start()
    wanted = {e["event_id"] for e in events}
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: wanted <= {r["causation_id"] for r in rs}, timeout=120)
    causes = [r["causation_id"] for r in out]
    assert set(causes) == wanted, "nothing lost and nothing invented"
    conn = await asyncpg.connect(ns.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM intake.complaints") == len(events)
    finally:
        await conn.close()


async def test_the_learned_classifier_files_complaints_in_customers_words_and_says_who_decided(ns):
    intake = ns.service("intake")
    in_words = new_complaint(channel="in_person", subject="",
                             description="The man at the till rolled his eyes and told me to read the sign")
    from_crm = new_complaint(subject="Question", description="Nothing in here says what it is about",
                             crm_category="Product fault")
    unmapped = new_complaint(subject="x", description="zzz qqq", crm_category="Something the policy does not map")
    for event in (in_words, from_crm, unmapped):
        await ns.kafka.publish(COMPLAINTS, event)
    ids = {e["event_id"] for e in (in_words, from_crm, unmapped)}
    out = await ns.kafka.wait_for(CLASSIFIED, lambda rs: ids <= {r["causation_id"] for r in rs})
    by_cause = {r["causation_id"]: r for r in out}

    person = by_cause[in_words["event_id"]]
    assert (person["category"], person["category_decided_by"], person["needs_review"]) == ("staff_behaviour", "model", False)
    assert 0.25 <= person["category_confidence"] <= 1
    assert person["reasons"][0].startswith("category staff_behaviour: model ")

    crm = by_cause[from_crm["event_id"]]
    assert (crm["category"], crm["category_decided_by"]) == ("defect", "crm")

    ignored = by_cause[unmapped["event_id"]]
    assert ignored["reasons"][0] == "the CRM's category 'Something the policy does not map' is not mapped in crm_categories: ignored"
    assert ignored["category_decided_by"] != "crm"

    metrics = intake.metrics()
    assert 'helpdesk_intake_category_decisions_total{decided_by="model"}' in metrics
    assert "helpdesk_intake_classifier_info{version=" in metrics
    assert "helpdesk_intake_classifier_confidence_ratio_bucket" in metrics
