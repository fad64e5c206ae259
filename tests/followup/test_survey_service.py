"""Survey answers and one survey per case, through real Kafka and PostgreSQL.

The fast policy (tests/followup/followup_fast.yaml) with a 1 s survey window, so that only the rule
under test can hold a survey back: thank-you +3s, survey +4s, check-ins +6s, +9s, +12s after the
resolution; here `cooldown_after_response` is 20s.
"""
from __future__ import annotations

import asyncio
import shutil
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from shared.events import CASE_ACTIVITY, FOLLOWUPS, REJECTED
from tests.followup.test_followup_service import FAST_POLICY, activity, at, new_id, of, open_and_resolve

pytestmark = pytest.mark.integration

ROOT_CONFIG = Path(__file__).resolve().parents[2] / "config"

COOLDOWN = timedelta(seconds=20)


@pytest.fixture
def survey_config(ns, tmp_path):
    ns.config_dir = tmp_path / "config"
    ns.config_dir.mkdir()
    text = FAST_POLICY.read_text(encoding="utf-8")
    text = text.replace("  window: 60s ", "  window: 1s ").replace("cooldown_after_response: 0s", "cooldown_after_response: 20s")
    assert "window: 1s" in text and "cooldown_after_response: 20s" in text
    (ns.config_dir / "followup.yaml").write_text(text, encoding="utf-8")
    shutil.copy(ROOT_CONFIG / "sla.yaml", ns.config_dir / "sla.yaml")
    return ns


async def wait_for_row(ns, query: str, *args, timeout: float = 30) -> asyncpg.Record:
    conn = await asyncpg.connect(ns.database_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if row := await conn.fetchrow(query, *args):
                    return row
            except asyncpg.UndefinedTableError:
                pass  # the service has not migrated its schema yet
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise AssertionError(f"no row for {query} {args} within {timeout}s")


async def test_customer_who_answered_a_survey_is_not_surveyed_again_within_the_cooldown(survey_config):
    ns = survey_config
    service = ns.service("followup")
    customer, first, second = new_id("C"), new_id("CRM"), new_id("CRM")
    await open_and_resolve(ns, first, customer)
    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.due", kind="satisfaction_survey"), timeout=30)
    [invitation] = of(out, "followup.due", kind="satisfaction_survey")
    answered = activity("survey.answered", first, customer_id=customer, followup_id=invitation["followup_id"], score=9)
    await ns.kafka.publish(CASE_ACTIVITY, answered)
    await ns.kafka.publish(CASE_ACTIVITY, answered)  # redelivered: recorded once
    await wait_for_row(ns, "SELECT 1 FROM followup.survey_responses WHERE event_id = $1", answered["event_id"])

    await open_and_resolve(ns, second, customer)
    out = await ns.kafka.wait_for(
        FOLLOWUPS, lambda rs: of(rs, "followup.scheduled", case_id=second, kind="satisfaction_survey"), timeout=30,
    )
    [survey] = of(out, "followup.scheduled", case_id=second, kind="satisfaction_survey")
    # Planned 4 s after the second resolution, inside the 20 s after the answer: moved to its end.
    assert at(survey["due_at"]) == at(answered["occurred_at"]) + COOLDOWN
    assert "deferred: cooldown_after_response" in survey["reason"]
    assert 'helpdesk_followup_deferred_total{kind="satisfaction_survey",rule="cooldown_after_response"} 1.0' in service.metrics()
    assert "helpdesk_followup_survey_responses_total 1.0" in service.metrics()

    out = await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.due", case_id=second, kind="satisfaction_survey"), timeout=45)
    [sent] = of(out, "followup.due", case_id=second, kind="satisfaction_survey")
    assert at(sent["occurred_at"]) >= at(answered["occurred_at"]) + COOLDOWN  # not a moment before


async def test_survey_answer_is_ignored_by_sla_and_rejected_by_nobody(survey_config):
    ns = survey_config
    ns.service("followup")
    ns.service("sla")
    unknown_case = new_id("CRM")  # neither service has seen it: sla must not keep the answer for it
    answered = activity("survey.answered", unknown_case, customer_id=new_id("C"))
    await ns.kafka.publish(CASE_ACTIVITY, answered)
    await wait_for_row(ns, "SELECT 1 FROM sla.processed_events WHERE event_id = $1", answered["event_id"])
    await wait_for_row(ns, "SELECT 1 FROM followup.survey_responses WHERE event_id = $1", answered["event_id"])
    conn = await asyncpg.connect(ns.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sla.pending_activity") == 0
    finally:
        await conn.close()
    await asyncio.sleep(1)
    assert await ns.kafka.read_all(REJECTED) == []


async def test_case_reopened_and_resolved_again_after_its_survey_is_not_surveyed_twice(survey_config):
    ns = survey_config
    service = ns.service("followup")
    case, customer = new_id("CRM"), new_id("C")
    await open_and_resolve(ns, case, customer)
    await ns.kafka.wait_for(FOLLOWUPS, lambda rs: of(rs, "followup.due", kind="satisfaction_survey"), timeout=30)
    await ns.kafka.publish(CASE_ACTIVITY, activity("case.reopened", case))
    again = activity("case.resolved", case, resolution="Fixed for good")
    await ns.kafka.publish(CASE_ACTIVITY, again)
    row = await wait_for_row(
        ns, "SELECT status, reason FROM followup.followups WHERE causation_id = $1 AND kind = 'satisfaction_survey'",
        again["event_id"],
    )
    assert (row["status"], row["reason"]) == ("skipped", "case_already_surveyed")
    assert 'helpdesk_followup_surveys_skipped_total{reason="case_already_surveyed"} 1.0' in service.metrics()
    await asyncio.sleep(5)  # past when a second survey would have fallen due (+4s)
    out = await ns.kafka.read_all(FOLLOWUPS)
    assert len(of(out, "followup.scheduled", kind="satisfaction_survey")) == 1
    assert len(of(out, "followup.due", kind="satisfaction_survey")) == 1
