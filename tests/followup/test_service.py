"""The followup service layer (services/followup/service.py) on the in-memory store and batch: whole
inbound batches and timer claims without PostgreSQL or Kafka.

The clock is fixed (T0, a Monday noon UTC) and the policy is in seconds, as tests/followup/
followup_fast.yaml: improvement notice +2s, thank-you +3s, survey +4s, check-ins +6s, +9s, +12s after
the resolution; a test changes the sections it is about.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.followup.contract import ComplaintClassified
from services.followup.domain import TIMER_KIND, timer_key
from services.followup.policy import FollowupPolicy
from services.followup.service import Followups
from shared.events import FOLLOWUPS, SurveyAnswered
from shared.policy import PolicyHolder
from tests.builders import activity_model, classified_event
from tests.fakes.followup_store import MemoryFollowupStore
from tests.support.memory import MemoryWorld, StubRuntime

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
FAST_POLICY = Path(__file__).with_name("followup_fast.yaml")
TOPIC = "t." + FOLLOWUPS
CASE_KINDS = ["retention_checkin", "retention_checkin", "retention_checkin", "satisfaction_survey", "thank_you_note"]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Harness:
    """A Followups service on a MemoryFollowupStore and a MemoryWorld, with a settable clock."""

    def __init__(self, tmp_path: Path, **sections: dict[str, Any]) -> None:
        policy = yaml.safe_load(FAST_POLICY.read_text())
        for name, values in sections.items():
            policy[name] = {**policy.get(name, {}), **values}
        path = tmp_path / "followup.yaml"
        path.write_text(yaml.safe_dump(policy))
        self.clock = Clock()
        self.store = MemoryFollowupStore(clock=self.clock)
        self.world = MemoryWorld()
        self.service = Followups(StubRuntime("followup", "t."), PolicyHolder(path, FollowupPolicy), self.store, self.clock)

    async def apply(self, batch, event) -> str:
        if isinstance(event, ComplaintClassified):
            return await self.service.on_classified(batch, event)
        return await self.service.on_activity(batch, event)

    async def run(self, *events: Any) -> list[str]:
        return await self.world.run(self.service.prepare, self.apply, list(events))

    async def fire(self, at: datetime) -> None:
        self.clock.now = at
        batch = self.world.batch()
        await self.service.fire(batch, self.world.due(at))
        await batch.commit()

    def published(self, type_: str | None = None, **match: Any) -> list[dict[str, Any]]:
        return [p for t, _k, p in self.world.published
                if t == TOPIC and (type_ is None or p["type"] == type_) and all(p.get(k) == v for k, v in match.items())]


def opened(case_id: str = "CRM-1", customer_id: str = "C-1", received_at: datetime = T0 - timedelta(hours=1),
           **fields: Any) -> ComplaintClassified:
    return classified_event(case_id=case_id, customer_id=customer_id, received_at=received_at, **fields)


def resolved(case_id: str = "CRM-1", at: datetime = T0, **fields: Any):
    return activity_model("case.resolved", case_id, at, resolution="Replaced the unit", **fields)


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return sorted(e["kind"] for e in events)


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path)


async def test_a_resolved_case_schedules_thank_you_survey_and_check_ins_each_with_its_timer(h):
    event = resolved()
    assert await h.run(opened(), event) == ["recorded", "resolved"]

    scheduled = h.published("followup.scheduled")
    assert kinds(scheduled) == CASE_KINDS
    assert all(e["case_id"] == "CRM-1" and e["customer_id"] == "C-1" and e["causation_id"] == event.event_id
               for e in scheduled)
    offsets = sorted((datetime.fromisoformat(e["due_at"]) - T0).total_seconds() for e in scheduled)
    assert offsets == [3, 4, 6, 9, 12]
    assert {k: (t.kind, t.payload) for k, t in h.world.timers.items()} == {
        timer_key(e["followup_id"]): (TIMER_KIND, {"followup_id": e["followup_id"]}) for e in scheduled
    }
    assert set(h.store.statuses("CRM-1").values()) == {"scheduled"}
    assert h.store.cases["CRM-1"]["status"] == "resolved"
    assert await h.service.store.customers_in_retention(None) == 1


async def test_a_redelivered_or_second_resolution_plans_nothing_twice(h):
    event = resolved()
    await h.run(opened(), event)
    before = list(h.world.published)
    assert await h.run(event) == ["already_resolved"]  # the same event again
    assert await h.run(resolved(at=T0 + timedelta(minutes=1))) == ["already_resolved"]  # resolved again, not reopened
    assert h.world.published == before
    assert len(h.store.followups) == 5


async def test_a_reopened_case_cancels_its_thank_you_and_survey_and_keeps_the_check_ins(h):
    await h.run(opened(), resolved())
    reopen = activity_model("case.reopened", "CRM-1", T0 + timedelta(seconds=1))
    assert await h.run(reopen) == ["reopened"]

    cancelled = h.published("followup.cancelled")
    assert kinds(cancelled) == ["satisfaction_survey", "thank_you_note"]
    assert {e["reason"] for e in cancelled} == {"case_reopened"}
    assert {e["causation_id"] for e in cancelled} == {reopen.event_id}
    assert sorted(t.due_at for t in h.world.timers.values()) == [T0 + timedelta(seconds=s) for s in (6, 9, 12)]
    assert h.store.cases["CRM-1"]["status"] == "open"
    # Resolved again: the note and survey are planned anew (the survey is this case's first sent one).
    again = resolved(at=T0 + timedelta(seconds=2))
    assert await h.run(again) == ["resolved"]
    assert "thank_you_note" in kinds(h.published("followup.scheduled", causation_id=again.event_id))


async def test_a_new_complaint_on_a_resolved_case_reopens_it_but_a_late_classification_does_not(h):
    await h.run(opened(), resolved())
    assert await h.run(opened(received_at=T0 - timedelta(minutes=5))) == ["recorded"]  # before the resolution
    assert h.published("followup.cancelled") == []
    again = opened(received_at=T0 + timedelta(minutes=5))
    assert await h.run(again) == ["recorded"]
    assert kinds(h.published("followup.cancelled", causation_id=again.event_id)) == ["satisfaction_survey", "thank_you_note"]
    assert h.store.cases["CRM-1"]["status"] == "open"


async def test_the_customer_returning_cancels_every_pending_check_in_of_theirs(h):
    await h.run(opened(), resolved(), opened("CRM-2", received_at=T0 - timedelta(minutes=30)),
                resolved("CRM-2", at=T0 + timedelta(seconds=1)))
    assert len(h.published("followup.scheduled", kind="retention_checkin")) == 6
    back = activity_model("customer.returned", "CRM-2", T0 + timedelta(seconds=2), customer_id="C-1")
    assert await h.run(back) == ["returned"]

    cancelled = h.published("followup.cancelled")
    assert kinds(cancelled) == ["retention_checkin"] * 6
    assert {(e["reason"], e["causation_id"]) for e in cancelled} == {("customer_returned", back.event_id)}
    assert {t.payload["followup_id"] for t in h.world.timers.values()} == {
        f["followup_id"] for f in h.store.of(status="scheduled")
    }
    assert h.store.of(kind="retention_checkin", status="scheduled") == []
    assert await h.run(back) == ["returned"]  # nothing left to cancel: no event
    assert len(h.published("followup.cancelled")) == 6


async def test_activity_before_the_classification_is_held_then_applied_in_order(h):
    first = resolved(at=T0 - timedelta(seconds=30))
    reopen = activity_model("case.reopened", "CRM-1", T0 - timedelta(seconds=20))
    second = resolved(at=T0)
    assert await h.run(second, first, reopen) == ["held", "held", "held"]
    assert h.world.published == [] and len(h.store.pending) == 3

    assert await h.run(opened()) == ["recorded"]
    assert h.store.pending == {}
    # Applied by time: resolved (plans), reopened (cancels note and survey), resolved again (plans them anew).
    assert kinds(h.published("followup.scheduled", causation_id=first.event_id)) == CASE_KINDS
    assert kinds(h.published("followup.cancelled", causation_id=reopen.event_id)) == ["satisfaction_survey", "thank_you_note"]
    assert "thank_you_note" in kinds(h.published("followup.scheduled", causation_id=second.event_id))
    assert h.store.cases["CRM-1"]["status"] == "resolved"


async def test_a_resolution_and_its_classification_in_one_batch_plan_once(h):
    event = resolved()
    assert await h.run(event, opened()) == ["held", "recorded"]
    assert kinds(h.published("followup.scheduled")) == CASE_KINDS
    assert {e["causation_id"] for e in h.published()} == {event.event_id}


async def test_activity_held_before_the_batch_and_within_it_is_all_applied_with_the_classification(h):
    # prepare takes what was held before the batch (issue #15); what the batch itself holds for the
    # case before its classification arrives is taken when the classification is applied.
    first = resolved(at=T0 - timedelta(seconds=30))
    assert await h.run(first) == ["held"]
    reopen = activity_model("case.reopened", "CRM-1", T0 - timedelta(seconds=20))
    second = resolved(at=T0)
    assert await h.run(reopen, opened(), second) == ["held", "recorded", "resolved"]
    assert h.store.pending == {}
    assert kinds(h.published("followup.scheduled", causation_id=first.event_id)) == CASE_KINDS
    assert kinds(h.published("followup.cancelled", causation_id=reopen.event_id)) == ["satisfaction_survey", "thank_you_note"]
    assert "thank_you_note" in kinds(h.published("followup.scheduled", causation_id=second.event_id))
    assert h.store.cases["CRM-1"]["status"] == "resolved"


async def test_classifications_of_a_batch_are_written_at_once_and_a_later_one_sees_the_earlier(h):
    assert await h.run(opened(category="delay"), opened("CRM-2", "C-2"), opened(category="billing", loyalty="vip",
                                                                               received_at=T0 - timedelta(hours=3))) \
        == ["recorded"] * 3
    assert h.store.calls["upsert_cases"] == 1 and h.store.calls["upsert_case"] == 0
    case = h.store.cases["CRM-1"]
    assert (case["category"], case["loyalty"], case["received_at"]) == ("billing", "vip", T0 - timedelta(hours=1))
    # resolved, then classified again later: the new complaint reopens it, read from the batch's state
    assert await h.run(resolved()) == ["resolved"]
    h.clock.now = T0 + timedelta(hours=1)
    assert await h.run(opened(received_at=T0 + timedelta(minutes=30)), opened("CRM-2", "C-2")) == ["recorded"] * 2
    assert h.store.cases["CRM-1"]["status"] == "open"
    assert kinds(h.published("followup.cancelled")) == ["satisfaction_survey", "thank_you_note"]


async def test_due_timers_send_each_follow_up_once(h):
    await h.run(opened(), resolved())
    await h.fire(T0 + timedelta(seconds=5))  # thank-you (+3s) and survey (+4s)
    assert kinds(h.published("followup.due")) == ["satisfaction_survey", "thank_you_note"]
    assert len(h.world.timers) == 3
    await h.fire(T0 + timedelta(seconds=20))
    due = h.published("followup.due")
    assert kinds(due) == CASE_KINDS
    assert len({e["followup_id"] for e in due}) == 5
    assert h.world.timers == {} and set(h.store.statuses().values()) == {"due"}
    await h.fire(T0 + timedelta(seconds=30))
    assert len(h.published("followup.due")) == 5


async def test_a_survey_falling_due_while_another_case_is_open_is_skipped(h):
    await h.run(opened(), resolved(), opened("CRM-2", received_at=T0 + timedelta(seconds=1)))
    await h.fire(T0 + timedelta(seconds=5))
    [survey] = h.published("followup.scheduled", kind="satisfaction_survey")
    [cancelled] = h.published("followup.cancelled")
    [skipped] = h.published("followup.skipped")
    assert cancelled["followup_id"] == skipped["followup_id"] == survey["followup_id"]
    assert (cancelled["reason"], skipped["reason"], skipped["skipped_when"]) == (
        "skipped_at_due:open_case", "open_case", "due")
    assert kinds(h.published("followup.due")) == ["thank_you_note"]
    assert h.store.followups[survey["followup_id"]]["status"] == "skipped"


@pytest.mark.parametrize("on_violation", ["defer", "skip"])
async def test_a_follow_up_falling_due_right_after_a_survey_answer_is_deferred_or_skipped(tmp_path, on_violation):
    h = Harness(tmp_path, frequency={"cooldown_after_response": "1m", "on_violation": on_violation})
    await h.run(opened(), resolved())
    answer = activity_model("survey.answered", "CRM-1", T0 + timedelta(seconds=5), customer_id="C-1", score=9)
    assert isinstance(answer, SurveyAnswered)
    assert await h.run(answer) == ["answered"]
    assert await h.run(answer) == ["answered"]  # a redelivery is recorded once
    assert len(h.store.responses) == 1

    await h.fire(T0 + timedelta(seconds=6))  # the thank-you (exempt) and survey, then the first check-in
    [check_in] = [e for e in h.published("followup.scheduled", kind="retention_checkin")
                  if datetime.fromisoformat(e["due_at"]) == T0 + timedelta(seconds=6)]
    assert kinds(h.published("followup.due")) == ["thank_you_note"]  # exempt from the frequency rules
    if on_violation == "defer":
        moved = h.published("followup.scheduled", followup_id=check_in["followup_id"])[-1]
        assert moved["reason"] == "deferred when due: cooldown_after_response"
        assert datetime.fromisoformat(moved["due_at"]) == T0 + timedelta(seconds=65)  # answer + 1m
        assert h.world.timers[timer_key(check_in["followup_id"])].due_at == T0 + timedelta(seconds=65)
        assert h.store.followups[check_in["followup_id"]]["status"] == "scheduled"
    else:
        [skipped] = h.published("followup.skipped", followup_id=check_in["followup_id"])
        assert (skipped["reason"], skipped["skipped_when"]) == ("cooldown_after_response", "due")
        assert timer_key(check_in["followup_id"]) not in h.world.timers
        assert h.store.followups[check_in["followup_id"]]["status"] == "skipped"


async def test_a_timer_of_a_customer_being_handled_elsewhere_is_put_back(h):
    await h.run(opened(), resolved())
    h.world.busy.add((h.store.CUSTOMER_LOCKS.namespace, "C-1"))
    await h.fire(T0 + timedelta(seconds=5))
    assert h.published("followup.due") == [] and len(h.world.timers) == 5
    h.world.busy.clear()
    await h.fire(T0 + timedelta(seconds=5))
    assert kinds(h.published("followup.due")) == ["satisfaction_survey", "thank_you_note"]


async def test_an_improvement_is_told_to_earlier_complainants_in_the_same_category(h):
    await h.run(opened("CRM-B", "C-B", T0 - timedelta(minutes=30), category="installation"),
                opened("CRM-C", "C-C", T0 - timedelta(minutes=20), category="billing"),
                opened("CRM-1", "C-1", category="installation"))
    event = resolved(improvement="Installers now check the model number")
    assert await h.run(event) == ["resolved"]

    notices = h.published("followup.scheduled", kind="improvement_notice")
    assert sorted((e["customer_id"], e["case_id"]) for e in notices) == [("C-1", "CRM-1"), ("C-B", "CRM-B")]
    assert {datetime.fromisoformat(e["due_at"]) for e in notices} == {T0 + timedelta(seconds=2)}
    assert {e["causation_id"] for e in notices} == {event.event_id}
    # A blank improvement is no improvement: nobody else hears of it.
    assert await h.run(opened("CRM-2", "C-2", category="installation"),
                       resolved("CRM-2", improvement="  ")) == ["recorded", "resolved"]
    assert len(h.published("followup.scheduled", kind="improvement_notice")) == 2


async def test_gauges_count_customers_in_retention(h):
    from services.followup import metrics
    await h.run(opened(), resolved(), opened("CRM-2", "C-2"), resolved("CRM-2"))
    await h.service.refresh_gauges(None)
    assert metrics.customers_in_retention._value.get() == 2


async def test_an_unrelated_activity_is_ignored(h):
    assert await h.run(activity_model("case.contacted", "CRM-9", T0)) == ["ignored"]
    assert h.world.published == [] and h.store.cases == {}
