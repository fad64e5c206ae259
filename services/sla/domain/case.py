"""The clocks of one case and how classification, case activity and timers move them.

Every function takes the case as the store last saved it (or None when unknown), the event or timer,
the policy and `now`, and returns an `Outcome`: the case to save and the effects to carry out in
order. Business instants come from the events (`occurred_at`: when the contact really happened);
`now` only stamps the emitted events and judges timers.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from shared.events import (
    ActivityEvent, CaseContacted, CasePaused, CaseReopened, CaseResolved, CaseResumed, ComplaintClassified,
    Inbound, PromiseKept, PromiseMade,
)
from services.sla.domain.calendar import deadline, target_as_business_time
from services.sla.domain import clock as rules
from services.sla.domain.clock import Clock, ClockKind, clock_key
from services.sla.domain.effects import AutomatedContact, Effect, KeepForLater, TimerDue
from services.sla.policy import ALWAYS_OPEN, PRIORITIES, SlaPolicy

# Waiting on the customer stops these; a promise is a fixed time and first contact is owed regardless.
PAUSABLE: tuple[ClockKind, ...] = ("resolution", "update")
# A higher priority changes these targets; a promise is the time the agent promised.
RETARGETED: tuple[ClockKind, ...] = ("first_contact", "update", "resolution")


@dataclass(frozen=True)
class CaseSla:
    """One row in the store, plus its clocks (one row each, keyed by `Clock.key`)."""

    case_id: str
    priority: str
    source: str
    classified_by: str  # event id of the classification
    resolved: bool = False
    paused_at: datetime | None = None
    kept_before_made: frozenset[str] = frozenset()  # promise ids kept before their promise_made arrived
    clocks: Mapping[str, Clock] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    case: CaseSla | None
    effects: list[Effect] = field(default_factory=list)
    changed_clocks: tuple[str, ...] = ()  # keys of the clock rows to save

    def then(self, step: Callable[[CaseSla], Outcome]) -> Outcome:
        if self.case is None:
            return self
        nxt = step(self.case)
        changed = tuple(dict.fromkeys((*self.changed_clocks, *nxt.changed_clocks)))
        return Outcome(nxt.case, self.effects + nxt.effects, changed)


def _with_clock(case: CaseSla, clock: Clock, effects: list[Effect]) -> Outcome:
    if case.clocks.get(clock.key) is clock:
        return Outcome(case, effects)
    return Outcome(replace(case, clocks={**case.clocks, clock.key: clock}), effects, (clock.key,))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


# ---------- starting clocks ----------
def _start_obligation(case: CaseSla, kind: ClockKind, started_at: datetime, policy: SlaPolicy, now: datetime, cause: str) -> Outcome:
    """Starts (or restarts) a first-contact, update or resolution clock with the case's target."""
    calendar_name = policy.calendar_name(case.priority, case.source)
    calendar = policy.calendar_named(calendar_name)
    target = getattr(policy.targets[case.priority], kind)
    clock, effects = rules.start_clock(
        case.case_id, kind, priority=case.priority, calendar_name=calendar_name, calendar=calendar,
        started_at=started_at, target=target_as_business_time(started_at, target, calendar),
        due_at=deadline(started_at, target, calendar), policy=policy, now=now, cause=cause,
        previous=case.clocks.get(kind),
    )
    if case.paused_at is not None and kind in PAUSABLE:
        clock, more = rules.pause(clock, started_at)
        effects += more
    return _with_clock(case, clock, effects)


def on_classified(
    case: CaseSla | None, event: ComplaintClassified, policy: SlaPolicy, now: datetime,
    pending: Iterable[Inbound] = (),
) -> Outcome:
    """Starts first-contact and resolution clocks, then applies activity that came early.

    The update clock is not started here but at first contact (`_contacted`): before it, first
    contact is what the customer is owed, and a short update target must not breach first.
    A repeat classification of an open case re-targets its open clocks when it raises the priority
    (`_reprioritised`); of a resolved case, it is a new complaint and starts the clocks again.
    """
    started_at = _aware(event.received_at or event.occurred_at)
    if case is not None and not case.resolved:
        return _reprioritised(case, event.priority, started_at, policy, now, event.event_id)
    fresh = CaseSla(
        case_id=event.case_id, priority=event.priority, source=event.source, classified_by=event.event_id,
        kept_before_made=case.kept_before_made if case else frozenset(), clocks=dict(case.clocks) if case else {},
    )
    outcome = Outcome(fresh)
    for kind in ("first_contact", "resolution"):
        outcome = outcome.then(lambda c, k=kind: _start_obligation(c, k, started_at, policy, now, event.event_id))
    for early in sorted(pending, key=lambda e: e.occurred_at):
        outcome = outcome.then(lambda c, e=early: on_activity(c, e, policy, now))
    return outcome


def _reprioritised(case: CaseSla, priority: str, at: datetime, policy: SlaPolicy, now: datetime, cause: str) -> Outcome:
    """A repeat complaint on an open case: a higher priority re-targets every open first-contact,
    update and resolution clock (promises keep the time promised), keeping the working time they
    have counted and the time they spent paused (`rules.retarget`). A lower or equal priority
    changes nothing: the customer had to ask again, which never relaxes what is owed."""
    if PRIORITIES.index(priority) >= PRIORITIES.index(case.priority):
        return Outcome(case)
    outcome = Outcome(replace(case, priority=priority))
    for kind in RETARGETED:
        if (clock := case.clocks.get(kind)) is not None and clock.is_open:
            moved, effects = _retarget(clock, priority, case.source, at, policy, now, cause)
            outcome = outcome.then(lambda c, m=moved, e=effects: _with_clock(c, m, e))
    return outcome


def _retarget(
    clock: Clock, priority: str, source: str, at: datetime, policy: SlaPolicy, now: datetime, cause: str,
) -> tuple[Clock, list[Effect]]:
    calendar_name = policy.calendar_name(priority, source)
    calendar = policy.calendar_named(calendar_name)
    # A target in business days counts from when the clock started, as if it had applied from the start.
    target = target_as_business_time(clock.started_at, getattr(policy.targets[priority], clock.kind), calendar)
    return rules.retarget(
        clock, at, priority=priority, calendar_name=calendar_name, calendar=calendar, target=target,
        old_calendar=policy.calendar_named(clock.calendar), policy=policy, now=now, cause=cause,
    )


# ---------- case activity ----------
def on_activity(case: CaseSla | None, event: Inbound, policy: SlaPolicy, now: datetime) -> Outcome:
    rule = _ACTIVITY_RULES.get(type(event))
    if rule is None:
        return Outcome(case)  # customer.returned, survey.answered: other services' business, never kept
    if case is None:
        return Outcome(None, [KeepForLater(event.event_id)])
    return rule(case, event, policy, now)


def _meet(case: CaseSla, key: str, at: datetime, policy: SlaPolicy, now: datetime, cause: str) -> Outcome:
    clock = case.clocks.get(key)
    if clock is None or not clock.is_open:
        return Outcome(case)
    met, effects = rules.meet(clock, at, now, cause, policy.calendar_named(clock.calendar))
    return _with_clock(case, met, effects)


def _restart_update(case: CaseSla, at: datetime, policy: SlaPolicy, now: datetime, cause: str) -> Outcome:
    """The customer heard from us: this update period is met and the next one starts."""
    if case.resolved:
        return Outcome(case)
    return _meet(case, "update", at, policy, now, cause).then(
        lambda c: _start_obligation(c, "update", at, policy, now, cause)
    )


def _restart_running_update(case: CaseSla, at: datetime, policy: SlaPolicy, now: datetime, cause: str) -> Outcome:
    """A kept promise updates the customer too, once updates are owed: after first contact."""
    clock = case.clocks.get("update")
    if clock is None or not clock.is_open:
        return Outcome(case)
    return _restart_update(case, at, policy, now, cause)


def _automated(case: CaseSla, event: ActivityEvent) -> Outcome:
    """An auto-acknowledgement or a bot's message is not a person getting back to the customer: it
    meets no clock (first contact, update or promise) and is only counted."""
    return Outcome(case, [AutomatedContact(event.type, event.by)])


def _contacted(case: CaseSla, event: CaseContacted, policy: SlaPolicy, now: datetime) -> Outcome:
    """First contact is met and the update clock (re)starts: updates are owed from first contact on."""
    if event.is_automated:
        return _automated(case, event)
    at = event.occurred_at
    return _meet(case, "first_contact", at, policy, now, event.event_id).then(
        lambda c: _restart_update(c, at, policy, now, event.event_id)
    )


def _promise_made(case: CaseSla, event: PromiseMade, policy: SlaPolicy, now: datetime) -> Outcome:
    key = clock_key("promise", event.promise_id)
    if case.resolved or key in case.clocks:
        return Outcome(case)  # a promise id is made once; a resolved case owes nothing more
    if event.promise_id in case.kept_before_made:
        return Outcome(replace(case, kept_before_made=case.kept_before_made - {event.promise_id}))
    made_at = event.occurred_at
    # The agent promised a wall-clock time: it runs 24x7 whatever the case's calendar.
    clock, effects = rules.start_clock(
        case.case_id, "promise", priority=case.priority, calendar_name=ALWAYS_OPEN,
        calendar=policy.calendar_named(ALWAYS_OPEN), started_at=made_at,
        target=max(timedelta(0), event.due_at - made_at), due_at=event.due_at, policy=policy, now=now,
        cause=event.event_id, promise_id=event.promise_id,
    )
    return _with_clock(case, clock, effects)


def _promise_kept(case: CaseSla, event: PromiseKept, policy: SlaPolicy, now: datetime) -> Outcome:
    if event.is_automated:
        return _automated(case, event)
    key = clock_key("promise", event.promise_id)
    clock = case.clocks.get(key)
    if clock is None:
        # Kept before the promise arrived: remember it, so the late promise_made starts no clock.
        early = replace(case, kept_before_made=case.kept_before_made | {event.promise_id})
        return _restart_running_update(early, event.occurred_at, policy, now, event.event_id)
    if not clock.is_open:
        return Outcome(case)
    return _meet(case, key, event.occurred_at, policy, now, event.event_id).then(
        lambda c: _restart_running_update(c, event.occurred_at, policy, now, event.event_id)
    )


def _each_pausable(case: CaseSla, step: Callable[[Clock], tuple[Clock, list[Effect]]]) -> Outcome:
    outcome = Outcome(case)
    for kind in PAUSABLE:
        if (clock := case.clocks.get(kind)) is not None:
            moved, effects = step(clock)
            outcome = outcome.then(lambda c, m=moved, e=effects: _with_clock(c, m, e))
    return outcome


def _paused(case: CaseSla, event: CasePaused, policy: SlaPolicy, now: datetime) -> Outcome:
    if case.resolved or case.paused_at is not None:
        return Outcome(case)
    paused = replace(case, paused_at=event.occurred_at)
    return _each_pausable(paused, lambda clock: rules.pause(clock, event.occurred_at))


def _resumed(case: CaseSla, event: CaseResumed, policy: SlaPolicy, now: datetime) -> Outcome:
    if case.paused_at is None:
        return Outcome(case)
    running = replace(case, paused_at=None)
    return _each_pausable(
        running, lambda clock: rules.resume(clock, event.occurred_at, policy, policy.calendar_named(clock.calendar))
    )


def _resolved(case: CaseSla, event: CaseResolved, policy: SlaPolicy, now: datetime) -> Outcome:
    """Resolution is met; every other clock still open ends, since no clock outlives its case."""
    if case.resolved:
        return Outcome(case)
    at, cause = event.occurred_at, event.event_id
    outcome = _meet(case, "resolution", at, policy, now, cause)
    for key, clock in case.clocks.items():
        if key != "resolution" and clock.is_open:
            ended, effects = rules.cancel(clock, at, now, cause)
            outcome = outcome.then(lambda c, e=ended, fx=effects: _with_clock(c, e, fx))
    return outcome.then(lambda c: Outcome(replace(c, resolved=True, paused_at=None)))


def _reopened(case: CaseSla, event: CaseReopened, policy: SlaPolicy, now: datetime) -> Outcome:
    if not case.resolved:
        return Outcome(case)
    at, cause = event.occurred_at, event.event_id
    return Outcome(replace(case, resolved=False)).then(
        lambda c: _start_obligation(c, "resolution", at, policy, now, cause)
    ).then(lambda c: _start_obligation(c, "update", at, policy, now, cause))


_ACTIVITY_RULES: dict[type, Callable[..., Outcome]] = {
    CaseContacted: _contacted, PromiseMade: _promise_made, PromiseKept: _promise_kept,
    CasePaused: _paused, CaseResumed: _resumed, CaseResolved: _resolved, CaseReopened: _reopened,
}


# ---------- timers ----------
def on_timer(case: CaseSla | None, timer: TimerDue, policy: SlaPolicy, now: datetime) -> Outcome:
    """A warning, breach or escalation came due; for a clock no longer running it does nothing."""
    clock = case.clocks.get(timer.clock_key) if case else None
    if case is None or clock is None:
        return Outcome(case)
    moved, effects = rules.timer_fired(clock, timer, now, policy, policy.calendar_named(clock.calendar))
    return _with_clock(case, moved, effects)
