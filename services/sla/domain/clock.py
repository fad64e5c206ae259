"""One SLA clock and the rules that move it: start, pause, resume, meet, cancel, and its timer.

A clock measures working time on its calendar, minus paused time. Its *position* at an instant is
that measure; it warns at shares of the target, breaches at the target, and escalates at the
target plus each level's delay. Every rule is a pure function returning the new clock and effects.

An open clock that counts has one durable timer (issue 15), keyed by the clock alone and armed for
its next event (a warning, the breach, the next escalation level); when it fires, the event is
handled and the same key is armed for the event after it. A paused or closed clock has none.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from services.sla.domain.calendar import AnyCalendar, add_business_time, business_time_between
from services.sla.domain.effects import ArmTimer, CancelTimers, Effect, Emit, TimerDue
from services.sla.policy import SlaPolicy

ClockKind = Literal["first_contact", "update", "promise", "resolution"]
ClockState = Literal["running", "paused", "met", "breached", "cancelled"]
OPEN_STATES = ("running", "paused", "breached")
ZERO = timedelta(0)


def clock_key(kind: ClockKind, promise_id: str | None = None) -> str:
    return f"promise:{promise_id}" if kind == "promise" else kind


@dataclass(frozen=True)
class Clock:
    """One row in the store. `breached` is a state of a clock still open: it can still be met, late."""

    case_id: str
    kind: ClockKind
    priority: str
    calendar: str
    started_at: datetime  # when this run started counting (a re-target starts a new run)
    target: timedelta  # working time on `calendar`
    due_at: datetime
    promise_id: str | None = None
    state: ClockState = "running"
    started_by: str | None = None  # event id that started or last re-targeted the clock: the cause of its timer events
    paused_at: datetime | None = None
    paused_total: timedelta = ZERO  # working time spent paused since `started_at`, not counted against the target
    counted_before: timedelta = ZERO  # working time counted before `started_at`, under an earlier priority
    breached_at: datetime | None = None
    ended_at: datetime | None = None
    warnings_sent: tuple[float, ...] = ()
    escalations_sent: int = 0
    arming: int = 0  # bumped on every (re)arming; older timers are stale
    armed_timers: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return clock_key(self.kind, self.promise_id)

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


def position(clock: Clock, at: datetime, calendar: AnyCalendar) -> timedelta:
    """Working time the clock has counted by `at` (time paused does not count)."""
    until = min(at, clock.paused_at) if clock.paused_at else at
    since_start = business_time_between(clock.started_at, until, calendar) - clock.paused_total
    return max(ZERO, clock.counted_before + since_start)


def instant_of(clock: Clock, counted: timedelta, calendar: AnyCalendar) -> datetime:
    """When the clock will have counted `counted`, given the pauses so far (an amount already
    counted before this run started is reached at its start)."""
    return add_business_time(clock.started_at, max(ZERO, counted - clock.counted_before) + clock.paused_total, calendar)


def _emit(clock: Clock, type_: str, now: datetime, causation_id: str | None, **extra: object) -> Emit:
    fields: dict[str, object] = {"clock": clock.kind, "due_at": clock.due_at, "priority": clock.priority}
    if clock.promise_id is not None:
        fields["promise_id"] = clock.promise_id
    fields.update(extra)
    return Emit(type_, clock.case_id, causation_id, now, fields)


def start_clock(
    case_id: str, kind: ClockKind, *, priority: str, calendar_name: str, calendar: AnyCalendar,
    started_at: datetime, target: timedelta, due_at: datetime, policy: SlaPolicy, now: datetime,
    cause: str | None, promise_id: str | None = None, previous: Clock | None = None,
) -> tuple[Clock, list[Effect]]:
    """A new run of a clock; `previous` is the run it replaces under the same key (arming continues)."""
    clock = Clock(
        case_id=case_id, kind=kind, priority=priority, calendar=calendar_name, started_at=started_at,
        target=target, due_at=due_at, promise_id=promise_id, started_by=cause,
        arming=previous.arming if previous else 0,
    )
    effects: list[Effect] = [_emit(clock, "sla.started", now, cause, started_at=started_at)]
    clock, arming = rearm(clock, policy, calendar)
    return clock, effects + arming


def rearm(clock: Clock, policy: SlaPolicy, calendar: AnyCalendar) -> tuple[Clock, list[Effect]]:
    """Cancels the clock's timers and arms its one timer (key `TimerDue.key`: the clock's), for
    its next event (`next_event`), or none when nothing is ahead of it. Bumps `arming`, so a timer
    armed before is stale. A next event already past is armed as it is: due at once.

    Cancelling `armed_timers` also withdraws the per-threshold timers (one per warning, breach
    and escalation level) of a clock saved before issue 15: the first rearm after the upgrade
    leaves the clock with its one timer."""
    effects: list[Effect] = [CancelTimers(clock.armed_timers)] if clock.armed_timers else []
    arming = clock.arming + 1
    timer = next_event(clock, arming, policy, calendar)
    clock = replace(clock, arming=arming, armed_timers=(timer.key,) if timer else ())
    return clock, effects + ([timer] if timer else [])


def next_event(clock: Clock, arming: int, policy: SlaPolicy, calendar: AnyCalendar) -> ArmTimer | None:
    """The clock's next event, as the timer to arm for it under `arming`: for a running clock the
    first warning not sent yet (warnings are sorted, so the earliest) unless the breach comes first
    or at the same instant, else the breach; for a breached clock the next escalation level; None
    for a paused or closed clock and after the last level. The instant of each is that of the
    per-threshold timers before issue 15, and so is the order of events at one instant (a breach
    before a warning of the same instant, which it makes moot). The policy is read as it is now:
    warnings and escalation levels follow an edit from the next event on."""
    if clock.state == "running":
        breach = ArmTimer(clock.due_at, TimerDue(clock.case_id, clock.key, arming, "breach", 0))
        # A promise due the moment it is made has no time to warn about: it is simply due.
        pending = [(n, share) for n, share in enumerate(policy.warnings if clock.target > ZERO else [])
                   if share not in clock.warnings_sent]
        if not pending:
            return breach
        n, share = pending[0]
        warn_at = instant_of(clock, clock.target * share, calendar)
        if warn_at >= clock.due_at:
            return breach
        return ArmTimer(warn_at, TimerDue(clock.case_id, clock.key, arming, "warning", n, threshold=share))
    if clock.state == "breached":
        level = clock.escalations_sent + 1
        if level > len(policy.escalations):
            return None
        escalation = policy.escalations[level - 1]
        timer = TimerDue(clock.case_id, clock.key, arming, "escalation", level, notify=escalation.notify)
        return ArmTimer(instant_of(clock, clock.target + escalation.after, calendar), timer)
    return None


def _disarm(clock: Clock) -> tuple[Clock, list[Effect]]:
    effects: list[Effect] = [CancelTimers(clock.armed_timers)] if clock.armed_timers else []
    return replace(clock, armed_timers=()), effects


def pause(clock: Clock, at: datetime) -> tuple[Clock, list[Effect]]:
    """Waiting on the customer: the clock stops counting and its timers are withdrawn."""
    if clock.state not in ("running", "breached"):
        return clock, []
    clock, effects = _disarm(clock)
    return replace(clock, state="paused", paused_at=max(at, clock.started_at)), effects


def resume(clock: Clock, at: datetime, policy: SlaPolicy, calendar: AnyCalendar) -> tuple[Clock, list[Effect]]:
    """Counting again: the due time moves out by the working time spent paused (unless already breached)."""
    if clock.state != "paused" or clock.paused_at is None:
        return clock, []
    paused_for = business_time_between(clock.paused_at, at, calendar)
    clock = replace(
        clock, paused_at=None, paused_total=clock.paused_total + paused_for,
        state="breached" if clock.breached_at else "running",
    )
    if not clock.breached_at:
        clock = replace(clock, due_at=instant_of(clock, clock.target, calendar))
    return rearm(clock, policy, calendar)


def retarget(
    clock: Clock, at: datetime, *, priority: str, calendar_name: str, calendar: AnyCalendar, target: timedelta,
    old_calendar: AnyCalendar, policy: SlaPolicy, now: datetime, cause: str | None,
) -> tuple[Clock, list[Effect]]:
    """The case's priority changed at `at`: the clock counts toward the new priority's target from
    what it had counted by then. From `at` it runs on the new priority's calendar; the working time
    already counted (on its old calendar, paused time excluded) carries over, pauses after `at` still
    move the deadline out, and a clock already past the new target is due at `at` (it breaches at
    once). Sends `sla.retargeted` with the old and the new due time and priority. A clock already
    breached, met or cancelled is left as it is: its breach was announced and escalations run.
    """
    if clock.state not in ("running", "paused") or clock.breached_at is not None:  # paused after its breach
        return clock, []
    rebase = max(at, clock.started_at)
    counted = position(clock, rebase, old_calendar)
    moved = replace(
        clock, priority=priority, calendar=calendar_name, target=target, started_at=rebase, started_by=cause,
        counted_before=counted, paused_total=ZERO,
        paused_at=max(clock.paused_at, rebase) if clock.paused_at else None,
        # a share warned about stays warned only while the new target keeps it passed
        warnings_sent=tuple(share for share in clock.warnings_sent if target * share <= counted),
    )
    moved = replace(moved, due_at=instant_of(moved, target, calendar))
    moved, arming = rearm(moved, policy, calendar)
    news = _emit(moved, "sla.retargeted", now, cause, old_due_at=clock.due_at, old_priority=clock.priority,
                 elapsed_seconds=int(counted.total_seconds()))
    return moved, [news, *arming]


def meet(clock: Clock, at: datetime, now: datetime, cause: str | None, calendar: AnyCalendar) -> tuple[Clock, list[Effect]]:
    """The obligation was fulfilled at `at`; late if the clock had counted past its target by then."""
    if not clock.is_open:
        return clock, []
    counted = position(clock, at, calendar)
    late_by = max(ZERO, counted - clock.target)
    breached = clock.breached_at is not None or late_by > ZERO
    clock, effects = _disarm(clock)
    clock = replace(clock, state="met", ended_at=max(at, clock.started_at), paused_at=None)
    extra: dict[str, object] = {"breached": breached, "elapsed_seconds": int(counted.total_seconds())}
    if breached:
        extra["late_by_seconds"] = int(late_by.total_seconds())
    return clock, effects + [_emit(clock, "sla.met", now, cause, **extra)]


def cancel(clock: Clock, at: datetime, now: datetime, cause: str | None) -> tuple[Clock, list[Effect]]:
    """No longer owed (the case was resolved): the clock ends without a verdict."""
    if not clock.is_open:
        return clock, []
    clock, effects = _disarm(clock)
    clock = replace(clock, state="cancelled", ended_at=max(at, clock.started_at), paused_at=None)
    return clock, effects + [_emit(clock, "sla.cancelled", now, cause, breached=clock.breached_at is not None)]


def timer_fired(clock: Clock, timer: TimerDue, now: datetime, policy: SlaPolicy, calendar: AnyCalendar) -> tuple[Clock, list[Effect]]:
    """A durable timer came due. Stale timers (older arming, closed or paused clock) do nothing.
    The clock's timer handles its event (a warning, the breach, an escalation level), each sent
    once whatever fires (`_warn`, `_breach`, `_escalate` check what was sent), then the clock's
    one timer is armed again, for its next event (`rearm`), in the same effects. This holds for a
    per-threshold timer armed before issue 15 (same payload, key `case:clock:arming:kind:n`)
    too: the first of them to fire re-arms the clock with its one timer and makes the others stale."""
    if timer.arming != clock.arming or clock.state not in ("running", "breached"):
        return clock, []
    if timer.kind == "warning":
        clock, effects = _warn(clock, timer, now)
    elif timer.kind == "breach":
        clock, effects = _breach(clock, now)
    else:
        clock, effects = _escalate(clock, timer, now)
    clock, arming = rearm(clock, policy, calendar)
    return clock, effects + arming


def _warn(clock: Clock, timer: TimerDue, now: datetime) -> tuple[Clock, list[Effect]]:
    share = timer.threshold
    if share is None or clock.breached_at or share in clock.warnings_sent:
        return clock, []
    clock = replace(clock, warnings_sent=tuple(sorted((*clock.warnings_sent, share))))
    return clock, [_emit(clock, "sla.warning", now, clock.started_by, threshold=share)]


def _breach(clock: Clock, now: datetime) -> tuple[Clock, list[Effect]]:
    if clock.breached_at:
        return clock, []
    clock = replace(clock, state="breached", breached_at=clock.due_at)
    return clock, [_emit(clock, "sla.breached", now, clock.started_by, breached_at=clock.due_at)]


def _escalate(clock: Clock, timer: TimerDue, now: datetime) -> tuple[Clock, list[Effect]]:
    if clock.state != "breached" or timer.n <= clock.escalations_sent:
        return clock, []
    clock = replace(clock, escalations_sent=timer.n)
    return clock, [_emit(clock, "sla.escalated", now, clock.started_by, level=timer.n, notify=timer.notify)]
