"""Intake's service layer: a batch of complaints in → each case's earlier complaints counted, the
complaint classified (services/intake/domain), recorded (store.py) and `complaint.classified`
published through the Batch's outbox.

The Inbox runs `Intake.prepare` once per fetched batch (the learned classifier's opinions of the
whole batch in one call, then the batch's case locks), then `Intake.on_complaint` per complaint.
Every database access goes through `self.store` (the real store module by default;
tests/fakes/intake_store.py in the service-layer tests).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from services.intake import metrics
from services.intake import store as real_store
from services.intake.classifier.holder import ClassifierHolder
from services.intake.classifier.model import TextClassifier
from services.intake.contract import CLASSIFIED, Complaint, classified_event
from services.intake.domain import Prediction, classify, complaint_text, decided_without_model
from services.intake.policy import ClassificationPolicy
from shared.batch import Batch
from shared.policy import PolicyError, PolicyHolder
from shared.service import ServiceRuntime

log = logging.getLogger(__name__)


@dataclass
class Intake:
    """Classifies and records complaints.

    `runtime`: the service's runtime (only `topic(name)` is used here); `policy`: the
    classification policy in force (config/classification.yaml, hot-reloaded); `classifier`: the
    learned classifier, None until the policy has a `model` section; `open_classifier`: opens it
    when a policy edit adds a `model` section to a running intake; `store`: the module (or fake)
    with `CASE_LOCKS`, `earlier_complaints` and `record_complaint`."""

    runtime: ServiceRuntime
    policy: PolicyHolder[ClassificationPolicy]
    classifier: ClassifierHolder | None = None  # None until the policy has a `model` section
    # Opens the classifier when a policy edit adds a `model` section to a running intake.
    open_classifier: Callable[[], ClassifierHolder] | None = None
    store: Any = real_store
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
        """The learned classifier's opinion of each complaint, in order; None where the policy has
        no model or where the CRM's category or a strong keyword match decides without it
        (domain: `decided_without_model`). The model runs once for all the complaints it is asked about."""
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

    async def prepare(self, batch: Batch, complaints: Sequence[Complaint]) -> dict[str, Prediction | None]:
        """The Inbox's `prepare` step: the model's opinions of the batch's new complaints, in one call
        (far cheaper than one per complaint), then the batch's case locks (`store.CASE_LOCKS`).
        Returns the opinions by event id: the batch's `batch.state`, from which `on_complaint` takes
        its complaint's (only a cache: a complaint missing from it is predicted alone)."""
        predicted = dict(zip((c.event_id for c in complaints), self.predictions(complaints)))
        await batch.lock(self.store.CASE_LOCKS, [c.case_id for c in complaints])
        return predicted

    async def on_complaint(self, batch: Batch, complaint: Complaint) -> str:
        """One complaint, holding its case's lock: counts the case's earlier complaints (its repeat
        contacts), classifies it with the policy in force and the model's opinion, records the case
        and the complaint (with the policy version), and publishes `complaint.classified` keyed by
        the case id. Returns the outcome label "classified". Each event id is applied once: the Inbox
        counts a redelivery as "duplicate" and never calls this for it (the complaints table's
        primary key, event_id, refuses a second record)."""
        conn = batch.conn
        repeat_contacts = await self.store.earlier_complaints(conn, complaint.case_id)
        loaded = self.policy.current()
        predicted = batch.state if isinstance(batch.state, dict) else {}
        if complaint.event_id in predicted:
            prediction = predicted.pop(complaint.event_id)
        else:
            prediction = self.predictions([complaint])[0]
        result = classify(complaint, loaded.policy, repeat_contacts, prediction)
        await self.store.record_complaint(conn, complaint, result, repeat_contacts, loaded.version)
        event = classified_event(complaint, result, repeat_contacts)
        batch.publish(self.runtime.topic(CLASSIFIED), complaint.case_id, event)
        metrics.complaints_classified.labels(result.category, result.priority, complaint.channel).inc()
        metrics.category_decisions.labels(result.decided_by).inc()
        if result.needs_review:
            metrics.category_reviews.inc()
        if repeat_contacts:
            metrics.repeat_contacts.inc()
        return "classified"
