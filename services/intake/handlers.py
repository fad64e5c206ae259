"""Intake's subscriber: complaint in → case recorded → `complaint.classified` into the outbox."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.intake import metrics, store
from services.intake.contract import Complaint, parse_complaint
from services.intake.classifier.holder import ClassifierHolder
from services.intake.classifier.model import TextClassifier
from services.intake.domain import Prediction, classify, complaint_text, decided_without_model
from services.intake.policy import ClassificationPolicy
from shared.events import CLASSIFIED, ComplaintClassified
from shared.inbound import every_record
from shared.batch import Batch
from shared.policy import PolicyError, PolicyHolder
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)


@dataclass
class Intake:
    runtime: ServiceRuntime
    policy: PolicyHolder[ClassificationPolicy]
    classifier: ClassifierHolder | None = None  # None until the policy has a `model` section
    # Opens the classifier when a policy edit adds a `model` section to a running intake.
    open_classifier: Callable[[], ClassifierHolder] | None = None
    _tried_for: str | None = None      # the policy version the classifier was last tried to be opened for
    _checked_fit: tuple[str, str] | None = None  # (policy, model) versions last compared

    def _model(self) -> TextClassifier | None:
        """The classifier in force, opened on first need; None while the policy has no `model`
        section or its artifact cannot be opened (logged and counted once per policy version)."""
        loaded = self.policy.current()
        if loaded.policy.model is None:
            return None
        if self.classifier is None and self.open_classifier is not None and self._tried_for != loaded.version:
            self._tried_for = loaded.version
            try:
                self.classifier = self.open_classifier()
            except PolicyError as exc:
                log.error("the policy asks for the learned classifier, which cannot be opened; keywords decide:\n%s", exc)
                metrics.classifier_refusals.inc()
        if self.classifier is None:
            return None
        model = self.classifier.current()
        if self._checked_fit != (loaded.version, model.version):
            self._checked_fit = (loaded.version, model.version)
            missing = sorted(set(loaded.policy.category_names) - set(model.policy.categories))
            if missing:
                log.warning("classifier %s cannot predict categories of policy %s: %s (no examples when it was "
                            "trained): run `helpdesk classifier train`", model.version, loaded.version, ", ".join(missing))
        return model.policy

    def predictions(self, complaints: Sequence[Complaint]) -> list[Prediction | None]:
        """The learned classifier's opinion of each complaint; None where the policy has no model
        or where the CRM's category or a strong keyword match decides without it."""
        policy = self.policy.current().policy
        out: list[Prediction | None] = [None] * len(complaints)
        model = self._model()
        if model is None:
            return out
        texts = [complaint_text(c) for c in complaints]
        wanted = [i for i, (c, text) in enumerate(zip(complaints, texts))
                  if decided_without_model(text, policy, c.crm_category) is None]
        if wanted:
            predicted = model.predict([texts[i] for i in wanted])
            for i, one in zip(wanted, predicted):
                out[i] = one
                metrics.classifier_confidence.observe(one.confidence)
        return out

    async def predict_batch(self, batch: Batch, complaints: Sequence[Complaint]) -> dict[str, Prediction | None]:
        """The Inbox's `prepare` step: the model's opinions of the batch's new complaints, in one call
        (far cheaper than one per complaint), then the batch's case locks (see store.CASE_LOCKS).
        Returns the opinions by event id: the batch's `batch.state`, from which `record` takes its
        complaint's (only a cache: a complaint missing from it is predicted alone)."""
        predicted = dict(zip((c.event_id for c in complaints), self.predictions(complaints)))
        await batch.lock(store.CASE_LOCKS, [c.case_id for c in complaints])
        return predicted

    async def record(self, batch: Batch, complaint: Complaint) -> str:
        conn = batch.conn
        repeat_contacts = await store.earlier_complaints(conn, complaint.case_id)
        loaded = self.policy.current()
        predicted = batch.state if isinstance(batch.state, dict) else {}
        if complaint.event_id in predicted:
            prediction = predicted.pop(complaint.event_id)
        else:
            prediction = self.predictions([complaint])[0]
        result = classify(complaint, loaded.policy, repeat_contacts, prediction)
        await store.record_complaint(conn, complaint, result, repeat_contacts, loaded.version)
        event = classified_event(complaint, result, repeat_contacts)
        batch.publish(self.runtime.topic(CLASSIFIED), complaint.case_id, event)
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
