"""Followup's subscriber: hands each fetched batch of records to the Inbox with, per record, the
parser and the service-layer method that applies it (services/followup/service.py), and the
service's `prepare` step. Timers and gauges are wired in app.py.
"""
from __future__ import annotations

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from typing import Any

from services.followup.contract import CLASSIFIED, RECOVERY_PARSERS, parse_activity, parse_classified
from services.followup.recovery import Recovery
from services.followup.service import Followups
from shared.inbound import RejectedInput, Route, parse_keyed


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


def recovery_route(record: Any, recovery: Recovery, topic_prefix: str = "") -> Route | None:
    """The Route of a record the recovery read model uses (contract.py's RECOVERY_PARSERS, by
    topic), None for every other record: a type it does not need, an automated contact, or a bad
    record (the inbound consumer reports bad CRM records; sla's and compensation's output is not
    CRM input and is never reported)."""
    parse = RECOVERY_PARSERS.get(str(record.topic).removeprefix(topic_prefix))
    if parse is None:
        return None
    try:
        event = parse_keyed(record, parse)
    except RejectedInput:
        return None
    return Route(lambda _raw: event, recovery.on_event)


async def on_recovery(msg: KafkaMessage, recovery: Recovery = Context("recovery"),
                      followups: Followups = Context("followups")) -> None:
    """The recovery read model's consumer (its own group, see app.py): one fetched batch of
    classified, activity, sla and compensation records → `Recovery.on_event` for each it uses."""
    prefix = followups.runtime.settings.helpdesk_topic_prefix
    await followups.runtime.inbox.handle_batch(
        msg.raw_message, lambda record: recovery_route(record, recovery, prefix), recovery.prepare,
    )
