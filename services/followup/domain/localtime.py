"""Wall-clock math in the customer's time zone: "tomorrow at 10:00" and quiet hours, DST-correct."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.followup.policy import QuietHours

UTC = timezone.utc


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


def next_day_at(resolved_at: datetime, delay: timedelta, clock: time, zone: ZoneInfo) -> datetime:
    """`clock` local time on the local day reached by adding `delay` to the resolution.

    The delay is added on the local calendar (aware datetime arithmetic is wall-clock), so "1d" is
    "the next day" even across a DST change. If that instant would not be after the resolution
    (a delay under a day), the next day's is used.
    """
    local_resolved = resolved_at.astimezone(zone)
    target_day = (local_resolved + delay).date()
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
    return local_instant(end_day, quiet.end, zone)


def quiet_hours_apply(quiet: QuietHours, channel: str) -> bool:
    return quiet.enabled and channel not in quiet.exempt_channels
