"""Business-time arithmetic: deadlines and elapsed time on a 24x7 or business-hours calendar.

Pure functions over aware datetimes. Working hours are wall-clock times in the calendar's IANA zone
(zoneinfo), so a DST change moves them with the local clock; all arithmetic on instants is done in
UTC so that a 23- or 25-hour day is counted as it really was.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone

from dateutil import tz

from services.sla.policy import AlwaysOpen, BusinessDays, BusinessHours, HoursRange

AnyCalendar = AlwaysOpen | BusinessHours
ZERO = timedelta(0)
# A calendar whose every working day is a holiday would loop for ever; ten years is a plenty.
_SEARCH_DAYS = 3660


class NoWorkingTime(ValueError):
    """The calendar has no working hours within the search horizon."""


def _utc(instant: datetime) -> datetime:
    # Aware arithmetic within one zone is wall-clock arithmetic in Python: work in UTC only.
    if instant.tzinfo is None:
        raise ValueError("business-time arithmetic needs aware datetimes")
    return instant.astimezone(timezone.utc)


def _local_instant(day: date, minutes: int, calendar: BusinessHours) -> datetime:
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)  # 24:00 becomes next midnight
    local = wall.replace(tzinfo=calendar.zone)
    # 02:30 on a spring-forward night does not exist: opening hours then start when the clock jumps.
    return tz.resolve_imaginary(local).astimezone(timezone.utc)


def _day_intervals(day: date, calendar: BusinessHours) -> tuple[tuple[datetime, datetime], ...]:
    known = calendar.intervals_by_day.get(day)
    if known is None:
        ranges: list[HoursRange] = calendar.ranges_on(day)
        known = tuple((_local_instant(day, r.start, calendar), _local_instant(day, r.end, calendar)) for r in ranges)
        calendar.intervals_by_day[day] = known
    return known


def working_intervals(start: datetime, calendar: BusinessHours) -> Iterator[tuple[datetime, datetime]]:
    """UTC intervals of working time that end after `start`, in order (the first may begin before it)."""
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    for _ in range(_SEARCH_DAYS):
        for opening, closing in _day_intervals(day, calendar):
            if closing > start:
                yield opening, closing
        day += timedelta(days=1)
    raise NoWorkingTime(f"no working hours within {_SEARCH_DAYS} days after {start.isoformat()}")


def add_business_time(start: datetime, duration: timedelta, calendar: AnyCalendar) -> datetime:
    """The earliest instant at which `duration` of working time has passed since `start`."""
    start = _utc(start)
    if isinstance(calendar, AlwaysOpen):
        return start + duration
    if duration <= ZERO:
        return start
    remaining = duration
    for opening, closing in working_intervals(start, calendar):
        begin = max(opening, start)
        available = closing - begin
        if remaining <= available:
            return begin + remaining
        remaining -= available
    raise AssertionError("unreachable: working_intervals raises when it runs out")


def business_time_between(earlier: datetime, later: datetime, calendar: AnyCalendar) -> timedelta:
    """Working time between two instants; zero when `later` is not after `earlier`."""
    earlier, later = _utc(earlier), _utc(later)
    if later <= earlier:
        return ZERO
    if isinstance(calendar, AlwaysOpen):
        return later - earlier
    total = ZERO
    for opening, closing in working_intervals(earlier, calendar):
        if opening >= later:
            break
        total += min(closing, later) - max(opening, earlier)
    return total


def add_business_days(start: datetime, days: int, calendar: AnyCalendar) -> datetime:
    """The same point of the working day, `days` working days later ("by this time next business day").

    A start outside working hours counts from the next opening, so a complaint on Friday evening is
    due at the end of Monday for one business day. When the target day is shorter, its close is used.
    """
    start = _utc(start)
    if isinstance(calendar, AlwaysOpen):
        return start + timedelta(days=days)
    first_opening, _ = next(working_intervals(start, calendar))
    effective_start = max(first_opening, start)
    start_day = effective_start.astimezone(calendar.zone).date()
    day_opening = _day_intervals(start_day, calendar)[0][0]
    into_the_day = business_time_between(day_opening, effective_start, calendar)
    target_day = start_day
    for _ in range(days):
        target_day = _next_working_day(target_day, calendar)
    day = _day_intervals(target_day, calendar)
    day_length = sum((closing - opening for opening, closing in day), ZERO)
    target = add_business_time(day[0][0], min(into_the_day, day_length), calendar)
    # The end of one working day and the start of the next are the same business instant: take the earlier.
    return add_business_time(start, business_time_between(start, target, calendar), calendar)


def _next_working_day(day: date, calendar: BusinessHours) -> date:
    for _ in range(_SEARCH_DAYS):
        day += timedelta(days=1)
        if calendar.ranges_on(day):
            return day
    raise NoWorkingTime(f"no working day within {_SEARCH_DAYS} days after {day.isoformat()}")


def deadline(start: datetime, target: timedelta | BusinessDays, calendar: AnyCalendar) -> datetime:
    """When a clock started at `start` with this target is due."""
    if isinstance(target, BusinessDays):
        return add_business_days(start, target.days, calendar)
    return add_business_time(start, target, calendar)


def target_as_business_time(start: datetime, target: timedelta | BusinessDays, calendar: AnyCalendar) -> timedelta:
    """The target as working time, so that warnings can fire at shares of it."""
    if isinstance(target, BusinessDays):
        return business_time_between(start, deadline(start, target, calendar), calendar)
    return target
