"""A CRM simulator: complaints and the case activity that follows them, at a steady rate.

Used by `helpdesk simulate`, the chaos suite and the benchmarks. Each simulated case gets a
complaint, then (by chance, with realistic delays) a contact, a promise kept or missed, a pause,
a resolution and sometimes the customer's return. Every event is what a real CRM would publish.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat().replace("+00:00", "Z")


class CrmSimulator:
    def __init__(self, bootstrap: str, prefix: str = "", *, seed: int | None = None, mix: Mix | None = None,
                 source: str = "crm-sim", client: dict[str, Any] | None = None) -> None:
        self.bootstrap, self.prefix, self.source = bootstrap, prefix, source
        # connection arguments (security included) from shared.kafka.client_args; plain by default
        self.client = client or {"bootstrap_servers": bootstrap}
        self.random = random.Random(seed)
        self.mix = mix or Mix()
        self.queue: list[Scheduled] = []
        self.seq = itertools.count()
        self.published: dict[str, int] = {}
        self.complaint_ids: list[str] = []
        self.resolved_cases: list[str] = []  # the chaos suite checks every one of them was followed up

    def _event(self, kind: str, case_id: str, at: float, **fields: Any) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "type": kind, "occurred_at": _iso(at), "source": self.source,
                "case_id": case_id, **fields}

    def plan_case(self, now: float) -> None:
        r, m = self.random, self.mix
        case_id = f"SIM-{uuid.uuid4().hex[:12]}"
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
            promise_id = f"P-{uuid.uuid4().hex[:6]}"
            due = t + r.uniform(1, m.max_delay / 3)
            self._at(t, CASE_ACTIVITY, self._event("case.promise_made", case_id, t, promise_id=promise_id,
                                                   due_at=_iso(due), description="call back"))
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

    async def run(self, rate: float, duration: float, *, on_progress: Any = None, drain: bool = True) -> dict[str, int]:
        """Publishes `rate` new cases per second for `duration` seconds, then (if `drain`) the rest of
        their activity. Returns counts per topic."""
        producer = AIOKafkaProducer(**self.client, linger_ms=5, acks="all")
        await producer.start()
        start = time.time()
        planned = 0
        try:
            while True:
                now = time.time()
                due_cases = int(min(now - start, duration) * rate) - planned
                for _ in range(max(0, due_cases)):
                    self.plan_case(now)
                    planned += 1
                futures = []
                while self.queue and self.queue[0].at <= now:
                    item = heapq.heappop(self.queue)
                    value = json.dumps(item.event).encode()
                    futures.append(await producer.send(self.prefix + item.topic, value=value,
                                                       key=item.event["case_id"].encode()))
                    self.published[item.topic] = self.published.get(item.topic, 0) + 1
                if futures:
                    await asyncio.gather(*futures)
                if on_progress:
                    on_progress(now - start, sum(self.published.values()))
                if now - start >= duration and (not drain or not self.queue):
                    break
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()
        return dict(self.published)

