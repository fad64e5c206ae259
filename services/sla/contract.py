"""Events of the sla service: what it reads (case activity, classifications) and what it publishes
on `helpdesk.sla.v1`. Field names are the CRM contract (docs/contract.md): add, never rename.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events import (  # noqa: F401  (re-exported: the events this service reads)
    ACTIVITY_TYPES, CASE_ACTIVITY, CLASSIFIED, SLA, CaseActivity, ComplaintClassified, Outbound, Priority,
    case_activity,
)
from services.sla.domain.effects import Emit

SlaEventType = Literal[
    "sla.started", "sla.warning", "sla.breached", "sla.escalated", "sla.met", "sla.cancelled", "sla.retargeted",
]
ClockName = Literal["first_contact", "update", "promise", "resolution"]


class SlaEvent(Outbound):
    """One clock's news. Optional fields appear only on the event types that carry them."""

    type: SlaEventType
    case_id: str
    clock: ClockName
    promise_id: str | None = None  # when clock = promise
    due_at: datetime
    priority: Priority
    threshold: float | None = None  # sla.warning: share of the target used, 0..1
    level: int | None = None  # sla.escalated: 1, 2, ...
    notify: str | None = None  # sla.escalated: the role to notify
    breached: bool | None = None  # sla.met (and sla.cancelled): was the deadline missed
    late_by_seconds: int | None = None  # sla.met after a breach: working time past the target
    elapsed_seconds: int | None = None  # sla.met, sla.retargeted: working time the clock counted
    started_at: datetime | None = None  # sla.started
    breached_at: datetime | None = None  # sla.breached: the deadline that passed
    old_due_at: datetime | None = None  # sla.retargeted: the due time before the priority changed (due_at: after)
    old_priority: Priority | None = None  # sla.retargeted: the priority before (priority: the new one)


def sla_event(emit: Emit) -> SlaEvent:
    """The outbound event for one `Emit` effect of the domain."""
    return SlaEvent(
        type=emit.type, case_id=emit.case_id, causation_id=emit.causation_id, occurred_at=emit.occurred_at,
        **emit.fields,
    )
