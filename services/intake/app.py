"""Wiring of the intake service: `python -m services.intake`."""
from __future__ import annotations

from services.intake import handlers, store
from services.intake.policy import ClassificationPolicy
from shared.events import CLASSIFIED, COMPLAINTS, ComplaintClassified
from shared.service import ServiceRuntime
from shared.settings import Settings


def build(settings: Settings | None = None) -> ServiceRuntime:
    runtime = ServiceRuntime("intake", migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("classification.yaml", ClassificationPolicy)
    runtime.set_context("intake", handlers.Intake(runtime, policy))
    runtime.subscriber(COMPLAINTS, title="intake.complaints", description="complaint.received events from CRMs (services/intake/contract.py: Complaint)")(handlers.on_complaints)
    runtime.documents(CLASSIFIED, ComplaintClassified, "complaint.classified: category, severity, temperament, loyalty, publicity risk, priority and why")
    return runtime


runtime = build()
app = runtime.app
