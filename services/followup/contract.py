"""Events of the followup service (helpdesk.followups.v1), see docs/contract.md."""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from shared.events import Outbound

FollowupKind = Literal["thank_you_note", "retention_checkin", "satisfaction_survey", "improvement_notice"]
FOLLOWUP_KINDS: tuple[FollowupKind, ...] = (
    "thank_you_note", "retention_checkin", "satisfaction_survey", "improvement_notice",
)
# `mail` is a handwritten note an agent writes and posts; the others are sent by the CRM.
FollowupChannel = Literal["email", "mail", "sms", "phone"]


class FollowupEvent(Outbound):
    case_id: str
    followup_id: str
    customer_id: str
    kind: FollowupKind
    due_at: datetime
    channel: FollowupChannel


class FollowupScheduled(FollowupEvent):
    type: Literal["followup.scheduled"] = "followup.scheduled"
    reason: str = ""  # why it is due then, e.g. "retention check-in +30d, deferred: min_gap"


class FollowupDue(FollowupEvent):
    type: Literal["followup.due"] = "followup.due"


class FollowupCancelled(FollowupEvent):
    type: Literal["followup.cancelled"] = "followup.cancelled"
    reason: str = ""  # customer_returned | case_reopened | skipped_at_due:<rule>


# Why a follow-up is not sent (the constants of services/followup/domain/model.py).
SKIP_REASONS: tuple[str, ...] = (
    "open_case", "irate_case_unresolved", "survey_within_window", "case_already_surveyed", "already_scheduled",
    "already_sent", "no_slot_within_max_defer", "max_contacts", "min_gap", "cooldown_after_survey",
    "cooldown_after_response",
)
SkippedWhen = Literal["planning", "due"]


class FollowupSkipped(FollowupEvent):
    """Contract addition: a follow-up the rules decided not to send, so the CRM knows the customer
    will not hear from us this way (e.g. no survey while another case of theirs is open).

    `reason` is one of SKIP_REASONS; `due_at` is when it would have been due (UTC). `skipped_when`
    is `planning` (decided when the case was resolved: it was never scheduled) or `due` (decided
    when it fell due: its earlier `followup.scheduled` is also closed by a `followup.cancelled` with
    reason `skipped_at_due:<reason>`, as before this event existed).
    """

    type: Literal["followup.skipped"] = "followup.skipped"
    reason: str
    skipped_when: SkippedWhen = "planning"


class FollowupsTopicEvent(FollowupEvent):
    """The shape of every event on helpdesk.followups.v1 (for the AsyncAPI spec and readers):
    `reason` is on scheduled, cancelled and skipped events, `skipped_when` on skipped ones."""

    type: Literal["followup.scheduled", "followup.due", "followup.cancelled", "followup.skipped"]
    reason: str | None = None
    skipped_when: SkippedWhen | None = None
