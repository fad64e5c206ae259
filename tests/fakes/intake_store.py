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

    async def earlier_complaints(self, conn: Any, case_id: str) -> int:
        """How many complaints the case has had; 0 for a case never seen."""
        row = self.cases.get(case_id)
        return row["complaints"] if row else 0

    async def record_complaint(self, conn: Any, complaint: Complaint, result: Classification, repeat_contacts: int,
                               policy_version: str) -> None:
        """The real store's two statements: the case upserted (a new case counts 1 complaint; an
        existing one counts one more, takes the new channel and classification, keeps its
        customer, source and first_received_at, and last_received_at is the later of the two),
        then the complaint inserted. A complaint whose event id is recorded already raises
        asyncpg's UniqueViolationError, as the primary key does, and changes nothing (the real
        transaction rolls the case's upsert back)."""
        if complaint.event_id in self.complaints:
            raise asyncpg.UniqueViolationError(
                'duplicate key value violates unique constraint "complaints_pkey"')
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
            "classification": json.loads(json.dumps({**result.__dict__, "reasons": list(result.reasons)})),
            "policy_version": policy_version,
        }
