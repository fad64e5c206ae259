"""Intake's subscriber: complaint in → case recorded → `complaint.classified` into the outbox."""
from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.intake import metrics, store
from services.intake.contract import Complaint, parse_complaint
from services.intake.domain import classify
from services.intake.policy import ClassificationPolicy
from shared.events import CLASSIFIED, ComplaintClassified
from shared.inbound import every_record
from shared.outbox import enqueue
from shared.policy import PolicyHolder
from shared.service import ServiceRuntime


@dataclass
class Intake:
    runtime: ServiceRuntime
    policy: PolicyHolder[ClassificationPolicy]

    async def record(self, conn: asyncpg.Connection, complaint: Complaint) -> str:
        repeat_contacts = await store.earlier_complaints(conn, complaint.case_id)
        loaded = self.policy.current()
        result = classify(complaint, loaded.policy, repeat_contacts)
        await store.record_complaint(conn, complaint, result, repeat_contacts, loaded.version)
        event = classified_event(complaint, result, repeat_contacts)
        await enqueue(conn, store.SCHEMA, self.runtime.topic(CLASSIFIED), complaint.case_id, event)
        metrics.complaints_classified.labels(result.category, result.priority, complaint.channel).inc()
        if repeat_contacts:
            metrics.repeat_contacts.inc()
        return "classified"


def classified_event(complaint: Complaint, result, repeat_contacts: int) -> ComplaintClassified:
    return ComplaintClassified(
        case_id=complaint.case_id,
        causation_id=complaint.event_id,
        customer_id=complaint.customer.id,
        source=complaint.source,
        category=result.category,
        severity=result.severity,
        temperament=result.temperament,
        loyalty=result.loyalty,
        publicity_risk=result.publicity_risk,
        priority=result.priority,
        reasons=list(result.reasons),
        channel=complaint.channel,
        public=complaint.public,
        order=complaint.order,
        customer_timezone=complaint.customer.timezone,
        repeat_contacts=repeat_contacts,
        received_at=complaint.occurred_at,
    )


async def on_complaints(msg: KafkaMessage, intake: Intake = Context("intake")) -> None:
    """One fetched batch of complaints (msg.raw_message is a tuple of records)."""
    await intake.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_complaint, intake.record))
