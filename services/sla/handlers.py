"""The sla service's subscribers and timer callbacks: load the case, apply the pure rules, carry out
their effects (clock rows, timers, outbox events) in the one transaction the caller opened.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.sla import metrics, store
from services.sla.contract import sla_event
from services.sla.domain import (
    ArmTimer, AutomatedContact, CancelTimers, CaseSla, Emit, KeepForLater, Outcome, TimerDue, on_activity,
    on_classified, on_timer,
)
from services.sla.domain.calendar import NoWorkingTime
from services.sla.policy import AlwaysOpen, CalendarChoice, SlaPolicy
from shared import timers
from shared.events import SLA, ComplaintClassified, Inbound, case_activity, now
from shared.batch import Batch
from shared.inbound import every_record, parse_activity, parse_classified
from shared.policy import PolicyHolder, describe_notes
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)
GAUGE_REFRESH_SECONDS = 5.0


@dataclass
class Sla:
    runtime: ServiceRuntime
    policy: PolicyHolder[SlaPolicy]
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
    async def classified(self, batch: Batch, event: ComplaintClassified) -> str:
        case = await self._lock_and_load(batch, event.case_id)
        pending = [case_activity.validate_python(doc) for doc in await self._take_pending(batch, event.case_id)]
        outcome = self.decide(event.case_id, lambda policy: on_classified(case, event, policy, now(), pending))
        await self._carry_out(batch, [outcome], save_case=True)
        return "processed"

    async def activity(self, batch: Batch, event: Inbound) -> str:
        case = await self._lock_and_load(batch, event.case_id)
        outcome = self.decide(event.case_id, lambda policy: on_activity(case, event, policy, now()))
        if any(isinstance(e, KeepForLater) for e in outcome.effects):
            await store.keep_for_later(batch.conn, event)
            if (writes := _writes_of(batch)) is not None:
                writes.with_pending.add(event.case_id)
            return "kept_for_later"
        await self._carry_out(batch, [outcome], save_case=True)
        return "processed"

    # ---------- timers (inside the transaction that claimed them) ----------
    async def fire_one(self, conn: asyncpg.Connection, timer: timers.Timer) -> None:
        await self.fire_batch(conn, [timer])

    async def fire_batch(self, conn: asyncpg.Connection, due: Sequence[timers.Timer]) -> None:
        """Fires claimed timers as one Batch of their own (one write step, one outbox INSERT)."""
        batch = Batch(conn, store.SCHEMA, metrics.SERVICE)
        readable = [(t, _timer_due(t)) for t in due]
        readable = [(t, d) for t, d in readable if d is not None]
        locked = await batch.try_lock(store.CASE_LOCKS, [d.case_id for _, d in readable])
        # A case being changed elsewhere right now: put its timers back rather than wait for its lock
        # (waiting here while that change waits on these claimed rows would deadlock). They fire on
        # the next claim, and if that change re-armed the clock they are stale and do nothing.
        busy = [t for t, d in readable if d.case_id not in locked]
        await batch.arm_many(busy)
        cases: dict[str, CaseSla | None] = dict(await store.load_cases(conn, sorted(locked)))
        policy, wall_clock = self.current_policy(), now()
        outcomes = []
        for timer, timer_due in sorted(readable, key=lambda pair: (pair[0].due_at, pair[0].key)):
            if timer_due.case_id not in locked:
                continue
            outcome = self.decide(timer_due.case_id, lambda p, t=timer, d=timer_due: on_timer(
                cases.get(d.case_id), d, p, max(wall_clock, t.due_at)), policy)
            cases[timer_due.case_id] = outcome.case
            outcomes.append(outcome)
        await self._carry_out(batch, outcomes, save_case=False)
        await batch.commit()

    # ---------- effects ----------
    async def _carry_out(self, batch: Batch, outcomes: list[Outcome], *, save_case: bool) -> None:
        writes = _writes_of(batch)
        if writes is not None:
            writes.add(outcomes)  # written once, when the batch's last event has been applied
            return
        writes = Writes(save_cases=save_case)
        writes.add(outcomes)
        await writes.write(batch, self.runtime.topic(SLA))

    @staticmethod
    async def _lock_and_load(batch: Batch, case_id: str) -> CaseSla | None:
        writes = _writes_of(batch)
        if writes is None:
            await batch.lock(store.CASE_LOCKS, [case_id])
            return await store.load_case(batch.conn, case_id)
        # lock_batch holds the case's lock and read it; a change earlier in the batch is not written yet
        return writes.cases[case_id] if case_id in writes.cases else writes.loaded.get(case_id)

    @staticmethod
    async def _take_pending(batch: Batch, case_id: str) -> list[dict[str, Any]]:
        writes = _writes_of(batch)
        if writes is not None and case_id not in writes.with_pending:
            return []  # the usual case, known without a statement per event
        return await store.take_pending(batch.conn, case_id)

    async def lock_batch(self, batch: Batch, events: list[Inbound]) -> Writes:
        """The Inbox's `prepare` step: takes the batch's case locks, reads those cases, and returns
        the Writes that gather the batch's effects (its `batch.state`), written by the batch's
        commit after its last event (see Writes)."""
        case_ids = sorted({e.case_id for e in events})
        await batch.lock(store.CASE_LOCKS, case_ids)
        writes = Writes(save_cases=True, loaded=await store.load_cases(batch.conn, case_ids),
                        with_pending=await store.cases_with_pending(batch.conn, case_ids))
        topic = self.runtime.topic(SLA)
        batch.before_commit(lambda: writes.write(batch, topic))
        return writes

    # ---------- gauges ----------
    async def refresh_gauges(self) -> None:
        watch = self.runtime.dependency_watch("gauges")  # an outage: one line down, one line back
        while True:
            try:
                assert self.runtime.pool is not None
                async with self.runtime.pool.acquire() as conn:
                    metrics.set_gauges(
                        await store.open_clock_counts(conn), await store.at_risk_counts(conn),
                        await store.pending_count(conn),
                    )
                self.current_policy()
                watch.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                watch.failed(exc)
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)


def _round_the_clock(policy: SlaPolicy) -> SlaPolicy:
    """`policy` with every calendar counting every second and every new clock on 24x7."""
    return policy.model_copy(update={
        "calendars": {name: AlwaysOpen() for name in policy.calendars}, "calendar": CalendarChoice(),
    })


def _timer_due(timer: timers.Timer) -> TimerDue | None:
    try:
        return TimerDue.from_data(timer.payload)
    except (KeyError, TypeError, ValueError):
        log.error("timer %s has a payload the sla service cannot read; dropped", timer.key)
        return None


@dataclass
class Writes:
    """The effects of a batch of outcomes, written with one statement per table. An inbound batch
    gathers them across all its events (its `batch.state`, from Sla.lock_batch); a case changed
    twice in one batch is saved once, in its final state, and a timer armed and withdrawn within
    the batch never reaches the table."""

    save_cases: bool
    loaded: dict[str, CaseSla] = field(default_factory=dict)  # as the batch found them (locked)
    cases: dict[str, CaseSla] = field(default_factory=dict)  # as changed since
    with_pending: set[str] = field(default_factory=set)  # cases with activity kept for their classification
    clocks: dict[tuple[str, str], None] = field(default_factory=dict)  # ordered set of (case_id, key)
    armed: dict[str, ArmTimer] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    emitted: list[Emit] = field(default_factory=list)
    automated: list[AutomatedContact] = field(default_factory=list)

    def add(self, outcomes: list[Outcome]) -> None:
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
            await store.save_cases(conn, self.cases.values())
        await store.save_clocks(conn, [self.cases[case_id].clocks[key] for case_id, key in self.clocks])
        if self.cancelled:
            await batch.cancel(sorted(self.cancelled))
        await batch.arm_many([
            timers.Timer(a.key, a.timer.kind, a.due_at, a.timer.to_data()) for a in self.armed.values()
        ])
        batch.publish_many([(topic, e.case_id, sla_event(e)) for e in self.emitted])
        metrics.count_emitted(self.emitted)
        metrics.count_automated(self.automated)


def _writes_of(batch: Batch) -> Writes | None:
    """The Writes an inbound batch gathers its effects in (`Sla.lock_batch`); None for timers."""
    return batch.state if isinstance(batch.state, Writes) else None


# ---------- subscribers (msg.raw_message is one fetched batch of records) ----------
async def on_classified_events(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_classified, sla.classified), sla.lock_batch)


async def on_case_activity(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_activity, sla.activity), sla.lock_batch)
