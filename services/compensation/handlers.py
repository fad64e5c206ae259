"""Compensation's subscribers and timer: classified complaint in → decision recorded and into the outbox;
approver's answer in → settled or refused; stale pending approval → escalated to the next role."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.compensation import metrics, store
from services.compensation.contract import (
    APPROVAL_TYPES, ApprovalAnswer, decision_event, decision_id_for, escalated_event, settled_event,
)
from services.compensation.domain import (
    Decision, budget_line, budgets_remaining, case_facts, check_answer, decide, grant_round, next_role, order_terms,
)
from services.compensation.policy import CompensationPolicy
from shared import inbound, timers
from shared.events import COMPENSATION, REJECTED, CaseReopened, ComplaintClassified, dump
from shared.inbound import RecordRef, RejectedInput, Route, every_record, parse_event, parse_keyed, rejected_event
from shared.batch import Batch
from shared.policy import PolicyHolder
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)

ESCALATION = "approval_escalation"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def month_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def escalation_key(decision_id: str) -> str:
    return f"escalate:{decision_id}"


@dataclass(frozen=True)
class BatchLocks:
    """What a batch of complaints holds locked: `lock_for_decisions` returns it as the batch's state."""

    reopens: dict[str, int]  # of each case the batch holds locked
    budgets: set[tuple[str, str]]  # (source, budget line currency) budgets it holds locked


@dataclass
class Compensation:
    runtime: ServiceRuntime
    policy: PolicyHolder[CompensationPolicy]

    # ---------- complaint.classified → decision ----------
    async def decide_complaint(self, batch: Batch, complaint: ComplaintClassified) -> str:
        loaded = self.policy.current()
        policy, now = loaded.policy, utc_now()
        locks = batch.state if isinstance(batch.state, BatchLocks) else None
        if locks is not None and complaint.case_id in locks.reopens:
            reopens = locks.reopens[complaint.case_id]  # locked by lock_for_decisions
        else:
            reopens = await store.lock_case(batch, complaint.case_id)
        currency = order_terms(complaint, policy).currency
        line = budget_line(policy, complaint.source, currency)  # a EUR grant may spend a USD budget
        budget = None if line is None else (complaint.source, line.currency)
        if budget is not None and (locks is None or budget not in locks.budgets):
            await store.lock_budget(batch, *budget)
        history = await store.case_history(batch.conn, complaint.case_id, reopens, currency, complaint.source,
                                           month_start(now), budget_currency=None if line is None else line.currency)
        facts = case_facts(history)
        decision = decide(complaint, policy, loaded.version, facts)
        decision_id = decision_id_for(complaint.event_id)
        inputs = {"complaint": dump(complaint), "facts": store.facts_as_inputs(facts)}
        record = partial(store.insert_decision, batch.conn, decision_id=decision_id, case_id=complaint.case_id,
                         customer_id=complaint.customer_id, source=complaint.source, causation_id=complaint.event_id,
                         grant_round=grant_round(reopens), inputs=inputs, decided_at=now)
        if not await record(decision=decision):
            # The constraint saw a compensation this code did not: never grant twice.
            decision = _refused_as_duplicate(decision)
            await record(decision=decision)
        await self._publish_decision(batch, decision, decision_id, complaint, now)
        if decision.outcome == "pending_approval":
            await batch.arm(escalation_key(decision_id), ESCALATION,
                            now + policy.approval_escalation_after, {"decision_id": decision_id})
        return decision.outcome

    async def _publish_decision(self, batch: Batch, decision: Decision, decision_id: str,
                                complaint: ComplaintClassified, now: datetime) -> None:
        event = decision_event(decision, decision_id, complaint.case_id, complaint.customer_id, complaint.event_id, now)
        batch.publish(self.runtime.topic(COMPENSATION), complaint.case_id, event)
        metrics.decisions.labels(decision.outcome, decision.rule_id or "none", decision.reason_code).inc()
        if decision.outcome == "granted":
            metrics.value_granted.labels(decision.currency).inc(float(decision.value))

    # ---------- compensation.approved / compensation.denied ----------
    async def settle(self, batch: Batch, answer: ApprovalAnswer, ref: RecordRef) -> str:
        stored = await store.decision_for_update(batch.conn, answer.decision_id)
        status, value, currency = (None, Decimal(0), "") if stored is None else (
            stored["status"], stored["value"], stored["currency"])
        check = check_answer(status, value, currency, answer.approver.role, self.policy.policy)
        if not check.ok:
            return await self._refuse(batch, answer, ref, check.code, check.reason, stored)
        now = utc_now()
        await store.settle(batch.conn, answer.decision_id, answer.approved, answer.approver.role, answer.approver.id, now)
        await self._record_answer(batch, answer, accepted=True, reason=check.reason)
        await batch.cancel([escalation_key(answer.decision_id)])
        event = settled_event(stored, answer, now)
        batch.publish(self.runtime.topic(COMPENSATION), stored["case_id"], event)
        waited = (now - stored["decided_at"]).total_seconds()
        metrics.approval_latency.labels("approved" if answer.approved else "denied").observe(max(0.0, waited))
        if answer.approved:
            metrics.value_granted.labels(stored["currency"]).inc(float(stored["value"]))
        return "approved" if answer.approved else "denied"

    async def _refuse(self, batch: Batch, answer: ApprovalAnswer, ref: RecordRef, reason: str,
                      explanation: str, stored: dict[str, Any] | None = None) -> str:
        """Records the answer as refused and publishes it on the rejected topic with `reason`, so the
        CRM sees why its approval did not count. An answer that left `case_id` out is reported with
        the case of the decision it named (`stored`, when that decision exists), so that
        `helpdesk rejected list --case` finds it."""
        await self._record_answer(batch, answer, accepted=False, reason=f"{reason}: {explanation}")
        event = rejected_event(ref, reason, [explanation], metrics.SERVICE, self.runtime.settings.helpdesk_topic_prefix)
        event.decision_id = answer.decision_id
        if answer.case_id is None and stored is not None:
            event.case_id = stored["case_id"]
        batch.publish(self.runtime.topic(REJECTED), ref.key, event)
        metrics.approvals_refused.labels(reason).inc()
        log.info("approval answer %s for decision %s refused: %s", answer.event_id, answer.decision_id, reason)
        return "refused"

    @staticmethod
    async def _record_answer(batch: Batch, answer: ApprovalAnswer, *, accepted: bool, reason: str) -> None:
        await store.record_answer(batch.conn, event_id=answer.event_id, decision_id=answer.decision_id,
                                  answer=answer.type.removeprefix("compensation."),
                                  approver_role=answer.approver.role, approver_id=answer.approver.id,
                                  accepted=accepted, reason=reason)

    async def lock_for_decisions(self, batch: Batch, complaints: list[ComplaintClassified]) -> BatchLocks:
        """A batch's locks, all taken up front in one order: its cases, then the budgets it spends.
        The batch's decisions then skip taking them one by one (see decide_complaint): what it
        returns is the batch's `batch.state`."""
        reopens = await store.lock_cases(batch, [c.case_id for c in complaints])
        policy = self.policy.current().policy
        lines = [(c.source, budget_line(policy, c.source, order_terms(c, policy).currency)) for c in complaints]
        budgets = {(source, line.currency) for source, line in lines if line is not None}
        await store.lock_budgets(batch, budgets)
        return BatchLocks(reopens, budgets)  # the batch's state: its decisions read it

    # ---------- case.reopened ----------
    @staticmethod
    async def record_reopen(batch: Batch, event: CaseReopened) -> str:
        await store.record_reopen(batch.conn, event.case_id)
        return "reopened"

    # ---------- timer: a pending approval nobody answered ----------
    async def escalate(self, conn: asyncpg.Connection, timer: timers.Timer) -> None:
        """The timer callback: escalates as a Batch of its own (its event written at its commit)."""
        batch = Batch(conn, store.SCHEMA, metrics.SERVICE)
        await self._escalate(batch, timer)
        await batch.commit()

    async def _escalate(self, batch: Batch, timer: timers.Timer) -> None:
        decision_id = timer.payload["decision_id"]
        stored = await store.decision_for_update(batch.conn, decision_id)
        if stored is None or stored["status"] != "pending":
            return
        policy = self.policy.policy
        to_role = next_role(stored["authority"] or "", policy)
        if to_role is None:
            log.warning("pending decision %s is stale and %s is the top role: nobody to escalate to",
                        decision_id, stored["authority"])
            return
        now = utc_now()
        level = await store.escalate(batch.conn, decision_id, to_role)
        event = escalated_event(stored, to_role, level, stored["causation_id"], now)
        batch.publish(self.runtime.topic(COMPENSATION), stored["case_id"], event)
        await batch.arm(escalation_key(decision_id), ESCALATION,
                        now + policy.approval_escalation_after, {"decision_id": decision_id})
        metrics.escalations.labels(to_role).inc()

    # ---------- gauges ----------
    async def refresh_gauges(self, every: float = 5.0) -> None:
        watch = self.runtime.dependency_watch("gauges")  # an outage: one line down, one line back
        while True:
            try:
                await self._refresh_gauges_once()
                watch.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                watch.failed(exc)
            await asyncio.sleep(every)

    async def _refresh_gauges_once(self) -> None:
        policy = self.policy.policy
        async with self.runtime.pool.acquire() as conn:
            metrics.pending_approvals.set(await store.pending_count(conn))
            spent = await store.spent_by_source(conn, month_start(utc_now()))
        metrics.budget_remaining.clear()
        for (source, currency), left in budgets_remaining(policy, spent).items():
            metrics.budget_remaining.labels(source, currency).set(float(left))


def _refused_as_duplicate(decision: Decision) -> Decision:
    return replace(decision, outcome="none", offers=[], value=Decimal(0), authority=None, budget=None,
                   reason_code="already_granted",
                   reason_codes=("already_granted",),
                   explanation=decision.explanation + ("refused by the one-compensation-per-case constraint",))


# ---------- subscribers ----------
# Compensation, unlike sla and followup, refuses a complaint.classified that does not say its type.
parse_classified = partial(inbound.parse_classified, type_required=True)


def parse_answer(raw: bytes | None) -> ApprovalAnswer:
    return parse_event(raw, ApprovalAnswer, APPROVAL_TYPES)


# ---------- subscribers (msg.raw_message is one fetched batch of records) ----------
async def on_classified(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    await compensation.runtime.inbox.handle_batch(
        msg.raw_message, every_record(parse_classified, compensation.decide_complaint), compensation.lock_for_decisions,
    )


async def on_approvals(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    def route(record: Any) -> Route:
        ref = RecordRef.of(record)  # refused answers go to the rejected topic with their record
        return Route(parse_answer, lambda batch, answer: compensation.settle(batch, answer, ref))

    await compensation.runtime.inbox.handle_batch(msg.raw_message, route)


def reopened_only(record: Any) -> Route | None:
    # Only reopened cases matter here. Bad case-activity records are reported by sla and followup,
    # which own that topic's rejections; reporting them a third time would only add noise.
    try:
        event = parse_keyed(record, lambda raw: parse_event(raw, CaseReopened, ("case.reopened",)))
    except RejectedInput:
        return None
    return Route(lambda _raw: event, Compensation.record_reopen)


async def on_case_activity(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    await compensation.runtime.inbox.handle_batch(msg.raw_message, reopened_only, lock_cases)


async def lock_cases(batch: Batch, events: list[Any]) -> None:
    await store.lock_cases(batch, [e.case_id for e in events])
