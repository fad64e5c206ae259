"""Intake's subscriber: complaint in → case recorded → `complaint.classified` into the outbox."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.intake import metrics, store
from services.intake.contract import Complaint, parse_complaint
from services.intake.classifier.holder import ClassifierHolder
from services.intake.domain import Prediction, classify, complaint_text, decided_without_model
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
    classifier: ClassifierHolder | None = None  # None: the policy has no `model` section
    # The model's opinions of the batch being handled, by event id: `predict_batch` fills it for a
    # whole fetched batch at once (one model call is far cheaper than one per complaint), `record`
    # takes its complaint's out. Only a cache: a complaint missing from it is predicted alone.
    _predicted: dict[str, Prediction | None] = field(default_factory=dict)

    def predictions(self, complaints: Sequence[Complaint]) -> list[Prediction | None]:
        """The learned classifier's opinion of each complaint; None where the policy has no model
        or where the CRM's category or a strong keyword match decides without it."""
        policy = self.policy.current().policy
        out: list[Prediction | None] = [None] * len(complaints)
        if self.classifier is None or policy.model is None:
            return out
        texts = [complaint_text(c) for c in complaints]
        wanted = [i for i, (c, text) in enumerate(zip(complaints, texts))
                  if decided_without_model(text, policy, c.crm_category) is None]
        if wanted:
            predicted = self.classifier.current().policy.predict([texts[i] for i in wanted])
            for i, one in zip(wanted, predicted):
                out[i] = one
                metrics.classifier_confidence.observe(one.confidence)
        return out

    async def predict_batch(self, conn: asyncpg.Connection, complaints: Sequence[Complaint]) -> None:
        """The Inbox's `prepare` step: the model's opinions of the batch's new complaints, in one call."""
        self._predicted = dict(zip((c.event_id for c in complaints), self.predictions(complaints)))

    async def record(self, conn: asyncpg.Connection, complaint: Complaint) -> str:
        repeat_contacts = await store.earlier_complaints(conn, complaint.case_id)
        loaded = self.policy.current()
        if complaint.event_id in self._predicted:
            prediction = self._predicted.pop(complaint.event_id)
        else:
            prediction = self.predictions([complaint])[0]
        result = classify(complaint, loaded.policy, repeat_contacts, prediction)
        await store.record_complaint(conn, complaint, result, repeat_contacts, loaded.version)
        event = classified_event(complaint, result, repeat_contacts)
        await enqueue(conn, store.SCHEMA, self.runtime.topic(CLASSIFIED), complaint.case_id, event)
        metrics.complaints_classified.labels(result.category, result.priority, complaint.channel).inc()
        metrics.category_decisions.labels(result.decided_by).inc()
        if result.needs_review:
            metrics.category_reviews.inc()
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
        needs_review=result.needs_review,
        category_decided_by=result.decided_by,
        category_confidence=None if result.confidence is None else round(result.confidence, 4),
    )


async def on_complaints(msg: KafkaMessage, intake: Intake = Context("intake")) -> None:
    """One fetched batch of complaints (msg.raw_message is a tuple of records)."""
    await intake.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_complaint, intake.record),
                                            prepare=intake.predict_batch)
