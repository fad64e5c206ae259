"""In memory, the recovery read model's tables (services/followup/recovery_store.py):
`recovery_cases` (case id → CaseFacts) and `recovery_returns` (event id → Return), with the same
functions the service layer calls, so `Recovery(store=MemoryRecoveryStore())` runs whole batches
without PostgreSQL. tests/followup/test_recovery_store_fake.py runs the same calls on both and
requires the same answers.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.followup import recovery_store as real_store
from services.followup.domain.recovery import CaseFacts, Return


class MemoryRecoveryStore:
    """The two tables as dicts. Every method takes `conn` first and ignores it (a `MemoryBatch`'s
    conn is None); the table locks of `enter_live` / `enter_rebuild` are no-ops (one process, one
    task at a time), counted in `entered` so a test can see they are taken."""

    RECOVERY_LOCKS = real_store.RECOVERY_LOCKS

    def __init__(self) -> None:
        self.cases: dict[str, CaseFacts] = {}
        self.returns: dict[str, Return] = {}
        self.entered: list[str] = []

    async def enter_live(self, conn: Any) -> None:
        self.entered.append("live")

    async def enter_rebuild(self, conn: Any) -> None:
        self.entered.append("rebuild")

    async def load_cases(self, conn: Any, case_ids: Iterable[str]) -> dict[str, CaseFacts]:
        return {c: self.cases[c] for c in sorted(set(case_ids)) if c in self.cases}

    async def save_cases(self, conn: Any, cases: Sequence[CaseFacts]) -> int:
        for facts in cases:
            self.cases[facts.case_id] = facts
        return len(cases)

    async def save_returns(self, conn: Any, returns: Sequence[Return]) -> int:
        new = [r for r in returns if r.event_id not in self.returns]
        for r in new:
            self.returns.setdefault(r.event_id, r)
        return len({r.event_id for r in new})

    async def replace_all(self, conn: Any, cases: Sequence[CaseFacts], returns: Sequence[Return]) -> None:
        self.cases, self.returns = {}, {}
        await self.save_cases(conn, cases)
        await self.save_returns(conn, returns)

    async def report_facts(self, conn: Any, resolved_since: datetime) -> tuple[list[CaseFacts], list[Return]]:
        customers = {c.customer_id for c in self.cases.values()
                     if c.customer_id is not None and c.resolved_at is not None and c.resolved_at >= resolved_since}
        cases = [c for c in self.cases.values() if c.customer_id in customers]
        returns = [r for r in self.returns.values() if r.customer_id in customers and r.at > resolved_since]
        return cases, returns

    async def counts(self, conn: Any) -> tuple[int, int]:
        return len(self.cases), len(self.returns)
