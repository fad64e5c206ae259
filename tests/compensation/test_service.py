"""Compensation's service layer (services/compensation/service.py) on the in-memory store and outbox:
no PostgreSQL, no Kafka. Batches run as the Inbox runs them (tests/support/memory.py), on the small
policy of conftest.py: the agent may grant up to 50 USD, a supervisor 500, a manager 5000; a
pending approval escalates after 4 hours."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.compensation.contract import ApprovalAnswer, decision_id_for
from services.compensation.domain import CaseHistory
from services.compensation.handlers import reopened_only
from services.compensation.service import ESCALATION, BatchLocks, Compensation, escalation_key
from shared.events import COMPENSATION, COMPENSATION_APPROVALS, REJECTED
from shared.inbound import RecordRef
from tests.builders import activity_event, activity_model, raw
from tests.fakes.compensation_store import MemoryCompensationStore
from tests.support.memory import FixedPolicy, MemoryWorld, StubRuntime

from .conftest import SMALL_POLICY, complaint, policy_from

PREFIX = "t1."
DECISIONS = PREFIX + COMPENSATION
REJECTIONS = PREFIX + REJECTED
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
BUDGETED = SMALL_POLICY.replace("pricing:", "budgets:\n  crm-east: {USD: 30}\npricing:")


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Setup(SimpleNamespace):
    service: Compensation
    store: MemoryCompensationStore
    world: MemoryWorld
    clock: Clock

    async def classified(self, *complaints) -> list[str]:
        return await self.world.run(self.service.prepare, self.service.on_classified, list(complaints))

    async def reopened(self, *case_ids: str) -> list[str]:
        events = [activity_model("case.reopened", case_id=c) for c in case_ids]
        return await self.world.run(self.service.prepare_activity, self.service.on_reopened, events)

    async def answer(self, decision_id: str, kind: str, role: str, *, case_id: str | None = "CRM-1",
                     offset: int = 0) -> str:
        document = {
            "event_id": f"answer-{offset}-{kind}-{role}", "type": f"compensation.{kind}",
            "occurred_at": "2026-11-23T12:00:00Z", "source": "crm-east", "decision_id": decision_id,
            "approver": {"role": role, "id": f"{role}-1"},
        }
        if case_id is not None:
            document["case_id"] = case_id
        answer = ApprovalAnswer.model_validate(document)
        ref = RecordRef(topic=PREFIX + COMPENSATION_APPROVALS, partition=0, offset=offset,
                        key=(case_id or "k").encode(), value=json.dumps(document).encode())
        [outcome] = await self.world.run(None, lambda batch, a: self.service.on_approval(batch, a, ref), [answer])
        return outcome

    async def fire(self, at: datetime) -> None:
        self.clock.now = at
        batch = self.world.batch()
        await self.service.fire(batch, self.world.due(at))
        await batch.commit()

    def decisions(self, case_id: str | None = None) -> list[dict[str, Any]]:
        return [p for t, _k, p in self.world.published if t == DECISIONS and case_id in (None, p["case_id"])]

    def rejections(self) -> list[dict[str, Any]]:
        return [p for t, _k, p in self.world.published if t == REJECTIONS]


def setup(policy_text: str = SMALL_POLICY, store: MemoryCompensationStore | None = None) -> Setup:
    store = store or MemoryCompensationStore()
    clock = Clock()
    service = Compensation(StubRuntime("compensation", PREFIX), FixedPolicy(policy_from(policy_text)), store=store, clock=clock)
    return Setup(service=service, store=store, world=MemoryWorld(), clock=clock)


def billing(case_id: str = "CRM-1", **fields):
    """100 USD refunded: above the agent's 50, within a supervisor's 500."""
    return complaint(category="billing", case_id=case_id, **fields)


def confusing(case_id: str = "CRM-1", **fields):
    """A 15 % coupon on 100 USD and free shipping (8): 23 USD, within the agent's limit."""
    return complaint(category="confusing_process", case_id=case_id, **fields)


def delay(case_id: str = "CRM-1", **fields):
    """No rule but the fallback (a note and a 10 USD mug), or the flowers (20) once reopened."""
    return complaint(category="delay", case_id=case_id, **fields)


async def test_a_grant_within_the_agents_authority_is_published_recorded_and_spent() -> None:
    s = setup(BUDGETED)
    event = confusing()
    assert await s.classified(event) == ["granted"]
    [granted] = s.decisions()
    assert granted["type"] == "compensation.granted"
    assert (granted["case_id"], granted["decision_id"], granted["causation_id"]) == (
        "CRM-1", decision_id_for(event.event_id), event.event_id)
    assert (granted["value"], granted["currency"], granted["authority"]) == (23.0, "USD", "agent")
    assert granted["rule_id"] == "coupon_for_confusion" and granted["reason_code"] == "within_agent_limit"
    assert [o["kind"] for o in granted["offers"]] == ["coupon", "free_shipping"]
    stored = s.store.decisions[granted["decision_id"]]
    assert (stored["status"], stored["grant_round"], stored["value"]) == ("granted", 1, Decimal("23"))
    assert stored["inputs"]["complaint"]["case_id"] == "CRM-1"
    assert s.store.budget_spent == {("crm-east", "USD", NOW.date().replace(day=1)): Decimal("23")}
    assert s.world.timers == {}  # nothing waits for anybody


async def test_prepare_locks_cases_then_budgets_and_the_decisions_reuse_them() -> None:
    s = setup(BUDGETED)
    batch = s.world.batch()
    locks = await s.service.prepare(batch, [confusing("CRM-2"), confusing("CRM-1"), billing("CRM-2")])
    assert locks == BatchLocks({"CRM-1": 0, "CRM-2": 0}, {("crm-east", "USD")})
    assert batch.locked == {"compensation:case": ["CRM-1", "CRM-2"], "compensation:budget": ["crm-east:USD"]}


async def test_above_the_agents_limit_waits_for_a_supervisor_and_arms_the_escalation_timer() -> None:
    s = setup()
    assert await s.classified(billing()) == ["pending_approval"]
    [pending] = s.decisions()
    assert pending["type"] == "compensation.pending_approval"
    assert (pending["value"], pending["authority"], pending["reason_code"]) == (100.0, "supervisor", "over_agent_limit")
    decision_id = pending["decision_id"]
    timer = s.world.timers[escalation_key(decision_id)]
    assert (timer.kind, timer.due_at, timer.payload) == (ESCALATION, NOW + timedelta(hours=4),
                                                         {"decision_id": decision_id})
    assert s.store.decisions[decision_id]["status"] == "pending"
    assert s.store.budget_spent == {}  # nothing spent until approved


async def test_an_approval_settles_it_once_and_a_second_answer_is_refused_as_not_pending() -> None:
    s = setup()
    await s.classified(billing())
    decision_id = s.decisions()[0]["decision_id"]
    s.clock.now = NOW + timedelta(hours=1)
    assert await s.answer(decision_id, "approved", "supervisor", offset=1) == "approved"
    approved = s.decisions()[-1]
    assert approved["type"] == "compensation.approved"
    assert approved["approver"] == {"role": "supervisor", "id": "supervisor-1"} and approved["value"] == 100.0
    assert s.world.timers == {}  # the escalation timer is cancelled
    assert s.store.decisions[decision_id]["status"] == "approved"
    assert s.store.budget_spent == {("crm-east", "USD", NOW.date().replace(day=1)): Decimal("100")}

    assert await s.answer(decision_id, "denied", "manager", offset=2) == "refused"
    [refused] = s.rejections()
    assert (refused["reason"], refused["decision_id"], refused["case_id"]) == ("not_pending", decision_id, "CRM-1")
    assert refused["topic"] == COMPENSATION_APPROVALS and refused["offset"] == 2  # without the prefix
    assert refused["rejected_by"] == "compensation"
    assert len(s.decisions()) == 2  # nothing more on the decisions topic
    assert s.store.decisions[decision_id]["status"] == "approved"
    answers = sorted((a["accepted"], a["reason"].split(":")[0]) for a in s.store.answers.values())
    assert answers == [(False, "not_pending"), (True, "within the supervisor limit (up to 500.00 USD)")]


async def test_answers_the_decision_does_not_allow_are_refused_with_their_code() -> None:
    s = setup()
    await s.classified(billing())
    decision_id = s.decisions()[0]["decision_id"]
    assert await s.answer(decision_id, "approved", "agent", offset=1) == "refused"
    assert await s.answer(decision_id, "approved", "janitor", offset=2) == "refused"
    # an answer before (or without) its decision; without case_id it is reported under no case
    assert await s.answer("no-such-decision", "approved", "manager", case_id=None, offset=3) == "refused"
    # without case_id, an answer to a known decision is reported under the decision's case
    assert await s.answer(decision_id, "approved", "agent", case_id=None, offset=4) == "refused"
    reasons = [(r["reason"], r.get("case_id")) for r in s.rejections()]
    assert reasons == [("approver_not_authorised", "CRM-1"), ("unknown_approver_role", "CRM-1"),
                       ("unknown_decision", None), ("approver_not_authorised", "CRM-1")]
    assert s.store.decisions[decision_id]["status"] == "pending"
    assert escalation_key(decision_id) in s.world.timers  # still waiting


async def test_never_twice_per_case_even_within_one_batch() -> None:
    s = setup()
    first, second = confusing(), billing()
    assert await s.classified(first, second) == ["granted", "none"]
    assert await s.classified(delay()) == ["none"]
    refused = s.decisions()[1:]
    assert [(d["type"], d["reason_code"], d["value"]) for d in refused] == [
        ("compensation.none", "already_granted", 0.0)] * 2
    rows = list(s.store.decisions.values())
    assert [(r["outcome"], r["grant_round"]) for r in rows] == [("granted", 1), ("none", 1), ("none", 1)]


async def test_a_grant_the_rounds_constraint_refuses_is_recorded_as_already_granted() -> None:
    class StaleReads(MemoryCompensationStore):
        """Reads a case's history as a concurrent instance did before the other grant committed."""

        @staticmethod
        def history_of(reopens, *args, **kwargs):
            return CaseHistory(reopens=reopens)

    s = setup(BUDGETED, store=StaleReads())
    assert await s.classified(confusing()) == ["granted"]
    assert await s.classified(billing()) == ["none"]  # the store refused a second pending decision
    last = s.decisions()[-1]
    assert (last["type"], last["reason_code"], last["reason_codes"], last["offers"]) == (
        "compensation.none", "already_granted", ["already_granted"], [])
    assert s.store.decisions[last["decision_id"]]["explanation"][-1] == (
        "refused by the one-compensation-per-case constraint")
    assert s.world.timers == {}  # nothing pending, nothing to escalate
    assert s.store.budget_spent == {("crm-east", "USD", NOW.date().replace(day=1)): Decimal("23")}


async def test_a_reopened_case_gets_a_second_round_where_a_rule_allows_it_and_never_a_third_grant() -> None:
    s = setup()
    assert await s.classified(delay()) == ["granted"]  # the fallback: a note and a mug
    assert await s.reopened("CRM-1") == ["reopened"]
    assert s.store.cases == {"CRM-1": 1}
    assert await s.classified(delay()) == ["granted"]  # round 2: the reopened apology
    assert await s.classified(delay()) == ["none"]  # round 2 has its grant
    kinds = [(d["type"], d["rule_id"], d["reason_code"]) for d in s.decisions()]
    assert kinds == [("compensation.granted", "apology", "fallback"),
                     ("compensation.granted", "reopened_apology", "within_agent_limit"),
                     ("compensation.none", None, "already_granted")]
    assert [r["grant_round"] for r in s.store.decisions.values()] == [1, 2, 2]


async def test_a_reopen_that_arrives_before_the_first_complaint_still_counts() -> None:
    s = setup()
    assert await s.reopened("CRM-9", "CRM-9") == ["reopened", "reopened"]
    assert s.store.cases == {"CRM-9": 2}
    assert await s.classified(delay("CRM-9")) == ["granted"]
    [granted] = s.decisions()
    assert granted["rule_id"] == "reopened_apology"  # the case counts as reopened
    assert s.store.decisions[granted["decision_id"]]["grant_round"] == 3


async def test_an_exhausted_budget_sends_an_otherwise_automatic_grant_to_a_supervisor() -> None:
    s = setup(BUDGETED)  # crm-east: 30 USD a month
    assert await s.classified(confusing("CRM-1")) == ["granted"]  # spends 23
    assert await s.classified(confusing("CRM-2")) == ["pending_approval"]  # 23 more: only 7 left
    pending = s.decisions("CRM-2")[0]
    assert (pending["authority"], pending["reason_code"]) == ("supervisor", "budget_exceeded")
    assert await s.classified(confusing("CRM-3", source="crm-west")) == ["granted"]  # no budget there
    # next month the line is full again
    s.clock.now = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert await s.classified(confusing("CRM-4")) == ["granted"]


async def test_a_stale_approval_escalates_to_the_next_role_then_stops_at_the_top() -> None:
    s = setup()
    await s.classified(billing())
    decision_id = s.decisions()[0]["decision_id"]
    await s.fire(NOW + timedelta(hours=3))  # not due yet
    assert len(s.decisions()) == 1
    await s.fire(NOW + timedelta(hours=4))
    escalated = s.decisions()[-1]
    assert (escalated["type"], escalated["authority"], escalated["escalated"], escalated["escalation_level"]) == (
        "compensation.pending_approval", "manager", True, 1)
    assert escalated["decision_id"] == decision_id and escalated["causation_id"] == s.decisions()[0]["causation_id"]
    assert s.store.decisions[decision_id]["authority"] == "manager"
    assert s.world.timers[escalation_key(decision_id)].due_at == NOW + timedelta(hours=8)  # armed again
    await s.fire(NOW + timedelta(hours=8))  # the manager is the top role: nobody to escalate to
    assert len(s.decisions()) == 2 and s.world.timers == {}
    assert s.store.decisions[decision_id]["escalations"] == 1


async def test_a_settled_decision_does_not_escalate() -> None:
    s = setup()
    await s.classified(billing())
    decision_id = s.decisions()[0]["decision_id"]
    timer = s.world.timers[escalation_key(decision_id)]
    assert await s.answer(decision_id, "denied", "supervisor", offset=1) == "denied"
    batch = s.world.batch()
    await s.service.fire(batch, [timer])  # a timer claimed just before the answer cancelled it
    await batch.commit()
    assert [d["type"] for d in s.decisions()] == ["compensation.pending_approval", "compensation.denied"]
    assert s.store.decisions[decision_id]["escalations"] == 0


async def test_the_gauges_show_pending_approvals_and_budget_left_in_one_round() -> None:
    s = setup(BUDGETED)
    await s.classified(confusing("CRM-1"), billing("CRM-2"))
    await s.service.refresh_gauges(None)
    assert REGISTRY.get_sample_value("helpdesk_compensation_pending_approvals") == 1
    left = REGISTRY.get_sample_value("helpdesk_compensation_budget_remaining", {"source": "crm-east", "currency": "USD"})
    assert left == 7.0


def test_only_well_formed_reopens_are_routed_to_the_service() -> None:
    class Record:
        key = b"CRM-1"
        value = raw(activity_event("case.reopened"))

    class Other(Record):
        value = raw(activity_event("case.resolved"))

    s = setup()
    route = reopened_only(Record(), s.service.on_reopened)
    assert route is not None and route.apply == s.service.on_reopened
    assert route.parse(Record.value).case_id == "CRM-1"
    assert reopened_only(Other(), s.service.on_reopened) is None
    with pytest.raises(TypeError):
        reopened_only(Record())


async def test_a_batch_of_answers_reads_its_decisions_once_and_a_second_answer_in_it_sees_the_first() -> None:
    # prepare_approvals (issue #15): the batch's decisions read at once, its writes made at its end;
    # an answer later in the batch sees the decision as the earlier one left it.
    s = setup()
    await s.classified(billing("CRM-1"), billing("CRM-2"))
    first, second = (d["decision_id"] for d in s.decisions())

    def answered(decision_id: str, kind: str, offset: int, case_id: str) -> tuple[ApprovalAnswer, RecordRef]:
        document = {"event_id": f"answer-{offset}", "type": f"compensation.{kind}", "occurred_at": "2026-11-23T12:00:00Z",
                    "source": "crm-east", "case_id": case_id, "decision_id": decision_id,
                    "approver": {"role": "manager", "id": "M-1"}}
        ref = RecordRef(topic=PREFIX + COMPENSATION_APPROVALS, partition=0, offset=offset, key=case_id.encode(),
                        value=json.dumps(document).encode())
        return ApprovalAnswer.model_validate(document), ref

    batch = [answered(first, "approved", 1, "CRM-1"), answered(first, "denied", 2, "CRM-1"),
             answered(second, "denied", 3, "CRM-2"), answered("nope", "approved", 4, "CRM-3")]
    refs = {answer.event_id: ref for answer, ref in batch}
    outcomes = await s.world.run(s.service.prepare_approvals,
                                 lambda b, a: s.service.on_approval(b, a, refs[a.event_id]), [a for a, _ in batch])
    assert outcomes == ["approved", "refused", "denied", "refused"]
    assert [r["reason"] for r in s.rejections()] == ["not_pending", "unknown_decision"]
    assert (s.store.decisions[first]["status"], s.store.decisions[second]["status"]) == ("approved", "denied")
    assert s.world.timers == {}, "both escalation timers cancelled at the batch's end"
    assert s.store.budget_spent == {("crm-east", "USD", NOW.date().replace(day=1)): Decimal("100")}
    assert [(a["event_id"], a["accepted"]) for a in s.store.answers.values()] == [
        ("answer-1", True), ("answer-2", False), ("answer-3", True), ("answer-4", False)]


async def test_a_batch_of_reopens_counts_each_and_writes_them_at_its_end() -> None:
    s = setup()
    assert await s.reopened("CRM-1", "CRM-2", "CRM-1") == ["reopened"] * 3
    assert s.store.cases == {"CRM-1": 2, "CRM-2": 1}
