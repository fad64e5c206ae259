"""Intake's tables: one row per case and one per complaint received on it."""
from __future__ import annotations

import json

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
    count = await conn.fetchval(f"SELECT complaints FROM {SCHEMA}.cases WHERE case_id = $1", case_id)
    return count or 0


async def record_complaint(
    conn: asyncpg.Connection, complaint: Complaint, result: Classification, repeat_contacts: int, policy_version: str
) -> None:
    await conn.execute(
        f"""
        INSERT INTO {SCHEMA}.cases AS c (case_id, customer_id, source, channel, category, severity, temperament,
                                         loyalty, publicity_risk, priority, first_received_at, last_received_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
        ON CONFLICT (case_id) DO UPDATE SET
            complaints = c.complaints + 1, channel = EXCLUDED.channel, category = EXCLUDED.category,
            severity = EXCLUDED.severity, temperament = EXCLUDED.temperament, loyalty = EXCLUDED.loyalty,
            publicity_risk = EXCLUDED.publicity_risk, priority = EXCLUDED.priority,
            last_received_at = greatest(c.last_received_at, EXCLUDED.last_received_at), updated_at = now()
        """,
        complaint.case_id, complaint.customer.id, complaint.source, complaint.channel, result.category,
        result.severity, result.temperament, result.loyalty, result.publicity_risk, result.priority,
        complaint.occurred_at,
    )
    await conn.execute(
        f"INSERT INTO {SCHEMA}.complaints (event_id, case_id, occurred_at, repeat_contacts, classification, policy_version)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
        complaint.event_id, complaint.case_id, complaint.occurred_at, repeat_contacts,
        json.dumps({**result.__dict__, "reasons": list(result.reasons)}), policy_version,
    )
