"""The follow-up policy (config/followup.yaml): what to send after a complaint is resolved, and when.

Every duration is a `shared.durations.Duration`, so a test policy can say `3s` where the real one
says `1d`. Load it only through `shared.policy` (file:line errors, last good policy kept).
"""
from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator, model_validator

from services.followup.contract import FollowupChannel, FollowupKind
from shared.durations import Duration
from shared.events import Loyalty

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _parse_local_time(value: object) -> time:
    # Text only: a YAML 1.1 reader turns an unquoted 10:00 into the number 600, never a time.
    if isinstance(value, time):
        return value
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError('a local clock time "HH:MM" (24-hour) like "10:00" or "7:30" is expected')
    return time(int(match.group(1)), int(match.group(2)))


LocalTime = Annotated[time, BeforeValidator(_parse_local_time), PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ThankYouNote(_Section):
    """The note the day after. With `local_time` the note is due at that clock time in the customer's
    zone on the local day reached by adding `delay` to the resolution; without it, exactly `delay`
    after the resolution (what a test policy in seconds uses)."""

    enabled: bool = True
    delay: Duration = timedelta(days=1)
    local_time: LocalTime | None = time(10, 0)
    channel: FollowupChannel = "email"
    # A handwritten note for the customers who earned one.
    channel_by_loyalty: dict[Loyalty, FollowupChannel] = Field(default_factory=lambda: {"loyal": "mail", "vip": "mail"})

    def channel_for(self, loyalty: str) -> FollowupChannel:
        return self.channel_by_loyalty.get(loyalty, self.channel)  # type: ignore[call-overload]


class RetentionCheckin(_Section):
    enabled: bool = True
    cadence: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=7), timedelta(days=30), timedelta(days=90)]
    )
    channel: FollowupChannel = "email"

    @field_validator("cadence")
    @classmethod
    def _ascending(cls, cadence: list[timedelta]) -> list[timedelta]:
        if any(later <= earlier for earlier, later in zip(cadence, cadence[1:])):
            raise ValueError("cadence steps must be strictly increasing, e.g. [7d, 30d, 90d]")
        return cadence

    @model_validator(mode="after")
    def _has_steps(self) -> "RetentionCheckin":
        if self.enabled and not self.cadence:
            raise ValueError("cadence needs at least one step when retention check-ins are enabled")
        return self


class SatisfactionSurvey(_Section):
    enabled: bool = True
    after: Duration = timedelta(days=3)
    # Never more than one survey per customer within this rolling window, across all their cases.
    window: Duration = timedelta(days=30)
    channel: FollowupChannel = "email"


class FrequencyRules(_Section):
    """Contact-frequency rules in the manner of Qualtrics' and Medallia's contact frequency rules."""

    max_contacts: int = Field(4, ge=1, le=1000)
    period: Duration = timedelta(days=30)
    min_gap: Duration = timedelta(days=2)
    cooldown_after_survey: Duration = timedelta(days=3)
    cooldown_after_response: Duration = timedelta(days=14)
    on_violation: Literal["defer", "skip"] = "defer"
    # A deferral that finds no slot within this is a skip: a check-in three months late helps nobody.
    max_defer: Duration = timedelta(days=30)
    exempt: list[FollowupKind] = Field(default_factory=lambda: ["thank_you_note"])


class ImprovementNotice(_Section):
    enabled: bool = True
    delay: Duration = timedelta(days=1)
    channel: FollowupChannel = "email"
    notify_same_category_customers: bool = False
    # "Other customers with a case in the same category in the last N days".
    lookback: Duration = timedelta(days=90)


class QuietHours(_Section):
    enabled: bool = True
    start: LocalTime = time(21, 0)
    end: LocalTime = time(8, 0)
    # A posted note wakes nobody: its due time is when an agent writes it.
    exempt_channels: list[FollowupChannel] = Field(default_factory=lambda: ["mail"])

    @model_validator(mode="after")
    def _non_empty(self) -> "QuietHours":
        if self.enabled and self.start == self.end:
            raise ValueError("start and end are equal: set enabled: false for no quiet hours")
        return self


class FollowupPolicy(_Section):
    thank_you_note: ThankYouNote = Field(default_factory=ThankYouNote)
    retention_checkin: RetentionCheckin = Field(default_factory=RetentionCheckin)
    satisfaction_survey: SatisfactionSurvey = Field(default_factory=SatisfactionSurvey)
    frequency: FrequencyRules = Field(default_factory=FrequencyRules)
    improvement_notice: ImprovementNotice = Field(default_factory=ImprovementNotice)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
