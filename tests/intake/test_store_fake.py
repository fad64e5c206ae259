"""The in-memory intake store (tests/fakes/intake_store.py) against the real one on PostgreSQL:
the same calls give the same answers and leave the same rows, so the service-layer tests
(test_service.py) run on a store that behaves as the real one does."""
from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from services.intake import store
from services.intake.domain import Classification
from shared import db
from tests.builders import complaint
from tests.fakes.intake_store import MemoryIntakeStore

pytestmark = pytest.mark.integration

CASE_COLUMNS = ("case_id", "customer_id", "source", "channel", "category", "severity", "temperament", "loyalty",
                "publicity_risk", "priority", "complaints", "first_received_at", "last_received_at")
COMPLAINT_COLUMNS = ("event_id", "case_id", "occurred_at", "repeat_contacts", "classification", "policy_version")


def classification(category: str = "delay", severity: str = "medium", **fields: Any) -> Classification:
    values: dict[str, Any] = dict(category=category, severity=severity, temperament="calm", loyalty="standard",
                                  publicity_risk="low", priority="P3", reasons=("category delay: mentions 'late'",))
    return Classification(**{**values, **fields})


# (complaint, classification) in the order recorded: a new case, a later complaint on it from
# another channel, one that happened earlier than the last (it arrived late), and another case.
STEPS = [
    (complaint(event_id="e-1", case_id="CRM-1", occurred_at="2026-11-23T10:00:00Z"), classification()),
    (complaint(event_id="e-2", case_id="CRM-1", channel="email", occurred_at="2026-11-24T10:00:00Z",
               customer={"id": "C-other"}, source="crm-west"),
     classification("billing", "high", decided_by="model", needs_review=True, confidence=0.61234)),
    (complaint(event_id="e-3", case_id="CRM-1", occurred_at="2026-11-23T12:00:00Z"), classification(priority="P2")),
    (complaint(event_id="e-4", case_id="CRM-2", occurred_at="2026-11-23T09:00:00+01:00"),
     classification("other", decided_by="fallback")),
]

# A batch recorded at once: a new case twice (the second earlier than the first), a known case.
BATCH = [
    (complaint(event_id="e-5", case_id="CRM-3", occurred_at="2026-11-25T10:00:00Z"), classification(priority="P4")),
    (complaint(event_id="e-6", case_id="CRM-3", channel="chat", occurred_at="2026-11-25T09:00:00Z",
               customer={"id": "C-later"}), classification("billing")),
    (complaint(event_id="e-7", case_id="CRM-2", channel="email", occurred_at="2026-11-26T10:00:00Z"),
     classification("defect", "critical")),
]


async def run_sequence(conn: Any, s: Any, transaction) -> dict[str, Any]:
    """The same calls on `s` (store module or fake); `transaction()` wraps each record as the
    Inbox's batch does. Returns what each call answered."""
    answers: dict[str, Any] = {"before": await s.earlier_complaints(conn, "CRM-1"), "counts": []}
    for c, result in STEPS:
        repeat = await s.earlier_complaints(conn, c.case_id)
        async with transaction():
            await s.record_complaint(conn, c, result, repeat, "policy-v1")
        answers["counts"].append(await s.earlier_complaints(conn, c.case_id))
    with pytest.raises(asyncpg.UniqueViolationError):
        async with transaction():
            await s.record_complaint(conn, STEPS[0][0], classification("defect"), 9, "policy-v2")
    answers["after_refused"] = await s.earlier_complaints(conn, "CRM-1")
    answers["unknown"] = await s.earlier_complaints(conn, "CRM-none")
    # a batch: read its cases at once, record its complaints at once (two on a new case, one on a known one)
    answers["batch_before"] = await s.complaints_of_cases(conn, [c.case_id for c, _ in BATCH] + ["CRM-none"])
    async with transaction():
        await s.record_complaints(conn, [s.Recorded(c, result, repeat, "policy-v3") for (c, result), repeat
                                         in zip(BATCH, [0, 1, 3])])
    answers["batch_after"] = await s.complaints_of_cases(conn, [c.case_id for c, _ in BATCH])
    with pytest.raises(asyncpg.UniqueViolationError):  # one recorded already: nothing of the batch is kept
        async with transaction():
            await s.record_complaints(conn, [s.Recorded(complaint(event_id="e-9", case_id="CRM-9"), classification(), 0, "v"),
                                             s.Recorded(BATCH[0][0], classification(), 0, "v")])
    answers["after_refused_batch"] = await s.complaints_of_cases(conn, ["CRM-9", "CRM-3"])
    return answers


class _NoTransaction:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> bool:
        return False


async def test_the_fake_store_answers_and_records_as_postgresql_does(ns):
    pool = await db.create_pool(ns.database_url, min_size=1, max_size=2)
    try:
        await db.migrate(pool, store.SCHEMA, store.MIGRATIONS)
        async with pool.acquire() as conn:
            real = await run_sequence(conn, store, conn.transaction)
            cases = {r["case_id"]: {k: r[k] for k in CASE_COLUMNS}
                     for r in await conn.fetch(f"SELECT * FROM {store.SCHEMA}.cases")}
            complaints = {r["event_id"]: {k: json.loads(r[k]) if k == "classification" else r[k] for k in COMPLAINT_COLUMNS}
                          for r in await conn.fetch(f"SELECT * FROM {store.SCHEMA}.complaints")}
    finally:
        await pool.close()

    fake = MemoryIntakeStore()
    assert await run_sequence(None, fake, _NoTransaction) == real
    assert real == {"before": 0, "counts": [1, 2, 3, 1], "after_refused": 3, "unknown": 0,
                    "batch_before": {"CRM-2": 1}, "batch_after": {"CRM-2": 2, "CRM-3": 2},
                    "after_refused_batch": {"CRM-3": 2}}
    assert fake.cases == cases
    assert fake.complaints == complaints
    assert (fake.SCHEMA, fake.CASE_LOCKS.namespace) == (store.SCHEMA, store.CASE_LOCKS.namespace)
    batch_case = cases["CRM-3"]
    assert (batch_case["customer_id"], batch_case["channel"], batch_case["category"]) == ("C-881", "chat", "billing"), \
        "a case new in a batch keeps its first complaint's customer and takes the last one's classification"
    assert (batch_case["first_received_at"], batch_case["last_received_at"]) == (BATCH[0][0].occurred_at,
                                                                                   BATCH[0][0].occurred_at)
    assert (cases["CRM-2"]["channel"], cases["CRM-2"]["severity"], cases["CRM-2"]["last_received_at"]) == (
        "email", "critical", BATCH[2][0].occurred_at)
    first = cases["CRM-1"]
    assert (first["customer_id"], first["source"], first["channel"], first["priority"]) == ("C-881", "crm-east", "phone", "P2"), \
        "the case keeps its customer and source and takes the latest channel and classification"
    assert (first["first_received_at"], first["last_received_at"]) == (STEPS[0][0].occurred_at, STEPS[1][0].occurred_at)
