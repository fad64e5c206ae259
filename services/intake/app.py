"""Wiring of the intake service: `python -m services.intake`."""
from __future__ import annotations

import logging
from collections.abc import Callable

from services import registry
from services.intake import handlers, metrics, store
from services.intake.service import Intake
from services.intake.classifier.holder import ClassifierHolder
from services.intake.classifier.model import TextClassifier
from services.intake.policy import ClassificationPolicy
from shared.events import CLASSIFIED, COMPLAINTS, ComplaintClassified
from shared.policy import LoadedPolicy
from shared.service import ServiceRuntime
from shared.settings import Settings

log = logging.getLogger(__name__)


def build(settings: Settings | None = None) -> ServiceRuntime:
    """The intake runtime: its policy and classifier, the `Intake` service layer (context "intake"),
    the complaints subscriber and the documented `complaint.classified` topic. Intake has no timers
    and no gauges."""
    runtime = registry.INTAKE.runtime(migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("classification.yaml", ClassificationPolicy)
    opener = classifier_opener(runtime)
    # With a `model` section at start, intake does not start without its classifier (PolicyError).
    holder = opener() if policy.policy.model is not None else None
    runtime.set_context("intake", Intake(runtime, policy, holder, opener))
    runtime.subscriber(COMPLAINTS, title="intake.complaints", description="complaint.received events from CRMs (services/intake/contract.py: Complaint)")(handlers.on_complaints)
    runtime.documents(CLASSIFIED, ComplaintClassified, "complaint.classified: category, severity, temperament, loyalty, publicity risk, priority and why")
    return runtime


def classifier_opener(runtime: ServiceRuntime) -> Callable[[], ClassifierHolder]:
    """What opens the learned classifier: the embedding table and the artifact from
    HELPDESK_MODEL_DIR, hot-reloaded with the policies; PolicyError naming what is missing
    (`make model` or `helpdesk classifier train` builds it)."""
    settings = runtime.settings

    def loaded(current: LoadedPolicy[TextClassifier], first: bool = False) -> None:
        metrics.classifier_info.clear()
        metrics.classifier_info.labels(current.version).set(1)
        if not first:
            metrics.classifier_reloads.inc()

    def open_classifier() -> ClassifierHolder:
        holder = ClassifierHolder.open(
            settings.classifier_artifact, settings.embeddings_dir, check_every=settings.policy_check_interval,
            on_reload=loaded, on_refused=lambda _message: metrics.classifier_refusals.inc(),
        )
        loaded(holder.current(), first=True)
        runtime.watch(holder)
        log.info("classifier %s loaded from %s", holder.current().version, settings.classifier_artifact)
        return holder

    return open_classifier


runtime = build()
app = runtime.app
