"""The clock rules, driven with fixed instants through a small in-memory stand-in for store and timers."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

from services.sla.domain import (
    ArmTimer, CancelTimers, Emit, KeepForLater, Outcome, on_activity, on_classified, on_timer,
)
from services.sla.policy import SlaPolicy
from shared.policy import parse_policy
from tests.builders import activity_model, classified_event

POLICY = parse_policy(
    """
targets:
  P2: {first_contact: 1h, update: 4h, resolution: 1d}
  P4: {first_contact: 1 business day, update: 2d, resolution: 5d}
warnings: [0.5, 0.75]
escalations:
  - {after: 30m, notify: team_lead}
  - {after: 2h, notify: support_manager}
calendars:
  office:
    type: business_hours
    timezone: America/New_York
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}
    holidays: [2026-11-26]
calendar:
  by_priority: {P4: office}
""",
    SlaPolicy,
)
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=timezone.utc)  # a Monday
_ids = itertools.count(1)


def at(minutes: float = 0, hours: float = 0, days: float = 0) -> datetime:
    return MONDAY_10 + timedelta(minutes=minutes, hours=hours, days=days)


class Desk:
    """Applies outcomes the way the store will: saves the case, keeps armed timers, collects events."""

    def __init__(self, case_id: str = "CRM-10442", policy: SlaPolicy = POLICY) -> None:
        self.case_id, self.policy = case_id, policy
        self.case = None
        self.timers: dict[str, ArmTimer] = {}
        self.events: list[Emit] = []
        self.kept_for_later: list[Any] = []

    def apply(self, outcome: Outcome) -> Outcome:
        self.case = outcome.case
        for effect in outcome.effects:
            if isinstance(effect, Emit):
                self.events.append(effect)
            elif isinstance(effect, ArmTimer):
                self.timers[effect.key] = effect
            elif isinstance(effect, CancelTimers):
                for key in effect.keys:
                    self.timers.pop(key, None)
            elif isinstance(effect, KeepForLater):
                self.kept_for_later.append(effect)
        return outcome

    def classify(self, when: datetime, priority: str = "P2", source: str = "crm-east", pending=()) -> Outcome:
        event = classified_event(
            event_id=f"cls-{next(_ids)}", occurred_at=when, case_id=self.case_id, causation_id="cmp-1",
            customer_id="C-881", source=source, category="delay", temperament="upset", loyalty="loyal",
            priority=priority, received_at=when,
        )
        return self.apply(on_classified(self.case, event, self.policy, when, pending))

    def activity(self, type_: str, when: datetime, **fields: Any):
        return activity_model(type_, self.case_id, when, event_id=f"act-{next(_ids)}", **fields)

    def act(self, type_: str, when: datetime, **fields: Any) -> Outcome:
        self.run_until(when)
        return self.apply(on_activity(self.case, self.activity(type_, when, **fields), self.policy, when))

    def run_until(self, when: datetime) -> None:
        """Fires every armed timer due by `when`, earliest first, each at its due time."""
        while due := [t for t in self.timers.values() if t.due_at <= when]:
            first = min(due, key=lambda t: (t.due_at, t.key))
            del self.timers[first.key]
            self.apply(on_timer(self.case, first.timer, self.policy, first.due_at))

    def emitted(self, type_: str | None = None, clock: str | None = None) -> list[Emit]:
        return [e for e in self.events if (type_ is None or e.type == type_) and (clock is None or e.fields["clock"] == clock)]

    def story(self, clock: str) -> list[tuple[str, datetime]]:
        return [(e.type, e.occurred_at) for e in self.emitted(clock=clock)]


# ---------- starting ----------
def test_a_classified_complaint_starts_first_contact_and_resolution_clocks():
    # Issue 12: the update clock starts at first contact, not with the case (it asserted
    # {"first_contact", "resolution", "update"} and an update due at 4h before).
    desk = Desk()
    desk.classify(at())
    started = {e.fields["clock"]: e for e in desk.emitted("sla.started")}
    assert set(started) == {"first_contact", "resolution"}
    assert started["first_contact"].fields["due_at"] == at(hours=1)
    assert started["resolution"].fields["due_at"] == at(days=1)
    assert all(e.fields["priority"] == "P2" and e.causation_id.startswith("cls-") for e in started.values())


def test_a_low_priority_complaint_on_friday_evening_must_be_answered_by_end_of_monday():
    desk = Desk()
    friday_evening = datetime(2026, 11, 20, 23, tzinfo=timezone.utc)  # 18:00 in New York
    desk.classify(friday_evening, priority="P4")
    first_contact = desk.emitted("sla.started", "first_contact")[0]
    assert first_contact.fields["due_at"] == datetime(2026, 11, 23, 22, tzinfo=timezone.utc)  # Mon 17:00 NY


# ---------- first contact ----------
def test_customer_contacted_in_time_gets_met_and_never_a_breach():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=20))
    desk.run_until(at(days=3))
    assert desk.story("first_contact") == [("sla.started", at()), ("sla.met", at(minutes=20))]
    met = desk.emitted("sla.met", "first_contact")[0]
    assert met.fields["breached"] is False and "late_by_seconds" not in met.fields


def test_nobody_calls_back_warnings_at_half_and_three_quarters_then_breach_then_escalations():
    desk = Desk()
    desk.classify(at())
    desk.run_until(at(hours=4) - timedelta(seconds=1))
    assert desk.story("first_contact") == [
        ("sla.started", at()),
        ("sla.warning", at(minutes=30)),
        ("sla.warning", at(minutes=45)),
        ("sla.breached", at(hours=1)),
        ("sla.escalated", at(hours=1, minutes=30)),
        ("sla.escalated", at(hours=3)),
    ]
    warnings = desk.emitted("sla.warning", "first_contact")
    assert [w.fields["threshold"] for w in warnings] == [0.5, 0.75]
    escalations = desk.emitted("sla.escalated", "first_contact")
    assert [(e.fields["level"], e.fields["notify"]) for e in escalations] == [(1, "team_lead"), (2, "support_manager")]


def test_a_contact_after_the_breach_is_met_late_and_says_by_how_much():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(hours=1, minutes=40))
    met = desk.emitted("sla.met", "first_contact")[0]
    assert met.fields["breached"] is True
    assert met.fields["late_by_seconds"] == 40 * 60
    assert len(desk.emitted("sla.escalated", "first_contact")) == 1  # level 2 (at 3h) never fires


def test_each_contact_restarts_the_update_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(hours=1, minutes=30))
    # Issue 12: the first contact starts the update clock (before: met a clock started with the case).
    assert desk.story("update") == [("sla.started", at(hours=1, minutes=30))]
    assert desk.emitted("sla.started", "update")[-1].fields["due_at"] == at(hours=5, minutes=30)
    desk.run_until(at(hours=5, minutes=29))
    assert desk.emitted("sla.breached", "update") == []
    desk.run_until(at(hours=5, minutes=30))
    assert len(desk.emitted("sla.breached", "update")) == 1


# ---------- promises ----------
def test_a_promise_kept_in_time_is_met_and_the_customer_counts_as_updated():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))  # issue 12: updates are owed from first contact on
    desk.act("case.promise_made", at(minutes=10), promise_id="call-back", due_at=at(hours=2, minutes=10))
    desk.act("case.promise_kept", at(hours=1), promise_id="call-back")
    desk.run_until(at(hours=5))
    assert desk.story("promise") == [("sla.started", at(minutes=10)), ("sla.met", at(hours=1))]
    met = desk.emitted("sla.met", "promise")[0]
    assert met.fields["promise_id"] == "call-back" and met.fields["breached"] is False
    assert desk.emitted("sla.started", "update")[-1].fields["due_at"] == at(hours=5)


def test_a_missed_promise_warns_at_shares_of_the_promised_time_and_breaches_when_due():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))
    desk.act("case.promise_made", at(hours=1), promise_id="refund-by-noon", due_at=at(hours=3))
    desk.run_until(at(hours=3, minutes=10))
    assert desk.story("promise") == [
        ("sla.started", at(hours=1)),
        ("sla.warning", at(hours=2)),
        ("sla.warning", at(hours=2, minutes=30)),
        ("sla.breached", at(hours=3)),
    ]
    assert all(e.fields["promise_id"] == "refund-by-noon" for e in desk.emitted(clock="promise"))


def test_promises_run_on_the_promised_wall_clock_even_on_an_office_hours_case():
    desk = Desk()
    desk.classify(at(), priority="P4")
    saturday = datetime(2026, 11, 28, 15, tzinfo=timezone.utc)
    desk.act("case.promise_made", at(), promise_id="sat-delivery", due_at=saturday)
    desk.run_until(saturday)
    assert desk.emitted("sla.breached", "promise")[0].occurred_at == saturday


def test_a_promise_made_twice_is_one_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=10), promise_id="p1", due_at=at(hours=2))
    desk.act("case.promise_made", at(minutes=11), promise_id="p1", due_at=at(hours=9))
    assert len(desk.emitted("sla.started", "promise")) == 1


# ---------- pause ----------
def test_time_waiting_on_the_customer_does_not_count_against_resolution():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))
    desk.act("case.paused", at(hours=2))
    desk.act("case.resumed", at(hours=8))
    desk.run_until(at(days=1, hours=5, minutes=59))
    assert desk.emitted("sla.breached", "resolution") == []
    desk.run_until(at(days=1, hours=6))
    assert [e.occurred_at for e in desk.emitted("sla.breached", "resolution")] == [at(days=1, hours=6)]
    assert desk.emitted("sla.breached", "resolution")[0].fields["due_at"] == at(days=1, hours=6)


def test_while_paused_no_warning_or_breach_fires_on_resolution():
    desk = Desk()
    desk.classify(at())
    desk.act("case.paused", at(hours=1))
    desk.run_until(at(days=5))
    assert desk.emitted("sla.warning", "resolution") == []
    assert desk.emitted("sla.breached", "resolution") == []
    assert desk.emitted("sla.breached", "first_contact")  # first contact is owed even while waiting


def test_on_office_hours_only_paused_working_time_moves_the_deadline():
    desk = Desk()
    monday_9_ny = datetime(2026, 11, 23, 14, tzinfo=timezone.utc)
    desk.classify(monday_9_ny, priority="P4")
    # 5d = 120 working hours: 15 working days, skipping Thanksgiving: due Monday Dec 14 at 17:00.
    assert desk.emitted("sla.started", "resolution")[0].fields["due_at"] == datetime(2026, 12, 14, 22, tzinfo=timezone.utc)
    # Paused from Monday 16:00 to Tuesday 10:00 New York time: 2 working hours.
    desk.act("case.paused", datetime(2026, 11, 23, 21, tzinfo=timezone.utc))
    desk.act("case.resumed", datetime(2026, 11, 24, 15, tzinfo=timezone.utc))
    desk.run_until(datetime(2027, 1, 15, tzinfo=timezone.utc))
    breached = desk.emitted("sla.breached", "resolution")[0]
    assert breached.fields["due_at"] == datetime(2026, 12, 15, 16, tzinfo=timezone.utc)  # Tuesday 11:00 NY


def test_a_case_paused_twice_counts_both_pauses_and_a_resume_without_pause_changes_nothing():
    desk = Desk()
    desk.classify(at())
    desk.act("case.resumed", at(minutes=30))
    desk.act("case.paused", at(hours=1))
    desk.act("case.paused", at(hours=2))  # a duplicate pause does not restart the pause
    desk.act("case.resumed", at(hours=3))
    desk.act("case.paused", at(hours=4))
    desk.act("case.resumed", at(hours=5))
    resolution = desk.case.clocks["resolution"]
    assert resolution.paused_total == timedelta(hours=3)
    assert resolution.due_at == at(days=1, hours=3)


# ---------- resolution ----------
def test_resolving_meets_resolution_and_ends_every_other_open_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=10), promise_id="p-open", due_at=at(hours=6))
    desk.act("case.resolved", at(minutes=20), resolution="replaced")
    assert [e.fields["clock"] for e in desk.emitted("sla.met")] == ["resolution"]
    # Issue 12: nobody was contacted, so no update clock ran to cancel (before: "update" was in the set).
    assert {e.fields["clock"] for e in desk.emitted("sla.cancelled")} == {"first_contact", "promise"}
    assert desk.timers == {}
    desk.run_until(at(days=10))
    assert desk.emitted("sla.breached") == [] and desk.emitted("sla.warning") == []


def test_a_kept_promise_is_not_cancelled_again_when_the_case_is_resolved():
    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=10), promise_id="p-kept", due_at=at(hours=2))
    desk.act("case.promise_kept", at(minutes=30), promise_id="p-kept")
    desk.act("case.resolved", at(minutes=40))
    assert desk.story("promise") == [("sla.started", at(minutes=10)), ("sla.met", at(minutes=30))]


def test_after_resolution_new_activity_starts_no_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.resolved", at(minutes=40))
    before = len(desk.events)
    desk.act("case.contacted", at(hours=1))
    desk.act("case.promise_made", at(hours=1), promise_id="late", due_at=at(hours=3))
    desk.act("case.paused", at(hours=2))
    desk.act("case.resolved", at(hours=3))
    assert desk.events[before:] == [] and desk.timers == {}


def test_a_reopened_case_starts_a_new_resolution_clock_and_old_timers_stay_silent():
    desk = Desk()
    desk.classify(at())
    # Issue 15: the clock's one timer (before: its breach timer, one of three per clock).
    old_timer = next(t for t in desk.timers.values() if t.timer.clock_key == "resolution")
    desk.act("case.resolved", at(hours=2))
    desk.act("case.reopened", at(hours=5))
    assert desk.emitted("sla.started", "resolution")[-1].fields["due_at"] == at(days=1, hours=5)
    stale = desk.apply(on_timer(desk.case, old_timer.timer, POLICY, at(days=1)))
    assert stale.effects == []
    desk.run_until(at(days=1, hours=5))
    assert [e.occurred_at for e in desk.emitted("sla.breached", "resolution")] == [at(days=1, hours=5)]


def test_a_breached_resolution_met_late_reports_breached():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))
    desk.act("case.resolved", at(days=1, hours=1))
    met = desk.emitted("sla.met", "resolution")[0]
    assert met.fields["breached"] is True and met.fields["late_by_seconds"] == 3600


# ---------- out of order and duplicates ----------
def test_activity_before_the_classification_is_kept_and_applied_when_it_arrives():
    desk = Desk()
    contact = desk.activity("case.contacted", at(minutes=20))
    early = desk.apply(on_activity(None, contact, POLICY, at(minutes=21)))
    assert early.case is None and early.effects == [KeepForLater(contact.event_id)]
    desk.classify(at(), pending=[contact])
    met = desk.emitted("sla.met", "first_contact")[0]
    assert met.occurred_at == at() and met.fields["breached"] is False
    assert "first_contact" not in {t.timer.clock_key for t in desk.timers.values()}


def test_a_promise_kept_before_it_was_made_starts_no_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_kept", at(minutes=30), promise_id="p-early")
    desk.act("case.promise_made", at(minutes=31), promise_id="p-early", due_at=at(hours=2))
    assert desk.emitted(clock="promise") == []
    desk.run_until(at(hours=3))
    assert desk.emitted(clock="promise") == []


def test_a_second_classification_of_an_open_case_without_a_higher_priority_changes_nothing():
    # Issue 12: a higher priority now re-targets the open clocks (test_priority_and_automation.py);
    # this test asserted that a repeat at P1 changed nothing. The same or a lower priority still does not.
    desk = Desk()
    desk.classify(at())
    before = (len(desk.events), dict(desk.timers))
    for priority in ("P2", "P4"):
        repeat = desk.classify(at(minutes=10), priority=priority)
        assert repeat.effects == [] and (len(desk.events), desk.timers) == before
    assert desk.case.priority == "P2"


def test_a_timer_for_a_clock_already_met_does_nothing():
    desk = Desk()
    desk.classify(at())
    # Issue 15: the clock's one timer, armed for its 50% warning (before: its breach timer).
    timer = next(t for t in desk.timers.values() if t.timer.clock_key == "first_contact")
    desk.act("case.contacted", at(minutes=10))
    assert on_timer(desk.case, timer.timer, POLICY, at(hours=1)).effects == []
    assert on_timer(None, timer.timer, POLICY, at(hours=1)).effects == []


def test_a_warning_delivered_twice_is_sent_once():
    desk = Desk()
    desk.classify(at())
    warning = next(t for t in desk.timers.values() if t.timer.clock_key == "first_contact" and t.timer.kind == "warning")
    desk.run_until(warning.due_at)
    assert on_timer(desk.case, warning.timer, POLICY, warning.due_at).effects == []


# ---------- what the store persists ----------
def test_timer_keys_are_unique_per_clock_even_with_colons_in_ids():
    desk = Desk(case_id="CRM:1")
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=1), promise_id="a:b", due_at=at(hours=1))
    desk.act("case.promise_made", at(minutes=1), promise_id="a", due_at=at(hours=1))
    keys = list(desk.timers)
    assert len(keys) == len(set(keys))
    assert all(k.startswith("CRM%3A1:") for k in keys)


def test_the_outcome_names_the_clock_rows_to_save():
    desk = Desk()
    desk.classify(at())
    outcome = desk.act("case.contacted", at(minutes=5))
    assert set(outcome.changed_clocks) == {"first_contact", "update"}


def test_escalations_wait_while_the_case_waits_on_the_customer():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5))
    desk.run_until(at(days=1))  # resolution breached at 1d
    desk.act("case.paused", at(days=1, minutes=10))
    desk.run_until(at(days=2))
    assert desk.emitted("sla.escalated", "resolution") == []
    desk.act("case.resumed", at(days=2))
    desk.run_until(at(days=3))
    # Level 1 was 30m after the breach; 10m had passed before the pause, 20m remain after it.
    assert [e.occurred_at for e in desk.emitted("sla.escalated", "resolution")][:1] == [at(days=2, minutes=20)]


def test_every_emitted_event_fits_the_published_contract():
    from services.sla.contract import sla_event
    from shared.events import dump

    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=1), promise_id="p1", due_at=at(minutes=31))
    desk.run_until(at(hours=4))
    desk.act("case.contacted", at(hours=4))
    desk.act("case.resolved", at(hours=5))
    published = [dump(sla_event(e)) for e in desk.events]
    assert {p["type"] for p in published} == {
        "sla.started", "sla.warning", "sla.breached", "sla.escalated", "sla.met", "sla.cancelled",
    }
    for event in published:
        assert {"event_id", "type", "occurred_at", "case_id", "causation_id", "clock", "due_at", "priority"} <= set(event)
        assert ("promise_id" in event) == (event["clock"] == "promise")
        assert ("threshold" in event) == (event["type"] == "sla.warning")
        assert ("level" in event and "notify" in event) == (event["type"] == "sla.escalated")
        if event["type"] == "sla.met":
            assert isinstance(event["breached"], bool)
