"""The SLA policy (`config/sla.yaml`): targets per priority, warnings, escalations and calendars.

Load it only through `shared.policy` (`load_policy` / `PolicyHolder`) so that a broken edit is
refused with file, line and field and the last good policy stays in force.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, PrivateAttr, ValidationInfo,
    field_validator,
)

from shared.durations import Duration, format_duration, parse_duration
from shared.events import Priority

PRIORITIES: tuple[Priority, ...] = ("P1", "P2", "P3", "P4")
ALWAYS_OPEN = "24x7"
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class BusinessDays:
    """A target like "1 business day": by the same point of the working day, n working days later."""

    days: int

    def __str__(self) -> str:
        return f"{self.days} business day{'s' if self.days != 1 else ''}"


_BUSINESS_DAYS = re.compile(r"^\s*(\d+)\s*(?:bd|business\s*days?)\s*$", re.IGNORECASE)


def parse_target(value: object) -> timedelta | BusinessDays:
    if isinstance(value, (timedelta, BusinessDays)):
        return value
    if isinstance(value, str) and (match := _BUSINESS_DAYS.match(value)):
        days = int(match.group(1))
        if days < 1:
            raise ValueError("a target in business days must be at least 1 business day")
        return BusinessDays(days)
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError("a target must be longer than zero")
    return duration


def _format_target(value: timedelta | BusinessDays) -> str:
    return str(value) if isinstance(value, BusinessDays) else format_duration(value)


Target = Annotated[
    Union[timedelta, BusinessDays],
    PlainValidator(parse_target),
    PlainSerializer(_format_target, return_type=str),
]
"""A clock's target: business time (`15m`, `4h`, `3d`) or whole business days (`1 business day`)."""


class ClockTargets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    first_contact: Target
    update: Target
    resolution: Target


DEFAULT_TARGETS: dict[str, ClockTargets] = {
    "P1": ClockTargets(first_contact=timedelta(minutes=15), update=timedelta(hours=2), resolution=timedelta(hours=4)),
    "P2": ClockTargets(first_contact=timedelta(hours=1), update=timedelta(hours=4), resolution=timedelta(days=1)),
    "P3": ClockTargets(first_contact=timedelta(hours=4), update=timedelta(days=1), resolution=timedelta(days=3)),
    "P4": ClockTargets(first_contact=BusinessDays(1), update=timedelta(days=2), resolution=timedelta(days=5)),
}


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True, order=True)
class HoursRange:
    """Working hours within one local day, in minutes after midnight; `end` may be 24:00."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


def parse_hours_range(value: object) -> HoursRange:
    if isinstance(value, HoursRange):
        return value
    match = _RANGE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("working hours are written like '09:00-17:00'")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{value!r} is not a time of day (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start >= end:
        raise ValueError(f"{value!r}: the start must be before the end (ranges cannot cross midnight)")
    return HoursRange(start, end)


Hours = Annotated[HoursRange, PlainValidator(parse_hours_range), PlainSerializer(str, return_type=str)]


def _in_order_without_overlap(ranges: list[HoursRange]) -> list[HoursRange]:
    ordered = sorted(ranges)
    for earlier, later in zip(ordered, ordered[1:]):
        if later.start < earlier.end:
            raise ValueError(f"working hours {earlier} and {later} overlap")
    return ordered


DayHours = Annotated[list[Hours], AfterValidator(_in_order_without_overlap)]


class AlwaysOpen(BaseModel):
    """24x7: every second counts; a deadline is plain addition."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["24x7"] = "24x7"


class BusinessHours(BaseModel):
    """Working hours per weekday in one IANA zone; holidays are local dates that do not count."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["business_hours"]
    timezone: str
    hours: dict[Weekday, DayHours]
    holidays: list[date] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name like 'America/New_York'") from None
        return value

    @field_validator("hours")
    @classmethod
    def _some_working_time(cls, value: dict[str, list[HoursRange]]) -> dict[str, list[HoursRange]]:
        if not any(value.values()):
            raise ValueError("a business-hours calendar needs working hours on at least one weekday")
        return value

    # The UTC working intervals of each local day, once computed (services/sla/calendar.py): the
    # zone arithmetic was the sla service's hottest path. Per calendar object, so a policy reload
    # starts afresh.
    _intervals_by_day: dict[date, tuple[tuple[datetime, datetime], ...]] = PrivateAttr(default_factory=dict)

    @property
    def intervals_by_day(self) -> dict[date, tuple[tuple[datetime, datetime], ...]]:
        return self._intervals_by_day

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ranges_on(self, day: date) -> list[HoursRange]:
        if day in self.holidays:
            return []
        return self.hours.get(WEEKDAYS[day.weekday()], [])


Calendar = Annotated[Union[AlwaysOpen, BusinessHours], Field(discriminator="type")]


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: Duration  # business time after the breach, on the clock's calendar
    notify: Annotated[str, Field(min_length=1, max_length=100)]  # a role, e.g. team_lead


class CalendarChoice(BaseModel):
    """Which calendar a clock runs on: by source (wins), then by priority, then the default."""

    model_config = ConfigDict(extra="forbid")

    default: str = ALWAYS_OPEN
    by_priority: dict[Priority, str] = {}
    by_source: dict[str, Union[str, dict[Priority, str]]] = {}

    def names(self) -> set[str]:
        names = {self.default, *self.by_priority.values()}
        for choice in self.by_source.values():
            names.update([choice] if isinstance(choice, str) else choice.values())
        return names


class SlaPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: dict[Priority, ClockTargets] = Field(default_factory=lambda: dict(DEFAULT_TARGETS))
    warnings: list[float] = [0.5, 0.75]
    escalations: list[EscalationLevel] = []
    calendars: dict[str, Calendar] = Field(default_factory=lambda: {ALWAYS_OPEN: AlwaysOpen()}, validate_default=True)
    calendar: CalendarChoice = Field(default_factory=CalendarChoice, validate_default=True)

    @field_validator("targets")
    @classmethod
    def _fill_missing_priorities(cls, value: dict[str, ClockTargets]) -> dict[str, ClockTargets]:
        return {p: value.get(p, DEFAULT_TARGETS[p]) for p in PRIORITIES}

    @field_validator("warnings")
    @classmethod
    def _shares_of_the_target(cls, value: list[float]) -> list[float]:
        for share in value:
            if not 0 < share < 1:
                raise ValueError(f"warning threshold {share} must be a share of the target between 0 and 1, e.g. 0.75")
        if len(set(value)) != len(value):
            raise ValueError("warning thresholds must not repeat")
        return sorted(value)

    @field_validator("escalations")
    @classmethod
    def _levels_in_order(cls, value: list[EscalationLevel]) -> list[EscalationLevel]:
        for lower, higher in zip(value, value[1:]):
            if higher.after <= lower.after:
                raise ValueError("escalation levels must come later one after another ('after' increasing)")
        return value

    @field_validator("calendars")
    @classmethod
    def _always_open_is_built_in(cls, value: dict[str, AlwaysOpen | BusinessHours]) -> dict[str, AlwaysOpen | BusinessHours]:
        return {ALWAYS_OPEN: AlwaysOpen(), **value}

    @field_validator("calendar")
    @classmethod
    def _calendars_exist(cls, value: CalendarChoice, info: ValidationInfo) -> CalendarChoice:
        if "calendars" not in info.data:
            return value  # the calendars themselves are wrong: that error says enough
        defined = set(info.data["calendars"])
        unknown = sorted(value.names() - defined)
        if unknown:
            raise ValueError(f"calendar {', '.join(unknown)} is not defined under 'calendars'")
        return value

    def calendar_name(self, priority: str, source: str = "") -> str:
        choice = self.calendar.by_source.get(source) if source else None
        if isinstance(choice, str):
            return choice
        if isinstance(choice, dict) and priority in choice:
            return choice[priority]
        return self.calendar.by_priority.get(priority, self.calendar.default)

    def calendar_named(self, name: str) -> AlwaysOpen | BusinessHours:
        # A clock armed under an older policy may name a calendar since removed: count every second.
        return self.calendars.get(name) or AlwaysOpen()
