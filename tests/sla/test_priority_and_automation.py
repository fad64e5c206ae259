"""Issue 12, SLA semantics, pure rules with fixed instants: the update clock starts at first contact,
a repeat complaint that raises the priority re-targets the open clocks (keeping counted and paused
time), and automated contact meets no clock. Expected values are worked out by hand beside them."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from services.sla.contract import sla_event
from services.sla.domain import AutomatedContact, on_activity
from services.sla.service import Writes
from services.sla.policy import SlaPolicy
from shared.events import CaseContacted, dump
from shared.inbound import RejectedInput, parse_activity
from shared.policy import parse_policy
from tests.sla.test_clock_rules import POLICY, Desk, at

UTC = timezone.utc


def nine(minutes: float = 0, hours: float = 0) -> datetime:
    """Monday 2026-11-23 09:00 UTC plus an offset."""
    return datetime(2026, 11, 23, 9, tzinfo=UTC) + timedelta(minutes=minutes, hours=hours)


def retargeted(desk: Desk, clock: str) -> dict:
    [event] = desk.emitted("sla.retargeted", clock)
    return {"at": event.occurred_at, **event.fields}


# ---------- B1: the update clock starts at first contact ----------
SHORT_UPDATES = parse_policy("targets:\n  P3: {first_contact: 4h, update: 1h, resolution: 3d}\n", SlaPolicy)


def test_no_update_warning_or_breach_before_first_contact_is_even_due():
    # P3: first contact 4h, update 1h, 24x7; complaint at 09:00. Before issue 12 the update clock
    # started with the case: warnings at 09:30 and 09:45 and a breach at 10:00.
    desk = Desk(policy=SHORT_UPDATES)
    desk.classify(nine(), priority="P3")
    desk.run_until(nine(hours=3, minutes=59))
    assert desk.emitted(clock="update") == []
    # first contact warns at 50% and 75% of 4h: 11:00 and 12:00
    assert desk.story("first_contact") == [("sla.started", nine()), ("sla.warning", nine(hours=2)), ("sla.warning", nine(hours=3))]


def test_the_update_clock_starts_at_first_contact_and_runs_from_there():
    desk = Desk(policy=SHORT_UPDATES)
    desk.classify(nine(), priority="P3")
    desk.act("case.contacted", nine(hours=2, minutes=30))  # 11:30
    desk.run_until(nine(hours=5))
    # update 1h from 11:30: warnings at 12:00 (50%) and 12:15 (75%), breach at 12:30
    assert desk.story("update") == [
        ("sla.started", nine(hours=2, minutes=30)),
        ("sla.warning", nine(hours=3)),
        ("sla.warning", nine(hours=3, minutes=15)),
        ("sla.breached", nine(hours=3, minutes=30)),
    ]  # SHORT_UPDATES has no escalation levels


def test_a_promise_kept_before_first_contact_starts_no_update_clock():
    desk = Desk()
    desk.classify(at())
    desk.act("case.promise_made", at(minutes=10), promise_id="refund", due_at=at(hours=2))
    desk.act("case.promise_kept", at(minutes=30), promise_id="refund")
    assert desk.emitted(clock="update") == []
    desk.act("case.contacted", at(minutes=40))
    # P2 update 4h from the contact at 10:40: due 14:40
    assert desk.emitted("sla.started", "update")[0].fields["due_at"] == at(hours=4, minutes=40)


# ---------- B2: a higher priority re-targets the open clocks ----------
def test_a_repeat_complaint_at_a_higher_priority_re_targets_first_contact_and_resolution():
    # Shipped-like test policy: P3 keeps the defaults (4h / 1d / 3d) and P1 too (15m / 2h / 4h), both 24x7.
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.classify(at(minutes=10), priority="P1")
    first = retargeted(desk, "first_contact")
    # 10 minutes counted of P3's 4h; P1 allows 15m: 5 minutes left, due 10:15 (was 14:00)
    assert (first["old_due_at"], first["due_at"]) == (at(hours=4), at(minutes=15))
    assert (first["old_priority"], first["priority"], first["elapsed_seconds"]) == ("P3", "P1", 600)
    resolution = retargeted(desk, "resolution")
    # 10 minutes counted of 3d; P1 allows 4h: due 14:00 (was Thursday 10:00)
    assert (resolution["old_due_at"], resolution["due_at"]) == (at(days=3), at(hours=4))
    desk.run_until(at(minutes=16))
    # 50% of 15m (7m30s) had already passed at 10:10: that warning leaves at once; 75% is 11m15s; breach 15m
    assert desk.story("first_contact") == [
        ("sla.started", at()), ("sla.retargeted", at(minutes=10)), ("sla.warning", at(minutes=10)),
        ("sla.warning", at(minutes=11) + timedelta(seconds=15)), ("sla.breached", at(minutes=15)),
    ]
    assert desk.case.priority == "P1"


def test_re_targeting_keeps_the_time_spent_paused():
    # P3 case at 10:00, contacted 10:05, paused 11:00-13:00 (2h waiting on the customer), repeat at P1 at 15:00.
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.act("case.contacted", at(minutes=5))
    desk.act("case.paused", at(hours=1))
    desk.act("case.resumed", at(hours=3))
    desk.classify(at(hours=5), priority="P1")
    resolution = retargeted(desk, "resolution")
    # Resolution counted 5h - 2h paused = 3h; P1 allows 4h: 1h left, due 16:00. (P3's due was
    # 3d + 2h paused. A peer that recomputes from the start with the new target loses the pause and
    # says 14:00: breached an hour before the repeat complaint even arrived.)
    assert resolution["elapsed_seconds"] == 3 * 3600
    assert (resolution["old_due_at"], resolution["due_at"]) == (at(days=3, hours=2), at(hours=6))
    # Update (started 10:05) counted 4h55m - 2h = 2h55m; P1 allows 2h: past it, due at once (15:00).
    update = retargeted(desk, "update")
    assert (update["old_due_at"], update["due_at"], update["elapsed_seconds"]) == (at(days=1, hours=2, minutes=5), at(hours=5), 2 * 3600 + 55 * 60)
    desk.run_until(at(hours=7))
    assert [e.occurred_at for e in desk.emitted("sla.breached", "update")] == [at(hours=5)]
    assert desk.emitted("sla.warning", "update") == []  # the breach fired first; a warning after it says nothing
    assert [e.occurred_at for e in desk.emitted("sla.breached", "resolution")] == [at(hours=6)]


def test_re_targeting_a_paused_clock_keeps_it_paused_and_counts_the_rest_of_the_pause_out():
    # P3 at 10:00, contacted 10:05, paused at 11:00; repeat at P1 at 12:00 while paused; resumed at 14:00.
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.act("case.contacted", at(minutes=5))
    desk.act("case.paused", at(hours=1))
    desk.classify(at(hours=2), priority="P1")
    # resolution counted 1h before the pause; P1's 4h leaves 3h: due 15:00 if it resumed now (12:00)
    assert retargeted(desk, "resolution")["due_at"] == at(hours=5)
    assert desk.case.clocks["resolution"].state == "paused"
    desk.run_until(at(hours=4))
    assert desk.emitted("sla.breached", "resolution") == []  # nothing fires while waiting on the customer
    desk.act("case.resumed", at(hours=4))
    # resumed at 14:00 with 3h left: due 17:00
    assert desk.case.clocks["resolution"].due_at == at(hours=7)
    desk.run_until(at(hours=7))
    assert [e.occurred_at for e in desk.emitted("sla.breached", "resolution")] == [at(hours=7)]


def test_a_higher_priority_moves_the_clocks_to_its_calendar():
    # P4 runs on New York office hours (09:00-17:00), P1 round the clock. Friday 2026-11-20 16:00 EST
    # (21:00 UTC) a P4 complaint; at 16:05 a repeat at P1.
    desk = Desk()
    friday_4pm = datetime(2026, 11, 20, 21, tzinfo=UTC)
    desk.classify(friday_4pm, priority="P4")
    assert desk.emitted("sla.started", "first_contact")[0].fields["due_at"] == datetime(2026, 11, 23, 21, tzinfo=UTC)  # 1bd: Monday 16:00
    desk.classify(friday_4pm + timedelta(minutes=5), priority="P1")
    # 5 working minutes counted; P1: 15m first contact, 4h resolution, now on 24x7:
    # first contact due 16:15 Friday, resolution 16:05 + 3h55m = 20:00 Friday (01:00 UTC Saturday).
    assert retargeted(desk, "first_contact")["due_at"] == friday_4pm + timedelta(minutes=15)
    assert retargeted(desk, "resolution")["due_at"] == datetime(2026, 11, 21, 1, tzinfo=UTC)
    assert {desk.case.clocks[k].calendar for k in ("first_contact", "resolution")} == {"24x7"}


def test_a_target_in_business_days_counts_from_when_the_clock_started():
    policy = parse_policy("""
targets:
  P2: {first_contact: 1bd, update: 4h, resolution: 5bd}
  P3: {first_contact: 2bd, update: 1bd, resolution: 5bd}
calendars:
  office: {type: business_hours, timezone: America/New_York, hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"]}}
calendar: {default: office}
""", SlaPolicy)
    desk = Desk(policy=policy)
    monday_10 = datetime(2026, 11, 23, 15, tzinfo=UTC)  # 10:00 EST
    desk.classify(monday_10, priority="P3")  # 2bd: Wednesday 10:00
    desk.classify(monday_10 + timedelta(hours=4), priority="P2")  # 14:00: 4 working hours counted
    # 1bd from Monday 10:00 is Tuesday 10:00 = 8 working hours; 4h left from Monday 14:00:
    # 14:00-17:00 (3h) + Tuesday 09:00-10:00 (1h) = Tuesday 10:00 EST (15:00 UTC).
    first = retargeted(desk, "first_contact")
    assert (first["old_due_at"], first["due_at"]) == (datetime(2026, 11, 25, 15, tzinfo=UTC), datetime(2026, 11, 24, 15, tzinfo=UTC))


def test_a_breached_clock_and_promises_are_left_as_they_are():
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.act("case.promise_made", at(minutes=1), promise_id="call-back", due_at=at(hours=6))
    desk.run_until(at(hours=4, minutes=30))  # first contact (4h) breached at 14:00
    desk.classify(at(hours=5), priority="P1")
    assert desk.emitted("sla.retargeted", "first_contact") == []
    assert desk.emitted("sla.retargeted", "promise") == []
    assert desk.case.clocks["promise:call-back"].due_at == at(hours=6)
    # resolution counted 5h, more than P1's 4h: due at once, 15:00
    assert retargeted(desk, "resolution")["due_at"] == at(hours=5)


def test_after_the_priority_rose_the_next_update_period_has_the_new_target():
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.classify(at(minutes=1), priority="P1")
    assert desk.emitted(clock="update") == []  # nobody contacted yet: no update clock to re-target
    desk.act("case.contacted", at(minutes=10))
    # P1 update 2h from 10:10
    assert desk.emitted("sla.started", "update")[0].fields["due_at"] == at(hours=2, minutes=10)
    assert desk.emitted("sla.started", "update")[0].fields["priority"] == "P1"


def test_the_retargeted_event_fits_the_published_contract():
    desk = Desk()
    desk.classify(at(), priority="P3")
    desk.classify(at(minutes=10), priority="P1")
    event = dump(sla_event(desk.emitted("sla.retargeted", "first_contact")[0]))
    assert event["type"] == "sla.retargeted" and event["causation_id"].startswith("cls-")
    assert {k: event[k] for k in ("clock", "old_priority", "priority", "elapsed_seconds")} == {
        "clock": "first_contact", "old_priority": "P3", "priority": "P1", "elapsed_seconds": 600}
    assert (event["old_due_at"], event["due_at"]) == ("2026-11-23T14:00:00Z", "2026-11-23T10:15:00Z")


# ---------- B3: automated contact ----------
@pytest.mark.parametrize("marks", [{"automated": True}, {"by": "bot"}, {"by": "system"}, {"automated": True, "by": "agent"}])
def test_an_automated_contact_meets_no_clock_and_is_counted_apart(marks):
    desk = Desk()
    desk.classify(at())
    outcome = desk.act("case.contacted", at() + timedelta(seconds=5), **marks)
    assert outcome.effects == [AutomatedContact("case.contacted", marks.get("by"))]
    assert desk.emitted(clock="update") == []  # not a first contact: no update clock either
    desk.run_until(at(hours=1))
    # P2 first contact 1h: still breached at 11:00 although the CRM auto-acknowledged at 10:00:05
    assert [e.occurred_at for e in desk.emitted("sla.breached", "first_contact")] == [at(hours=1)]


def test_a_contact_by_an_agent_still_meets_first_contact():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=5), by="agent")
    assert [e.fields["breached"] for e in desk.emitted("sla.met", "first_contact")] == [False]


def test_an_automated_promise_kept_does_not_meet_the_promise():
    desk = Desk()
    desk.classify(at())
    desk.act("case.contacted", at(minutes=1))
    desk.act("case.promise_made", at(minutes=2), promise_id="refund", due_at=at(hours=1))
    outcome = desk.act("case.promise_kept", at(minutes=30), promise_id="refund", by="system")
    assert outcome.effects == [AutomatedContact("case.promise_kept", "system")]
    desk.run_until(at(hours=1))
    assert desk.emitted("sla.met", "promise") == []
    assert [e.occurred_at for e in desk.emitted("sla.breached", "promise")] == [at(hours=1)]
    # ... nor restart the update clock: the contact at 10:01 started it, due 14:01 (P2: 4h)
    assert desk.case.clocks["update"].due_at == at(hours=4, minutes=1)


def test_an_automated_contact_kept_for_later_is_still_automated_when_replayed():
    desk = Desk()
    ack = desk.activity("case.contacted", at() + timedelta(seconds=3), automated=True)
    assert on_activity(None, ack, POLICY, at()).case is None  # kept until the classification
    stored = json.loads(json.dumps(ack.model_dump(mode="json")))  # what store.keep_for_later writes
    replayed = desk.activity("case.contacted", at(), **{k: stored[k] for k in ("automated", "by")})
    desk.classify(at(), pending=[replayed])
    assert desk.emitted("sla.met", "first_contact") == []


def test_case_activity_may_say_who_acted_and_by_default_says_nothing():
    base = {"event_id": "e-1", "type": "case.contacted", "occurred_at": "2026-11-23T10:00:00Z", "source": "crm", "case_id": "CRM-1"}
    plain = parse_activity(json.dumps(base).encode())
    assert (plain.automated, plain.by, plain.is_automated) == (False, None, False)
    assert parse_activity(json.dumps({**base, "by": "bot"}).encode()).is_automated
    assert parse_activity(json.dumps({**base, "automated": True}).encode()).is_automated
    # `by` was ignored before it joined the contract: a CRM's own values must not get activity rejected.
    assert parse_activity(json.dumps({**base, "by": "jsmith"}).encode()).by is None
    assert parse_activity(json.dumps({**base, "by": " Agent "}).encode()).by == "agent"
    with pytest.raises(RejectedInput) as caught:  # `automated` is a JSON boolean, as the contract says
        parse_activity(json.dumps({**base, "automated": "true"}).encode())
    assert caught.value.reason == "invalid_fields" and "automated" in caught.value.errors[0]
    assert isinstance(plain, CaseContacted)


def test_automated_contacts_are_counted_when_the_batch_is_written():
    desk = Desk()
    desk.classify(at())
    writes = Writes(save_cases=True)
    writes.add([desk.act("case.contacted", at(minutes=1), by="bot")])
    assert writes.automated == [AutomatedContact("case.contacted", "bot")] and writes.emitted == []


def test_a_clock_breached_and_then_paused_is_not_retargeted():
    # Update breaches at 14:05 (P2: 4h after the 10:05 contact); the case is paused at 15:00 and the
    # priority raised at 16:00: the breach was announced and escalations run, the clock stays as it is.
    desk = Desk()
    desk.classify(at(), priority="P2")
    desk.act("case.contacted", at(minutes=5))
    desk.run_until(at(hours=4, minutes=6))
    desk.act("case.paused", at(hours=5))
    desk.classify(at(hours=6), priority="P1")
    assert desk.emitted("sla.retargeted", "update") == []
