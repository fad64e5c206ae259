"""Intake's tables: one row per case and one per complaint received on it. A batch's complaints are
read (`complaints_of_cases`) and recorded (`record_complaints`) with one statement per table."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services import registry
from services.intake.contract import Complaint
from services.intake.domain import Classification
from shared.locks import AdvisoryLocks

SCHEMA = registry.INTAKE.schema

MIGRATIONS = [
    (
        1,
        """
        CREATE TABLE {schema}.cases (
            case_id        text PRIMARY KEY,
            customer_id    text NOT NULL,
            source         text NOT NULL,
            channel        text NOT NULL,
            category       text NOT NULL,
            severity       text NOT NULL,
            temperament    text NOT NULL,
            loyalty        text NOT NULL,
            publicity_risk text NOT NULL,
            priority       text NOT NULL,
            complaints     int  NOT NULL DEFAULT 1,
            first_received_at timestamptz NOT NULL,
            last_received_at  timestamptz NOT NULL,
            updated_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX cases_customer ON {schema}.cases (customer_id);
        -- One row per complaint event: what was decided and why (no names, emails or free text).
        CREATE TABLE {schema}.complaints (
            event_id        text PRIMARY KEY,
            case_id         text NOT NULL REFERENCES {schema}.cases (case_id),
            occurred_at     timestamptz NOT NULL,
            repeat_contacts int NOT NULL,
            classification  jsonb NOT NULL,
            policy_version  text NOT NULL,
            recorded_at     timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX complaints_case ON {schema}.complaints (case_id);
        """,
    ),
]


# One lock per case: its complaints are counted and recorded one transaction at a time, also
# the first ones, before the case has a row to lock. Taken for a batch's cases at once, in sorted
# order, through the Batch (`batch.lock`), so two batches never wait on each other in a circle.
CASE_LOCKS = AdvisoryLocks("intake:case")


async def earlier_complaints(conn: asyncpg.Connection, case_id: str) -> int:
    """How many complaints the case has had; call it holding the case's lock (`CASE_LOCKS`)."""
    return (await complaints_of_cases(conn, [case_id])).get(case_id, 0)


async def complaints_of_cases(conn: asyncpg.Connection, case_ids: Sequence[str]) -> dict[str, int]:
    """How many complaints each case has had, in one statement: {case_id: count} for the cases on
    record (a case never seen is missing). Call it holding the cases' locks (`CASE_LOCKS`)."""
    rows = await conn.fetch(f"SELECT case_id, complaints FROM {SCHEMA}.cases WHERE case_id = ANY($1::text[])",
                            list(set(case_ids)))
    return {r["case_id"]: r["complaints"] for r in rows}


@dataclass(frozen=True)
class Recorded:
    """One complaint to record: the complaint, its classification, how many complaints its case had
    before it (`repeat_contacts`) and the classification policy's version."""

    complaint: Complaint
    result: Classification
    repeat_contacts: int
    policy_version: str


async def record_complaint(
    conn: asyncpg.Connection, complaint: Complaint, result: Classification, repeat_contacts: int, policy_version: str
) -> None:
    """`record_complaints` for one complaint."""
    await record_complaints(conn, [Recorded(complaint, result, repeat_contacts, policy_version)])


def classification_json(result: Classification) -> str:
    """The `classification` column: the Classification's fields as a JSON object (reasons as a list)."""
    return json.dumps({**result.__dict__, "reasons": list(result.reasons)})


async def record_complaints(conn: asyncpg.Connection, recorded: Sequence[Recorded]) -> None:
    """Records a batch's complaints, in the order applied, with two statements whatever their number:
    each case upserted once (a new case counts its complaints from the batch, keeps the first one's
    customer, source and time as `first_received_at`; an existing one adds them; either takes the
    last complaint's channel and classification, and `last_received_at` is the latest time seen),
    then every complaint inserted. A complaint whose event id is recorded already raises
    asyncpg's UniqueViolationError (the table's primary key), and the transaction is to be rolled back."""
    if not recorded:
        return
    cases: dict[str, dict[str, Any]] = {}
    for r in recorded:
        c, result = r.complaint, r.result
        case = cases.get(c.case_id)
        if case is None:
            case = cases[c.case_id] = {"customer_id": c.customer.id, "source": c.source, "complaints": 0,
                                       "first": c.occurred_at, "last": c.occurred_at}
        case.update(channel=c.channel, category=result.category, severity=result.severity,
                    temperament=result.temperament, loyalty=result.loyalty, publicity_risk=result.publicity_risk,
                    priority=result.priority)
        case["complaints"] += 1
        case["last"] = max(case["last"], c.occurred_at)
    columns = ("customer_id", "source", "channel", "category", "severity", "temperament", "loyalty",
               "publicity_risk", "priority", "complaints", "first", "last")
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.cases AS c (case_id, customer_id, source, channel, category, severity, temperament,
                                         loyalty, publicity_risk, priority, complaints, first_received_at,
                                         last_received_at)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::int[], $12::timestamptz[], $13::timestamptz[])
        ON CONFLICT (case_id) DO UPDATE SET
            complaints = c.complaints + EXCLUDED.complaints, channel = EXCLUDED.channel, category = EXCLUDED.category,
            severity = EXCLUDED.severity, temperament = EXCLUDED.temperament, loyalty = EXCLUDED.loyalty,
            publicity_risk = EXCLUDED.publicity_risk, priority = EXCLUDED.priority,
            last_received_at = greatest(c.last_received_at, EXCLUDED.last_received_at), updated_at = now()
        """,
        list(cases), *([case[column] for case in cases.values()] for column in columns),
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.complaints (event_id, case_id, occurred_at, repeat_contacts, classification, policy_version)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::jsonb[], $6::text[])",
        [r.complaint.event_id for r in recorded], [r.complaint.case_id for r in recorded],
        [r.complaint.occurred_at for r in recorded], [r.repeat_contacts for r in recorded],
        [classification_json(r.result) for r in recorded], [r.policy_version for r in recorded],
    )
