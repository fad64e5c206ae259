"""The CRM simulator: `--seed` repeats a run exactly, and the progress has a draining phase."""
from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime

import pytest
from typer.testing import CliRunner

from services import simulator
from services.cli import app
from services.simulator import CrmSimulator, Mix, SimProgress
from shared.events import CASE_ACTIVITY, COMPLAINTS

FULL = Mix(max_delay=1.0)  # all kinds of activity, the last (a customer's return) within 4 s of the complaint
FAST = Mix(max_delay=1.0, returned=0.0)  # every case's activity within a second of its complaint
WALL_CLOCK = ("occurred_at", "due_at")


class CapturingProducer:
    """Stands in for AIOKafkaProducer: keeps what would have been published, in order."""

    def __init__(self, *args, **kwargs) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, key: bytes | None = None):
        self.sent.append((topic, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def run(seed: int | None, rate: float = 40, duration: float = 0.5, drain: bool = True,
        progress: list[SimProgress] | None = None, mix: Mix = FAST) -> tuple[CrmSimulator, list[tuple[str, str, dict]]]:
    sim = CrmSimulator("unused:9092", "test.", seed=seed, mix=mix)
    producer = CapturingProducer()
    asyncio.run(sim.run(rate, duration, drain=drain, producer=producer,
                        on_progress=progress.append if progress is not None else None))
    return sim, [(topic, key.decode(), json.loads(value)) for topic, key, value in producer.sent]


def relative(sim: CrmSimulator, event: dict) -> dict:
    """The event with its timestamps as microseconds after the run's start (the only wall-clock part)."""
    out = dict(event)
    for name in WALL_CLOCK:
        if name in out:
            delta = datetime.fromisoformat(out[name].replace("Z", "+00:00")) - sim.started_at
            out[name] = delta // delta.resolution
    return out


def test_the_same_seed_publishes_the_same_cases_ids_payloads_and_times():
    first_sim, first = run(seed=42, mix=FULL)
    second_sim, second = run(seed=42, mix=FULL)
    assert len(first) > 20 and {t for t, _, _ in first} == {"test." + COMPLAINTS, "test." + CASE_ACTIVITY}
    assert first_sim.case_ids == second_sim.case_ids and len(first_sim.case_ids) == 20
    assert [(t, k) for t, k, _ in first] == [(t, k) for t, k, _ in second], "same records in the same order"
    assert [relative(first_sim, e) for _, _, e in first] == [relative(second_sim, e) for _, _, e in second]
    assert first_sim.started_at != second_sim.started_at, "only the start is the wall clock's"
    kinds = {e["type"] for _, _, e in first}
    assert {"case.promise_made", "case.resolved", "customer.returned"} <= kinds, "every kind of event repeats"


def planned(seed: int | None) -> CrmSimulator:
    sim = CrmSimulator("unused:9092", seed=seed)
    for i in range(20):
        sim.plan_case(i / 40)
    return sim


def test_another_seed_or_none_gives_other_ids():
    assert planned(42).case_ids == planned(42).case_ids
    sims = [planned(seed) for seed in (42, 43, None, None)]
    case_ids = [tuple(s.case_ids) for s in sims]
    assert len(set(case_ids)) == 4
    event_ids = [set(s.complaint_ids) for s in sims]
    assert not event_ids[0] & event_ids[1] and not event_ids[2] & event_ids[3]


def test_complaints_follow_the_rate_from_the_start_whatever_the_loop_timing():
    sim, events = run(seed=5, rate=40, duration=0.5)
    complaints = [relative(sim, e) for _, _, e in events if e["type"] == "complaint.received"]
    assert [c["occurred_at"] for c in complaints] == [i * 25_000 for i in range(20)], "case i at i / rate seconds"


def test_progress_reports_generating_then_a_separate_draining_phase():
    progress: list[SimProgress] = []
    sim, events = run(seed=7, progress=progress)
    phases = [p.phase for p in progress]
    assert phases[0] == "generating" and phases[-1] == "draining"
    assert phases == sorted(phases, key=["generating", "draining"].index), "generating never comes back"
    generating = [p for p in progress if p.phase == "generating"]
    draining = [p for p in progress if p.phase == "draining"]
    assert all(p.elapsed <= 0.5 for p in progress)
    assert draining[0].drain_events > 0 and draining[0].drain_cases > 0, "activity was left when generating ended"
    assert {p.drain_events for p in draining} == {draining[0].drain_events}
    remaining = [p.remaining_events for p in draining]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0 and draining[-1].remaining_cases == 0
    assert draining[-1].published == len(events) and generating[-1].cases == 20


def test_without_drain_the_run_stops_at_its_duration():
    sim, events = run(seed=7, drain=False)
    assert sim.queue and sim.queued_cases > 0
    assert len(events) + len(sim.queue) == next(sim.seq), "the rest planned but not published"


def test_bad_rates_are_refused():
    with pytest.raises(ValueError):
        run(seed=1, rate=0)


def test_the_command_shows_both_phases(monkeypatch):
    monkeypatch.setattr(simulator, "AIOKafkaProducer", CapturingProducer)
    monkeypatch.setattr(simulator, "Mix", lambda: FAST)

    async def no_topics(settings) -> None:
        pass

    monkeypatch.setattr("shared.kafka.ensure_topics", no_topics)
    result = CliRunner().invoke(app, ["simulate", "--rate", "20", "--duration", "0.5", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert re.search(r"generating .* 0\.5/0\.5 s: 10 cases", result.output), result.output
    assert re.search(r"draining .* (\d+)/\1 cases' remaining activity, (\d+)/\2 events", result.output), result.output
    assert "helpdesk.complaints.v1: 10" in result.output and "seed 3" in result.output
