"""The sla service's subscribers: each hands a fetched batch of records to the Inbox with its
parser and the service-layer method that applies one event (services/sla/service.py), and the
service's `prepare` step. Timers and gauges are wired in app.py.
"""
from __future__ import annotations

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.sla.contract import parse_activity, parse_classified
from services.sla.service import Sla
from shared.inbound import every_record


# ---------- subscribers (msg.raw_message is one fetched batch of records) ----------
async def on_classified_events(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    """`helpdesk.complaints.classified.v1`: each record through `Sla.on_classified`."""
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_classified, sla.on_classified), sla.prepare)


async def on_case_activity(msg: KafkaMessage, sla: Sla = Context("sla")) -> None:
    """`helpdesk.case-activity.v1`: each record through `Sla.on_activity`."""
    await sla.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_activity, sla.on_activity), sla.prepare)
