"""Intake's subscriber: complaint in → the service layer (services/intake/service.py) classifies and
records it and puts `complaint.classified` into the outbox."""
from __future__ import annotations

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.intake.contract import parse_complaint
from services.intake.service import Intake
from shared.inbound import every_record


async def on_complaints(msg: KafkaMessage, intake: Intake = Context("intake")) -> None:
    """One fetched batch of complaints (msg.raw_message is a tuple of records): parsed with
    `parse_complaint`, prepared by `Intake.prepare`, each applied by `Intake.on_complaint`."""
    await intake.runtime.inbox.handle_batch(msg.raw_message, every_record(parse_complaint, intake.on_complaint),
                                            prepare=intake.prepare)
