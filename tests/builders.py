"""Valid events for tests, built on the real contract models, with sensible defaults.

Keyword arguments replace fields. `classified_event` and `activity_model` validate through the
contract's pydantic models (shared.events), and the defaults of the JSON builders are validated once
when this module is imported (services/intake/contract.Complaint, shared.events.case_activity): a
contract change breaks this module, not every test that needs an event. The JSON builders themselves
do not validate, so a test can still make an event invalid on purpose.
"""
from __future__ import annotations

import copy
import json
import uuid
from datetime import datetime, timezone
from typing import Any

from services.intake.contract import Complaint
from shared.events import ActivityEvent, ComplaintClassified, case_activity, dump, new_event_id


# ---------- helpdesk.complaints.v1: complaint.received ----------
def complaint_event(**overrides: Any) -> dict[str, Any]:
    """A valid `complaint.received` event as a CRM publishes it; keyword arguments replace top-level
    fields, `customer={...}` is merged into the default customer."""
    event: dict[str, Any] = {
        "event_id": "6f1c2b1e-0000-4000-8000-000000000001",
        "type": "complaint.received",
        "occurred_at": "2026-11-23T10:00:00Z",
        "source": "crm-east",
        "case_id": "CRM-10442",
        "channel": "phone",
        "public": False,
        "customer": {"id": "C-881", "name": "Sue Miller", "email": "sue@example.com"},
        "subject": "A question",
        "description": "Please get back to me.",
    }
    customer = overrides.pop("customer", None)
    event.update(copy.deepcopy(overrides))
    if customer is not None:
        event["customer"] = {**event["customer"], **customer}
    return event


def complaint(**overrides: Any) -> Complaint:
    """`complaint_event(**overrides)` read through intake's contract model."""
    return Complaint.model_validate(complaint_event(**overrides))


def raw(event: Any) -> bytes:
    """An event as the bytes of a Kafka record's value."""
    return json.dumps(event).encode("utf-8")


# ---------- helpdesk.complaints.classified.v1: complaint.classified ----------
def classified_event(**fields: Any) -> ComplaintClassified:
    """A `complaint.classified` event: case CRM-1 of customer C-1 from crm-east, category `other`,
    medium severity, calm, standard loyalty, low publicity risk, P3, by phone, a new causation id;
    keyword arguments replace any field (`order` as a dict: id, amount, currency)."""
    values: dict[str, Any] = {
        "case_id": "CRM-1", "causation_id": new_event_id(), "customer_id": "C-1", "source": "crm-east",
        "category": "other", "severity": "medium", "temperament": "calm", "loyalty": "standard",
        "publicity_risk": "low", "priority": "P3", "channel": "phone",
    }
    return ComplaintClassified(**{**values, **fields})


def classified_json(**fields: Any) -> dict[str, Any]:
    """`classified_event(**fields)` as intake publishes it: JSON-ready, fields that are None left out."""
    return dump(classified_event(**fields))


# ---------- helpdesk.case-activity.v1 ----------
def activity_event(type_: str = "case.contacted", case_id: str = "CRM-1", occurred_at: datetime | str | None = None,
                   **fields: Any) -> dict[str, Any]:
    """A case-activity event as a CRM publishes it: a new event id, source crm-east, `occurred_at`
    now unless given (a datetime is written as ISO 8601); keyword arguments add or replace fields
    (`promise_id=`, `resolution=`, `customer_id=`, ...). Not validated: a test may break it on purpose."""
    when = occurred_at or datetime.now(timezone.utc)
    return {
        "event_id": str(uuid.uuid4()), "type": type_, "occurred_at": when.isoformat() if isinstance(when, datetime) else when,
        "source": "crm-east", "case_id": case_id, **fields,
    }


def activity_model(type_: str = "case.contacted", case_id: str = "CRM-1", occurred_at: datetime | str | None = None,
                   **fields: Any) -> ActivityEvent:
    """`activity_event(...)` read through the contract's case-activity model (the type decides the class)."""
    return case_activity.validate_python(activity_event(type_, case_id, occurred_at, **fields))


# The defaults must satisfy the contract: checked once, here, rather than by each test that uses them.
Complaint.model_validate(complaint_event())
case_activity.validate_python(activity_event())
