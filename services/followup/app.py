"""Wiring of the followup service: `python -m services.followup`."""
from __future__ import annotations

from services import registry
from services.followup import handlers, store
from services.followup.recovery import Recovery
from services.followup.service import Followups
from services.followup.contract import FollowupsTopicEvent
from services.followup.policy import FollowupPolicy
from shared import kafka
from shared.events import CASE_ACTIVITY, CLASSIFIED, COMPENSATION, FOLLOWUPS, SLA
from shared.service import ServiceRuntime
from shared.settings import Settings


def build(settings: Settings | None = None) -> ServiceRuntime:
    runtime = registry.FOLLOWUP.runtime(migrations=store.MIGRATIONS, settings=settings)
    policy = runtime.policy("followup.yaml", FollowupPolicy)
    followups = Followups(runtime, policy)
    runtime.set_context("followups", followups)
    # One consumer for both topics: two subscribers sharing a consumer group rebalance against each
    # other at start-up, and the first one was seen to stop receiving afterwards. Its group is
    # `helpdesk-followup.inbound`; it was `helpdesk-followup`, outside the documented pattern (README,
    # "Consumer groups": the new group starts from the earliest retained records, which the inbox
    # recognises by event id and skips).
    runtime.broker.subscriber(
        runtime.topic(CLASSIFIED), runtime.topic(CASE_ACTIVITY),
        group_id=runtime.settings.consumer_group(runtime.name, "inbound"),
        title="followup.inbound", **kafka.consumer_options(runtime.settings),
    )(handlers.on_inbound)
    # The recovery read model (services/followup/recovery.py): its own consumer group, so it can be
    # rebuilt from the start of its topics without touching follow-up scheduling (README, "Recovery
    # analytics"). It publishes nothing; its records are remembered apart ("recovery:" event ids).
    recovery = Recovery()
    runtime.set_context("recovery", recovery)
    runtime.broker.subscriber(
        runtime.topic(CLASSIFIED), runtime.topic(CASE_ACTIVITY), runtime.topic(SLA), runtime.topic(COMPENSATION),
        group_id=runtime.settings.consumer_group(runtime.name, "recovery"),
        title="followup.recovery", **kafka.consumer_options(runtime.settings),
    )(handlers.on_recovery)
    runtime.fire_timers(followups.fire, in_batches=True)
    runtime.gauges(followups.refresh_gauges)
    runtime.gauges(recovery.refresh_gauges, every=60)  # a 90-day report: once a minute is plenty
    runtime.documents(FOLLOWUPS, FollowupsTopicEvent,
                      "followup.scheduled, followup.due, followup.cancelled, followup.skipped")
    return runtime


runtime = build()
app = runtime.app
