"""Compensation's service layer: for each batch, load the facts from the store, let the pure rules
of domain/ decide, and hand the effects (decision rows, outbox events, timers) to the Batch.

- classified complaint in → a decision recorded and published (`on_classified`; `prepare` locks the
  batch's cases and budgets first);
- approver's answer in → the decision settled, or the answer refused (`on_approval`; `prepare_approvals`
  reads and locks the batch's decisions first);
- case reopened → a new grant round for the case (`on_reopened`; `prepare_activity` locks its cases);
- a pending approval nobody answered → escalated to the next role (`fire`, the timer callback);
- gauges: pending approvals and budget left (`refresh_gauges`, one round).

Each prepare step reads what its batch needs with one statement per table and returns the batch's
state (`BatchLocks`, `Answers`, `Reopens`); the records work on it, and a `before_commit` step
writes what they gathered, one statement per table: no statement runs once per record.

Every database access goes through `self.store` (services/compensation/store.py, or an in-memory
fake in tests: tests/fakes/compensation_store.py).
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
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


@dataclass
class BatchLocks:
    """What a batch of complaints holds locked and has read, `Compensation.prepare`'s result and the
    batch's `batch.state`; its decisions read and extend it, and a `before_commit` step writes them.

    `reopens`: of each case the batch holds locked; `budgets`: the (source, budget line currency)
    budgets it holds locked; `compensated`: each locked case's granted and pending_approval
    decisions (store.Compensated), those of the batch included; `spent`: what each (source, budget
    line currency, month) spent, as read and then with the batch's grants; `decisions` and
    `escalations`: the decisions to record and the escalation timers to arm at the batch's end."""

    reopens: dict[str, int]
    budgets: set[tuple[str, str]]
    # what it read and gathers (not part of what it holds: left out of comparisons)
    compensated: dict[str, list[Any]] = field(default_factory=dict, compare=False)
    spent: dict[tuple[str, str, date], Decimal] = field(default_factory=dict, compare=False)
    decisions: list[Any] = field(default_factory=list, compare=False)  # store.NewDecision, in order
    escalations: list[Timer] = field(default_factory=list, compare=False)


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
        its cases, then the budgets it spends; then, one statement per table, the cases' granted and
        pending decisions and the budgets' spending this month. Its decisions read and extend what
        it returns (the batch's `batch.state`, see `on_classified`); a `before_commit` step records
        them and arms their escalation timers, one statement each, whatever the batch's size."""
        reopens = await self.store.lock_cases(batch, [c.case_id for c in complaints])
        policy = self.policy.current().policy
        terms = [(c.source, *_budget_of(c, policy)) for c in complaints]
        budgets = {(source, line.currency) for source, _currency, line in terms if line is not None}
        await self.store.lock_budgets(batch, budgets)
        state = BatchLocks(reopens, budgets)
        state.compensated = {case_id: [] for case_id in reopens}
        state.compensated.update(await self.store.compensations_of_cases(batch.conn, list(reopens)))
        # each decision's month so far: its budget line's, or without one its own currency's
        ledgers = {(source, currency if line is None else line.currency) for source, currency, line in terms}
        month = month_start(self.clock())
        for (source, currency), spent in (await self.store.months_spent(batch.conn, ledgers, month)).items():
            state.spent[(source, currency, decided_month(month))] = spent
        batch.before_commit(lambda: self._record_decisions(batch, state))
        return state

    async def on_classified(self, batch: Batch, complaint: ComplaintClassified) -> str:
        """Decides a classified complaint (domain/decide.py) on its case's history (what `prepare`
        read, with the batch's earlier decisions), refuses it as `already_granted` when the
        one-compensation-per-round constraint would (store.round_taken: the case has a granted or
        pending decision in this round already), publishes it, and arms the escalation timer of a
        pending approval; the decision row and the timer are written at the batch's end. Returns
        the outcome: "granted", "pending_approval" or "none"."""
        loaded = self.policy.current()
        policy, now = loaded.policy, self.clock()
        state = batch.state if isinstance(batch.state, BatchLocks) else None
        if state is None:  # not prepared (one complaint on its own): prepare it now, written at commit
            state = batch.state = await self.prepare(batch, [complaint])
        if complaint.case_id not in state.reopens:
            state.reopens[complaint.case_id] = await self.store.lock_case(batch, complaint.case_id)
            state.compensated[complaint.case_id] = (
                await self.store.compensations_of_cases(batch.conn, [complaint.case_id])).get(complaint.case_id, [])
        reopens = state.reopens[complaint.case_id]
        currency, line = _budget_of(complaint, policy)
        budget = None if line is None else (complaint.source, line.currency)
        if budget is not None and budget not in state.budgets:
            await self.store.lock_budget(batch, *budget)
            state.budgets.add(budget)
        month = month_start(now)
        ledger = (complaint.source, currency if line is None else line.currency, decided_month(now))
        if ledger not in state.spent:  # a line without budget, or a month begun since prepare
            state.spent[ledger] = await self.store.month_spent(batch.conn, ledger[0], ledger[1], month)
        compensated = state.compensated[complaint.case_id]
        history = self.store.history_of(reopens, compensated, currency, state.spent[ledger])
        facts = case_facts(history)
        decision = decide(complaint, policy, loaded.version, facts)
        round_ = grant_round(reopens)
        if decision.outcome != "none" and self.store.round_taken(compensated, round_):
            # The constraint would see a compensation these rules did not: never grant twice.
            decision = refused_as_duplicate(decision)
        decision_id = decision_id_for(complaint.event_id)
        inputs = {"complaint": dump(complaint), "facts": self.store.facts_as_inputs(facts)}
        state.decisions.append(self.store.NewDecision(
            decision_id=decision_id, decision=decision, case_id=complaint.case_id, customer_id=complaint.customer_id,
            source=complaint.source, causation_id=complaint.event_id, grant_round=round_, inputs=inputs,
            decided_at=now))
        if decision.outcome != "none":
            status = "granted" if decision.outcome == "granted" else "pending"
            compensated.append(self.store.Compensated(round_, decision.currency, decision.value, status))
        if decision.outcome == "granted":
            charged = (decision.budget.currency, decision.budget.amount) if decision.budget else (
                decision.currency, decision.value)
            if charged[1] > 0:  # what the ledger row gains when the decision is written (store._SPEND)
                key = (complaint.source, charged[0], decided_month(now))
                if key not in state.spent:
                    state.spent[key] = await self.store.month_spent(batch.conn, key[0], key[1], month)
                state.spent[key] += charged[1]
        self._publish_decision(batch, decision, decision_id, complaint, now)
        if decision.outcome == "pending_approval":
            state.escalations.append(Timer(escalation_key(decision_id), ESCALATION,
                                           now + policy.approval_escalation_after, {"decision_id": decision_id}))
        return decision.outcome

    async def _record_decisions(self, batch: Batch, state: BatchLocks) -> None:
        """The batch's decisions in one statement (with what they spend), then its escalation timers.
        A decision the database refuses although the batch's checks passed (its id recorded, or the
        one-compensation-per-round constraint: only a lock not taken could let that happen) fails
        the batch: it rolls back and the Inbox handles its records again one at a time, re-reading
        each case, rather than publishing a decision that was not recorded."""
        wanted = [d.decision_id for d in state.decisions]
        inserted = await self.store.insert_decisions(batch.conn, state.decisions)
        if refused := [d for d in wanted if d not in inserted]:
            raise RuntimeError(f"{len(refused)} decision(s) refused by the decisions table although the batch held "
                               f"their cases' locks (first: {refused[0]}); the batch is rolled back")
        await batch.arm_many(state.escalations)

    def _publish_decision(self, batch: Batch, decision: Decision, decision_id: str,
                          complaint: ComplaintClassified, now: datetime) -> None:
        event = decision_event(decision, decision_id, complaint.case_id, complaint.customer_id, complaint.event_id, now)
        batch.publish(self.runtime.topic(COMPENSATION), complaint.case_id, event)
        metrics.decisions.labels(decision.outcome, decision.rule_id or "none", decision.reason_code).inc()
        if decision.outcome == "granted":
            metrics.value_granted.labels(decision.currency).inc(float(decision.value))

    # ---------- compensation.approved / compensation.denied ----------
    async def prepare_approvals(self, batch: Batch, answers: list[ApprovalAnswer]) -> Answers:
        """The approvals consumer's prepare step: the decisions the batch's answers name, read and
        locked in one statement (in id order). Returns the batch's `Answers` (its `batch.state`):
        `on_approval` reads the decisions there and gathers its writes, which a `before_commit` step
        makes with one statement per table (settlements, answers, timers cancelled)."""
        asked = {a.decision_id for a in answers}
        state = Answers(await self.store.decisions_for_update(batch.conn, asked), asked=asked)
        batch.before_commit(lambda: self._record_answers(batch, state))
        return state

    async def _record_answers(self, batch: Batch, state: Answers) -> None:
        await self.store.settle_many(batch.conn, state.settlements)
        await self.store.record_answers(batch.conn, state.answers)
        if state.cancelled:
            await batch.cancel(state.cancelled)

    async def on_approval(self, batch: Batch, answer: ApprovalAnswer, ref: RecordRef) -> str:
        """Settles a pending decision with an approver's answer (domain/approvals.check_answer says
        whether it may) and publishes `compensation.approved` / `.denied`; otherwise records the
        answer as refused and reports `ref`, the answer's record, on the rejected topic. Returns
        "approved", "denied" or "refused". In a prepared batch (`prepare_approvals`) the decision
        is read from the batch's state (a second answer to it in the batch sees it settled) and the
        writes are made at the batch's end."""
        state = batch.state if isinstance(batch.state, Answers) else None
        if state is not None and answer.decision_id in state.asked:
            stored = copy.deepcopy(state.decisions.get(answer.decision_id))  # None: no such decision
        else:
            stored = await self.store.decision_for_update(batch.conn, answer.decision_id)
        status, value, currency = (None, Decimal(0), "") if stored is None else (
            stored["status"], stored["value"], stored["currency"])
        check = check_answer(status, value, currency, answer.approver.role, self.policy.policy)
        if not check.ok:
            return await self._refuse(batch, answer, ref, check.code, check.reason, stored)
        now = self.clock()
        settlement = self.store.Settlement(answer.decision_id, answer.approved, answer.approver.role,
                                           answer.approver.id, now)
        if state is None:
            await self.store.settle_many(batch.conn, [settlement])
        else:
            state.settlements.append(settlement)
            state.decisions[answer.decision_id]["status"] = "approved" if answer.approved else "denied"
        await self._record_answer(batch, answer, accepted=True, reason=check.reason)
        if state is None:
            await batch.cancel([escalation_key(answer.decision_id)])
        else:
            state.cancelled.append(escalation_key(answer.decision_id))
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
        recorded = self.store.Answer(event_id=answer.event_id, decision_id=answer.decision_id,
                                     answer=answer.type.removeprefix("compensation."),
                                     approver_role=answer.approver.role, approver_id=answer.approver.id,
                                     accepted=accepted, reason=reason)
        if isinstance(batch.state, Answers):
            batch.state.answers.append(recorded)
        else:
            await self.store.record_answers(batch.conn, [recorded])

    # ---------- case.reopened ----------
    async def prepare_activity(self, batch: Batch, events: list[CaseReopened]) -> Reopens:
        """The case-activity consumer's prepare step: locks the batch's cases in sorted order (the
        same case locks as decisions take), so a reopen and a decision on one case never interleave.
        Returns the batch's `Reopens` (its `batch.state`), written in one statement at its end."""
        await self.store.lock_cases(batch, [e.case_id for e in events])
        reopens = Reopens()
        batch.before_commit(lambda: self.store.record_reopens(batch.conn, reopens.counts))
        return reopens

    async def on_reopened(self, batch: Batch, event: CaseReopened) -> str:
        """Counts a reopen of the case: its next decision belongs to a new grant round
        (domain/rounds.py). In a prepared batch the count is written at its end. Returns "reopened"."""
        if isinstance(batch.state, Reopens):
            batch.state.counts[event.case_id] = batch.state.counts.get(event.case_id, 0) + 1
        else:
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


@dataclass
class Answers:
    """What `Compensation.prepare_approvals` returns, the batch's `batch.state`: the decisions its
    answers name, as read and locked (`decisions`, kept current as answers settle them; an id
    missing from them is unknown), and the writes gathered for its end: `settlements`
    (store.Settlement), `answers` (store.Answer) and the escalation timers to cancel."""

    decisions: dict[str, dict[str, Any]]
    settlements: list[Any] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)  # the decision ids read (those missing from `decisions` are unknown)


@dataclass
class Reopens:
    """What `Compensation.prepare_activity` returns, the batch's `batch.state`: how many times each
    case was reopened in the batch, written at its end (store.record_reopens)."""

    counts: dict[str, int] = field(default_factory=dict)


def decided_month(at: datetime) -> date:
    """The budget ledger's month of a decision taken at `at`: the first day of its UTC month."""
    return at.astimezone(timezone.utc).date().replace(day=1)
