"""The sla service's subscribers and timer callbacks: load the case, apply the pure rules, carry out
their effects (clock rows, timers, outbox events) in the one transaction the caller opened.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.sla import metrics, store
from services.sla.contract import sla_event
from services.sla.domain import (
    ArmTimer, CancelTimers, CaseSla, Emit, KeepForLater, Outcome, TimerDue, on_activity, on_classified, on_timer,
)
from services.sla.policy import SlaPolicy
from shared import timers
from shared.events import SLA, ComplaintClassified, Inbound, case_activity, now
from shared.inbound import every_record, parse_activity, parse_classified
from shared.outbox import enqueue_many
from shared.policy import PolicyHolder
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)
GAUGE_REFRESH_SECONDS = 5.0


@dataclass
class Sla:
    runtime: ServiceRuntime
    policy: PolicyHolder[SlaPolicy]
    _targets_version: str | None = field(default=None, init=False)

    def current_policy(self) -> SlaPolicy:
        loaded = self.policy.current()
        if loaded.version != self._targets_version:
            metrics.publish_targets(loaded.policy)
            self._targets_version = loaded.version
        return loaded.policy

    # ---------- inbound events (inside the Inbox's transaction) ----------
    async def classified(self, conn: asyncpg.Connection, event: ComplaintClassified) -> str:
        await store.lock_case(conn, event.case_id)
        case = await store.load_case(conn, event.case_id)
        pending = [case_activity.validate_python(doc) for doc in await store.take_pending(conn, event.case_id)]
        outcome = on_classified(case, event, self.current_policy(), now(), pending)
        await self._carry_out(conn, [outcome], save_case=True)
        return "processed"

    async def activity(self, conn: asyncpg.Connection, event: Inbound) -> str:
        await store.lock_case(conn, event.case_id)
        case = await store.load_case(conn, event.case_id)
        outcome = on_activity(case, event, self.current_policy(), now())
        if any(isinstance(e, KeepForLater) for e in outcome.effects):
            await store.keep_for_later(conn, event)
            return "kept_for_later"
        await self._carry_out(conn, [outcome], save_case=True)
        return "processed"

    # ---------- timers (inside the transaction that claimed them) ----------
    async def fire_one(self, conn: asyncpg.Connection, timer: timers.Timer) -> None:
        await self.fire_batch(conn, [timer])

    async def fire_batch(self, conn: asyncpg.Connection, due: Sequence[timers.Timer]) -> None:
        readable = [(t, _timer_due(t)) for t in due]
        readable = [(t, d) for t, d in readable if d is not None]
        locked = await store.try_lock_cases(conn, [d.case_id for _, d in readable])
        # A case being changed elsewhere right now: put its timers back rather than wait for its lock
        # (waiting here while that change waits on these claimed rows would deadlock). They fire on
        # the next claim, and if that change re-armed the clock they are stale and do nothing.
        busy = [t for t, d in readable if d.case_id not in locked]
        await timers.arm_many(conn, store.SCHEMA, busy)
        cases: dict[str, CaseSla | None] = dict(await store.load_cases(conn, sorted(locked)))
        policy, wall_clock = self.current_policy(), now()
        outcomes = []
        for timer, timer_due in sorted(readable, key=lambda pair: (pair[0].due_at, pair[0].key)):
            if timer_due.case_id not in locked:
                continue
            outcome = on_timer(cases.get(timer_due.case_id), timer_due, policy, max(wall_clock, timer.due_at))
            cases[timer_due.case_id] = outcome.case
            outcomes.append(outcome)
        await self._carry_out(conn, outcomes, save_case=False)

    # ---------- effects ----------
    async def _carry_out(self, conn: asyncpg.Connection, outcomes: list[Outcome], *, save_case: bool) -> None:
        final: dict[str, CaseSla] = {}
        changed: dict[tuple[str, str], None] = {}
        armed: dict[str, ArmTimer] = {}
        cancelled: set[str] = set()
        emitted: list[Emit] = []
        for outcome in outcomes:
            if outcome.case is None:
                continue
            final[outcome.case.case_id] = outcome.case
            changed.update(((outcome.case.case_id, key), None) for key in outcome.changed_clocks)
            for effect in outcome.effects:
                if isinstance(effect, Emit):
                    emitted.append(effect)
                elif isinstance(effect, ArmTimer):
                    armed[effect.key] = effect
                elif isinstance(effect, CancelTimers):
                    for key in effect.keys:
                        # Armed and withdrawn within this one change: it never reaches the table.
                        if armed.pop(key, None) is None:
                            cancelled.add(key)
        if save_case:
            await store.save_cases(conn, final.values())
        await store.save_clocks(conn, [final[case_id].clocks[key] for case_id, key in changed])
        if cancelled:
            await timers.cancel(conn, store.SCHEMA, sorted(cancelled))
        await timers.arm_many(conn, store.SCHEMA, [
            timers.Timer(a.key, a.timer.kind, a.due_at, a.timer.to_data()) for a in armed.values()
        ])
        topic = self.runtime.topic(SLA)
        await enqueue_many(conn, store.SCHEMA, [(topic, e.case_id, sla_event(e)) for e in emitted])
        metrics.count_emitted(emitted)

    # ---------- gauges ----------
    async def refresh_gauges(self) -> None:
        while True:
            try:
                assert self.runtime.pool is not None
                async with self.runtime.pool.acquire() as conn:
                    metrics.set_gauges(
                        await store.open_clock_counts(conn), await store.at_risk_counts(conn),
                        await store.pending_count(conn),
                    )
                self.current_policy()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not refresh the clock gauges", exc_info=True)
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)


def _timer_due(timer: timers.Timer) -> TimerDue | None:
    try:
        return TimerDue.from_data(timer.payload)
    except (KeyError, TypeError, ValueError):
        log.error("timer %s has a payload the sla service cannot read; dropped", timer.key)
        return None


async def lock_batch(conn: asyncpg.Connection, events: list[Inbound]) -> None:
    await store.lock_cases(conn, [e.case_id for e in events])


# ---------- subscribers (msg.raw_message is one fetched batch of records) ----------
async def on_classified_events(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_classified, sla.classified), lock_batch)


async def on_case_activity(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_activity, sla.activity), lock_batch)
