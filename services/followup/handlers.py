"""Followup's subscriber: hands each fetched batch of records to the Inbox with, per record, the
parser and the service-layer method that applies it (services/followup/service.py), and the
service's `prepare` step. Timers and gauges are wired in app.py.
"""
from __future__ import annotations

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.followup.contract import CLASSIFIED, parse_activity, parse_classified
from services.followup.service import Followups
from shared.inbound import Route


async def on_inbound(msg: KafkaMessage, followups: Followups = Context("followups")) -> None:
    """Classifications and case activity arrive through one consumer (see app.py); msg.raw_message
    is one fetched batch of records from both topics: `Followups.on_classified` and
    `Followups.on_activity` apply them."""
    classified = Route(parse_classified, followups.on_classified)
    activity = Route(parse_activity, followups.on_activity)
    classified_topic = followups.runtime.topic(CLASSIFIED)
    await followups.runtime.inbox.handle_batch(
        msg.raw_message, lambda record: classified if record.topic == classified_topic else activity, followups.prepare,
    )
