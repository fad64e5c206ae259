"""Wall-clock math in the customer's time zone: "tomorrow at 10:00" and quiet hours, DST-correct."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.followup.policy import QuietHours

UTC = timezone.utc
UTC_ZONE = ZoneInfo("UTC")


def customer_zone(name: str | None) -> ZoneInfo:
    """The customer's IANA zone; an unknown or missing one means UTC, as the contract says."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local day.

    fold=0 reads a repeated hour (autumn) as its first occurrence and a skipped hour (spring) with
    the offset before the jump, which lands just after the gap: 02:30 on a spring-forward night
    becomes 03:30, never a time that does not exist.
    """
    return datetime.combine(day, clock, tzinfo=zone).astimezone(UTC)


def utc(at: datetime) -> datetime:
    """The same instant in UTC: rules read instants, never the zone an aware datetime came in."""
    return at.astimezone(UTC)


def calendar_days(span: timedelta) -> int:
    """The whole calendar days of a policy span (`policy.Span`); a plain timedelta has none."""
    return getattr(span, "calendar_days", 0)


def after(start: datetime, span: timedelta, zone: ZoneInfo) -> datetime:
    """`start` plus a policy span, in UTC: calendar days first, then elapsed time.

    The span's calendar days (its `d` and `w` parts) move the date on the customer's local calendar
    and keep the local clock time, so `3d` after Friday 20:30 EST is Monday 20:30 EDT across the
    spring change; its hours, minutes and seconds are elapsed time. A local time the new day does
    not have is read as in `local_instant`. The result does not depend on the zone `start` came
    in. Days as nominal and hours as exact: RFC 5545 section 3.3.6.
    """
    days = calendar_days(span)
    start = utc(start)  # elapsed hours are added in UTC: a zoned `start` would add wall-clock hours
    moved = start
    if days:
        local = start.astimezone(zone)
        moved = local_instant(local.date() + timedelta(days=days), local.time().replace(fold=0), zone)
    return utc(moved + (span - timedelta(days=days)))


def next_day_at(resolved_at: datetime, delay: timedelta, clock: time, zone: ZoneInfo) -> datetime:
    """`clock` local time on the local day reached by adding `delay` to the resolution (see `after`).

    Calendar days of `delay` count on the local calendar, so "1d" is "the next day" even across a
    DST change. If that instant would not be after the resolution (a delay under a day), the next
    day's is used.
    """
    target_day = after(resolved_at, delay, zone).astimezone(zone).date()
    due = local_instant(target_day, clock, zone)
    if due <= resolved_at:
        due = local_instant(target_day + timedelta(days=1), clock, zone)
    return due


def _in_window(clock: time, start: time, end: time) -> bool:
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end  # the window crosses midnight


def end_of_quiet_hours(at: datetime, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """`at` itself when outside quiet hours, else the end of the quiet period it falls in."""
    if not quiet.enabled:
        return at
    local = at.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if not _in_window(clock, quiet.start, quiet.end):
        return at
    end_day = local.date()
    if quiet.start > quiet.end and clock >= quiet.start:
        end_day += timedelta(days=1)  # 22:00 in a 21:00-08:00 window ends tomorrow morning
    # An end in the repeated hour of an autumn change can read as the earlier of the two: never
    # move a follow-up before the time it was due.
    return max(at, local_instant(end_day, quiet.end, zone))


def quiet_hours_apply(quiet: QuietHours, channel: str) -> bool:
    """Whether quiet hours hold a follow-up on this channel (a posted note wakes nobody)."""
    return quiet.enabled and channel not in quiet.exempt_channels
