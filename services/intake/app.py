"""Wiring of the intake service: `python -m services.intake`."""
from __future__ import annotations

from services.intake import handlers, metrics, store
from services.intake.classifier.holder import ClassifierHolder
from services.intake.policy import ClassificationPolicy
from shared.events import CLASSIFIED, COMPLAINTS, ComplaintClassified
from shared.service import ServiceRuntime
from shared.settings import Settings


def build(settings: Settings | None = None) -> ServiceRuntime:
    runtime = ServiceRuntime("intake", migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("classification.yaml", ClassificationPolicy)
    runtime.set_context("intake", handlers.Intake(runtime, policy, classifier(runtime, policy.policy)))
    runtime.subscriber(COMPLAINTS, title="intake.complaints", description="complaint.received events from CRMs (services/intake/contract.py: Complaint)")(handlers.on_complaints)
    runtime.documents(CLASSIFIED, ComplaintClassified, "complaint.classified: category, severity, temperament, loyalty, publicity risk, priority and why")
    return runtime


def classifier(runtime: ServiceRuntime, policy: ClassificationPolicy) -> ClassifierHolder | None:
    """The learned classifier when the policy has a `model` section; intake refuses to start
    without its artifact then (PolicyError: run `make model` or `helpdesk classifier train`)."""
    if policy.model is None:
        return None
    settings = runtime.settings

    def loaded(current) -> None:
        metrics.classifier_info.clear()
        metrics.classifier_info.labels(current.version).set(1)

    holder = ClassifierHolder.open(
        settings.classifier_artifact, settings.embeddings_dir, check_every=settings.policy_check_interval,
        on_reload=lambda current: (loaded(current), metrics.classifier_reloads.inc()),
        on_refused=lambda _message: metrics.classifier_refusals.inc(),
    )
    loaded(holder.current())
    runtime.watch(holder)
    return holder


runtime = build()
app = runtime.app
