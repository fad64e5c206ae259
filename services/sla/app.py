"""Wiring of the sla service: `python -m services.sla`."""
from __future__ import annotations

from services import registry
from services.sla import handlers, metrics, store
from services.sla.contract import SlaEvent
from services.sla.policy import SlaPolicy
from services.sla.service import Sla
from shared.events import CASE_ACTIVITY, CLASSIFIED, SLA
from shared.service import ServiceRuntime
from shared.settings import Settings


def build(settings: Settings | None = None) -> ServiceRuntime:
    runtime = registry.SLA.runtime(migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("sla.yaml", SlaPolicy)
    sla = Sla(runtime, policy, store)
    sla.current_policy()  # publishes the targets gauge at once
    metrics.start_at_zero()
    runtime.set_context("sla", sla)
    runtime.subscriber(CLASSIFIED, title="sla.classified")(handlers.on_classified_events)
    runtime.subscriber(CASE_ACTIVITY, title="sla.case-activity")(handlers.on_case_activity)
    runtime.fire_timers(sla.fire, in_batches=True)
    runtime.gauges(sla.refresh_gauges)
    runtime.documents(
        SLA, SlaEvent, "sla.started, sla.warning, sla.breached, sla.escalated, sla.met, sla.cancelled, sla.retargeted",
    )
    return runtime


runtime = build()
app = runtime.app
