"""Issue 15: one durable timer per clock, keyed by the clock alone and armed for its next event
(the 50% warning, the 75% warning, the breach, each escalation level), re-armed when it fires.
Pure rules with fixed instants (tests/sla/test_clock_rules.py's Desk and policy: P2 first contact
1h, update 4h, resolution 1d on 24x7; warnings at 50% and 75%; escalations 30m and 2h after the
breach). The per-threshold timers a clock saved before issue 15 still carries are tested here too.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from services.sla.domain import ArmTimer, CancelTimers, Clock, Emit, Outcome, TimerDue, on_timer
from services.sla.domain.clock import instant_of
from services.sla.domain.effects import clock_timer_key
from services.sla.policy import SlaPolicy
from tests.sla.test_clock_rules import POLICY, Desk, at

CASE = "CRM-10442"
FIRST = clock_timer_key(CASE, "first_contact")  # "CRM-10442:first_contact"


def arms(outcome: Outcome) -> list[ArmTimer]:
    return [e for e in outcome.effects if isinstance(e, ArmTimer)]


def cancels(outcome: Outcome) -> list[str]:
    return [key for e in outcome.effects if isinstance(e, CancelTimers) for key in e.keys]


def assert_one_timer_per_clock(desk: Desk) -> None:
    """Every open clock that counts has exactly its own timer armed, for its current arming; a
    paused or closed clock has none; no other timer is armed."""
    expected = {}
    for clock in desk.case.clocks.values():
        key = clock_timer_key(clock.case_id, clock.key)
        if clock.state == "running" or (clock.state == "breached" and clock.escalations_sent < len(desk.policy.escalations)):
            assert clock.armed_timers == (key,), clock
            assert desk.timers[key].timer.arming == clock.arming
            expected[key] = desk.timers[key]
        else:
            assert clock.armed_timers == (), clock
    assert desk.timers == expected


def fire(desk: Desk, key: str, now: datetime | None = None) -> Outcome:
    """Fires the timer armed under `key`, as the timer engine does, at `now` (else its due time)."""
    armed = desk.timers.pop(key)
    return desk.apply(on_timer(desk.case, armed.timer, desk.policy, now or armed.due_at))


def story(desk: Desk, clock: str) -> list[tuple]:
    return [(e.type, e.fields.get("threshold") or e.fields.get("level"), e.occurred_at)
            for e in desk.emitted(clock=clock) if e.type != "sla.started"]


def test_a_classification_arms_one_timer_per_clock_for_its_first_warning():
    desk = Desk()
    outcome = desk.classify(at())
    assert [(a.key, a.timer.kind, a.timer.threshold, a.due_at) for a in arms(outcome)] == [
        (FIRST, "warning", 0.5, at(minutes=30)), (f"{CASE}:resolution", "warning", 0.5, at(hours=12)),
    ]
    assert_one_timer_per_clock(desk)


def test_one_timer_per_clock_at_every_step_of_a_case():
    desk = Desk()
    steps = [
        lambda: desk.classify(at()),
        lambda: desk.act("case.promise_made", at(minutes=5), promise_id="p:1", due_at=at(hours=2)),
        lambda: desk.act("case.contacted", at(minutes=40)),  # after the 50% warning of first contact
        lambda: desk.act("case.paused", at(hours=1)),
        lambda: desk.act("case.resumed", at(hours=2)),
        lambda: desk.run_until(at(hours=3, minutes=30)),  # the promise breached (2h) and escalated (2h30m)
        lambda: desk.act("case.contacted", at(hours=4)),  # update met and restarted
        lambda: desk.run_until(at(days=2)),  # resolution breached, escalated twice, update too
        lambda: desk.act("case.resolved", at(days=2, hours=1)),
    ]
    for step in steps:
        outcome = step()
        if isinstance(outcome, Outcome):
            armed = [a.key for a in arms(outcome)]
            assert len(armed) == len(set(armed))  # one arming per clock and outcome
        assert_one_timer_per_clock(desk)
    assert desk.timers == {}
    assert [e.fields["level"] for e in desk.emitted("sla.escalated", "resolution")] == [1, 2]
    assert [e.fields["level"] for e in desk.emitted("sla.escalated", "promise")] == [1, 2]


def test_warnings_breach_and_escalations_fire_in_order_through_the_one_key():
    desk = Desk()
    desk.classify(at())
    fired = []
    while FIRST in desk.timers:
        armed = desk.timers[FIRST]
        fired.append((armed.timer.kind, armed.timer.n, armed.due_at))
        outcome = fire(desk, FIRST)
        assert cancels(outcome) == [FIRST]  # the fired key, withdrawn and armed again (or not: the last)
        assert_one_timer_per_clock(desk)
    assert fired == [
        ("warning", 0, at(minutes=30)), ("warning", 1, at(minutes=45)), ("breach", 0, at(hours=1)),
        ("escalation", 1, at(hours=1, minutes=30)), ("escalation", 2, at(hours=3)),
    ]
    assert story(desk, "first_contact") == [
        ("sla.warning", 0.5, at(minutes=30)), ("sla.warning", 0.75, at(minutes=45)),
        ("sla.breached", None, at(hours=1)), ("sla.escalated", 1, at(hours=1, minutes=30)),
        ("sla.escalated", 2, at(hours=3)),
    ]
    [breach] = desk.emitted("sla.breached", "first_contact")
    assert breach.fields["breached_at"] == at(hours=1) and breach.causation_id.startswith("cls-")
    assert [e.fields["notify"] for e in desk.emitted("sla.escalated")] == ["team_lead", "support_manager"]


def test_pausing_withdraws_the_timer_resuming_arms_it_later_and_meeting_withdraws_it():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=10))  # update (4h) starts; its 50% warning at 2h10m
    update = f"{CASE}:update"
    assert desk.timers[update].due_at == at(hours=2, minutes=10)

    paused = desk.act("case.paused", at(hours=1))
    assert set(cancels(paused)) == {update, f"{CASE}:resolution"} and arms(paused) == []
    assert_one_timer_per_clock(desk)

    resumed = desk.act("case.resumed", at(hours=3))  # 2h paused: everything moves out by 2h
    assert {a.key: (a.timer.kind, a.due_at) for a in arms(resumed)} == {
        update: ("warning", at(hours=4, minutes=10)), f"{CASE}:resolution": ("warning", at(hours=14)),
    }
    assert_one_timer_per_clock(desk)

    met = desk.act("case.contacted", at(hours=3, minutes=30))  # update met; the next period starts
    assert cancels(met) == [update] and [(a.key, a.due_at) for a in arms(met)] == [(update, at(hours=5, minutes=30))]
    resolved = desk.act("case.resolved", at(hours=4))
    assert set(cancels(resolved)) == {update, f"{CASE}:resolution"} and arms(resolved) == []
    assert desk.timers == {} and desk.emitted("sla.warning") == []


def test_a_higher_priority_moves_the_timer_and_the_old_arming_stays_silent():
    desk = Desk()
    desk.classify(at())
    before = desk.timers[FIRST]
    moved = desk.classify(at(minutes=5), priority="P1")  # P1 first contact 15m (the defaults); 5m counted
    assert cancels(moved).count(FIRST) == 1
    [timer] = [a for a in arms(moved) if a.key == FIRST]
    assert (timer.timer.kind, timer.timer.threshold, timer.due_at) == ("warning", 0.5, at(minutes=7.5))
    assert timer.timer.arming > before.timer.arming
    assert on_timer(desk.case, before.timer, POLICY, before.due_at).effects == []  # the P2 arming: stale
    desk.run_until(at(hours=1))
    assert story(desk, "first_contact")[:4] == [
        ("sla.retargeted", None, at(minutes=5)), ("sla.warning", 0.5, at(minutes=7.5)), ("sla.warning", 0.75, at(minutes=11.25)),
        ("sla.breached", None, at(minutes=15)),
    ]


def test_a_late_firing_past_several_events_sends_each_once_in_order_over_successive_firings():
    desk = Desk()
    desk.classify(at())
    late = at(hours=2)  # past 50%, 75%, the breach (1h) and escalation 1 (1h30m); not escalation 2 (3h)
    sent: list[list[tuple]] = []
    stale = []
    while desk.timers[FIRST].due_at <= late:
        stale.append(desk.timers[FIRST].timer)
        before = len(desk.events)
        fire(desk, FIRST, now=late)
        sent.append([(e.type, e.fields.get("threshold") or e.fields.get("level")) for e in desk.events[before:]])
    assert sent == [[("sla.warning", 0.5)], [("sla.warning", 0.75)], [("sla.breached", None)], [("sla.escalated", 1)]]
    assert all(e.occurred_at == late for e in desk.emitted(clock="first_contact") if e.type != "sla.started")
    assert desk.emitted("sla.breached")[0].fields["breached_at"] == at(hours=1)  # the deadline, not the firing
    assert (desk.timers[FIRST].timer.kind, desk.timers[FIRST].due_at) == ("escalation", at(hours=3))
    # every timer fired on the way is stale now: firing one again (a redelivery) sends nothing
    for timer in stale:
        assert on_timer(desk.case, timer, POLICY, late).effects == []


def test_a_promise_due_when_made_arms_its_breach_at_once():
    desk = Desk()
    desk.classify(at())
    made = desk.act("case.promise_made", at(minutes=1), promise_id="now", due_at=at(minutes=1))
    [timer] = arms(made)
    assert (timer.key, timer.timer.kind, timer.due_at) == (f"{CASE}:promise%3Anow", "breach", at(minutes=1))


# ---------- upgrade: clocks saved with the per-threshold timers of before issue 15 ----------
def legacy_timers(clock: Clock, policy: SlaPolicy) -> dict[str, ArmTimer]:
    """The timers the code before issue 15 armed for `clock` (its `rearm`): one per pending warning
    and one for the breach of a running clock, one per pending escalation level of a breached one,
    all under the clock's current arming, keyed `case:clock:arming:kind:n` (ArmTimer.key is the
    new key, so the dict carries the old one)."""
    timers: list[TimerDue] = []
    due: list[datetime] = []
    if clock.state == "running":
        for n, share in enumerate(policy.warnings):
            if share not in clock.warnings_sent:
                timers.append(TimerDue(clock.case_id, clock.key, clock.arming, "warning", n, threshold=share))
                due.append(instant_of(clock, clock.target * share, policy.calendar_named(clock.calendar)))
        timers.append(TimerDue(clock.case_id, clock.key, clock.arming, "breach", 0))
        due.append(clock.due_at)
    elif clock.state == "breached":
        for level, escalation in enumerate(policy.escalations, start=1):
            if level > clock.escalations_sent:
                timers.append(TimerDue(clock.case_id, clock.key, clock.arming, "escalation", level, notify=escalation.notify))
                due.append(instant_of(clock, clock.target + escalation.after, policy.calendar_named(clock.calendar)))
    return {f"{clock_timer_key(t.case_id, t.clock_key)}:{t.arming}:{t.kind}:{t.n}": ArmTimer(d, t) for t, d in zip(timers, due)}


def as_before_the_upgrade(desk: Desk, clock_key: str, **changes) -> dict[str, ArmTimer]:
    """Turns one clock of the desk into what the old code saved: its fields changed by `changes`,
    its `armed_timers` the per-threshold keys, those timers armed instead of its one timer."""
    clock = replace(desk.case.clocks[clock_key], **changes)
    old = legacy_timers(clock, desk.policy)
    desk.timers.pop(clock_timer_key(clock.case_id, clock.key), None)
    desk.timers.update({key: armed for key, armed in old.items()})  # the desk keys them by their old key
    desk.case = replace(desk.case, clocks={**desk.case.clocks, clock_key: replace(clock, armed_timers=tuple(old))})
    return old


def test_an_old_per_threshold_timer_firing_after_the_upgrade_sends_once_and_leaves_one_timer():
    desk = Desk()
    desk.classify(at())
    old = as_before_the_upgrade(desk, "first_contact")
    assert len(old) == 3 and all(":" in k.split("first_contact", 1)[1] for k in old)

    # The service was down: the old 50%, 75% and breach timers all fire late, in their old order
    # (due time, then key), with the one timer the first of them arms (due at once) among them.
    late = at(minutes=70)
    first = fire(desk, next(k for k in old if k.endswith(":warning:0")), now=late)
    assert set(cancels(first)) == set(old)  # every per-threshold key is withdrawn, once
    assert [(a.key, a.timer.kind, a.timer.n, a.due_at) for a in arms(first)] == [(FIRST, "warning", 1, at(minutes=45))]
    for key in old:  # what the claim took: firing them now sends nothing (older arming)
        desk.timers.pop(key, None)
        assert on_timer(desk.case, old[key].timer, POLICY, late).effects == []
    while desk.timers[FIRST].due_at <= late:
        fire(desk, FIRST, now=late)
    assert story(desk, "first_contact") == [
        ("sla.warning", 0.5, late), ("sla.warning", 0.75, late), ("sla.breached", None, late),
    ]
    assert_one_timer_per_clock(desk)
    assert (desk.timers[FIRST].timer.kind, desk.timers[FIRST].timer.n) == ("escalation", 1)


def test_an_old_timer_for_an_event_already_sent_sends_nothing_and_arms_the_next():
    desk = Desk()
    desk.classify(at())
    desk.run_until(at(minutes=30))  # the 50% warning was sent (by the old code, say)
    old = as_before_the_upgrade(desk, "first_contact")
    warned = next(t for t in legacy_timers(replace(desk.case.clocks["first_contact"], warnings_sent=()), POLICY).values()
                  if t.timer.kind == "warning" and t.timer.n == 0)
    again = desk.apply(on_timer(desk.case, warned.timer, POLICY, at(minutes=31)))  # redelivered, same arming
    assert [e for e in again.effects if isinstance(e, Emit)] == []
    assert set(cancels(again)) == set(old)
    assert [(a.timer.kind, a.timer.n) for a in arms(again)] == [("warning", 1)]
    assert [e.fields["threshold"] for e in desk.emitted("sla.warning")] == [0.5]


def test_old_escalation_timers_of_a_breached_clock_escalate_each_level_once():
    desk = Desk()
    desk.classify(at())
    desk.run_until(at(hours=1, minutes=30))  # breached at 1h, escalation 1 sent at 1h30m
    old = as_before_the_upgrade(desk, "first_contact")
    assert sorted(a.timer.n for a in old.values()) == [2]
    level_two = next(iter(old))
    outcome = fire(desk, level_two)
    assert [e.fields["level"] for e in outcome.effects if isinstance(e, Emit)] == [2]
    assert cancels(outcome) == [level_two] and arms(outcome) == []  # no level after the last
    assert_one_timer_per_clock(desk)
    assert [e.fields["level"] for e in desk.emitted("sla.escalated", "first_contact")] == [1, 2]


def test_activity_after_the_upgrade_withdraws_the_old_timers():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))
    old_update = as_before_the_upgrade(desk, "update")
    old_resolution = as_before_the_upgrade(desk, "resolution")
    paused = desk.act("case.paused", at(minutes=10))
    assert set(cancels(paused)) == set(old_update) | set(old_resolution)
    desk.act("case.resumed", at(minutes=20))
    assert set(desk.timers) == {f"{CASE}:update", f"{CASE}:resolution"}
    assert_one_timer_per_clock(desk)
