"""What intake reads and what it publishes. The contract document is docs/contract.md: field names
are the CRMs' and downstream services'; add, never rename.

In: `complaint.received` on `helpdesk.complaints.v1` (`Complaint`, parsed by `parse_complaint`).
Parsing never guesses: a record that is not exactly what the contract says is rejected with a
reason and short error strings (the Inbox publishes it as `complaint.rejected` on
`helpdesk.complaints.rejected.v1`). Error strings name the field and the rule, never the value,
since values may be names, emails or free text.

Out: `complaint.classified` on `helpdesk.complaints.classified.v1` (`ComplaintClassified`, from
shared/events.py, where sla and compensation read it too), built by `classified_event` from a
complaint and its `Classification`.
"""
from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError
from pydantic_core import PydanticCustomError

from shared.events import CLASSIFIED, COMPLAINTS, Channel, ComplaintClassified, Id, Inbound, Loyalty, Order  # noqa: F401
from shared.inbound import RejectedInput, parse_json_object

from services.intake.domain import Classification

MAX_SUBJECT_CHARS = 500
MAX_DESCRIPTION_CHARS = 20_000

# Numbers must arrive as JSON numbers: a CRM sending "7800.00" as a string has a bug worth seeing.
Amount = Annotated[float, Field(strict=True, ge=0, le=1e12, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=10_000_000)]


def _known_time_zone(key: str) -> str:
    try:
        ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Custom error type so the message carries no "Value error, " prefix and no value.
        raise PydanticCustomError("time_zone", "Input should be an IANA time zone like 'Europe/Berlin'") from None
    return key


def _blank_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


TimeZoneName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_known_time_zone)]


class Customer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Id
    name: Annotated[str, Field(min_length=1, max_length=500)]
    email: Annotated[str, Field(max_length=320)] | None = None
    tier: Loyalty | None = None  # absent: derived from tenure, lifetime value and referrals
    tenure_days: Count | None = None
    lifetime_value: Amount | None = None
    referrals: Count | None = None
    timezone: TimeZoneName = "UTC"


class ReceivedOrder(Order):
    """The shared Order, but the amount must be a JSON number (the shared model coerces strings)."""

    amount: Annotated[float, Field(strict=True, ge=0, le=1e9, allow_inf_nan=False)]


class Complaint(Inbound):
    type: Literal["complaint.received"]
    channel: Channel
    public: StrictBool = False
    customer: Customer
    order: ReceivedOrder | None = None
    subject: Annotated[str, Field(max_length=MAX_SUBJECT_CHARS)]
    description: Annotated[str, Field(max_length=MAX_DESCRIPTION_CHARS)]
    # Optional (a contract addition): the CRM's own category, mapped by the policy's crm_categories.
    # Empty or blank text means "none" rather than a reason to refuse the whole complaint.
    crm_category: Annotated[Annotated[str, Field(max_length=100)] | None, BeforeValidator(_blank_is_none)] = None


RejectReason = Literal["too_large", "not_json", "not_an_object", "invalid_text", "invalid_fields", "empty",
                      "key_mismatch"]


def _field_errors(exc: ValidationError) -> list[str]:
    errors = []
    for item in exc.errors(include_url=False, include_context=False):
        # pydantic may insert validator tags in loc; keep the field path the CRM knows.
        loc = ".".join(str(part) for part in item["loc"] if isinstance(part, (int, str)) and "[" not in str(part))
        message = item["msg"]
        value = item.get("input")
        if isinstance(value, str) and value and value in message:
            message = item["type"]  # belt and braces: a message must never echo the value
        errors.append(f"{loc or '(event)'}: {message}")
    return errors


def parse_complaint(raw: bytes | None) -> Complaint:
    """Parses one Kafka record value; raises RejectedInput with a reason from the contract."""
    document = parse_json_object(raw)
    try:
        return Complaint.model_validate(document)
    except ValidationError as exc:
        raise RejectedInput("invalid_fields", _field_errors(exc)) from None
    except RecursionError:
        raise RejectedInput("not_json", ["record is nested too deeply"]) from None


# ---------- Out: helpdesk.complaints.classified.v1 ----------
def classified_event(complaint: Complaint, result: Classification, repeat_contacts: int) -> ComplaintClassified:
    """The `complaint.classified` event for one complaint (docs/contract.md, "complaint.classified"):
    the case, customer, channel, order and customer time zone copied from the complaint, every
    dimension of `result` (services/intake/domain: Classification) with its reasons and who decided
    the category, the model's confidence rounded to 4 places (None when the model did not run), and
    `repeat_contacts`: the complaints the case had before this one. `causation_id` is the
    complaint's event id; `received_at` its `occurred_at`. Carries no name, email or free text."""
    return ComplaintClassified(
        case_id=complaint.case_id,
        causation_id=complaint.event_id,
        customer_id=complaint.customer.id,
        source=complaint.source,
        category=result.category,
        severity=result.severity,
        temperament=result.temperament,
        loyalty=result.loyalty,
        publicity_risk=result.publicity_risk,
        priority=result.priority,
        reasons=list(result.reasons),
        channel=complaint.channel,
        public=complaint.public,
        order=complaint.order,
        customer_timezone=complaint.customer.timezone,
        repeat_contacts=repeat_contacts,
        received_at=complaint.occurred_at,
        needs_review=result.needs_review,
        category_decided_by=result.decided_by,
        category_confidence=None if result.confidence is None else round(result.confidence, 4),
    )
