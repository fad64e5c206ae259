"""Wiring of the compensation service: `python -m services.compensation`."""
from __future__ import annotations

from services import registry
from services.compensation import handlers, store
from services.compensation.service import Compensation
from services.compensation.policy import CompensationPolicy
from services.compensation.contract import CompensationEvent
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION, COMPENSATION_APPROVALS
from shared.service import ServiceRuntime
from shared.settings import Settings


def build(settings: Settings | None = None) -> ServiceRuntime:
    runtime = registry.COMPENSATION.runtime(migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("compensation.yaml", CompensationPolicy)
    compensation = Compensation(runtime, policy)
    runtime.set_context("compensation", compensation)
    runtime.subscriber(CLASSIFIED, title="compensation.classified")(handlers.on_classified)
    runtime.subscriber(COMPENSATION_APPROVALS, title="compensation.approvals")(handlers.on_approvals)
    runtime.subscriber(CASE_ACTIVITY, title="compensation.case-activity")(handlers.on_case_activity)
    runtime.fire_timers(compensation.fire, in_batches=False)  # one escalation per Batch, as always
    runtime.gauges(compensation.refresh_gauges)
    runtime.documents(COMPENSATION, CompensationEvent, "compensation.granted, pending_approval, approved, denied, none")
    return runtime


runtime = build()
app = runtime.app
