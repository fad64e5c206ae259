"""In memory, the sla service's tables (services/sla/store.py): `cases`, `clocks` and
`pending_activity`, with the same functions the service layer calls, so `Sla(..., store=fake)` runs
whole batches without PostgreSQL. tests/sla/test_store_fake.py runs the same calls on both and
requires the same answers.

    store = MemorySlaStore()
    sla = Sla(StubRuntime("sla"), policy, store)
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from services.sla import store as real_store
from services.sla.domain import CaseSla, Clock

_OPEN = ("running", "paused", "breached")


@dataclass(frozen=True)
class _Pending:
    event_id: str
    case_id: str
    occurred_at: datetime
    event: dict[str, Any]


class MemorySlaStore:
    """The three tables as dicts: `cases` (case_id -> CaseSla without clocks, as the `cases` row),
    `clocks` ((case_id, clock key) -> Clock) and `pending` (event_id -> kept activity). Every
    method takes `conn` first and ignores it, as a `MemoryBatch`'s conn is None."""

    SCHEMA = real_store.SCHEMA
    CASE_LOCKS = real_store.CASE_LOCKS  # the same namespace: MemoryWorld.busy names it ("sla", case_id)
    FREE_TEXT_FIELDS = real_store.FREE_TEXT_FIELDS

    def __init__(self) -> None:
        self.cases: dict[str, CaseSla] = {}
        self.clocks: dict[tuple[str, str], Clock] = {}
        self.pending: dict[str, _Pending] = {}
        self.calls: Counter[str] = Counter()  # how many times each function ran (statements, roughly)

    # ---------- reading ----------
    def _case(self, case_id: str) -> CaseSla:
        row = self.cases[case_id]
        return replace(row, clocks={key: c for (owner, key), c in self.clocks.items() if owner == case_id})

    async def load_cases(self, conn: Any, case_ids: Sequence[str]) -> dict[str, CaseSla]:
        """The known cases among `case_ids` with their clocks; unknown ids are left out."""
        self.calls["load_cases"] += 1
        return {case_id: self._case(case_id) for case_id in dict.fromkeys(case_ids) if case_id in self.cases}

    async def load_case(self, conn: Any, case_id: str) -> CaseSla | None:
        self.calls["load_case"] += 1
        return self._case(case_id) if case_id in self.cases else None

    # ---------- writing ----------
    async def save_cases(self, conn: Any, cases: Iterable[CaseSla]) -> None:
        """Upserts the case rows; the clocks a CaseSla carries are not saved (save_clocks does)."""
        self.calls["save_cases"] += 1
        for case in cases:
            self.cases[case.case_id] = replace(case, clocks={})

    async def save_clocks(self, conn: Any, clocks: Iterable[Clock]) -> None:
        """Upserts clock rows by (case_id, key). On conflict `kind` and `promise_id` stay as first
        written (the SQL does not update them); a clock of an unsaved case is refused, as the
        foreign key refuses it."""
        self.calls["save_clocks"] += 1
        rows = list(clocks)
        for clock in rows:
            if clock.case_id not in self.cases:
                raise ValueError(f"clocks.case_id {clock.case_id!r} is not in cases (foreign key)")
        for clock in rows:
            key = (clock.case_id, clock.key)
            old = self.clocks.get(key)
            self.clocks[key] = clock if old is None else replace(clock, kind=old.kind, promise_id=old.promise_id)

    # ---------- activity that came before its classification ----------
    async def keep_for_later(self, conn: Any, event: Any) -> None:
        """Keeps the event without its free text, once per event_id (a second copy is ignored)."""
        self.calls["keep_for_later"] += 1
        if event.event_id in self.pending:
            return
        document = json.loads(json.dumps(event.model_dump(mode="json", exclude=self.FREE_TEXT_FIELDS)))
        self.pending[event.event_id] = _Pending(event.event_id, event.case_id, event.occurred_at, document)

    async def cases_with_pending(self, conn: Any, case_ids: Sequence[str]) -> set[str]:
        self.calls["cases_with_pending"] += 1
        wanted = set(case_ids)
        return {p.case_id for p in self.pending.values() if p.case_id in wanted}

    async def take_pending(self, conn: Any, case_id: str) -> list[dict[str, Any]]:
        """Removes and returns the case's kept activity documents, oldest first (occurred_at, then event_id)."""
        self.calls["take_pending"] += 1
        taken = sorted((p for p in self.pending.values() if p.case_id == case_id),
                       key=lambda p: (p.occurred_at, p.event_id))
        for p in taken:
            del self.pending[p.event_id]
        return [p.event for p in taken]

    # ---------- gauges ----------
    async def open_clock_counts(self, conn: Any) -> list[dict[str, Any]]:
        """One row {kind, priority, state, n} per group of open clocks (running, paused, breached)."""
        counts = Counter((c.kind, c.priority, c.state) for c in self.clocks.values() if c.state in _OPEN)
        return [{"kind": k, "priority": p, "state": s, "n": n} for (k, p, s), n in counts.items()]

    async def at_risk_counts(self, conn: Any) -> list[dict[str, Any]]:
        """One row {kind, priority, threshold, n} per warning threshold passed by running clocks."""
        counts = Counter((c.kind, c.priority, t) for c in self.clocks.values() if c.state == "running"
                         for t in c.warnings_sent)
        return [{"kind": k, "priority": p, "threshold": t, "n": n} for (k, p, t), n in counts.items()]

    async def pending_count(self, conn: Any) -> int:
        return len(self.pending)
