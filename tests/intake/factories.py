"""Complaint events as a CRM would publish them, for the intake unit tests."""
from __future__ import annotations

import copy
import json
from typing import Any

from services.intake.contract import Complaint


def complaint_event(**overrides: Any) -> dict[str, Any]:
    """A valid `complaint.received` event; keyword arguments replace top-level fields,
    `customer={...}` is merged into the default customer."""
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
    return Complaint.model_validate(complaint_event(**overrides))


def raw(event: Any) -> bytes:
    return json.dumps(event).encode("utf-8")
