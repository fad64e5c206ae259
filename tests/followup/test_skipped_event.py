"""followup.skipped: a follow-up the rules refuse is published with its reason, through real Kafka
and PostgreSQL, in the transaction that decided it (outbox).

Fast policy (tests/followup/followup_fast.yaml): thank-you +3s, survey +4s, check-ins +6s, +9s, +12s.
"""
from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.followup.contract import SKIP_REASONS, FollowupSkipped, FollowupsTopicEvent
from services.followup.domain import model
from shared.events import CLASSIFIED, FOLLOWUPS
from tests.followup.test_followup_service import classified, followup_config, new_id, of, open_and_resolve  # noqa: F401 (a fixture)


def test_every_skip_reason_of_the_rules_is_a_documented_reason_of_the_event():
    reasons = {v for k, v in vars(model).items() if k.isupper() and isinstance(v, str)}
    assert reasons == set(SKIP_REASONS)
    assert FollowupSkipped.model_fields["skipped_when"].default == "planning"
    documented = FollowupsTopicEvent.model_json_schema()["properties"]["type"]["enum"]
    assert "followup.skipped" in documented


@pytest.mark.integration
async def test_survey_skipped_for_an_open_case_publishes_followup_skipped_with_the_reason(followup_config):
    ns = followup_config
    service = ns.service("followup")
    customer, still_open, resolved_case = new_id("C"), new_id("CRM"), new_id("CRM")
    await ns.kafka.publish(CLASSIFIED, classified(still_open, customer))
    resolved = await open_and_resolve(ns, resolved_case, customer)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.skipped"), timeout=30)
    [skipped] = of(out, "followup.skipped")
    assert (skipped["case_id"], skipped["customer_id"], skipped["kind"], skipped["reason"], skipped["skipped_when"]) == (
        resolved_case, customer, "satisfaction_survey", "open_case", "planning")
    assert skipped["causation_id"] == resolved["event_id"] and skipped["_key"] == resolved_case
    assert skipped["channel"] == "email" and skipped["due_at"]
    await asyncio.sleep(1)
    out = await ns.kafka.read_all(FOLLOWUPS)
    assert "satisfaction_survey" not in {r["kind"] for r in of(out, "followup.scheduled")}
    assert len(of(out, "followup.skipped")) == 1
    conn = await asyncpg.connect(ns.database_url)
    try:  # the event names the row that records the decision
        row = await conn.fetchrow("SELECT status, reason FROM followup.followups WHERE followup_id = $1",
                                  skipped["followup_id"])
    finally:
        await conn.close()
    assert (row["status"], row["reason"]) == ("skipped", "open_case")
    assert 'helpdesk_followup_skipped_total{kind="satisfaction_survey",reason="open_case"} 1.0' in service.metrics()


@pytest.mark.integration
async def test_survey_skipped_when_due_publishes_followup_skipped_besides_the_cancellation(followup_config):
    ns = followup_config
    service = ns.service("followup")
    customer, first, second = new_id("C"), new_id("CRM"), new_id("CRM")
    await open_and_resolve(ns, first, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.scheduled", kind="satisfaction_survey"), timeout=30)
    await ns.kafka.publish(CLASSIFIED, classified(second, customer))  # a new case, open when the survey falls due
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.skipped"), timeout=30)
    [survey] = of(out, "followup.scheduled", kind="satisfaction_survey")
    [skipped] = of(out, "followup.skipped")
    assert (skipped["followup_id"], skipped["kind"], skipped["reason"], skipped["skipped_when"]) == (
        survey["followup_id"], "satisfaction_survey", "open_case", "due")
    assert skipped["case_id"] == first and skipped["due_at"] == survey["due_at"]
    [cancelled] = of(out, "followup.cancelled", followup_id=survey["followup_id"])  # as before: it was announced
    assert cancelled["reason"] == "skipped_at_due:open_case"
    assert not of(out, "followup.due", kind="satisfaction_survey")
    assert 'helpdesk_followup_skipped_total{kind="satisfaction_survey",reason="open_case"} 1.0' in service.metrics()
