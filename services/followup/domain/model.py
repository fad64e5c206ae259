"""Facts the follow-up rules read and the plans they return; plain dataclasses, no I/O."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from services.followup.policy import FollowupChannel, FollowupKind

# Reasons a follow-up is not sent; short, fixed strings because they become metric labels.
SURVEY_WITHIN_WINDOW = "survey_within_window"
OPEN_CASE = "open_case"
IRATE_CASE_UNRESOLVED = "irate_case_unresolved"
CASE_ALREADY_SURVEYED = "case_already_surveyed"  # satisfaction_survey.once_per_case
ALREADY_SCHEDULED = "already_scheduled"
ALREADY_SENT = "already_sent"
NO_SLOT_WITHIN_MAX_DEFER = "no_slot_within_max_defer"
# Frequency rules, used both as skip reasons and as deferral reasons.
MAX_CONTACTS = "max_contacts"
MIN_GAP = "min_gap"
COOLDOWN_AFTER_SURVEY = "cooldown_after_survey"
COOLDOWN_AFTER_RESPONSE = "cooldown_after_response"


@dataclass(frozen=True)
class Contact:
    """A follow-up of this customer that was sent or is still scheduled (cancelled ones are not facts)."""

    kind: FollowupKind
    at: datetime
    case_id: str = ""
    pending: bool = False


@dataclass(frozen=True)
class CustomerCase:
    """Another case of the same customer, as far as surveys care."""

    case_id: str
    open: bool
    irate: bool = False


@dataclass(frozen=True)
class CustomerFacts:
    customer_id: str
    timezone: str = "UTC"
    loyalty: str = "standard"
    contacts: tuple[Contact, ...] = ()
    survey_responses: tuple[datetime, ...] = ()  # when the customer answered a survey (survey.answered)
    cases: tuple[CustomerCase, ...] = ()  # the customer's cases other than the one being resolved


@dataclass(frozen=True)
class ResolvedCase:
    case_id: str
    resolved_at: datetime
    improvement: bool = False  # the resolution names a process change


@dataclass(frozen=True)
class PlannedFollowup:
    kind: FollowupKind
    case_id: str
    customer_id: str
    due_at: datetime  # UTC
    channel: FollowupChannel
    reason: str  # why it is due then, for the scheduled event and the audit trail
    deferred_by: tuple[str, ...] = ()  # frequency rules or quiet hours that moved it


@dataclass(frozen=True)
class SkippedFollowup:
    kind: FollowupKind
    case_id: str
    customer_id: str
    would_have_been_due: datetime
    channel: FollowupChannel
    reason: str  # one of the reason constants above


@dataclass
class FollowupPlan:
    planned: list[PlannedFollowup] = field(default_factory=list)
    skipped: list[SkippedFollowup] = field(default_factory=list)


@dataclass(frozen=True)
class PendingFollowup:
    """A scheduled follow-up not yet due, as the store holds it."""

    followup_id: str
    kind: FollowupKind
    case_id: str
    customer_id: str
    due_at: datetime
    channel: FollowupChannel


@dataclass(frozen=True)
class CategoryCase:
    """A recent case of some customer, candidate for hearing about an improvement."""

    customer_id: str
    case_id: str
    category: str
    received_at: datetime
