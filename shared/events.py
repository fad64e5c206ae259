"""Event envelopes and the events two or more services read (the contract: docs/contract.md).

Inbound events accept and ignore unknown fields; outbound events carry `event_id`, `type`,
`occurred_at`, `case_id` and `causation_id`. Field names here are the contract: add, never rename.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, TypeAdapter

# Topics (fixed by the contract).
COMPLAINTS = "helpdesk.complaints.v1"
CASE_ACTIVITY = "helpdesk.case-activity.v1"
COMPENSATION_APPROVALS = "helpdesk.compensation-approvals.v1"
CLASSIFIED = "helpdesk.complaints.classified.v1"
REJECTED = "helpdesk.complaints.rejected.v1"
SLA = "helpdesk.sla.v1"
COMPENSATION = "helpdesk.compensation.v1"
FOLLOWUPS = "helpdesk.followups.v1"
ALL_TOPICS = (COMPLAINTS, CASE_ACTIVITY, COMPENSATION_APPROVALS, CLASSIFIED, REJECTED, SLA, COMPENSATION, FOLLOWUPS)

MAX_RECORD_BYTES = 1024 * 1024


def _sane_instant(value: datetime) -> datetime:
    # A CRM clock off by centuries is a bug upstream, not a deadline to arm.
    if not 2000 <= value.year <= 2200:
        raise ValueError("timestamp year must be between 2000 and 2200")
    return value.astimezone(timezone.utc)


def _rfc3339_text(value: Any) -> Any:
    # The contract's timestamps are RFC 3339 text; pydantic would read a bare number as Unix time
    # (the fuzzing suite found one accepted that way).
    if not isinstance(value, (str, datetime)):
        raise ValueError("timestamp must be RFC 3339 text with an offset")
    return value


Timestamp = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_sane_instant)]
Id = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
ShortText = Annotated[str, Field(max_length=2_000)]


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_event_id() -> str:
    return str(uuid.uuid4())


class Inbound(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    event_id: Id
    type: str
    occurred_at: Timestamp
    source: Id
    case_id: Id


class Outbound(BaseModel):
    """Every event a service emits. `causation_id` is the event that caused it."""

    model_config = ConfigDict(extra="allow")

    event_id: str = Field(default_factory=new_event_id)
    type: str
    occurred_at: datetime = Field(default_factory=now)
    case_id: str | None = None
    causation_id: str | None = None


# ---------- helpdesk.case-activity.v1 ----------
ActedBy = Literal["agent", "bot", "system"]


def _known_actor(value: Any) -> Any:
    # `by` was an unknown field, ignored, before it joined the contract: a CRM that already sends
    # its own values ("jsmith", "Agent") must not see its activity rejected now. Known values are
    # matched ignoring case; anything else means "not said".
    if isinstance(value, str) and value.strip().lower() in ("agent", "bot", "system"):
        return value.strip().lower()
    return None


class ActivityEvent(Inbound):
    """What every case-activity event may say about who acted (contract addition, both optional):
    `automated` (a JSON boolean, default false) and `by` (`agent`, `bot` or `system`; absent, or
    any other value, when the CRM does not say)."""

    automated: StrictBool = False
    by: Annotated[ActedBy | None, BeforeValidator(_known_actor)] = None

    @property
    def is_automated(self) -> bool:
        """Sent by a machine (an auto-acknowledgement, a bot): `automated: true`, or `by` bot or system."""
        return self.automated or self.by in ("bot", "system")


class CaseContacted(ActivityEvent):
    type: Literal["case.contacted"]


class PromiseMade(ActivityEvent):
    type: Literal["case.promise_made"]
    promise_id: Id
    due_at: Timestamp
    description: ShortText = ""


class PromiseKept(ActivityEvent):
    type: Literal["case.promise_kept"]
    promise_id: Id


class CasePaused(ActivityEvent):
    type: Literal["case.paused"]


class CaseResumed(ActivityEvent):
    type: Literal["case.resumed"]


class CaseResolved(ActivityEvent):
    type: Literal["case.resolved"]
    resolution: Annotated[str, Field(max_length=20_000)] = ""
    root_cause: Annotated[str, Field(max_length=20_000)] | None = None
    improvement: Annotated[str, Field(max_length=20_000)] | None = None


class CaseReopened(ActivityEvent):
    type: Literal["case.reopened"]


class CustomerReturned(ActivityEvent):
    type: Literal["customer.returned"]
    customer_id: Id


class SurveyAnswered(ActivityEvent):
    """The customer answered a satisfaction survey (contract addition). Read by followup, whose
    frequency rules then leave the customer alone for `cooldown_after_response`; every other
    service ignores it. No free text: the answer's words stay in the CRM."""

    type: Literal["survey.answered"]
    customer_id: Id
    followup_id: Id | None = None  # the followup.due that invited them, when the CRM keeps it
    score: Annotated[float, Field(strict=True, ge=0, le=10, allow_inf_nan=False)] | None = None  # NPS 0-10, CSAT 1-5


CaseActivity = Annotated[
    Union[
        CaseContacted, PromiseMade, PromiseKept, CasePaused, CaseResumed,
        CaseResolved, CaseReopened, CustomerReturned, SurveyAnswered,
    ],
    Field(discriminator="type"),
]
case_activity = TypeAdapter(CaseActivity)
ACTIVITY_TYPES = (
    "case.contacted", "case.promise_made", "case.promise_kept", "case.paused", "case.resumed",
    "case.resolved", "case.reopened", "customer.returned", "survey.answered",
)


# ---------- helpdesk.complaints.classified.v1 (intake → sla, compensation, followup) ----------
Severity = Literal["low", "medium", "high", "critical"]
Temperament = Literal["calm", "upset", "irate"]
Loyalty = Literal["new", "standard", "loyal", "vip"]
PublicityRisk = Literal["low", "high"]
Priority = Literal["P1", "P2", "P3", "P4"]
Channel = Literal["phone", "email", "chat", "social", "in_person", "web", "letter"]


class Order(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Id
    amount: Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class ComplaintClassified(Outbound):
    """Published by intake; carries what downstream services need, and no names, emails or free text."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["complaint.classified"] = "complaint.classified"
    case_id: str
    causation_id: str
    customer_id: str
    source: str = ""
    category: str
    severity: Severity
    temperament: Temperament
    loyalty: Loyalty
    publicity_risk: PublicityRisk
    priority: Priority
    reasons: list[str] = []
    channel: Channel
    public: bool = False
    order: Order | None = None
    customer_timezone: str = "UTC"
    repeat_contacts: int = 0
    received_at: datetime | None = None  # when the complaint occurred at the CRM
    # Contract additions: who decided the category (crm | keywords | model | fallback), the learned
    # model's probability of its own top category (None when it did not run), and whether a person
    # should check the category (the model was unsure and no strong keyword decided).
    needs_review: bool = False
    category_decided_by: str = "keywords"
    category_confidence: float | None = None


class ComplaintRejected(Outbound):
    """A record a service could not use: reported with the reason and the original bytes."""

    type: Literal["complaint.rejected"] = "complaint.rejected"
    reason: str
    errors: list[str] = []
    topic: str
    partition: int
    offset: int
    raw: str  # the original record value, base64
    key: str | None = None  # the original record key, when there was one
    rejected_by: str  # the service that rejected it
    decision_id: str | None = None  # a refused approval answer: the decision it named


def dump(event: BaseModel) -> dict[str, Any]:
    return event.model_dump(mode="json", exclude_none=True)
