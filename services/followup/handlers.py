"""Followup's subscribers and timer: resolved → follow-ups scheduled (or skipped, with the reason);
returned/reopened → cancelled; survey answered → recorded for the frequency rules; due → sent, moved
or skipped.

Every state change and the events it causes commit in one transaction (outbox + durable timers).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.followup import metrics, store
from services.followup.contract import FollowupCancelled, FollowupDue, FollowupScheduled, FollowupSkipped
from services.followup.domain import (
    CASE_REOPENED, CUSTOMER_RETURNED, PendingFollowup, PlannedFollowup, ResolvedCase, SkippedFollowup,
    cancel_on_reopened, cancel_on_returned, complaint_reopens, decide_at_due, enters_retention,
    improvement_recipients, names_improvement, number_followups, plan_improvement_notice, plan_on_resolved,
    resolution_plans,
)
from services.followup.policy import FollowupPolicy
from shared import timers
from shared.events import (
    CLASSIFIED, FOLLOWUPS, CaseReopened, CaseResolved, ComplaintClassified, CustomerReturned, SurveyAnswered, now,
)
from shared.inbound import Route, parse_activity, parse_classified
from shared.batch import Batch
from shared.policy import PolicyHolder
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)

TIMER_KIND = "followup_due"


def timer_key(followup_id: str) -> str:
    return f"followup:{followup_id}"


@dataclass
class Followups:
    runtime: ServiceRuntime
    policy: PolicyHolder[FollowupPolicy]

    # ---------- inbound ----------
    async def record_classification(self, batch: Batch, event: ComplaintClassified) -> str:
        await batch.lock(store.CASE_LOCKS, [event.case_id])
        before = await store.upsert_case(batch.conn, event)
        received_at = event.received_at or event.occurred_at
        if before is not None and complaint_reopens(before["status"], before["resolved_at"], received_at):
            await self.reopen(batch, event.case_id, event.event_id)
        for held in sorted(await store.take_held_activity(batch.conn, event.case_id), key=lambda r: r["occurred_at"]):
            if held["type"] == "case.resolved":
                await self.resolve(batch, event.case_id, held["event_id"], held["occurred_at"], held["improvement"])
            else:
                await self.reopen(batch, event.case_id, held["event_id"])
        return "recorded"

    async def record_activity(self, batch: Batch, event: Any) -> str:
        if isinstance(event, CustomerReturned):
            return await self.customer_returned(batch, event)
        if isinstance(event, SurveyAnswered):
            return await self.survey_answered(batch, event)
        if not isinstance(event, (CaseResolved, CaseReopened)):
            return "ignored"  # contacts, promises, pauses: the sla service's business
        improvement = isinstance(event, CaseResolved) and names_improvement(event.improvement)
        await batch.lock(store.CASE_LOCKS, [event.case_id])
        if await store.case_for_update(batch.conn, event.case_id) is None:
            # The classification is still on its way; apply this when it arrives, in order.
            await store.hold_activity(batch.conn, event.event_id, event.case_id, event.type, event.occurred_at, improvement)
            return "held"
        if isinstance(event, CaseResolved):
            return await self.resolve(batch, event.case_id, event.event_id, event.occurred_at, improvement)
        return await self.reopen(batch, event.case_id, event.event_id)

    async def resolve(self, batch: Batch, case_id: str, event_id: str, resolved_at: datetime, improvement: bool) -> str:
        case = await store.case_for_update(batch.conn, case_id)
        if not resolution_plans(case["status"]):
            return "already_resolved"
        await store.set_case_status(batch.conn, case_id, "resolved", resolved_at)
        policy, customer_id, clock = self.policy.current().policy, case["customer_id"], now()
        await batch.lock(store.CUSTOMER_LOCKS, [customer_id])
        facts = await store.customer_facts(
            batch.conn, customer_id, timezone=case["timezone"], loyalty=case["loyalty"], exclude_case=case_id,
        )
        plan = plan_on_resolved(policy, ResolvedCase(case_id, resolved_at, improvement), facts, clock)
        await self.schedule(batch, plan.planned, plan.skipped, event_id)
        if enters_retention(facts, plan.planned):
            metrics.entered_retention.inc()
        if improvement:
            await self.spread_the_word(batch, policy, case, event_id, clock)
        return "resolved"

    async def spread_the_word(self, batch: Batch, policy: FollowupPolicy, case: asyncpg.Record, event_id: str, clock: datetime) -> None:
        """Tells other customers with a recent case in the same category what was changed."""
        if not (policy.improvement_notice.enabled and policy.improvement_notice.notify_same_category_customers):
            return
        candidates = await store.category_candidates(
            batch.conn, case["category"], clock - policy.improvement_notice.lookback, case["customer_id"],
        )
        recipients = improvement_recipients(
            policy, category=case["category"], resolving_customer_id=case["customer_id"], candidates=candidates, now=clock,
        )
        await batch.lock(store.CUSTOMER_LOCKS, [r.customer_id for r in recipients])
        profiles = await store.customer_profiles(batch.conn, [r.customer_id for r in recipients])
        planned, skipped = [], []
        for recipient in recipients:
            zone, loyalty = profiles.get(recipient.customer_id, ("UTC", "standard"))
            facts = await store.customer_facts(batch.conn, recipient.customer_id, timezone=zone, loyalty=loyalty)
            placed = plan_improvement_notice(policy, recipient, facts, clock)
            (planned if isinstance(placed, PlannedFollowup) else skipped).append(placed)
        await self.schedule(batch, planned, skipped, event_id)

    async def reopen(self, batch: Batch, case_id: str, event_id: str) -> str:
        await store.set_case_status(batch.conn, case_id, "open")
        pending = await store.scheduled_of_case(batch.conn, case_id)
        await self.cancel(batch, cancel_on_reopened(pending, case_id), CASE_REOPENED, event_id)
        return "reopened"

    async def customer_returned(self, batch: Batch, event: CustomerReturned) -> str:
        await batch.lock(store.CUSTOMER_LOCKS, [event.customer_id])
        ending = cancel_on_returned(await store.scheduled_of_customer(batch.conn, event.customer_id), event.customer_id)
        if ending:
            metrics.returned_after_recovery.inc()  # came back while we were still keeping in touch
        await self.cancel(batch, ending, CUSTOMER_RETURNED, event.event_id)
        return "returned"

    async def survey_answered(self, batch: Batch, event: SurveyAnswered) -> str:
        """Records the answer. Nothing is moved now: every follow-up of this customer that falls due
        within `frequency.cooldown_after_response` of it is deferred or skipped when due, and new
        plans keep clear of it (the rule lives in domain.frequency)."""
        await batch.lock(store.CUSTOMER_LOCKS, [event.customer_id])
        if await store.record_survey_response(batch.conn, event):
            metrics.survey_responses.inc()
        return "answered"

    # ---------- scheduling and cancelling ----------
    async def schedule(
        self, batch: Batch, planned: Sequence[PlannedFollowup], skipped: Sequence[SkippedFollowup], causation_id: str,
    ) -> None:
        numbered, numbered_skips = number_followups(causation_id, planned, skipped)
        new = set(await store.record_planned(batch.conn, numbered, causation_id))
        new_skips = set(await store.record_skipped(batch.conn, numbered_skips, causation_id))
        fresh = [(fid, p) for fid, p in numbered if fid in new]
        fresh_skips = [(fid, s) for fid, s in numbered_skips if fid in new_skips]
        await batch.arm_many([
            timers.Timer(timer_key(fid), TIMER_KIND, p.due_at, {"followup_id": fid}) for fid, p in fresh
        ])
        await self._emit(batch, [
            FollowupScheduled(case_id=p.case_id, causation_id=causation_id, followup_id=fid, customer_id=p.customer_id,
                              kind=p.kind, due_at=p.due_at, channel=p.channel, reason=p.reason)
            for fid, p in fresh
        ] + [
            FollowupSkipped(case_id=s.case_id, causation_id=causation_id, followup_id=fid, customer_id=s.customer_id,
                            kind=s.kind, due_at=s.would_have_been_due, channel=s.channel, reason=s.reason,
                            skipped_when="planning")
            for fid, s in fresh_skips
        ])
        for _, p in fresh:
            metrics.scheduled.labels(p.kind, p.channel).inc()
            for rule in p.deferred_by:
                metrics.deferred.labels(p.kind, rule).inc()
        for _, s in fresh_skips:
            metrics.count_skip(s.kind, s.reason)

    async def cancel(self, batch: Batch, ending: Sequence[PendingFollowup], reason: str, causation_id: str) -> None:
        if not ending:
            return
        await store.close_followups(batch.conn, [p.followup_id for p in ending], "cancelled", reason)
        await batch.cancel([timer_key(p.followup_id) for p in ending])
        await self._emit(batch, [_cancelled(p, causation_id, reason) for p in ending])
        for p in ending:
            metrics.cancelled.labels(p.kind, p.channel, reason).inc()

    async def _emit(self, batch: Batch, events: Sequence[Any]) -> None:
        topic = self.runtime.topic(FOLLOWUPS)
        batch.publish_many([(topic, e.case_id, e) for e in events])

    # ---------- due ----------
    async def fire(self, conn: asyncpg.Connection, due_timers: Sequence[timers.Timer]) -> None:
        """Sends the follow-ups whose time has come, checking the rules once more with today's facts
        (the claimed timers are one Batch: one outbox INSERT at its commit)."""
        batch = Batch(conn, store.SCHEMA, metrics.SERVICE)
        await self._fire(batch, due_timers)
        await batch.commit()

    async def _fire(self, batch: Batch, due_timers: Sequence[timers.Timer]) -> None:
        by_id = {t.payload.get("followup_id", ""): t for t in due_timers if t.kind == TIMER_KIND}
        owners = await store.customers_of_followups(batch.conn, by_id)
        locked = await batch.try_lock(store.CUSTOMER_LOCKS, owners.values())
        # A customer whose events are being handled right now: put those timers back rather than wait
        # for the lock (that batch may be waiting to cancel the very timers claimed here: a deadlock).
        # They fire on the next claim, with that batch's changes in view.
        await batch.arm_many([by_id[fid] for fid, owner in owners.items() if owner not in locked])
        ids = [fid for fid, owner in owners.items() if owner in locked]
        scheduled = await store.scheduled_by_ids(batch.conn, ids)  # cancelled ones are gone: nothing to send
        profiles = await store.customer_profiles(batch.conn, [p.customer_id for p, _ in scheduled])
        policy, clock = self.policy.current().policy, now()
        for followup, causation_id in scheduled:
            zone, loyalty = profiles.get(followup.customer_id, ("UTC", "standard"))
            facts = await store.customer_facts(
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

    async def fire_one(self, conn: asyncpg.Connection, timer: timers.Timer) -> None:
        await self.fire(conn, [timer])

    async def _send(self, batch: Batch, followup: PendingFollowup, causation_id: str) -> None:
        await store.close_followups(batch.conn, [followup.followup_id], "due", "")
        await self._emit(batch, [FollowupDue(
            case_id=followup.case_id, causation_id=causation_id, followup_id=followup.followup_id,
            customer_id=followup.customer_id, kind=followup.kind, due_at=followup.due_at, channel=followup.channel,
        )])
        metrics.due.labels(followup.kind, followup.channel).inc()

    async def _defer(self, batch: Batch, followup: PendingFollowup, causation_id: str, due_at: datetime, rules: str) -> None:
        reason = f"deferred when due: {rules}"
        await store.move_due(batch.conn, followup.followup_id, due_at, reason)
        await batch.arm(timer_key(followup.followup_id), TIMER_KIND, due_at, {"followup_id": followup.followup_id})
        await self._emit(batch, [FollowupScheduled(
            case_id=followup.case_id, causation_id=causation_id, followup_id=followup.followup_id,
            customer_id=followup.customer_id, kind=followup.kind, due_at=due_at, channel=followup.channel, reason=reason,
        )])
        for rule in rules.split(", "):
            metrics.deferred.labels(followup.kind, rule).inc()

    async def _skip_at_due(self, batch: Batch, followup: PendingFollowup, causation_id: str, rule: str) -> None:
        await store.close_followups(batch.conn, [followup.followup_id], "skipped", rule)
        # The CRM saw it scheduled: `followup.cancelled` closes it (as always), `followup.skipped`
        # says why, the same event a follow-up skipped when planned gets.
        await self._emit(batch, [
            _cancelled(followup, causation_id, f"skipped_at_due:{rule}"),
            FollowupSkipped(case_id=followup.case_id, causation_id=causation_id, followup_id=followup.followup_id,
                            customer_id=followup.customer_id, kind=followup.kind, due_at=followup.due_at,
                            channel=followup.channel, reason=rule, skipped_when="due"),
        ])
        metrics.cancelled.labels(followup.kind, followup.channel, "skipped_at_due").inc()
        metrics.count_skip(followup.kind, rule)

    # ---------- gauges ----------
    async def watch_retention(self, every: float = 5.0) -> None:
        watch = self.runtime.dependency_watch("gauges")  # an outage: one line down, one line back
        while True:
            try:
                assert self.runtime.pool is not None
                async with self.runtime.pool.acquire() as conn:
                    metrics.customers_in_retention.set(await store.customers_in_retention(conn))
                watch.succeeded()
            except Exception as exc:
                watch.failed(exc)
            await asyncio.sleep(every)


def _cancelled(p: PendingFollowup, causation_id: str, reason: str) -> FollowupCancelled:
    return FollowupCancelled(
        case_id=p.case_id, causation_id=causation_id, followup_id=p.followup_id, customer_id=p.customer_id,
        kind=p.kind, due_at=p.due_at, channel=p.channel, reason=reason,
    )


async def lock_batch(batch: Batch, events: list[Any]) -> None:
    """A batch's locks, taken up front in one order: its cases, then every customer it may plan for."""
    await batch.lock(store.CASE_LOCKS, [e.case_id for e in events if isinstance(e, (ComplaintClassified, CaseResolved, CaseReopened))])
    known = {e.customer_id for e in events if isinstance(e, (ComplaintClassified, CustomerReturned, SurveyAnswered))}
    of_cases = [e.case_id for e in events if isinstance(e, (CaseResolved, CaseReopened))]
    await batch.lock(store.CUSTOMER_LOCKS, known | set(await store.customers_of_cases(batch.conn, of_cases)))


async def on_inbound(msg: KafkaMessage, followups: Followups = Context("followups")) -> None:
    """Classifications and case activity arrive through one consumer (see app.py); msg.raw_message
    is one fetched batch of records from both topics."""
    classified = Route(parse_classified, followups.record_classification)
    activity = Route(parse_activity, followups.record_activity)
    classified_topic = followups.runtime.topic(CLASSIFIED)
    await followups.runtime.inbox.handle_batch(
        msg.raw_message, lambda record: classified if record.topic == classified_topic else activity, lock_batch,
    )
