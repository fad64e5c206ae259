"""services/intake/store.py in memory: the `cases` and `complaints` tables as dicts, for the
intake service layer's tests without PostgreSQL (tests/intake/test_service.py). Same function
names and signatures as the real store (`conn` first, ignored); tests/intake/test_store_fake.py
runs the same calls against both and checks they agree.

    store = MemoryIntakeStore()
    intake = Intake(StubRuntime("intake"), policy, store=store)
    store.cases["CRM-1"]["complaints"]   # the row as `SELECT * FROM intake.cases` gives it
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from services.intake import store as real_store
from services.intake.contract import Complaint
from services.intake.domain import Classification


class MemoryIntakeStore:
    """The intake tables in memory. `cases`: case_id → row; `complaints`: event_id → row, in the
    order recorded. Rows hold the columns the service writes (not `updated_at`/`recorded_at`),
    with the `classification` jsonb column as the dict PostgreSQL would give back."""

    SCHEMA = real_store.SCHEMA
    CASE_LOCKS = real_store.CASE_LOCKS  # the Batch takes them (MemoryBatch records them)

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.complaints: dict[str, dict[str, Any]] = {}

    Recorded = real_store.Recorded

    async def earlier_complaints(self, conn: Any, case_id: str) -> int:
        """How many complaints the case has had; 0 for a case never seen."""
        row = self.cases.get(case_id)
        return row["complaints"] if row else 0

    async def complaints_of_cases(self, conn: Any, case_ids: Sequence[str]) -> dict[str, int]:
        """{case_id: complaints} of the cases on record among `case_ids`."""
        return {case_id: self.cases[case_id]["complaints"] for case_id in set(case_ids) if case_id in self.cases}

    async def record_complaint(self, conn: Any, complaint: Complaint, result: Classification, repeat_contacts: int,
                               policy_version: str) -> None:
        """`record_complaints` for one complaint."""
        await self.record_complaints(conn, [real_store.Recorded(complaint, result, repeat_contacts, policy_version)])

    async def record_complaints(self, conn: Any, recorded: Sequence[real_store.Recorded]) -> None:
        """The real store's two statements: each case upserted (a new case counts its complaints;
        an existing one counts them on top, takes the last one's channel and classification, keeps
        its customer, source and first_received_at, and last_received_at is the latest time seen),
        then the complaints inserted. If any complaint's event id is recorded already (or twice in
        `recorded`) it raises asyncpg's UniqueViolationError, as the primary key does, and changes
        nothing (the real transaction rolls the cases' upsert back)."""
        ids = [r.complaint.event_id for r in recorded]
        if any(i in self.complaints for i in ids) or len(set(ids)) < len(ids):
            raise asyncpg.UniqueViolationError(
                'duplicate key value violates unique constraint "complaints_pkey"')
        for r in recorded:
            self._record(r.complaint, r.result, r.repeat_contacts, r.policy_version)

    def _record(self, complaint: Complaint, result: Classification, repeat_contacts: int, policy_version: str) -> None:
        values = {
            "channel": complaint.channel, "category": result.category, "severity": result.severity,
            "temperament": result.temperament, "loyalty": result.loyalty, "publicity_risk": result.publicity_risk,
            "priority": result.priority,
        }
        row = self.cases.get(complaint.case_id)
        if row is None:
            self.cases[complaint.case_id] = {
                "case_id": complaint.case_id, "customer_id": complaint.customer.id, "source": complaint.source,
                **values, "complaints": 1,
                "first_received_at": complaint.occurred_at, "last_received_at": complaint.occurred_at,
            }
        else:
            row.update(values)
            row["complaints"] += 1
            row["last_received_at"] = max(row["last_received_at"], complaint.occurred_at)
        self.complaints[complaint.event_id] = {
            "event_id": complaint.event_id, "case_id": complaint.case_id, "occurred_at": complaint.occurred_at,
            "repeat_contacts": repeat_contacts,
            "classification": json.loads(real_store.classification_json(result)),
            "policy_version": policy_version,
        }
