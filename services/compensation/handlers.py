"""Compensation's subscribers: each picks the Route of its records (contract.py's parser, then the
service layer's method, services/compensation/service.py) and hands the fetched batch to the Inbox.

- helpdesk.complaints.classified.v1 → `Compensation.on_classified` (prepared by `prepare`);
- helpdesk.compensation-approvals.v1 → `Compensation.on_approval`, with the record to report a refusal
  (prepared by `prepare_approvals`);
- helpdesk.case-activity.v1, `case.reopened` only (`reopened_only`) → `Compensation.on_reopened`.
"""
from __future__ import annotations

from functools import partial
from typing import Any

from faststream import Context
from faststream.kafka.annotations import KafkaMessage

from services.compensation.contract import parse_answer, parse_classified, parse_reopened
from services.compensation.service import Compensation
from shared.inbound import Apply, RecordRef, RejectedInput, Route, every_record, parse_keyed


# ---------- subscribers (msg.raw_message is one fetched batch of records) ----------
async def on_classified(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    """complaint.classified records → a decision each."""
    await compensation.runtime.inbox.handle_batch(
        msg.raw_message, every_record(parse_classified, compensation.on_classified), compensation.prepare,
    )


async def on_approvals(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    """Approvers' answers → decisions settled, or answers refused (reported with their record)."""
    def route(record: Any) -> Route:
        ref = RecordRef.of(record)  # refused answers go to the rejected topic with their record
        return Route(parse_answer, lambda batch, answer: compensation.on_approval(batch, answer, ref))

    await compensation.runtime.inbox.handle_batch(msg.raw_message, route, compensation.prepare_approvals)


def reopened_only(record: Any, apply: Apply | None = None) -> Route | None:
    """The Route of a case-activity record that is a well-formed `case.reopened` (applied by `apply`,
    the service's `on_reopened`), None for every other record: only reopened cases matter here. Bad
    case-activity records are reported by sla and followup, which own that topic's rejections;
    reporting them a third time would only add noise."""
    try:
        event = parse_keyed(record, parse_reopened)
    except RejectedInput:
        return None
    if apply is None:
        raise TypeError("reopened_only routes a case.reopened record to `apply`, the service's on_reopened")
    return Route(lambda _raw: event, apply)


async def on_case_activity(msg: KafkaMessage, compensation: Compensation = Context("compensation")) -> None:
    """case.reopened records → a new grant round for each case; other activity is skipped."""
    await compensation.runtime.inbox.handle_batch(
        msg.raw_message, partial(reopened_only, apply=compensation.on_reopened), compensation.prepare_activity,
    )
