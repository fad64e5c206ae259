"""The follow-up policy (config/followup.yaml): what to send after a complaint is resolved, and when.

Every duration is a `Span`: written like a `shared.durations.Duration` (`30s`, `15m`, `4h`, `2d`,
`1w`, `1h30m`), so a test policy can say `3s` where the real one says `1d`, but it remembers its
calendar days: `3d` is three days on the customer's calendar at the same local clock time, `72h`
is 72 hours of elapsed time (see `domain.localtime.after`). Load the policy only through
`shared.policy` (file:line errors, last good policy kept).
"""
from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Literal

from pydantic import (
    BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, PlainValidator, field_validator, model_validator,
)

from shared.durations import format_duration, parse_duration
from shared.events import Loyalty

# The kinds of follow-up this policy configures, and the channels they go out on (the contract's
# `kind` and `channel`, services/followup/contract.py re-exports them). Here, not in the contract,
# so the domain and the policy read them without importing the contract.
FollowupKind = Literal["thank_you_note", "retention_checkin", "satisfaction_survey", "improvement_notice"]
FOLLOWUP_KINDS: tuple[FollowupKind, ...] = (
    "thank_you_note", "retention_checkin", "satisfaction_survey", "improvement_notice",
)
# `mail` is a handwritten note an agent writes and posts; the others are sent by the CRM.
FollowupChannel = Literal["email", "mail", "sms", "phone"]

_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAY_PART = re.compile(r"(\d+(?:\.\d+)?)(d|w)(?![a-z])")


class Span(timedelta):
    """A policy duration that remembers its whole calendar days (the `d` and `w` parts it was written with).

    Equal to the `timedelta` of its nominal length (`3d` == timedelta(days=3)), so it reads as one;
    but `3d` and `72h` are different spans: the first is 3 days on the customer's calendar at the
    same local clock time, the second 72 elapsed hours. RFC 5545 section 3.3.6 makes the same cut
    (a day is nominal, an hour exact). A plain `timedelta` given in code counts as elapsed time.
    """

    __slots__ = ("calendar_days",)
    calendar_days: int

    def __new__(cls, calendar_days: int = 0, elapsed: timedelta = timedelta(0)) -> "Span":
        total = timedelta(days=calendar_days) + elapsed
        self = super().__new__(cls, total.days, total.seconds, total.microseconds)
        self.calendar_days = calendar_days
        return self

    @property
    def elapsed(self) -> timedelta:
        """The part that is elapsed time (hours, minutes, seconds), added after the calendar days."""
        return timedelta(self.days, self.seconds, self.microseconds) - timedelta(days=self.calendar_days)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Span) and other.calendar_days != self.calendar_days:
            return False
        return timedelta.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = timedelta.__hash__

    def __reduce__(self) -> tuple[type, tuple[int, timedelta]]:
        return type(self), (self.calendar_days, self.elapsed)

    def __repr__(self) -> str:
        return f"Span({format_span(self)!r})"


def parse_span(value: object) -> Span:
    """`2d` → 2 calendar days, `36h` → 36 elapsed hours, `1d12h` → both; a bare number is seconds.

    Whole days of `d`/`w` parts are calendar days; a fraction of a day (`1.5d`) is elapsed time.
    Raises ValueError (with `shared.durations`' message) for anything else; a plain `timedelta`
    is taken as elapsed time.
    """
    if isinstance(value, Span):
        return value
    total = parse_duration(value)
    days = 0.0
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        days = sum(float(n) * (7 if unit == "w" else 1) for n, unit in _DAY_PART.findall(text))
    whole = int(days)
    return Span(whole, total - timedelta(days=whole))


def format_span(span: timedelta) -> str:
    """The policy text of a span: calendar days as `Nd`, elapsed time never folded into days."""
    whole = getattr(span, "calendar_days", 0)
    rest = span - timedelta(days=whole)
    parts = [f"{whole}d"] if whole else []
    if rest or not parts:
        parts.append(_elapsed_text(rest))
    return "".join(parts)


def _elapsed_text(rest: timedelta) -> str:
    seconds = int(rest.total_seconds())
    if seconds and seconds % 86400 == 0:
        return f"{seconds // 3600}h"  # 72 elapsed hours stay "72h", never "3d"
    return format_duration(rest)


def days(n: int) -> Span:
    """`n` calendar days, as a policy file's `{n}d` reads (the defaults below)."""
    return Span(n)


Duration = Annotated[timedelta, PlainValidator(parse_span), PlainSerializer(format_span, return_type=str)]


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
    zone on the local day reached by adding `delay` to the resolution. `local_time: null` makes it
    due `delay` after the resolution (calendar days at the same local clock time, hours elapsed:
    what a test policy in seconds uses). A `local_time` left out of the file keeps its default,
    10:00, like every other key: only an explicit null turns the clock time off."""

    enabled: bool = True
    delay: Duration = days(1)
    local_time: LocalTime | None = time(10, 0)
    channel: FollowupChannel = "email"
    # A handwritten note for the customers who earned one.
    channel_by_loyalty: dict[Loyalty, FollowupChannel] = Field(default_factory=lambda: {"loyal": "mail", "vip": "mail"})

    def channel_for(self, loyalty: str) -> FollowupChannel:
        return self.channel_by_loyalty.get(loyalty, self.channel)  # type: ignore[call-overload]


class RetentionCheckin(_Section):
    enabled: bool = True
    cadence: list[Duration] = Field(
        default_factory=lambda: [days(7), days(30), days(90)]
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
    after: Duration = days(3)
    # Never more than one survey per customer within this rolling window, across all their cases.
    window: Duration = days(30)
    channel: FollowupChannel = "email"
    # One survey per case, however often it is reopened and resolved again, as ServiceNow documents
    # for its case surveys ("a second survey cannot be generated even if a case is reopened and
    # closed again") and Gorgias for its tickets ("only one satisfaction survey per ticket").
    once_per_case: bool = True


class FrequencyRules(_Section):
    """Contact-frequency rules in the manner of Qualtrics' and Medallia's contact frequency rules."""

    max_contacts: int = Field(4, ge=1, le=1000)
    period: Duration = days(30)
    min_gap: Duration = days(2)
    cooldown_after_survey: Duration = days(3)
    cooldown_after_response: Duration = days(14)
    on_violation: Literal["defer", "skip"] = "defer"
    # A deferral that finds no slot within this is a skip: a check-in three months late helps nobody.
    max_defer: Duration = days(30)
    exempt: list[FollowupKind] = Field(default_factory=lambda: ["thank_you_note"])


class ImprovementNotice(_Section):
    enabled: bool = True
    delay: Duration = days(1)
    channel: FollowupChannel = "email"
    notify_same_category_customers: bool = False
    # "Other customers with a case in the same category in the last N days".
    lookback: Duration = days(90)


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
