"""Events of the sla service, as the CRM contract (docs/contract.md) defines them: field names are
the contract, add, never rename.

In: `helpdesk.complaints.classified.v1` (`ComplaintClassified`, read with `parse_classified`) and
`helpdesk.case-activity.v1` (the `CaseActivity` union, read with `parse_activity`); the models and
parsers are shared with the other services (shared/events.py, shared/inbound.py) and re-exported here.

Out: `helpdesk.sla.v1`: `SlaEvent` (sla.started, sla.warning, sla.breached, sla.escalated, sla.met,
sla.cancelled, sla.retargeted), built from the domain's `Emit` effects by `sla_event`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from services.sla.domain.effects import Emit
from shared.events import (  # noqa: F401  (re-exported: the events this service reads)
    ACTIVITY_TYPES, CASE_ACTIVITY, CLASSIFIED, SLA, CaseActivity, ComplaintClassified, Outbound, Priority,
    case_activity,
)
from shared.inbound import parse_activity, parse_classified  # noqa: F401  (re-exported: In)

__all__ = [
    # In
    "ACTIVITY_TYPES", "CASE_ACTIVITY", "CLASSIFIED", "CaseActivity", "ComplaintClassified", "case_activity",
    "parse_activity", "parse_classified",
    # Out
    "SLA", "ClockName", "SlaEvent", "SlaEventType", "sla_event",
]

# ---------- In: re-exported above ----------

# ---------- Out: helpdesk.sla.v1 ----------
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
