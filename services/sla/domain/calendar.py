"""Business-time arithmetic: deadlines and elapsed time on a 24x7 or business-hours calendar.

Pure functions over aware datetimes. Working hours are wall-clock times in the calendar's IANA zone
(zoneinfo), so a DST change moves them with the local clock; all arithmetic on instants is done in
UTC so that a 23- or 25-hour day is counted as it really was. A shift may cross midnight
(`21:00-02:00`): it belongs to the local day it starts on. An interval that a clock change leaves
with its close not after its open has no working time and vanishes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)  # 24:00 and night shifts run into the next day
    local = wall.replace(tzinfo=calendar.zone)
    # 02:30 on a spring-forward night does not exist: it is read as the clock before the change
    # would show it (03:30 after the jump), like dateutil's resolve_imaginary and the zendesk "biz"
    # library. A range that starts inside the gap can so come out empty: it then vanishes.
    return tz.resolve_imaginary(local).astimezone(timezone.utc)


def _without_overlap(
    intervals: Iterable[tuple[datetime, datetime]], after: datetime | None = None,
) -> Iterator[tuple[datetime, datetime]]:
    """Drops intervals whose close is not after their open, and starts each no earlier than the one
    before it ended (`after`): a clock change can make wall-clock ranges that do not touch overlap."""
    for opening, closing in intervals:
        if after is not None:
            opening = max(opening, after)
        if closing > opening:
            yield opening, closing
            after = closing


def _day_intervals(day: date, calendar: BusinessHours) -> tuple[tuple[datetime, datetime], ...]:
    """UTC intervals of the shifts that start on this local day (the last may end the next day)."""
    known = calendar.intervals_by_day.get(day)
    if known is None:
        ranges: list[HoursRange] = calendar.ranges_on(day)
        wall = ((_local_instant(day, r.start, calendar), _local_instant(day, r.end, calendar)) for r in ranges)
        known = tuple(_without_overlap(wall))
        calendar.intervals_by_day[day] = known
    return known


def _shifts(start: datetime, calendar: BusinessHours) -> Iterator[tuple[date, datetime, datetime]]:
    """(working day, opening, closing) of every working interval that ends after `start`, in order.

    A shift belongs to the local day it starts on, so a night shift still open at `start` is found
    on the day before. Raises NoWorkingTime when the calendar has none within the search horizon.
    """
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    last_close: datetime | None = None
    for _ in range(_SEARCH_DAYS):
        for opening, closing in _without_overlap(_day_intervals(day, calendar), last_close):
            last_close = closing
            if closing > start:
                yield day, opening, closing
        day += timedelta(days=1)
    raise NoWorkingTime(f"no working hours within {_SEARCH_DAYS} days after {start.isoformat()}")


def working_intervals(start: datetime, calendar: BusinessHours) -> Iterator[tuple[datetime, datetime]]:
    """UTC intervals of working time that end after `start`, in order (the first may begin before it)."""
    for _, opening, closing in _shifts(start, calendar):
        yield opening, closing


def _not_negative(amount: timedelta | int, what: str) -> None:
    if amount < (ZERO if isinstance(amount, timedelta) else 0):
        raise ValueError(f"{what} must not be negative, got {amount}: business time only runs forward")


def add_business_time(start: datetime, duration: timedelta, calendar: AnyCalendar) -> datetime:
    """The earliest instant (UTC) at which `duration` of working time has passed since `start`.

    Zero is `start` itself. Raises ValueError for a negative duration or a naive datetime, and
    NoWorkingTime when the calendar has no working hours within ten years.
    """
    _not_negative(duration, "a business-time duration")
    start = _utc(start)
    if isinstance(calendar, AlwaysOpen):
        return start + duration
    if duration == ZERO:
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
    """By the same point of the working day, `days` working days later ("by this time next business day").

    A working day is a local date on which a shift starts that is not a holiday; its working time is
    its shifts, a night shift's hours after midnight included. The point of the day is the working
    time since the day's first opening, so Monday 23:30 on a 21:00-02:00 night shift is due Tuesday
    23:30, and on a 09:00-17:00 office the same clock time. A start outside working hours counts from
    the next opening, so a complaint on Friday evening is due at the end of Monday for one business
    day; when the target day is shorter, its close is used. On 24x7 a business day is 24 hours.
    Raises ValueError for a negative number of days.
    """
    _not_negative(days, "a number of business days")
    start = _utc(start)
    if isinstance(calendar, AlwaysOpen):
        return start + timedelta(days=days)
    start_day, first_opening, _ = next(_shifts(start, calendar))
    effective_start = max(first_opening, start)
    into_the_day = business_time_between(_day_intervals(start_day, calendar)[0][0], effective_start, calendar)
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
        if _day_intervals(day, calendar):  # a day whose only range fell into a clock change is not worked
            return day
    raise NoWorkingTime(f"no working day within {_SEARCH_DAYS} days after {day.isoformat()}")


def deadline(start: datetime, target: timedelta | BusinessDays, calendar: AnyCalendar) -> datetime:
    """When a clock started at `start` with this target is due (UTC). Raises ValueError when negative."""
    if isinstance(target, BusinessDays):
        return add_business_days(start, target.days, calendar)
    return add_business_time(start, target, calendar)


def target_as_business_time(start: datetime, target: timedelta | BusinessDays, calendar: AnyCalendar) -> timedelta:
    """The target as working time, so that warnings can fire at shares of it."""
    if isinstance(target, BusinessDays):
        return business_time_between(start, deadline(start, target, calendar), calendar)
    return target
