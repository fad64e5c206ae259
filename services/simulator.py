"""A CRM simulator: complaints and the case activity that follows them, at a steady rate.

Used by `helpdesk simulate`, the chaos suite and the benchmarks. Each simulated case gets a
complaint, then (by chance, with realistic delays) a contact, a promise kept or missed, a pause,
a resolution and sometimes the customer's return. Every event is what a real CRM would publish.

A run is repeatable: with the same `seed`, rate and duration it publishes the same events in the
same order — case ids, event ids, promise ids, customers and every timestamp relative to the run's
start (`CrmSimulator.started_at`) included. Case i's complaint occurs i / rate seconds after the
start, whatever the machine's speed; only the start itself is the wall clock's. Without a seed the
ids are random (from the operating system's entropy).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Literal

from aiokafka import AIOKafkaProducer

from shared.events import CASE_ACTIVITY, COMPLAINTS

CHANNELS = ["phone", "email", "chat", "social", "in_person", "web", "letter"]
SUBJECTS = [
    ("Wrong unit installed", "The installer put in the wrong model, not the one I ordered."),
    ("Checkout is confusing", "I could not figure out the ordering process and ordered twice."),
    ("Heel came off", "The heel came off my shoes after two weeks."),
    ("Suitcase arrived wrecked", "My new suitcase arrived damaged and crushed."),
    ("Order is late", "My delivery is three weeks late."),
    ("Charged twice", "You charged my card twice for one order!"),
    ("Coffee not right", "My latte was cold."),
    ("Rude staff", "The employee at the desk was rude."),
]
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass
class Mix:
    """Shares of what happens after a complaint (tune for load or for realism)."""

    contacted: float = 0.85
    promise: float = 0.3
    promise_kept: float = 0.7
    paused: float = 0.1
    resolved: float = 0.8
    returned: float = 0.3
    max_delay: float = 20.0  # seconds from complaint to the last activity


@dataclass(order=True)
class Scheduled:
    at: float
    seq: int
    topic: str = field(compare=False)
    event: dict[str, Any] = field(compare=False)


@dataclass(frozen=True)
class SimProgress:
    """Where a run is, for a progress display.

    `phase` is "generating" until `duration` seconds passed (new cases are planned; `elapsed`
    counts up to `duration`), then "draining": no new cases, the planned cases' remaining activity
    is published as it falls due. `remaining_events` / `remaining_cases` are still queued;
    `drain_events` / `drain_cases` were queued when draining began (0 while generating)."""

    phase: Literal["generating", "draining"]
    elapsed: float
    published: int
    cases: int
    remaining_events: int
    remaining_cases: int
    drain_events: int = 0
    drain_cases: int = 0


class CrmSimulator:
    """Plans simulated cases (`plan_case`) and publishes their events at a steady rate (`run`).

    `seed` fixes everything a run publishes (see the module's docstring); `client` holds Kafka
    connection arguments (shared.kafka.client_args); `prefix` is prepended to topic names."""

    def __init__(self, bootstrap: str, prefix: str = "", *, seed: int | None = None, mix: Mix | None = None,
                 source: str = "crm-sim", client: dict[str, Any] | None = None) -> None:
        self.bootstrap, self.prefix, self.source = bootstrap, prefix, source
        # connection arguments (security included) from shared.kafka.client_args; plain by default
        self.client = client or {"bootstrap_servers": bootstrap}
        self.random = random.Random(seed)
        # Ids from a generator of their own: the same seed gives the same ids, and the same case mix
        # as before the ids were seeded. Without a seed both are seeded from the OS's entropy.
        self.ids = random.Random(None if seed is None else f"crm-sim-ids:{seed}")
        self.mix = mix or Mix()
        self.queue: list[Scheduled] = []
        self.seq = itertools.count()
        self.published: dict[str, int] = {}
        self.complaint_ids: list[str] = []
        self.case_ids: list[str] = []
        self.resolved_cases: list[str] = []  # the chaos suite checks every one of them was followed up
        # Times given to plan_case are seconds after `started_at`: the Unix epoch (so a Unix time
        # works) unless run() set the start of its run.
        self.started_at = UNIX_EPOCH
        self._queued: Counter[str] = Counter()  # case id -> its events still queued

    def _iso(self, at: float) -> str:
        return (self.started_at + timedelta(seconds=at)).isoformat().replace("+00:00", "Z")

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.ids.getrandbits(128), version=4))

    def _event(self, kind: str, case_id: str, at: float, **fields: Any) -> dict[str, Any]:
        return {"event_id": self._uuid(), "type": kind, "occurred_at": self._iso(at), "source": self.source,
                "case_id": case_id, **fields}

    def plan_case(self, now: float) -> None:
        """Plans one case whose complaint occurs at `now` (seconds after `started_at`; before a run,
        a Unix time) and queues its later activity; nothing is published here."""
        r, m = self.random, self.mix
        case_id = f"SIM-{self.ids.getrandbits(48):012x}"
        self.case_ids.append(case_id)
        customer = f"SC-{r.randrange(1, 50_000)}"
        subject, description = r.choice(SUBJECTS)
        complaint = self._event(
            "complaint.received", case_id, now, channel=r.choice(CHANNELS), public=r.random() < 0.05,
            customer={"id": customer, "name": "Simulated Customer", "tier": r.choice(["new", "standard", "loyal", "vip"])},
            order={"id": f"O-{r.randrange(10**6)}", "amount": round(r.uniform(5, 2000), 2), "currency": "USD"},
            subject=subject, description=description,
        )
        self._at(now, COMPLAINTS, complaint)
        self.complaint_ids.append(complaint["event_id"])
        t = now
        if r.random() < m.contacted:
            t += r.uniform(0.2, m.max_delay / 4)
            self._at(t, CASE_ACTIVITY, self._event("case.contacted", case_id, t))
        if r.random() < m.promise:
            promise_id = f"P-{self.ids.getrandbits(24):06x}"
            due = t + r.uniform(1, m.max_delay / 3)
            self._at(t, CASE_ACTIVITY, self._event("case.promise_made", case_id, t, promise_id=promise_id,
                                                   due_at=self._iso(due), description="call back"))
            if r.random() < m.promise_kept:
                kept = t + r.uniform(0.1, due - t)
                self._at(kept, CASE_ACTIVITY, self._event("case.promise_kept", case_id, kept, promise_id=promise_id))
        if r.random() < m.paused:
            t += r.uniform(0.1, 2)
            self._at(t, CASE_ACTIVITY, self._event("case.paused", case_id, t))
            t += r.uniform(0.1, 2)
            self._at(t, CASE_ACTIVITY, self._event("case.resumed", case_id, t))
        if r.random() < m.resolved:
            t = max(t, now + r.uniform(m.max_delay / 3, m.max_delay))
            self._at(t, CASE_ACTIVITY, self._event("case.resolved", case_id, t, resolution="fixed",
                                                   improvement="process changed" if r.random() < 0.2 else None))
            self.resolved_cases.append(case_id)
            if r.random() < m.returned:
                t += r.uniform(0.5, 3)
                self._at(t, CASE_ACTIVITY, self._event("customer.returned", case_id, t, customer_id=customer))

    def _at(self, at: float, topic: str, event: dict[str, Any]) -> None:
        heapq.heappush(self.queue, Scheduled(at, next(self.seq), topic, {k: v for k, v in event.items() if v is not None}))
        self._queued[event["case_id"]] += 1

    @property
    def queued_cases(self) -> int:
        """How many planned cases still have events waiting to be published."""
        return len(self._queued)

    def _pop(self) -> Scheduled:
        item = heapq.heappop(self.queue)
        case_id = item.event["case_id"]
        self._queued[case_id] -= 1
        if not self._queued[case_id]:
            del self._queued[case_id]
        return item

    async def run(self, rate: float, duration: float, *, on_progress: Callable[[SimProgress], Any] | None = None,
                  drain: bool = True, producer: Any = None) -> dict[str, int]:
        """Publishes `rate` new cases per second for `duration` seconds (int(rate × duration) cases,
        case i at i / rate seconds after the start), then, if `drain`, the rest of their activity as
        it falls due (without `drain`, what is still queued at `duration` is not published).

        `on_progress` gets a `SimProgress` about every 10 ms. `producer` is an aiokafka-like producer
        (`start`, `stop`, and `send` returning a future); by default one is made from `client`.
        Returns the events published per topic. Raises ValueError for a rate that is not above 0 or
        a negative duration."""
        if not rate > 0 or not duration >= 0:
            raise ValueError(f"rate must be above 0 and duration at least 0, got rate {rate}, duration {duration}")
        producer = producer or AIOKafkaProducer(**self.client, linger_ms=5, acks="all")
        total = int(rate * duration + 1e-9)
        await producer.start()
        self.started_at = datetime.now(timezone.utc)
        start = time.monotonic()
        planned, drain_events, drain_cases = 0, -1, 0
        try:
            while True:
                now = time.monotonic() - start
                # Every case whose complaint is due is planned before anything is popped: what is
                # published is then in (time, plan order) whatever the loop's timing, so a seed repeats.
                while planned < total and planned / rate <= now:
                    self.plan_case(planned / rate)
                    planned += 1
                futures = []
                while self.queue and self.queue[0].at <= now:
                    item = self._pop()
                    value = json.dumps(item.event).encode()
                    futures.append(await producer.send(self.prefix + item.topic, value=value,
                                                       key=item.event["case_id"].encode()))
                    self.published[item.topic] = self.published.get(item.topic, 0) + 1
                if futures:
                    await asyncio.gather(*futures)
                generating = now < duration
                if not generating and drain_events < 0:  # draining begins: what it has to publish
                    drain_events, drain_cases = len(self.queue), len(self._queued)
                if on_progress:
                    on_progress(SimProgress("generating" if generating else "draining", min(now, duration),
                                            sum(self.published.values()), len(self.case_ids), len(self.queue),
                                            len(self._queued), max(drain_events, 0), drain_cases))
                if not generating and (not drain or not self.queue):
                    break
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()
        return dict(self.published)
