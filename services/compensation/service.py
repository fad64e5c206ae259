"""Compensation's service layer: for each batch, load the facts from the store, let the pure rules
of domain/ decide, and hand the effects (decision rows, outbox events, timers) to the Batch.

- classified complaint in → a decision recorded and published (`on_classified`; `prepare` locks the
  batch's cases and budgets first);
- approver's answer in → the decision settled, or the answer refused (`on_approval`);
- case reopened → a new grant round for the case (`on_reopened`; `prepare_activity` locks its cases);
- a pending approval nobody answered → escalated to the next role (`fire`, the timer callback);
- gauges: pending approvals and budget left (`refresh_gauges`, one round).

Every database access goes through `self.store` (services/compensation/store.py, or an in-memory
fake in tests: tests/fakes/compensation_store.py).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg

from services.compensation import metrics
from services.compensation import store as sql_store
from services.compensation.contract import (
    ApprovalAnswer, CaseReopened, ComplaintClassified, decision_event, decision_id_for, escalated_event,
    refused_answer_event, settled_event,
)
from services.compensation.domain import (
    BudgetLine, Decision, budget_line, budgets_remaining, case_facts, check_answer, decide, escalation_step,
    grant_round, month_start, order_terms, refused_as_duplicate,
)
from services.compensation.policy import CompensationPolicy
from shared.batch import Batch
from shared.events import COMPENSATION, REJECTED, dump
from shared.inbound import RecordRef
from shared.policy import PolicyHolder
from shared.service import ServiceRuntime
from shared.timers import Timer

log = logging.getLogger(__name__)

ESCALATION = "approval_escalation"  # the kind of the timer armed for each pending approval


def utc_now() -> datetime:
    """The service's clock: the current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def escalation_key(decision_id: str) -> str:
    """The key of a pending decision's escalation timer (one per decision: re-arming moves it)."""
    return f"escalate:{decision_id}"


@dataclass(frozen=True)
class BatchLocks:
    """What a batch of complaints holds locked: `Compensation.prepare` returns it as the batch's state."""

    reopens: dict[str, int]  # of each case the batch holds locked
    budgets: set[tuple[str, str]]  # (source, budget line currency) budgets it holds locked


def _budget_of(complaint: ComplaintClassified, policy: CompensationPolicy) -> tuple[str, BudgetLine | None]:
    """The complaint's currency (domain/costing.py) and the budget line a grant in it would spend
    (domain/budgets.py: a EUR grant may spend a USD budget), None when no budget applies."""
    currency = order_terms(complaint, policy).currency
    return currency, budget_line(policy, complaint.source, currency)


@dataclass
class Compensation:
    """The compensation service layer. `store` is the module of store functions (each takes the
    connection, or for locks the Batch, first); `clock` the time of decisions, answers and timers."""

    runtime: ServiceRuntime
    policy: PolicyHolder[CompensationPolicy]
    store: Any = field(default=sql_store)
    clock: Callable[[], datetime] = field(default=utc_now)

    # ---------- complaint.classified → decision ----------
    async def prepare(self, batch: Batch, complaints: list[ComplaintClassified]) -> BatchLocks:
        """The classified consumer's prepare step: a batch's locks, all taken up front in one order,
        its cases, then the budgets it spends. Its decisions then skip taking them one by one (see
        `on_classified`): what it returns is the batch's `batch.state`."""
        reopens = await self.store.lock_cases(batch, [c.case_id for c in complaints])
        policy = self.policy.current().policy
        lines = [(c.source, _budget_of(c, policy)[1]) for c in complaints]
        budgets = {(source, line.currency) for source, line in lines if line is not None}
        await self.store.lock_budgets(batch, budgets)
        return BatchLocks(reopens, budgets)  # the batch's state: its decisions read it

    async def on_classified(self, batch: Batch, complaint: ComplaintClassified) -> str:
        """Decides a classified complaint (domain/decide.py), records the decision (refused as
        `already_granted` when the one-compensation-per-round constraint already holds one), publishes
        it, and arms the escalation timer of a pending approval. Returns the outcome: "granted",
        "pending_approval" or "none"."""
        loaded = self.policy.current()
        policy, now = loaded.policy, self.clock()
        locks = batch.state if isinstance(batch.state, BatchLocks) else None
        if locks is not None and complaint.case_id in locks.reopens:
            reopens = locks.reopens[complaint.case_id]  # locked by prepare
        else:
            reopens = await self.store.lock_case(batch, complaint.case_id)
        currency, line = _budget_of(complaint, policy)
        budget = None if line is None else (complaint.source, line.currency)
        if budget is not None and (locks is None or budget not in locks.budgets):
            await self.store.lock_budget(batch, *budget)
        history = await self.store.case_history(batch.conn, complaint.case_id, reopens, currency, complaint.source,
                                                month_start(now),
                                                budget_currency=None if line is None else line.currency)
        facts = case_facts(history)
        decision = decide(complaint, policy, loaded.version, facts)
        decision_id = decision_id_for(complaint.event_id)
        inputs = {"complaint": dump(complaint), "facts": self.store.facts_as_inputs(facts)}
        record = partial(self.store.insert_decision, batch.conn, decision_id=decision_id, case_id=complaint.case_id,
                         customer_id=complaint.customer_id, source=complaint.source, causation_id=complaint.event_id,
                         grant_round=grant_round(reopens), inputs=inputs, decided_at=now)
        if not await record(decision=decision):
            # The constraint saw a compensation this code did not: never grant twice.
            decision = refused_as_duplicate(decision)
            await record(decision=decision)
        self._publish_decision(batch, decision, decision_id, complaint, now)
        if decision.outcome == "pending_approval":
            await batch.arm(escalation_key(decision_id), ESCALATION,
                            now + policy.approval_escalation_after, {"decision_id": decision_id})
        return decision.outcome

    def _publish_decision(self, batch: Batch, decision: Decision, decision_id: str,
                          complaint: ComplaintClassified, now: datetime) -> None:
        event = decision_event(decision, decision_id, complaint.case_id, complaint.customer_id, complaint.event_id, now)
        batch.publish(self.runtime.topic(COMPENSATION), complaint.case_id, event)
        metrics.decisions.labels(decision.outcome, decision.rule_id or "none", decision.reason_code).inc()
        if decision.outcome == "granted":
            metrics.value_granted.labels(decision.currency).inc(float(decision.value))

    # ---------- compensation.approved / compensation.denied ----------
    async def on_approval(self, batch: Batch, answer: ApprovalAnswer, ref: RecordRef) -> str:
        """Settles a pending decision with an approver's answer (domain/approvals.check_answer says
        whether it may) and publishes `compensation.approved` / `.denied`; otherwise records the
        answer as refused and reports `ref`, the answer's record, on the rejected topic. Returns
        "approved", "denied" or "refused"."""
        stored = await self.store.decision_for_update(batch.conn, answer.decision_id)
        status, value, currency = (None, Decimal(0), "") if stored is None else (
            stored["status"], stored["value"], stored["currency"])
        check = check_answer(status, value, currency, answer.approver.role, self.policy.policy)
        if not check.ok:
            return await self._refuse(batch, answer, ref, check.code, check.reason, stored)
        now = self.clock()
        await self.store.settle(batch.conn, answer.decision_id, answer.approved, answer.approver.role,
                                answer.approver.id, now)
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
        CRM sees why its approval did not count (contract.refused_answer_event)."""
        await self._record_answer(batch, answer, accepted=False, reason=f"{reason}: {explanation}")
        event = refused_answer_event(ref, answer, reason, explanation, metrics.SERVICE,
                                     self.runtime.settings.helpdesk_topic_prefix, stored)
        batch.publish(self.runtime.topic(REJECTED), ref.key, event)
        metrics.approvals_refused.labels(reason).inc()
        log.info("approval answer %s for decision %s refused: %s", answer.event_id, answer.decision_id, reason)
        return "refused"

    async def _record_answer(self, batch: Batch, answer: ApprovalAnswer, *, accepted: bool, reason: str) -> None:
        await self.store.record_answer(batch.conn, event_id=answer.event_id, decision_id=answer.decision_id,
                                       answer=answer.type.removeprefix("compensation."),
                                       approver_role=answer.approver.role, approver_id=answer.approver.id,
                                       accepted=accepted, reason=reason)

    # ---------- case.reopened ----------
    async def prepare_activity(self, batch: Batch, events: list[CaseReopened]) -> None:
        """The case-activity consumer's prepare step: locks the batch's cases in sorted order (the
        same case locks as decisions take), so a reopen and a decision on one case never interleave."""
        await self.store.lock_cases(batch, [e.case_id for e in events])

    async def on_reopened(self, batch: Batch, event: CaseReopened) -> str:
        """Counts a reopen of the case: its next decision belongs to a new grant round
        (domain/rounds.py). Returns "reopened"."""
        await self.store.record_reopen(batch.conn, event.case_id)
        return "reopened"

    # ---------- timer: a pending approval nobody answered ----------
    async def fire(self, batch: Batch, due: list[Timer]) -> None:
        """The escalation timers' callback (`runtime.fire_timers(compensation.fire, in_batches=False)`:
        one timer per Batch): each still-pending decision is handed to the next role
        (domain/approvals.escalation_step), published as a new `compensation.pending_approval` and
        its timer armed again; a settled one is left alone; at the top role it only logs."""
        for timer in due:
            await self._escalate(batch, timer)

    async def _escalate(self, batch: Batch, timer: Timer) -> None:
        decision_id = timer.payload["decision_id"]
        stored = await self.store.decision_for_update(batch.conn, decision_id)
        policy = self.policy.policy
        step = escalation_step(None if stored is None else stored["status"],
                               None if stored is None else stored["authority"], policy)
        if not step.waiting:
            return
        assert stored is not None
        if step.to_role is None:
            log.warning("pending decision %s is stale and %s is the top role: nobody to escalate to",
                        decision_id, stored["authority"])
            return
        now = self.clock()
        level = await self.store.escalate(batch.conn, decision_id, step.to_role)
        event = escalated_event(stored, step.to_role, level, stored["causation_id"], now)
        batch.publish(self.runtime.topic(COMPENSATION), stored["case_id"], event)
        await batch.arm(escalation_key(decision_id), ESCALATION,
                        now + policy.approval_escalation_after, {"decision_id": decision_id})
        metrics.escalations.labels(step.to_role).inc()

    # ---------- gauges ----------
    async def refresh_gauges(self, conn: asyncpg.Connection) -> None:
        """One round of the gauges (`runtime.gauges` runs it every few seconds): pending approvals,
        and each source's monthly budget left per line (domain/budgets.budgets_remaining)."""
        policy = self.policy.policy
        metrics.pending_approvals.set(await self.store.pending_count(conn))
        spent = await self.store.spent_by_source(conn, month_start(self.clock()))
        metrics.budget_remaining.clear()
        for (source, currency), left in budgets_remaining(policy, spent).items():
            metrics.budget_remaining.labels(source, currency).set(float(left))
