"""The sla service layer (services/sla/service.py) on the in-memory store fake and the memory
outbox, timers and locks of tests/support/memory.py: whole batches, no PostgreSQL, no Kafka.

Policy (written per test): 24x7, P2 first contact 1h, update 2h, resolution 8h; P1 15m, 1h, 4h;
warnings at 50% and 75%; one escalation 30m after a breach. Clocks start at the classification's
`received_at`, a little after the real time, so every timer fires at its own due time.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from services.sla import metrics
from services.sla.policy import SlaPolicy
from services.sla.service import Sla
from shared.events import ComplaintClassified
from shared.policy import PolicyHolder
from tests.builders import activity_model, classified_event
from tests.fakes.sla_store import MemorySlaStore
from tests.support.memory import MemoryWorld, StubRuntime

SLA_TOPIC = "t.helpdesk.sla.v1"
POLICY = """\
targets:
  P1: {first_contact: 15m, update: 1h, resolution: 4h}
  P2: {first_contact: 1h, update: 2h, resolution: 8h}
  P3: {first_contact: 4h, update: 4h, resolution: 1d}
  P4: {first_contact: 8h, update: 8h, resolution: 2d}
warnings: [0.5, 0.75]
escalations:
  - {after: 30m, notify: team_lead}
calendar:
  default: 24x7
"""


class Desk:
    """One sla service layer on a fake store and a memory world."""

    def __init__(self, policy_file: Path) -> None:
        self.store = MemorySlaStore()
        self.world = MemoryWorld()
        self.sla = Sla(StubRuntime("sla", "t."), PolicyHolder(policy_file, SlaPolicy), self.store)

    async def apply(self, batch: Any, event: Any) -> str:
        if isinstance(event, ComplaintClassified):
            return await self.sla.on_classified(batch, event)
        return await self.sla.on_activity(batch, event)

    async def run(self, *events: Any) -> list[str]:
        """The events as one inbound batch (prepare, apply each, commit)."""
        return await self.world.run(self.sla.prepare, self.apply, events)

    async def fire(self, at: datetime) -> None:
        """Fires the timers due at `at` as the timer engine's rounds do: claims them (one batch per
        claim) and claims again while any is due, since a clock's one timer is re-armed for its
        next event when it fires (issue 15), which may be due by `at` too. Stops when a claim
        changes nothing (its timers were put back: their case is locked elsewhere)."""
        while due := self.world.due(at):
            published = len(self.world.published)
            batch = self.world.batch()
            await self.sla.fire(batch, due)
            await batch.commit()
            if len(self.world.published) == published and {k: t for k, t in self.world.timers.items()
                                                            if t.due_at <= at} == {t.key: t for t in due}:
                return

    def events(self, type_: str | None = None, clock: str | None = None) -> list[dict[str, Any]]:
        return [p for topic, _key, p in self.world.published if topic == SLA_TOPIC
                and (type_ is None or p["type"] == type_) and (clock is None or p["clock"] == clock)]

    def armed(self, case_id: str = "CRM-1") -> set[tuple[str, str]]:
        """(clock key, timer kind) of the timers armed for the case."""
        return {(t.payload["clock_key"], t.payload["kind"]) for t in self.world.timers.values()
                if t.payload["case_id"] == case_id}

    def state(self, case_id: str = "CRM-1", key: str = "first_contact") -> str:
        return self.store.clocks[(case_id, key)].state


@pytest.fixture
def t0() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + timedelta(minutes=1)


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    file = tmp_path / "sla.yaml"
    file.write_text(POLICY)
    return Desk(file)


def classified(t0: datetime, case_id: str = "CRM-1", priority: str = "P2", event_id: str | None = None) -> ComplaintClassified:
    return classified_event(case_id=case_id, priority=priority, event_id=event_id or f"cls-{case_id}-{priority}",
                            occurred_at=t0, received_at=t0)


async def test_a_classification_starts_first_contact_and_resolution_clocks_with_their_timers(desk, t0):
    assert await desk.run(classified(t0)) == ["processed"]

    started = desk.events("sla.started")
    assert sorted(e["clock"] for e in started) == ["first_contact", "resolution"]
    assert {e["case_id"] for e in started} == {"CRM-1"}
    due = {e["clock"]: datetime.fromisoformat(e["due_at"]) for e in started}
    assert due == {"first_contact": t0 + timedelta(hours=1), "resolution": t0 + timedelta(hours=8)}
    assert all(key == "CRM-1" for _topic, key, _p in desk.world.published)
    # Issue 15: one timer per clock, for its next event (before: a warning and a breach timer each).
    assert desk.armed() == {("first_contact", "warning"), ("resolution", "warning")}
    assert set(desk.world.timers) == {"CRM-1:first_contact", "CRM-1:resolution"}
    assert desk.state(key="first_contact") == desk.state(key="resolution") == "running"
    assert desk.store.cases["CRM-1"].priority == "P2"
    assert desk.store.cases["CRM-1"].classified_by == "cls-CRM-1-P2"


async def test_activity_before_its_classification_is_kept_then_applied_when_it_arrives(desk, t0):
    contact = activity_model("case.contacted", "CRM-1", t0 + timedelta(minutes=10), description="called back")
    assert await desk.run(contact) == ["kept_for_later"]
    assert await desk.run(contact) == ["kept_for_later"]  # a redelivered copy is kept once
    assert desk.world.published == [] and desk.store.cases == {}
    [kept] = desk.store.pending.values()
    assert kept.event["event_id"] == contact.event_id and "description" not in kept.event  # free text is not kept

    assert await desk.run(classified(t0)) == ["processed"]

    assert desk.store.pending == {}
    assert desk.state(key="first_contact") == "met"
    [met] = desk.events("sla.met", "first_contact")
    assert met["breached"] is False and met["elapsed_seconds"] == 600
    assert [e["clock"] for e in desk.events("sla.started")] == ["first_contact", "resolution", "update"]
    # Issue 15: the update clock's one timer is for its 50% warning (before: ("update", "breach") among others).
    assert not {kind for clock, kind in desk.armed() if clock == "first_contact"} and ("update", "warning") in desk.armed()


async def test_first_contact_meets_its_clock_cancels_its_timers_and_starts_the_update_clock(desk, t0):
    await desk.run(classified(t0))
    assert ("first_contact", "warning") in desk.armed()

    assert await desk.run(activity_model("case.contacted", "CRM-1", t0 + timedelta(minutes=20))) == ["processed"]

    assert desk.state(key="first_contact") == "met"
    assert not {kind for clock, kind in desk.armed() if clock == "first_contact"}
    [met] = desk.events("sla.met", "first_contact")
    assert met["breached"] is False and met["elapsed_seconds"] == 1200
    [update] = desk.events("sla.started", "update")
    assert datetime.fromisoformat(update["due_at"]) == t0 + timedelta(minutes=20, hours=2)
    # the withdrawn timers would fire nothing anyway: nothing is due for first contact any more
    await desk.fire(t0 + timedelta(hours=1, minutes=1))
    assert desk.events("sla.breached", "first_contact") == []


async def test_timers_firing_warn_then_breach_then_escalate(desk, t0):
    await desk.run(classified(t0))

    await desk.fire(t0 + timedelta(minutes=46))  # past 50% and 75% of the 1h first-contact target
    warnings = desk.events("sla.warning", "first_contact")
    assert [w["threshold"] for w in warnings] == [0.5, 0.75]
    assert desk.events("sla.breached") == [] and desk.state() == "running"

    await desk.fire(t0 + timedelta(hours=1))
    [breach] = desk.events("sla.breached", "first_contact")
    assert datetime.fromisoformat(breach["breached_at"]) == t0 + timedelta(hours=1)
    assert desk.state() == "breached"
    assert ("first_contact", "escalation") in desk.armed()

    await desk.fire(t0 + timedelta(hours=1, minutes=30))
    [escalated] = desk.events("sla.escalated", "first_contact")
    assert (escalated["level"], escalated["notify"]) == (1, "team_lead")
    assert desk.events("sla.warning", "resolution") == []  # 4h: not due yet
    assert desk.store.clocks[("CRM-1", "first_contact")].escalations_sent == 1


async def test_timers_of_a_case_locked_elsewhere_are_put_back_and_fire_later(desk, t0):
    await desk.run(classified(t0))
    desk.world.busy.add((desk.store.CASE_LOCKS.namespace, "CRM-1"))
    await desk.fire(t0 + timedelta(minutes=31))
    assert desk.events("sla.warning") == []
    assert ("first_contact", "warning") in desk.armed()  # back in the table, as it was

    desk.world.busy.clear()
    await desk.fire(t0 + timedelta(minutes=31))
    assert [w["threshold"] for w in desk.events("sla.warning", "first_contact")] == [0.5]


async def test_a_higher_priority_retargets_the_open_clocks_and_moves_their_timers(desk, t0):
    await desk.run(classified(t0, priority="P2"))
    old_keys = set(desk.world.timers)
    old_armings = {key: t.payload["arming"] for key, t in desk.world.timers.items()}

    assert await desk.run(classified(t0 + timedelta(minutes=5), priority="P1")) == ["processed"]

    retargeted = {e["clock"]: e for e in desk.events("sla.retargeted")}
    assert set(retargeted) == {"first_contact", "resolution"}
    first = retargeted["first_contact"]
    assert (first["old_priority"], first["priority"]) == ("P2", "P1")
    assert datetime.fromisoformat(first["old_due_at"]) == t0 + timedelta(hours=1)
    assert datetime.fromisoformat(first["due_at"]) == t0 + timedelta(minutes=15)
    assert desk.store.cases["CRM-1"].priority == "P1"
    assert desk.store.clocks[("CRM-1", "first_contact")].priority == "P1"
    # Issue 15: each clock keeps its one timer key; it was re-armed (a new arming) for the new target's
    # 50% warning: 5m counted of P1's 15m, so 2m30s after the repeat (before: the old keys were gone).
    assert set(desk.world.timers) == old_keys
    assert all(t.payload["arming"] > old_armings[key] for key, t in desk.world.timers.items())
    assert desk.world.timers["CRM-1:first_contact"].due_at == t0 + timedelta(minutes=7, seconds=30)
    assert desk.armed() == {("first_contact", "warning"), ("resolution", "warning")}

    # a lower priority afterwards changes nothing
    before = list(desk.world.published)
    assert await desk.run(classified(t0 + timedelta(minutes=6), priority="P3")) == ["processed"]
    assert desk.world.published == before and desk.store.cases["CRM-1"].priority == "P1"


async def test_two_events_of_one_case_in_one_batch_are_saved_once_as_if_handled_one_by_one(tmp_path, t0):
    file = tmp_path / "sla.yaml"
    file.write_text(POLICY)
    together, alone = Desk(file), Desk(file)
    events = [classified(t0), activity_model("case.contacted", "CRM-1", t0 + timedelta(minutes=3))]

    assert await together.run(*events) == ["processed", "processed"]
    for event in events:
        await alone.run(event)

    assert together.store.calls["save_cases"] == 1 and together.store.calls["save_clocks"] == 1
    assert together.store.calls["load_cases"] == 1 and "load_case" not in together.store.calls
    assert alone.store.calls["save_cases"] == 2
    assert together.store.cases == alone.store.cases and together.store.clocks == alone.store.clocks
    assert together.world.timers.keys() == alone.world.timers.keys()
    assert together.world.types() == alone.world.types() == ["sla.started", "sla.started", "sla.met", "sla.started"]
    # first contact's timers were armed and withdrawn within the batch: they never reached the table
    assert not {kind for clock, kind in together.armed() if clock == "first_contact"}


async def test_a_calendar_with_no_working_time_counts_round_the_clock(tmp_path, t0):
    monday = t0.date() - timedelta(days=t0.weekday())
    holidays = "[" + ", ".join(str(monday + timedelta(weeks=n)) for n in range(11 * 53)) + "]"
    file = tmp_path / "sla.yaml"
    file.write_text(f"""\
targets:
  P3: {{first_contact: 4h, update: 1bd, resolution: 3bd}}
calendars:
  office: {{type: business_hours, timezone: UTC, hours: {{mon: ["09:00-10:00"]}}, holidays: {holidays}}}
calendar: {{default: office}}
""")
    desk = Desk(file)
    fallbacks = metrics.round_the_clock_fallbacks._value.get()

    assert await desk.run(classified(t0, priority="P3")) == ["processed"]

    clocks = {key: c for (case_id, key), c in desk.store.clocks.items()}
    assert {c.calendar for c in clocks.values()} == {"24x7"}
    assert clocks["first_contact"].due_at == t0 + timedelta(hours=4)
    assert clocks["resolution"].due_at == t0 + timedelta(days=3)
    assert len(desk.events("sla.started")) == 2
    assert metrics.round_the_clock_fallbacks._value.get() == fallbacks + 1


async def test_the_gauges_count_open_clocks_at_risk_and_kept_activity(desk, t0):
    await desk.run(classified(t0), classified(t0, case_id="CRM-2"))
    await desk.run(activity_model("case.contacted", "CRM-9", t0))  # kept: CRM-9 is not classified
    await desk.fire(t0 + timedelta(minutes=31))  # both first-contact clocks pass 50%

    await desk.sla.refresh_gauges(None)  # type: ignore[arg-type]

    assert metrics.open_clocks.labels("first_contact", "P2", "running")._value.get() == 2
    assert metrics.open_clocks.labels("resolution", "P2", "running")._value.get() == 2
    assert metrics.at_risk.labels("first_contact", "P2", "0.5")._value.get() == 2
    assert metrics.pending_activity._value.get() == 1


# ---------- issue 15: one timer per clock ----------
async def test_a_clock_behind_by_several_events_sends_them_all_in_one_claim(desk):
    received = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=95)
    await desk.run(classified(received))  # first contact: 50% at 30m, 75% at 45m, breach 1h, escalation 1h30m

    claimed = desk.world.due(datetime.now(timezone.utc))
    assert [t.key for t in claimed] == ["CRM-1:first_contact"]  # the clock's one row
    batch = desk.world.batch()
    await desk.sla.fire(batch, claimed)
    await batch.commit()

    assert [(e["type"], e.get("threshold"), e.get("level")) for e in desk.events(clock="first_contact")][1:] == [
        ("sla.warning", 0.5, None), ("sla.warning", 0.75, None), ("sla.breached", None, None),
        ("sla.escalated", None, 1),
    ]
    assert desk.armed() == {("resolution", "warning")}  # first contact has no level left to escalate to
    clock = desk.store.clocks[("CRM-1", "first_contact")]
    assert (clock.state, clock.escalations_sent, clock.armed_timers) == ("breached", 1, ())
    await desk.fire(datetime.now(timezone.utc) + timedelta(hours=2))  # nothing of first contact fires again
    assert len(desk.events("sla.breached", "first_contact")) == 1


async def test_per_threshold_timers_armed_before_the_upgrade_fire_once_and_are_replaced(desk, t0):
    from tests.sla.test_one_timer_per_clock import legacy_timers
    from shared.timers import Timer

    await desk.run(classified(t0))
    policy = desk.sla.current_policy()
    old_keys: set[str] = set()
    for key in ("first_contact", "resolution"):  # as the code before issue 15 saved them
        clock = desk.store.clocks[("CRM-1", key)]
        old = legacy_timers(clock, policy)
        del desk.world.timers[f"CRM-1:{key}"]
        desk.world.timers.update({k: Timer(k, a.timer.kind, a.due_at, a.timer.to_data()) for k, a in old.items()})
        desk.store.clocks[("CRM-1", key)] = replace(clock, armed_timers=tuple(old))
        old_keys |= set(old)
    assert len(desk.world.timers) == 6 and "CRM-1:first_contact:1:breach:0" in desk.world.timers

    await desk.fire(t0 + timedelta(minutes=46))  # the old 50% timer fires; the 75% one is due too

    assert [w["threshold"] for w in desk.events("sla.warning", "first_contact")] == [0.5, 0.75]
    assert set(desk.world.timers) == {"CRM-1:first_contact"} | {k for k in old_keys if ":resolution:" in k}
    assert desk.store.clocks[("CRM-1", "first_contact")].armed_timers == ("CRM-1:first_contact",)
    # first contact breaches at 1h and escalates (its one level) at 1h30m; resolution's old 50% timer fires at 4h
    await desk.fire(t0 + timedelta(hours=4, minutes=1))
    assert set(desk.world.timers) == {"CRM-1:resolution"} and len(desk.events("sla.breached", "first_contact")) == 1
    await desk.fire(t0 + timedelta(hours=9))
    assert [e["clock"] for e in desk.events("sla.breached")] == ["first_contact", "resolution"]
    assert [w["threshold"] for w in desk.events("sla.warning", "resolution")] == [0.5, 0.75]
    assert len(desk.events("sla.escalated")) == 2 and desk.world.timers == {}
