"""The SLA policy (`config/sla.yaml`): targets per priority, warnings, escalations and calendars.

Load it only through `shared.policy` (`load_policy` / `PolicyHolder`) so that a broken edit is
refused with file, line and field and the last good policy stays in force.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, PrivateAttr, ValidationError,
    ValidationInfo, field_validator, model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from shared.durations import Duration, format_duration, parse_duration, written_in_days
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
MAX_BUSINESS_DAYS = 260
"""The most business days a target may give: a year of Monday-to-Friday working days (52 × 5),
in step with `shared.durations.MAX_DURATION` (365 days) for targets written as durations."""


def parse_target(value: object) -> timedelta | BusinessDays:
    """A clock's target: whole business days (`3bd`, `3 business days`, 1 to `MAX_BUSINESS_DAYS`)
    or a duration longer than zero (`shared.durations.parse_duration`, at most `MAX_DURATION`).
    Raises ValueError naming the accepted forms, or the bound a value exceeds."""
    if isinstance(value, (timedelta, BusinessDays)):
        return value
    if isinstance(value, str) and (match := _BUSINESS_DAYS.match(value)):
        digits = match.group(1).lstrip("0") or "0"
        if len(digits) > len(str(MAX_BUSINESS_DAYS)) or int(digits) > MAX_BUSINESS_DAYS:  # no int() of 5,000 digits
            raise ValueError(f"target {value.strip()[:40]!r} is too long: at most {MAX_BUSINESS_DAYS} business days "
                             f"(a year of working days)")
        days = int(digits)
        if days < 1:
            raise ValueError("a target in business days must be at least 1 business day")
        return BusinessDays(days)
    try:
        duration = parse_duration(value)
    except ValueError as exc:  # a target has one more form than other durations: say so
        raise ValueError(f"{exc}; a target may also be whole business days: '3bd' or '3 business days'") from None
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


CALENDAR_SEARCH_DAYS = 3660
"""How far ahead the business-time arithmetic (`services/sla/domain/calendar.py`, its `_SEARCH_DAYS`)
looks for working time before it gives up with `NoWorkingTime`: ten years. Kept in step by a test."""
_SURE_WEEKS = (CALENDAR_SEARCH_DAYS - 2) // 7  # whole weeks surely searched after a clock's first day (522)
# Spring-forward nights may take working time from those weeks: at most one gap a year, at most 2 hours.
_CLOCK_CHANGES = timedelta(hours=2) * (CALENDAR_SEARCH_DAYS // 365 + 1)


_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True, order=True)
class HoursRange:
    """One shift of a local day, in minutes after that day's midnight; `end` may be 24:00 (1440).

    A shift that crosses midnight (`21:00-02:00`) belongs to the day it starts: its `end` is past
    1440 (02:00 the next day is 1560), and that day's weekday and holidays decide whether it is worked.
    """

    start: int
    end: int

    @property
    def crosses_midnight(self) -> bool:
        return self.end > MINUTES_PER_DAY

    def __str__(self) -> str:
        end = self.end - MINUTES_PER_DAY if self.crosses_midnight else self.end
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def parse_hours_range(value: object) -> HoursRange:
    """`HH:MM-HH:MM` local wall-clock times; an end before the start is the next day's (a night
    shift), `24:00` is midnight at the end of the day. Raises ValueError otherwise (also for an end
    equal to the start)."""
    if isinstance(value, HoursRange):
        return value
    match = _RANGE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError("working hours are written like '09:00-17:00' (or '21:00-02:00' across midnight)")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        raise ValueError(f"{value!r} is not a time of day (00:00 to 24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"{value!r}: the start and the end must differ (a whole day is '00:00-24:00')")
    if end < start:
        end += MINUTES_PER_DAY  # crosses midnight: ends on the next day
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

    @field_validator("hours")
    @classmethod
    def _night_shifts_end_before_the_next_day_starts(cls, value: dict[str, list[HoursRange]]) -> dict[str, list[HoursRange]]:
        for n, day in enumerate(WEEKDAYS):
            following = WEEKDAYS[(n + 1) % 7]
            for late in value.get(day, []):
                spill = late.end - MINUTES_PER_DAY
                clash = next((early for early in value.get(following, []) if early.start < spill), None)
                if clash is not None:
                    raise ValueError(f"working hours {day} {late} and {following} {clash} overlap")
        return value

    def weekly_hours(self) -> tuple[timedelta, int]:
        """Working time in a week without holidays, and how many weekdays are worked (for advice)."""
        ranges = [r for day in self.hours.values() for r in day]
        return timedelta(minutes=sum(r.end - r.start for r in ranges)), sum(1 for day in self.hours.values() if day)

    def reachable_working_time(self) -> timedelta:
        """The most working time a clock on this calendar may need, its target and escalation delays
        together: what the calendar arithmetic surely finds within its search horizon
        (`CALENDAR_SEARCH_DAYS`), whatever day the clock starts, less what clock changes may take.
        Holidays are not counted (a holiday list covering years is met at run time, see
        `services/sla/service.py`)."""
        week, _ = self.weekly_hours()
        return max(timedelta(0), week * _SURE_WEEKS - _CLOCK_CHANGES)

    def most_working_time(self, target: timedelta | BusinessDays) -> timedelta:
        """An upper bound of the working time `target` counts on this calendar: a duration is itself;
        n business days span at most ceil(n / worked weekdays) + 1 weeks of working hours."""
        if not isinstance(target, BusinessDays):
            return target
        week, worked_days = self.weekly_hours()
        return week * (-(-target.days // max(worked_days, 1)) + 1)

    # The UTC working intervals of each local day, once computed (services/sla/domain/calendar.py): the
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

    def names_for(self, priority: str) -> set[str]:
        """Every calendar a clock of this priority may run on, whatever its source."""
        names = {self.by_priority.get(priority, self.default)}  # sources not listed, and priorities a source leaves out
        for choice in self.by_source.values():
            if isinstance(choice, str):
                names.add(choice)
            elif priority in choice:
                names.add(choice[priority])
        return names


PolicyNote = tuple[tuple[str | int, ...], str]
"""Advice on a valid policy: the field's path (as in errors) and the message."""


def _written_in_days(data: object) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Paths and texts of the targets and escalation delays the raw policy writes in days or weeks."""
    if not isinstance(data, Mapping):
        return
    targets = data.get("targets")
    for priority, clocks in targets.items() if isinstance(targets, Mapping) else ():
        for clock, text in clocks.items() if isinstance(clocks, Mapping) else ():
            if written_in_days(text):
                yield ("targets", priority, clock), text
    escalations = data.get("escalations")
    for n, level in enumerate(escalations if isinstance(escalations, list) else ()):
        if isinstance(level, Mapping) and written_in_days(level.get("after")):
            yield ("escalations", n, "after"), level["after"]


def _hours(amount: timedelta) -> str:
    return f"{amount / timedelta(hours=1):g}h"


def _beyond_reach(what: str, needed: timedelta, name: str, calendar: BusinessHours, shorten: str) -> str:
    """The message for a clock that would need more working time than its calendar gives in ten years."""
    week, _ = calendar.weekly_hours()
    reach = calendar.reachable_working_time()
    return (f"{what} needs {_hours(needed)} of working time, but calendar {name} works {_hours(week)} a week: "
            f"at most {_hours(reach)} within the {CALENDAR_SEARCH_DAYS // 366} years the sla service looks ahead "
            f"for a deadline. {shorten} (to at most {_hours(reach)} on this calendar) or give {name} more "
            f"working hours")


def _days_advice(text: str, offices: dict[str, BusinessHours], *, business_days_allowed: bool) -> str:
    """E.g. "'3d' counts 72 working hours on business-hours calendar us_office (about 11 of its
    working days), not 3 calendar days: write '3bd' for 3 business days, or '72h' to keep 72 working hours"."""
    duration = parse_duration(text)
    hours = f"{duration / timedelta(hours=1):g}"
    spans = []
    for name, office in offices.items():
        week, worked_days = office.weekly_hours()
        spans.append(f"{name} (about {duration / (week / worked_days):.0f} of its working days)")
    days = duration / timedelta(days=1)
    advice = (f"{text!r} counts {hours} working hours on business-hours calendar {' and '.join(spans)}, "
              f"not {days:g} calendar day{'s' * (days != 1)}: ")
    if business_days_allowed and days == int(days) and "w" not in text.lower():  # a week of 7bd is not what was meant
        advice += f"write '{int(days)}bd' for {int(days)} business day{'s' * (days != 1)}, or "
    return advice + f"write '{hours}h' to keep {hours} working hours"


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

    @model_validator(mode="after")
    def _targets_within_reach(self) -> SlaPolicy:
        """Refuses a target, or an escalation delay on top of one, that its calendar cannot reach:
        the deadline arithmetic looks `CALENDAR_SEARCH_DAYS` ahead, and past that it would stop the
        sla consumer (`365d` on a calendar open an hour a week is some 168 years). Each error names
        the target's or the escalation's field, so its file and line."""
        errors: dict[tuple[str | int, ...], str] = {}
        for priority in PRIORITIES:
            for name in sorted(self.calendar.names_for(priority)):
                calendar = self.calendars.get(name)
                if not isinstance(calendar, BusinessHours):
                    continue
                reach = calendar.reachable_working_time()
                for kind in ("first_contact", "update", "resolution"):
                    target = getattr(self.targets[priority], kind)
                    needed = calendar.most_working_time(target)
                    written = str(target) if isinstance(target, BusinessDays) else _hours(target)
                    what = f"{priority} {kind} target {written}"
                    if needed > reach:
                        errors.setdefault(("targets", priority, kind),
                                          _beyond_reach(what, needed, name, calendar, "Shorten the target"))
                        continue
                    late = next((n for n, level in enumerate(self.escalations) if needed + level.after > reach), None)
                    if late is not None:
                        after = self.escalations[late].after
                        errors.setdefault(("escalations", late, "after"), _beyond_reach(
                            f"escalation after {_hours(after)} on top of the {what}", needed + after, name,
                            calendar, "Shorten the delay or the target, together"))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError("beyond_calendar", message), loc=loc, input=None)
                for loc, message in errors.items()
            ])
        return self

    # Paths and texts of durations written in days or weeks (see load_warnings), from the raw file.
    _in_days: dict[tuple[str | int, ...], str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _remember_durations_in_days(cls, data: Any, handler: Any) -> SlaPolicy:
        policy = handler(data)
        policy._in_days = dict(_written_in_days(data))
        return policy

    def load_warnings(self) -> list[PolicyNote]:
        """Advice, not errors: each target or escalation delay written in days or weeks (`3d`, `1w`)
        that counts on a business-hours calendar. There `3d` is 72 working hours, some 9 to 11
        working days of a 9-to-5 office, and admins read it as three days (issue 12): say `3bd`
        (business days) or `72h`. Logged by the sla service at load; printed by `helpdesk policy validate`."""
        notes: list[PolicyNote] = []
        for loc, text in self._in_days.items():
            names = self.calendar.names() if loc[0] == "escalations" else self.calendar.names_for(str(loc[1]))
            offices = {n: c for n in sorted(names) if isinstance(c := self.calendars.get(n), BusinessHours)}
            if offices:
                notes.append((loc, _days_advice(text, offices, business_days_allowed=loc[0] == "targets")))
        return notes

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
