"""The SLA replay of `helpdesk policy simulate` (services/sla/domain/simulation.py), on five cases
whose breaches were worked out by hand.

Policy in force (24x7): P2 first contact 1h, update 4h, resolution 1d; P3 4h, 1d, 3d. The draft
shortens P2's first contact to 30m. Every complaint is received at 09:00 on 2 March 2026; the
replay runs to 09:00 on 4 March (two days).

| case | priority | activity                                   | in force                     | draft |
|------|----------|--------------------------------------------|------------------------------|-------|
| A    | P2       | contacted 09:45, resolved 11:00            | none                         | first contact (due 09:30) |
| B    | P2       | contacted 09:20, resolved 10:00            | none                         | none |
| C    | P2       | contacted 10:30, nothing after             | first contact (due 10:00), update (due 14:30), resolution (due 3 Mar 09:00) | the same, first contact due 09:30 |
| D    | P3       | contacted 14:00, nothing after             | first contact (due 13:00), update (due 3 Mar 14:00); resolution due 5 Mar: not yet | the same |
| E    | P2       | contacted 08:55 (before the complaint; published first, kept for it), nothing after | update (due 12:55), resolution | the same |
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from services.sla.domain import simulation as sim
from services.sla.policy import SlaPolicy
from shared.events import case_activity
from shared.policy import parse_policy
from tests.builders import activity_event, classified_event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
UNTIL = T0 + timedelta(days=2)
IN_FORCE = """
targets:
  P2: {first_contact: 1h, update: 4h, resolution: 1d}
  P3: {first_contact: 4h, update: 1d, resolution: 3d}
escalations:
  - {after: 30m, notify: team_lead}
"""
DRAFT = IN_FORCE.replace("P2: {first_contact: 1h", "P2: {first_contact: 30m")


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def activity(type_: str, case_id: str, at: datetime, **fields):
    return case_activity.validate_python(activity_event(type_, case_id, at, **fields))


def case_events(t0: datetime = T0) -> dict[str, list]:
    """The five cases of the module's table, received at `t0` (09:00 in the table)."""
    def m(n: float) -> datetime:
        return t0 + timedelta(minutes=n)

    def complaint(case_id: str, priority: str = "P2"):
        return classified_event(case_id=case_id, priority=priority, received_at=t0, occurred_at=t0 + timedelta(seconds=2))

    contact_e = activity("case.contacted", "E", m(-5))
    return {
        "A": [complaint("A"), activity("case.contacted", "A", m(45)), activity("case.resolved", "A", m(120))],
        "B": [complaint("B"), activity("case.contacted", "B", m(20)), activity("case.resolved", "B", m(60))],
        "C": [complaint("C"), activity("case.contacted", "C", m(90))],
        "D": [complaint("D", "P3"), activity("case.contacted", "D", m(300))],
        # published before its complaint, and delivered twice
        "E": [contact_e, contact_e, complaint("E")],
    }


def replayed(policy_text: str) -> list[sim.Breach]:
    policy = parse_policy(policy_text, SlaPolicy)
    found = []
    for events in case_events().values():
        found += sim.breaches(sim.emitted_fields(e) for e in sim.replay_case(events, policy, UNTIL))
    return found


def test_breaches_per_clock_and_priority_with_the_policy_in_force():
    found = replayed(IN_FORCE)
    assert sim.count_breaches(found) == {
        ("first_contact", "P2"): 1, ("first_contact", "P3"): 1, ("update", "P2"): 2, ("update", "P3"): 1,
        ("resolution", "P2"): 2,
    }
    assert sorted((b.case_id, b.clock, b.due_at) for b in found if b.case_id == "C") == [
        ("C", "first_contact", minutes(60)), ("C", "resolution", minutes(24 * 60)), ("C", "update", minutes(330))]


def test_a_shorter_first_contact_target_adds_the_contact_made_after_it():
    found = replayed(DRAFT)
    assert sim.count_breaches(found) == {
        ("first_contact", "P2"): 2, ("first_contact", "P3"): 1, ("update", "P2"): 2, ("update", "P3"): 1,
        ("resolution", "P2"): 2,
    }
    assert sorted((b.case_id, b.due_at) for b in found if b.clock == "first_contact" and b.priority == "P2") == [
        ("A", minutes(30)), ("C", minutes(30))]


def test_nothing_breaches_after_the_end_of_the_replay():
    policy = parse_policy(IN_FORCE, SlaPolicy)
    events = case_events()["C"]
    early = sim.breaches(sim.emitted_fields(e) for e in sim.replay_case(events, policy, minutes(59)))
    assert early == []
    at_due = sim.breaches(sim.emitted_fields(e) for e in sim.replay_case(events, policy, minutes(60)))
    assert [(b.clock, b.due_at) for b in at_due] == [("first_contact", minutes(60))]


def test_a_contact_at_the_due_time_is_in_time():
    policy = parse_policy(IN_FORCE, SlaPolicy)
    events = [classified_event(case_id="F", priority="P2", received_at=T0), activity("case.contacted", "F", minutes(60))]
    emitted = sim.replay_case(events, policy, minutes(61))
    assert sim.breaches(sim.emitted_fields(e) for e in emitted) == []
    assert [e.fields.get("breached") for e in emitted if e.type == "sla.met"] == [False]


def test_published_breaches_are_counted_once_per_run():
    due = minutes(60)
    common = {"case_id": "C", "clock": "first_contact", "due_at": due, "priority": "P2"}
    events = [
        {"type": "sla.breached", **common}, {"type": "sla.breached", **common},  # republished by the outbox
        {"type": "sla.met", "breached": True, **common},  # the late contact of the same run
        {"type": "sla.met", "breached": True, **{**common, "clock": "update", "due_at": minutes(330)}},  # met late only
        {"type": "sla.met", "breached": False, **{**common, "clock": "resolution"}},
        {"type": "sla.warning", **{**common, "clock": "resolution"}},
    ]
    assert sim.count_breaches(sim.breaches(events)) == {("first_contact", "P2"): 1, ("update", "P2"): 1}
