"""What an SLA policy would have done with a case's activity: the events replayed through the rules.

Pure: no I/O, no clock (the end of the replay is an argument). `helpdesk policy simulate`
(services/simulate_policy.py) reads a case's `complaint.classified` and case-activity events from
Kafka and replays them here, once with the policy in force and once with a draft.

A replay is the service with perfect timing: each event is handled at its business time (a
classification at the complaint's `received_at`, activity at its `occurred_at`), and every timer
the rules arm fires exactly at its due time, before any later event, up to `until`. Activity that
comes before its case's classification is kept and applied with it, as the service does. What the
real service did can differ where events reached it late or timers fired late; the report puts
what actually happened (the `sla.v1` topic) beside both replays.
"""
from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.events import ComplaintClassified, Inbound

from ..policy import SlaPolicy
from .calendar import NoWorkingTime
from .case import CaseSla, Outcome, on_activity, on_classified, on_timer
from .effects import ArmTimer, CancelTimers, Emit, KeepForLater, TimerDue

OBLIGATIONS = ("first_contact", "update", "resolution")
"""The clocks a policy's targets decide (promises run to the time the agent promised)."""


def event_instant(event: Inbound | ComplaintClassified) -> datetime:
    """When an event counts in the replay: a classification at the complaint's `received_at` (else
    its `occurred_at`), activity at its `occurred_at`."""
    if isinstance(event, ComplaintClassified):
        return event.received_at or event.occurred_at
    return event.occurred_at


@dataclass(frozen=True)
class Breach:
    """One missed deadline: a clock run that breached (its breach timer fired, or it was met late)."""

    case_id: str
    clock: str  # first_contact | update | promise | resolution
    promise_id: str | None
    due_at: datetime
    priority: str


def breaches(emitted: Iterable[dict[str, Any]]) -> list[Breach]:
    """The breaches among sla events (dicts with `type`, `case_id`, `clock`, `promise_id`, `due_at`,
    `priority`, and `breached` on `sla.met`): each `sla.breached`, and each `sla.met` with
    `breached: true` whose run had no `sla.breached` (a run is one clock of one case with one due
    time); each counted once however often it was published."""
    found: dict[tuple[str, str, str | None, datetime], Breach] = {}
    for e in emitted:
        if e.get("type") == "sla.breached" or (e.get("type") == "sla.met" and e.get("breached") is True):
            key = (e["case_id"], e["clock"], e.get("promise_id"), e["due_at"])
            found.setdefault(key, Breach(e["case_id"], e["clock"], e.get("promise_id"), e["due_at"], e["priority"]))
    return list(found.values())


def count_breaches(found: Iterable[Breach]) -> Counter[tuple[str, str]]:
    """(clock, priority) → breaches."""
    return Counter((b.clock, b.priority) for b in found)


def emitted_fields(emit: Emit) -> dict[str, Any]:
    """An `Emit` effect as the dict `breaches` reads (the fields of the sla.v1 event it becomes)."""
    return {"type": emit.type, "case_id": emit.case_id, **emit.fields}


@dataclass
class _Timers:
    """The timers a replayed case has armed: due time order, cancelled ones skipped. A clock's
    timer keeps its key from one arming to the next (issue 15), so each arming is told apart by
    its sequence number (`live`: key → that of its latest arming); a superseded one is skipped."""

    heap: list[tuple[datetime, str, int, TimerDue]]
    live: dict[str, int]
    armed: int = 0

    def apply(self, outcome: Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, ArmTimer):
                self.armed += 1
                self.live[effect.key] = self.armed
                heapq.heappush(self.heap, (effect.due_at, effect.key, self.armed, effect.timer))
            elif isinstance(effect, CancelTimers):
                for key in effect.keys:
                    self.live.pop(key, None)

    def pop_due(self, until: datetime, inclusive: bool) -> tuple[datetime, TimerDue] | None:
        """The next live timer due before `until` (or at it, when `inclusive`), removed; None when none is."""
        while self.heap and (self.heap[0][0] < until or (inclusive and self.heap[0][0] == until)):
            due_at, key, armed, timer = heapq.heappop(self.heap)
            if self.live.get(key) == armed:
                del self.live[key]
                return due_at, timer
        return None


def replay_case(
    events: Sequence[Inbound | ComplaintClassified], policy: SlaPolicy, until: datetime,
    round_the_clock: Callable[[SlaPolicy], SlaPolicy] | None = None,
) -> list[Emit]:
    """Every sla event the rules emit for one case's `events` under `policy`, timers fired up to
    `until` (see the module docstring). Events are taken in `event_instant` order, a classification
    before activity of the same instant, ties in the order given; an event id seen before is a
    redelivery and skipped. When a calendar has no working time the rules can find
    (`NoWorkingTime`), the step is taken again under `round_the_clock(policy)`, as the service does
    (services/sla/service.py `Sla.decide`); without it, NoWorkingTime propagates."""
    def decide(rule: Callable[[SlaPolicy], Outcome]) -> Outcome:
        try:
            return rule(policy)
        except NoWorkingTime:
            if round_the_clock is None:
                raise
            return rule(round_the_clock(policy))

    ordered = sorted(enumerate(events), key=lambda p: (
        event_instant(p[1]), 0 if isinstance(p[1], ComplaintClassified) else 1, p[0]))
    case: CaseSla | None = None
    kept: list[Inbound] = []
    timers = _Timers([], {})
    emitted: list[Emit] = []
    seen: set[str] = set()

    def carry(outcome: Outcome) -> None:
        nonlocal case
        case = outcome.case
        timers.apply(outcome)
        emitted.extend(e for e in outcome.effects if isinstance(e, Emit))

    def fire_until(at: datetime, inclusive: bool) -> None:
        # before an event, timers due strictly earlier: a contact at its due time is in time
        while (due := timers.pop_due(at, inclusive)) is not None:
            due_at, timer = due
            carry(decide(lambda p, c=case, t=timer, d=due_at: on_timer(c, t, p, d)))

    for _, event in ordered:
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        at = event_instant(event)
        if at > until:
            break
        fire_until(at, False)
        if isinstance(event, ComplaintClassified):
            pending, kept = kept, []
            carry(decide(lambda p, c=case, e=event, k=pending, a=at: on_classified(c, e, p, a, k)))
            continue
        outcome = decide(lambda p, c=case, e=event, a=at: on_activity(c, e, p, a))
        if any(isinstance(e, KeepForLater) for e in outcome.effects):
            kept.append(event)
        else:
            carry(outcome)
    fire_until(until, True)
    return emitted
