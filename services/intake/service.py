"""Intake's service layer: a batch of complaints in → each case's earlier complaints counted, the
complaint classified (services/intake/domain), recorded (store.py) and `complaint.classified`
published through the Batch's outbox.

The Inbox runs `Intake.prepare` once per fetched batch (the learned classifier's opinions of the
whole batch in one call, then the batch's case locks and its cases' complaint counts), then
`Intake.on_complaint` per complaint; the batch's complaints are recorded at its end, one statement
per table whatever the batch's size.
Every database access goes through `self.store` (the real store module by default;
tests/fakes/intake_store.py in the service-layer tests).
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    with `CASE_LOCKS`, `Recorded`, `complaints_of_cases`, `record_complaints` and, for a
    complaint applied outside a prepared batch, `earlier_complaints` and `record_complaint`."""

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

    async def prepare(self, batch: Batch, complaints: Sequence[Complaint]) -> IntakeBatch:
        """The Inbox's `prepare` step: the model's opinions of the batch's new complaints, in one call
        (far cheaper than one per complaint), then the batch's case locks (`store.CASE_LOCKS`) and
        how many complaints each of its cases had, in one statement. Returns the `IntakeBatch` (the
        batch's `batch.state`) that `on_complaint` reads and fills; its complaints are recorded by a
        `before_commit` step, two statements for the whole batch (store.record_complaints)."""
        predicted = dict(zip((c.event_id for c in complaints), self.predictions(complaints)))
        case_ids = [c.case_id for c in complaints]
        await batch.lock(self.store.CASE_LOCKS, case_ids)
        state = IntakeBatch(predicted, await self.store.complaints_of_cases(batch.conn, case_ids), set(case_ids))
        batch.before_commit(lambda: self.store.record_complaints(batch.conn, state.recorded))
        return state

    async def on_complaint(self, batch: Batch, complaint: Complaint) -> str:
        """One complaint, holding its case's lock: counts the case's earlier complaints (its repeat
        contacts, including those earlier in the batch), classifies it with the policy in force and
        the model's opinion, records the case and the complaint (with the policy version; in a
        prepared batch, at its end with the batch's others) and publishes `complaint.classified`
        keyed by the case id. Returns the outcome label "classified". Each event id is applied once:
        the Inbox counts a redelivery as "duplicate" and never calls this for it (the complaints
        table's primary key, event_id, refuses a second record)."""
        state = batch.state if isinstance(batch.state, IntakeBatch) else None
        if state is None:  # not prepared (one complaint on its own): read and write it now
            await batch.lock(self.store.CASE_LOCKS, [complaint.case_id])
            repeat_contacts = await self.store.earlier_complaints(batch.conn, complaint.case_id)
        else:
            if complaint.case_id not in state.read:  # a case prepare was not given: locked and read now
                await batch.lock(self.store.CASE_LOCKS, [complaint.case_id])
                state.complaints.update(await self.store.complaints_of_cases(batch.conn, [complaint.case_id]))
                state.read.add(complaint.case_id)
            repeat_contacts = state.complaints.get(complaint.case_id, 0)
        loaded = self.policy.current()
        if state is not None and complaint.event_id in state.predicted:
            prediction = state.predicted.pop(complaint.event_id)
        else:
            prediction = self.predictions([complaint])[0]
        result = classify(complaint, loaded.policy, repeat_contacts, prediction)
        if state is None:
            await self.store.record_complaint(batch.conn, complaint, result, repeat_contacts, loaded.version)
        else:
            state.complaints[complaint.case_id] = repeat_contacts + 1
            state.recorded.append(self.store.Recorded(complaint, result, repeat_contacts, loaded.version))
        event = classified_event(complaint, result, repeat_contacts)
        batch.publish(self.runtime.topic(CLASSIFIED), complaint.case_id, event)
        metrics.complaints_classified.labels(result.category, result.priority, complaint.channel).inc()
        metrics.category_decisions.labels(result.decided_by).inc()
        if result.needs_review:
            metrics.category_reviews.inc()
        if repeat_contacts:
            metrics.repeat_contacts.inc()
        return "classified"


@dataclass
class IntakeBatch:
    """What `Intake.prepare` returns, the batch's `batch.state`: the model's opinions by event id
    (`predicted`, only a cache: a complaint missing from it is predicted alone), each case's
    complaints so far (`complaints`: as read in prepare, then counting the batch's own; a case
    missing from it has none), the cases locked and read (`read`), and the complaints to record at
    the batch's end (`recorded`, in the order applied)."""

    predicted: dict[str, Prediction | None]
    complaints: dict[str, int]
    read: set[str] = field(default_factory=set)
    recorded: list[Any] = field(default_factory=list)  # store.Recorded
