"""Events of the followup service (helpdesk.followups.v1), see shared/CONTRACT.md."""
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
