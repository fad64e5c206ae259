"""Followup's service layer: resolved → follow-ups scheduled (or skipped, with the reason);
returned/reopened → cancelled; survey answered → recorded for the frequency rules; due → sent,
moved or skipped.

Each step loads the facts its decision needs (`self.store`), asks the pure rules in `domain/`,
then hands the effects to the `Batch`: rows through the store, timers armed or cancelled and
events to publish, all committed in the batch's one transaction (outbox + durable timers).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.followup import metrics
from services.followup import store as real_store
from services.followup.contract import (
    FOLLOWUPS, CaseReopened, CaseResolved, ComplaintClassified, CustomerReturned, SurveyAnswered, cancelled_event,
    deferred_event, due_event, scheduled_event, skipped_at_due_events, skipped_when_planned_event,
)
from services.followup.domain import (
    CASE_REOPENED, CUSTOMER_RETURNED, TIMER_KIND, PendingFollowup, PlannedFollowup, ResolvedCase, SkippedFollowup,
    cancel_on_reopened, cancel_on_returned, complaint_reopens, decide_at_due, enters_retention,
    improvement_recipients, names_improvement, number_followups, plan_improvement_notice, plan_on_resolved,
    resolution_plans, timer_key,
)
from services.followup.policy import FollowupPolicy
from shared import timers
from shared.batch import Batch
from shared.locks import AdvisoryLocks
from shared.events import now
from shared.policy import PolicyHolder

_NO_PROFILE = ("UTC", "standard")  # (timezone, loyalty) of a customer without a case on record


@dataclass
class Followups:
    """The followup service's layer between the Inbox / timer engine and the domain.

    `runtime` names the topics (`topic(name)`: a `ServiceRuntime`, or a stub in tests); `policy`
    is the hot-reloaded followup.yaml; `store` is services/followup/store.py (or a fake with the
    same functions, tests/fakes/followup_store.py); `clock` gives the current instant (UTC) the
    rules plan from. Every method that takes a `Batch` writes only through it and `self.store`.
    """

    runtime: Any
    policy: PolicyHolder[FollowupPolicy]
    store: Any = real_store
    clock: Callable[[], datetime] = now

    # ---------- inbound ----------
    async def prepare(self, batch: Batch, events: list[Any]) -> FollowupBatch:
        """A batch's locks, taken up front in one order: its cases, then every customer it may plan
        for (the classification's, the activity's, and the known customer of each resolved or
        reopened case). Then, for the cases it classifies, their rows and the activity held for
        them, one statement each. Returns the `FollowupBatch` (the batch's `batch.state`): its
        classifications are written together, one statement, before anything else of the batch
        reads the cases (`_flush`) and at its end."""
        cases = (ComplaintClassified, CaseResolved, CaseReopened)
        await batch.lock(self.store.CASE_LOCKS, [e.case_id for e in events if isinstance(e, cases)])
        known = {e.customer_id for e in events if isinstance(e, (ComplaintClassified, CustomerReturned, SurveyAnswered))}
        of_cases = [e.case_id for e in events if isinstance(e, (CaseResolved, CaseReopened))]
        await batch.lock(self.store.CUSTOMER_LOCKS, known | set(await self.store.customers_of_cases(batch.conn, of_cases)))
        classified = sorted({e.case_id for e in events if isinstance(e, ComplaintClassified)})
        state = FollowupBatch()
        if classified:
            found = await self.store.cases_for_update(batch.conn, classified)
            state.cases = {case_id: (dict(found[case_id]) if case_id in found else None) for case_id in classified}
            state.held = {case_id: list(rows) for case_id, rows in
                          (await self.store.take_held_activities(batch.conn, classified)).items()}
        batch.before_commit(lambda: self._flush(batch))
        return state

    async def _flush(self, batch: Batch) -> None:
        """Writes the classifications the batch gathered (one statement), so what reads the cases
        next sees them."""
        state = _state_of(batch)
        if state is not None and state.upserts:
            upserts, state.upserts = state.upserts, []
            await self.store.upsert_cases(batch.conn, upserts)

    async def on_classified(self, batch: Batch, event: ComplaintClassified) -> str:
        """Records the case (a new complaint on a resolved case reopens it: `complaint_reopens`),
        then applies, in the order they happened, the resolutions and reopenings held for it.
        Returns "recorded"."""
        state = _state_of(batch)
        await _lock(batch, self.store.CASE_LOCKS, [event.case_id])
        received_at = event.received_at or event.occurred_at
        if state is not None and event.case_id in state.cases:
            # read in prepare (and kept current by this batch's classifications); written at the
            # batch's end or before anything else reads the cases
            before = state.cases[event.case_id]
            state.upserts.append(event)
            state.cases[event.case_id] = _classified(before, event, received_at)
            held = list(state.held.pop(event.case_id, []))
        else:  # not prepared, or changed by the batch since (activity held for it here, a reopen)
            await self._flush(batch)
            before = await self.store.upsert_case(batch.conn, event)
            held = None
        reopens = before is not None and complaint_reopens(before["status"], before["resolved_at"], received_at)
        if reopens or held:
            await self._flush(batch)
            if state is not None:
                state.cases.pop(event.case_id, None)  # changed below: read again when needed
        if reopens:
            await self._reopen(batch, event.case_id, event.event_id)
        if held is None:  # what prepare took for it, and what the batch held for it since
            taken = state.held.pop(event.case_id, []) if state is not None else []
            held = list(taken) + list(await self.store.take_held_activity(batch.conn, event.case_id))
        if held:
            case = dict(await self.store.case_for_update(batch.conn, event.case_id))  # read once, kept current below
            for activity in sorted(held, key=lambda r: r["occurred_at"]):
                if activity["type"] == "case.resolved":
                    await self._resolve(batch, case, activity["event_id"], activity["occurred_at"], activity["improvement"])
                else:
                    await self._reopen(batch, event.case_id, activity["event_id"], case)
        return "recorded"

    async def on_activity(self, batch: Batch, event: Any) -> str:
        """One case-activity event: returned, survey answered, resolved, reopened (held when the case's
        classification has not arrived yet: "held"); every other type is "ignored"."""
        if isinstance(event, CustomerReturned):
            return await self.on_customer_returned(batch, event)
        if isinstance(event, SurveyAnswered):
            return await self.on_survey_answered(batch, event)
        if not isinstance(event, (CaseResolved, CaseReopened)):
            return "ignored"  # contacts, promises, pauses: the sla service's business
        improvement = isinstance(event, CaseResolved) and names_improvement(event.improvement)
        await _lock(batch, self.store.CASE_LOCKS, [event.case_id])
        await self._flush(batch)  # the batch's classifications so far, before the case is read
        state = _state_of(batch)
        if state is not None:
            state.cases.pop(event.case_id, None)  # changed here: read again when needed
        case = await self.store.case_for_update(batch.conn, event.case_id)
        if case is None:
            # The classification is still on its way; apply this when it arrives, in order.
            await self.store.hold_activity(batch.conn, event.event_id, event.case_id, event.type, event.occurred_at, improvement)
            return "held"
        if isinstance(event, CaseResolved):
            return await self._resolve(batch, dict(case), event.event_id, event.occurred_at, improvement)
        return await self._reopen(batch, event.case_id, event.event_id)

    async def on_customer_returned(self, batch: Batch, event: CustomerReturned) -> str:
        """The customer is back: their scheduled retention check-ins end (`cancel_on_returned`). "returned"."""
        await self._flush(batch)
        await _lock(batch, self.store.CUSTOMER_LOCKS, [event.customer_id])
        ending = cancel_on_returned(await self.store.scheduled_of_customer(batch.conn, event.customer_id), event.customer_id)
        if ending:
            metrics.returned_after_recovery.inc()  # came back while we were still keeping in touch
        await self._cancel(batch, ending, CUSTOMER_RETURNED, event.event_id)
        return "returned"

    async def on_survey_answered(self, batch: Batch, event: SurveyAnswered) -> str:
        """Records the answer. Nothing is moved now: every follow-up of this customer that falls due
        within `frequency.cooldown_after_response` of it is deferred or skipped when due, and new
        plans keep clear of it (the rule lives in domain.frequency). "answered"."""
        await _lock(batch, self.store.CUSTOMER_LOCKS, [event.customer_id])
        await self._flush(batch)
        if await self.store.record_survey_response(batch.conn, event):
            metrics.survey_responses.inc()
        return "answered"

    async def _resolve(self, batch: Batch, case: dict[str, Any], event_id: str, resolved_at: datetime, improvement: bool) -> str:
        """Resolves `case` (its row, as loaded; its status is updated in place) and plans its
        follow-ups and, for an improvement, the notices to other customers."""
        if not resolution_plans(case["status"]):
            return "already_resolved"
        case_id = case["case_id"]
        await self.store.set_case_status(batch.conn, case_id, "resolved", resolved_at)
        case["status"], case["resolved_at"] = "resolved", resolved_at
        policy, customer_id, clock = self.policy.current().policy, case["customer_id"], self.clock()
        await _lock(batch, self.store.CUSTOMER_LOCKS, [customer_id])
        facts = await self.store.customer_facts(
            batch.conn, customer_id, timezone=case["timezone"], loyalty=case["loyalty"], exclude_case=case_id,
        )
        plan = plan_on_resolved(policy, ResolvedCase(case_id, resolved_at, improvement), facts, clock)
        await self._schedule(batch, plan.planned, plan.skipped, event_id)
        if enters_retention(facts, plan.planned):
            metrics.entered_retention.inc()
        if improvement:
            await self._spread_the_word(batch, policy, case, event_id, clock)
        return "resolved"

    async def _spread_the_word(self, batch: Batch, policy: FollowupPolicy, case: dict[str, Any], event_id: str,
                               clock: datetime) -> None:
        """Tells other customers with a recent case in the same category what was changed."""
        if not (policy.improvement_notice.enabled and policy.improvement_notice.notify_same_category_customers):
            return
        candidates = await self.store.category_candidates(
            batch.conn, case["category"], clock - policy.improvement_notice.lookback, case["customer_id"],
        )
        recipients = improvement_recipients(
            policy, category=case["category"], resolving_customer_id=case["customer_id"], candidates=candidates, now=clock,
        )
        await _lock(batch, self.store.CUSTOMER_LOCKS, [r.customer_id for r in recipients])
        profiles = await self.store.customer_profiles(batch.conn, [r.customer_id for r in recipients])
        facts = await self.store.customers_facts(
            batch.conn, {r.customer_id: profiles.get(r.customer_id, _NO_PROFILE) for r in recipients},
        )  # one read for every recipient (one case each): nothing is written before all are planned
        planned, skipped = [], []
        for recipient in recipients:
            placed = plan_improvement_notice(policy, recipient, facts[recipient.customer_id], clock)
            (planned if isinstance(placed, PlannedFollowup) else skipped).append(placed)
        await self._schedule(batch, planned, skipped, event_id)

    async def _reopen(self, batch: Batch, case_id: str, event_id: str, case: dict[str, Any] | None = None) -> str:
        """Reopens the case (`case`, its loaded row, is updated in place) and cancels what
        `cancel_on_reopened` says no longer fits."""
        await self.store.set_case_status(batch.conn, case_id, "open")
        if case is not None:
            case["status"] = "open"
        pending = await self.store.scheduled_of_case(batch.conn, case_id)
        await self._cancel(batch, cancel_on_reopened(pending, case_id), CASE_REOPENED, event_id)
        return "reopened"

    # ---------- scheduling and cancelling ----------
    async def _schedule(
        self, batch: Batch, planned: Sequence[PlannedFollowup], skipped: Sequence[SkippedFollowup], causation_id: str,
    ) -> None:
        """Stores a plan under ids numbered from `causation_id`; only rows new to the store (not a
        replay's) arm a timer and publish their event."""
        numbered, numbered_skips = number_followups(causation_id, planned, skipped)
        new = set(await self.store.record_planned(batch.conn, numbered, causation_id))
        new_skips = set(await self.store.record_skipped(batch.conn, numbered_skips, causation_id))
        fresh = [(fid, p) for fid, p in numbered if fid in new]
        fresh_skips = [(fid, s) for fid, s in numbered_skips if fid in new_skips]
        await batch.arm_many([
            timers.Timer(timer_key(fid), TIMER_KIND, p.due_at, {"followup_id": fid}) for fid, p in fresh
        ])
        self._emit(batch, [scheduled_event(fid, p, causation_id) for fid, p in fresh]
                   + [skipped_when_planned_event(fid, s, causation_id) for fid, s in fresh_skips])
        for _, p in fresh:
            metrics.scheduled.labels(p.kind, p.channel).inc()
            for rule in p.deferred_by:
                metrics.deferred.labels(p.kind, rule).inc()
        for _, s in fresh_skips:
            metrics.count_skip(s.kind, s.reason)

    async def _cancel(self, batch: Batch, ending: Sequence[PendingFollowup], reason: str, causation_id: str) -> None:
        if not ending:
            return
        await self.store.close_followups(batch.conn, [p.followup_id for p in ending], "cancelled", reason)
        await batch.cancel([timer_key(p.followup_id) for p in ending])
        self._emit(batch, [cancelled_event(p, causation_id, reason) for p in ending])
        for p in ending:
            metrics.cancelled.labels(p.kind, p.channel, reason).inc()

    def _emit(self, batch: Batch, events: Sequence[Any]) -> None:
        topic = self.runtime.topic(FOLLOWUPS)
        batch.publish_many([(topic, e.case_id, e) for e in events])

    # ---------- due ----------
    async def fire(self, batch: Batch, due: list[timers.Timer]) -> None:
        """Sends the follow-ups whose time has come, checking the rules once more with today's facts
        (`decide_at_due`: send, defer or skip). The claimed timers are one Batch (one outbox INSERT
        at its commit, by `runtime.fire_timers`)."""
        by_id = {t.payload.get("followup_id", ""): t for t in due if t.kind == TIMER_KIND}
        owners = await self.store.customers_of_followups(batch.conn, by_id)
        locked = await batch.try_lock(self.store.CUSTOMER_LOCKS, owners.values())
        # A customer whose events are being handled right now: put those timers back rather than wait
        # for the lock (that batch may be waiting to cancel the very timers claimed here: a deadlock).
        # They fire on the next claim, with that batch's changes in view.
        await batch.arm_many([by_id[fid] for fid, owner in owners.items() if owner not in locked])
        ids = [fid for fid, owner in owners.items() if owner in locked]
        scheduled = await self.store.scheduled_by_ids(batch.conn, ids)  # cancelled ones are gone: nothing to send
        profiles = await self.store.customer_profiles(batch.conn, [p.customer_id for p, _ in scheduled])
        policy, clock = self.policy.current().policy, self.clock()
        for followup, causation_id in scheduled:
            zone, loyalty = profiles.get(followup.customer_id, _NO_PROFILE)
            # Read per follow-up, after the previous one was sent or moved: its facts count them.
            facts = await self.store.customer_facts(
                batch.conn, followup.customer_id, timezone=zone, loyalty=loyalty,
                exclude_case=followup.case_id, exclude_followup=followup.followup_id,
            )
            decision = decide_at_due(policy, followup, facts, clock)
            if decision.action == "send":
                await self._send(batch, followup, causation_id)
            elif decision.action == "defer":
                await self._defer(batch, followup, causation_id, decision.due_at, decision.reason)
            else:
                await self._skip_at_due(batch, followup, causation_id, decision.reason)

    async def _send(self, batch: Batch, followup: PendingFollowup, causation_id: str) -> None:
        await self.store.close_followups(batch.conn, [followup.followup_id], "due", "")
        self._emit(batch, [due_event(followup, causation_id)])
        metrics.due.labels(followup.kind, followup.channel).inc()

    async def _defer(self, batch: Batch, followup: PendingFollowup, causation_id: str, due_at: datetime, rules: str) -> None:
        reason = f"deferred when due: {rules}"
        await self.store.move_due(batch.conn, followup.followup_id, due_at, reason)
        await batch.arm(timer_key(followup.followup_id), TIMER_KIND, due_at, {"followup_id": followup.followup_id})
        self._emit(batch, [deferred_event(followup, causation_id, due_at, reason)])
        for rule in rules.split(", "):
            metrics.deferred.labels(followup.kind, rule).inc()

    async def _skip_at_due(self, batch: Batch, followup: PendingFollowup, causation_id: str, rule: str) -> None:
        await self.store.close_followups(batch.conn, [followup.followup_id], "skipped", rule)
        self._emit(batch, skipped_at_due_events(followup, causation_id, rule))
        metrics.cancelled.labels(followup.kind, followup.channel, "skipped_at_due").inc()
        metrics.count_skip(followup.kind, rule)

    # ---------- gauges ----------
    async def refresh_gauges(self, conn: asyncpg.Connection) -> None:
        """One round of the gauges (`runtime.gauges` runs it every few seconds): customers with a
        retention check-in still scheduled."""
        metrics.customers_in_retention.set(await self.store.customers_in_retention(conn))


@dataclass
class FollowupBatch:
    """What `Followups.prepare` returns, an inbound batch's `batch.state`.

    `cases`: the rows (None: not classified yet) of the cases the batch classifies, as read and
    locked in prepare and then as this batch's classifications leave them (a case something else
    of the batch touched is dropped, and read again when needed); `held`: the activity held for
    them, taken in prepare; `upserts`: the classifications not written yet, in order."""

    cases: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    held: dict[str, list[Any]] = field(default_factory=dict)
    upserts: list[ComplaintClassified] = field(default_factory=list)


async def _lock(batch: Batch, locks: AdvisoryLocks, keys: Sequence[str]) -> None:
    """`batch.lock` for the keys the batch does not hold yet (prepare took most): no statement
    when it holds them all."""
    await batch.lock(locks, [key for key in keys if not batch.holds(locks, key)])


def _state_of(batch: Batch) -> FollowupBatch | None:
    return batch.state if isinstance(batch.state, FollowupBatch) else None


def _classified(before: dict[str, Any] | None, event: ComplaintClassified, received_at: datetime) -> dict[str, Any]:
    """A case's row as `store.upsert_case` leaves it (its status and resolution stay; received_at
    only moves forward)."""
    row = dict(before) if before is not None else {"case_id": event.case_id, "status": "open", "resolved_at": None,
                                                  "received_at": received_at}
    row.update(customer_id=event.customer_id, category=event.category, temperament=event.temperament,
               loyalty=event.loyalty, timezone=event.customer_timezone or "UTC",
               received_at=max(row["received_at"], received_at))
    return row
