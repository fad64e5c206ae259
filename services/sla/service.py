"""The sla service layer: for a batch of inbound events (or a claim of due timers) it loads the
cases, applies the pure rules of `domain/`, and carries out their effects (clock rows, timers,
outbox events) through the batch's one write step (`Writes`), in the transaction the caller opened.

Every database access goes through `Sla.store` (the real `services/sla/store.py` by default; the
service-layer tests give it `tests/fakes/sla_store.py`).
"""
from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.sla import metrics
from services.sla import store as default_store
from services.sla.contract import sla_event
from services.sla.domain import (
    ArmTimer, AutomatedContact, CancelTimers, CaseSla, Emit, KeepForLater, Outcome, TimerDue, on_activity,
    on_classified, on_timer,
)
from services.sla.domain.calendar import NoWorkingTime
from services.sla.policy import AlwaysOpen, CalendarChoice, SlaPolicy
from shared import timers
from shared.batch import Batch
from shared.events import SLA, ComplaintClassified, Inbound, case_activity, now
from shared.policy import PolicyHolder, describe_notes

log = logging.getLogger(__name__)


@dataclass
class Sla:
    """The sla service layer. `runtime` gives the full topic names (`topic(name)`; a
    `ServiceRuntime` in production), `policy` the hot-reloaded sla.yaml, `store` the functions that
    read and write the service's tables (`services/sla/store.py`, or a fake with the same names).

    Inbound: `prepare` (the Inbox's prepare step), then `on_classified` / `on_activity` per event;
    timers: `fire`; gauges: `refresh_gauges`."""

    runtime: Any
    policy: PolicyHolder[SlaPolicy]
    store: Any = default_store
    _targets_version: str | None = field(default=None, init=False)
    _round_the_clock_logged: str | None = field(default=None, init=False)  # policy version

    def current_policy(self) -> SlaPolicy:
        """The policy in force; on a new version, publishes its targets and logs its advice
        (durations in days on a business-hours calendar, SlaPolicy.load_warnings)."""
        loaded = self.policy.current()
        if loaded.version != self._targets_version:
            metrics.publish_targets(loaded.policy)
            for note in describe_notes(self.policy.path, loaded.policy.load_warnings()):
                log.warning("%s", note)
            self._targets_version = loaded.version
        return loaded.policy

    def decide(self, case_id: str, rule: Callable[[SlaPolicy], Outcome], policy: SlaPolicy | None = None) -> Outcome:
        """`rule` under the policy in force (or `policy`). When a calendar has no working time within
        the ten years the calendar arithmetic searches (`NoWorkingTime`: a holiday list covering
        years, a clock whose calendar lost hours in an edit), the decision is taken again with every
        clock of the case counting round the clock (24x7), as a clock whose calendar was removed
        does: the case keeps clocks with deadlines, and the consumer is never stopped by it. Logged
        as a warning once per policy version (then at debug), and counted in
        `helpdesk_sla_round_the_clock_fallbacks_total`."""
        policy = self.current_policy() if policy is None else policy
        try:
            return rule(policy)
        except NoWorkingTime as exc:
            metrics.round_the_clock_fallbacks.inc()
            level = logging.WARNING if self._round_the_clock_logged != self._targets_version else logging.DEBUG
            self._round_the_clock_logged = self._targets_version
            log.log(level, "case %s: %s on its calendar; its clocks count round the clock (24x7) for this "
                    "decision. Check the calendar's hours and holidays in %s (further cases at debug "
                    "level, counted in helpdesk_sla_round_the_clock_fallbacks_total)", case_id, exc, self.policy.path.name)
            return rule(_round_the_clock(policy))

    # ---------- inbound events (inside the Inbox's transaction) ----------
    async def prepare(self, batch: Batch, events: list[Inbound]) -> Writes:
        """The Inbox's `prepare` step: takes the batch's case locks (`store.CASE_LOCKS`, sorted),
        reads those cases and which of them have activity kept for later, and returns the Writes
        that gather the batch's effects (its `batch.state`), written by the batch's commit after its
        last event (see Writes)."""
        case_ids = sorted({e.case_id for e in events})
        await batch.lock(self.store.CASE_LOCKS, case_ids)
        writes = Writes(save_cases=True, store=self.store, loaded=await self.store.load_cases(batch.conn, case_ids),
                        with_pending=await self.store.cases_with_pending(batch.conn, case_ids))
        topic = self.runtime.topic(SLA)
        batch.before_commit(lambda: writes.write(batch, topic))
        return writes

    async def on_classified(self, batch: Batch, event: ComplaintClassified) -> str:
        """A classification (a first one, or a repeat with a new priority): starts or retargets the
        case's clocks and applies the activity kept for it. Returns "processed"."""
        case = await self._lock_and_load(batch, event.case_id)
        pending = [case_activity.validate_python(doc) for doc in await self._take_pending(batch, event.case_id)]
        outcome = self.decide(event.case_id, lambda policy: on_classified(case, event, policy, now(), pending))
        await self._carry_out(batch, [outcome], save_case=True)
        return "processed"

    async def on_activity(self, batch: Batch, event: Inbound) -> str:
        """One case activity: moves the case's clocks ("processed"), or, for a case not classified
        yet, keeps the event for its classification ("kept_for_later", free text left out)."""
        case = await self._lock_and_load(batch, event.case_id)
        outcome = self.decide(event.case_id, lambda policy: on_activity(case, event, policy, now()))
        if any(isinstance(e, KeepForLater) for e in outcome.effects):
            await self.store.keep_for_later(batch.conn, event)
            if (writes := _writes_of(batch)) is not None:
                writes.with_pending.add(event.case_id)
            return "kept_for_later"
        await self._carry_out(batch, [outcome], save_case=True)
        return "processed"

    # ---------- timers (inside the transaction that claimed them) ----------
    async def fire(self, batch: Batch, due: list[timers.Timer]) -> None:
        """Fires claimed timers (`runtime.fire_timers(sla.fire)`: one Batch per claim, committed by
        the runtime when this returns). A timer whose payload cannot be read is dropped (logged);
        a timer of a case locked elsewhere is put back (armed again as it was). The others fire in
        due order, each seeing the case as the previous one left it; the clocks are written once.

        A clock has one timer, re-armed for its next event when it fires (domain/clock.py). When
        that next event is due by this claim already (by now, or by the latest due time claimed:
        the claim took only timers due by the database's now), it fires in this claim too, in due
        order with the others, so a clock that fell behind (the service was down) sends every
        event it missed in one transaction, as it did with a timer per event. Only the clock's
        final arming reaches the table (`Writes`: an arm after a cancel of one key ends armed).
        Such a firing is not a claimed row: `helpdesk_sla_timers_fired_total` does not count it."""
        readable = [(t, _timer_due(t)) for t in due]
        readable = [(t, d) for t, d in readable if d is not None]
        locked = await batch.try_lock(self.store.CASE_LOCKS, [d.case_id for _, d in readable])
        # A case being changed elsewhere right now: put its timers back rather than wait for its lock
        # (waiting here while that change waits on these claimed rows would deadlock). They fire on
        # the next claim, and if that change re-armed the clock they are stale and do nothing.
        busy = [t for t, d in readable if d.case_id not in locked]
        await batch.arm_many(busy)
        cases: dict[str, CaseSla | None] = dict(await self.store.load_cases(batch.conn, sorted(locked)))
        policy, wall_clock = self.current_policy(), now()
        horizon = max([wall_clock, *(t.due_at for t, _ in readable)])
        order = itertools.count()
        queue = [(t.due_at, t.key, next(order), d) for t, d in readable if d.case_id in locked]
        heapq.heapify(queue)
        chained: set[tuple[str, str, str, int]] = set()  # events fired in this claim after a re-arm
        outcomes = []
        while queue:
            due_at, _key, _n, timer_due = heapq.heappop(queue)
            outcome = self.decide(timer_due.case_id, lambda p, d=timer_due, at=due_at: on_timer(
                cases.get(d.case_id), d, p, max(wall_clock, at)), policy)
            cases[timer_due.case_id] = outcome.case
            outcomes.append(outcome)
            for effect in outcome.effects:
                # the clock's next event, due by this claim: fire it now (each event at most once
                # per claim, so the loop ends whatever the rules do; they always move on anyway)
                if isinstance(effect, ArmTimer) and effect.due_at <= horizon:
                    event = (effect.timer.case_id, effect.timer.clock_key, effect.timer.kind, effect.timer.n)
                    if event not in chained:
                        chained.add(event)
                        heapq.heappush(queue, (effect.due_at, effect.key, next(order), effect.timer))
        await self._carry_out(batch, outcomes, save_case=False)

    # ---------- gauges ----------
    async def refresh_gauges(self, conn: asyncpg.Connection) -> None:
        """One round of the gauges (`runtime.gauges(sla.refresh_gauges)` repeats it): open clocks,
        clocks at risk and kept activity, read on `conn`; and the policy's targets if it changed."""
        metrics.set_gauges(
            await self.store.open_clock_counts(conn), await self.store.at_risk_counts(conn),
            await self.store.pending_count(conn),
        )
        self.current_policy()

    # ---------- effects ----------
    async def _carry_out(self, batch: Batch, outcomes: list[Outcome], *, save_case: bool) -> None:
        writes = _writes_of(batch)
        if writes is not None:
            writes.add(outcomes)  # written once, when the batch's last event has been applied
            return
        writes = Writes(save_cases=save_case, store=self.store)
        writes.add(outcomes)
        await writes.write(batch, self.runtime.topic(SLA))

    async def _lock_and_load(self, batch: Batch, case_id: str) -> CaseSla | None:
        writes = _writes_of(batch)
        if writes is None:
            await batch.lock(self.store.CASE_LOCKS, [case_id])
            return await self.store.load_case(batch.conn, case_id)
        # prepare holds the case's lock and read it; a change earlier in the batch is not written yet
        return writes.cases[case_id] if case_id in writes.cases else writes.loaded.get(case_id)

    async def _take_pending(self, batch: Batch, case_id: str) -> list[dict[str, Any]]:
        writes = _writes_of(batch)
        if writes is not None and case_id not in writes.with_pending:
            return []  # the usual case, known without a statement per event
        return await self.store.take_pending(batch.conn, case_id)


def _round_the_clock(policy: SlaPolicy) -> SlaPolicy:
    """`policy` with every calendar counting every second and every new clock on 24x7."""
    return policy.model_copy(update={
        "calendars": {name: AlwaysOpen() for name in policy.calendars}, "calendar": CalendarChoice(),
    })


def _timer_due(timer: timers.Timer) -> TimerDue | None:
    """What a timer's payload says (`TimerDue`), or None (logged) when it cannot be read."""
    try:
        return TimerDue.from_data(timer.payload)
    except (KeyError, TypeError, ValueError):
        log.error("timer %s has a payload the sla service cannot read; dropped", timer.key)
        return None


@dataclass
class Writes:
    """The effects of a batch of outcomes, written with one statement per table through `store`.
    An inbound batch gathers them across all its events (its `batch.state`, from Sla.prepare); a
    case changed twice in one batch is saved once, in its final state, and a timer armed and
    withdrawn within the batch never reaches the table. A clock's timer has one key for all its
    armings, so one batch may cancel and arm the same key: cancels are written before arms, and a
    key armed again after its cancel ends armed (armed, then cancelled: it ends cancelled, the
    table's row too, since the domain cancels a clock's armed key before arming it again).
    Timers firing save the clocks only (`save_cases=False`)."""

    save_cases: bool
    store: Any = default_store
    loaded: dict[str, CaseSla] = field(default_factory=dict)  # as the batch found them (locked)
    cases: dict[str, CaseSla] = field(default_factory=dict)  # as changed since
    with_pending: set[str] = field(default_factory=set)  # cases with activity kept for their classification
    clocks: dict[tuple[str, str], None] = field(default_factory=dict)  # ordered set of (case_id, key)
    armed: dict[str, ArmTimer] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    emitted: list[Emit] = field(default_factory=list)
    automated: list[AutomatedContact] = field(default_factory=list)

    def add(self, outcomes: list[Outcome]) -> None:
        """Gathers outcomes, in order: the case's latest state, its changed clocks, its effects."""
        for outcome in outcomes:
            if outcome.case is None:
                continue
            self.cases[outcome.case.case_id] = outcome.case
            self.clocks.update(((outcome.case.case_id, key), None) for key in outcome.changed_clocks)
            for effect in outcome.effects:
                if isinstance(effect, Emit):
                    self.emitted.append(effect)
                elif isinstance(effect, ArmTimer):
                    self.armed[effect.key] = effect
                elif isinstance(effect, CancelTimers):
                    for key in effect.keys:
                        if self.armed.pop(key, None) is None:
                            self.cancelled.add(key)
                elif isinstance(effect, AutomatedContact):
                    self.automated.append(effect)

    async def write(self, batch: Batch, topic: str) -> None:
        """Saves the cases and clocks, cancels and arms the timers, and publishes the events to the
        batch (written to the outbox by its commit)."""
        conn = batch.conn
        if self.save_cases:
            await self.store.save_cases(conn, self.cases.values())
        await self.store.save_clocks(conn, [self.cases[case_id].clocks[key] for case_id, key in self.clocks])
        if self.cancelled:
            await batch.cancel(sorted(self.cancelled))
        await batch.arm_many([
            timers.Timer(a.key, a.timer.kind, a.due_at, a.timer.to_data()) for a in self.armed.values()
        ])
        batch.publish_many([(topic, e.case_id, sla_event(e)) for e in self.emitted])
        metrics.count_emitted(self.emitted)
        metrics.count_automated(self.automated)


def _writes_of(batch: Batch) -> Writes | None:
    """The Writes an inbound batch gathers its effects in (`Sla.prepare`); None for timers."""
    return batch.state if isinstance(batch.state, Writes) else None
