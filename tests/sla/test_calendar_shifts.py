"""Issue 12, working hours: night shifts across midnight, ranges that start inside a spring-forward
gap, and negative durations. Every expected value is worked out by hand in the comment beside it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.domain.calendar import add_business_days, add_business_time, business_time_between, deadline
from services.sla.policy import AlwaysOpen, BusinessHours, HoursRange, SlaPolicy
from shared.policy import PolicyError, parse_policy

NEW_YORK = ZoneInfo("America/New_York")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
UTC = timezone.utc


def calendar(hours: dict[str, list[str]], zone: str = "America/New_York", holidays: list[str] = ()) -> BusinessHours:
    return BusinessHours.model_validate({"type": "business_hours", "timezone": zone, "hours": hours, "holidays": list(holidays)})


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def la(*args: int) -> datetime:
    return datetime(*args, tzinfo=LOS_ANGELES)


def H(hours: float) -> timedelta:
    return timedelta(hours=hours)


NIGHTS = calendar({day: ["21:00-02:00"] for day in ("mon", "tue", "wed", "thu", "fri")})
# 2026-11-23 is a Monday; New York is on EST (UTC-5) all that week.


# ---------- night shifts ----------
def test_a_night_shift_is_written_as_one_range_across_midnight():
    shift = NIGHTS.hours["mon"][0]
    assert shift == HoursRange(21 * 60, 26 * 60)  # 21:00 to 02:00 of the next day = 1560 minutes after Monday's midnight
    assert str(shift) == "21:00-02:00"


def test_one_business_day_from_monday_2330_on_a_night_shift_is_tuesday_2330():
    # Monday 23:30 is 2h30 into Monday's 21:00-02:00 shift; 2h30 into Tuesday's shift is 23:30.
    # (Split into 21:00-24:00 and 00:00-02:00 it came out Tuesday 21:30: the offset was measured from
    # Tuesday's 00:00 opening, the tail of Monday's shift.)
    assert add_business_days(ny(2026, 11, 23, 23, 30), 1, NIGHTS) == ny(2026, 11, 24, 23, 30)


def test_after_midnight_a_night_shift_still_belongs_to_the_day_it_started():
    # Tuesday 01:00 is 4h into Monday's shift (21:00 -> 01:00); 4h into Tuesday's shift is Wednesday 01:00.
    assert add_business_days(ny(2026, 11, 24, 1), 1, NIGHTS) == ny(2026, 11, 25, 1)


def test_a_night_shift_on_friday_runs_into_saturday_and_the_next_working_day_is_monday():
    # Friday 2026-11-27 23:30 is 2h30 into Friday's shift; Saturday and Sunday start no shift, so
    # the next working day is Monday 2026-11-30: 21:00 + 2h30 = 23:30.
    assert add_business_days(ny(2026, 11, 27, 23, 30), 1, NIGHTS) == ny(2026, 11, 30, 23, 30)
    # Saturday 01:30 is still Friday's shift (4h30 in): Monday 21:00 + 4h30 = Tuesday 01:30.
    assert add_business_days(ny(2026, 11, 28, 1, 30), 1, NIGHTS) == ny(2026, 12, 1, 1, 30)


def test_a_holiday_cancels_the_shift_that_starts_on_it_not_the_one_that_ends_on_it():
    nights = calendar({day: ["21:00-02:00"] for day in ("mon", "tue", "wed", "thu", "fri")}, holidays=["2026-11-24"])
    # Tuesday is a holiday: Monday's shift still runs to Tuesday 02:00 (2h after midnight) ...
    assert business_time_between(ny(2026, 11, 24, 0), ny(2026, 11, 24, 12), nights) == H(2)
    # ... and Tuesday's 21:00-02:00 shift is not worked.
    assert business_time_between(ny(2026, 11, 24, 12), ny(2026, 11, 25, 12), nights) == H(0)
    # Monday 23:30 (2h30 in) + 1 business day skips Tuesday: Wednesday 21:00 + 2h30 = 23:30.
    assert add_business_days(ny(2026, 11, 23, 23, 30), 1, nights) == ny(2026, 11, 25, 23, 30)


def test_working_time_runs_through_midnight_on_a_night_shift():
    # Monday 23:30 + 3h: 2h30 until 02:00, then 30 minutes from Tuesday 21:00 = Tuesday 21:30.
    assert add_business_time(ny(2026, 11, 23, 23, 30), H(3), NIGHTS) == ny(2026, 11, 24, 21, 30)
    # Monday 20:00 to Tuesday 03:00: the whole shift 21:00-02:00 = 5h.
    assert business_time_between(ny(2026, 11, 23, 20), ny(2026, 11, 24, 3), NIGHTS) == H(5)


def test_a_night_shift_may_end_where_the_next_days_range_begins():
    early = calendar({"mon": ["21:00-02:00"], "tue": ["02:00-06:00"]})
    # Monday 21:00 to Tuesday 06:00 is worked without a break: 5h + 4h = 9h.
    assert business_time_between(ny(2026, 11, 23, 21), ny(2026, 11, 24, 6), early) == H(9)


@pytest.mark.parametrize("hours, clash", [
    ({"mon": ["21:00-02:00"], "tue": ["01:00-09:00"]}, "mon 21:00-02:00 and tue 01:00-09:00 overlap"),
    ({"sun": ["22:00-01:00"], "mon": ["00:30-08:00"]}, "sun 22:00-01:00 and mon 00:30-08:00 overlap"),  # the week wraps
])
def test_a_night_shift_that_runs_into_the_next_days_hours_is_refused(hours, clash):
    text = "calendars:\n  nights:\n    type: business_hours\n    timezone: UTC\n    hours:\n"
    text += "".join(f'      {day}: ["{ranges[0]}"]\n' for day, ranges in hours.items())
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, SlaPolicy, "sla.yaml")
    assert "sla.yaml:5" in str(caught.value) and clash in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 20),
)
def test_on_night_shifts_the_deadline_is_exactly_the_target_in_working_time(start: datetime, minutes: int):
    target = timedelta(minutes=minutes)
    due = add_business_time(start, target, NIGHTS)
    assert business_time_between(start, due, NIGHTS) == target
    assert business_time_between(start, due - timedelta(minutes=1), NIGHTS) < target


# ---------- a range that starts inside the spring-forward gap ----------
# Los Angeles springs forward on Sunday 2026-03-08: 02:00 PST jumps to 03:00 PDT. A wall time in the
# gap is read as the clock before the change would show it: 02:30 PST = 10:30 UTC = 03:30 PDT.
GAP = calendar({"sun": ["02:30-03:15"], "mon": ["09:00-17:00"]}, zone="America/Los_Angeles")


def test_a_range_that_the_clock_change_leaves_empty_vanishes():
    # Sunday's 02:30-03:15 becomes 03:30 PDT to 03:15 PDT: its close is not after its open, so
    # Sunday has no working time. 1h from Sunday 00:00 is Monday 09:00 + 1h = 10:00 PDT (17:00 UTC);
    # before, the negative interval (-15 min) made it 10:15. Same as zendesk/biz's "empty interval" test.
    due = add_business_time(la(2026, 3, 8, 0), H(1), GAP)
    assert due == la(2026, 3, 9, 10)
    assert due == datetime(2026, 3, 9, 17, tzinfo=UTC)


def test_working_time_across_the_gap_counts_no_negative_interval():
    # Sunday 00:00 to Monday 10:00: only Monday 09:00-10:00 is worked = 1h (before: 45 minutes).
    assert business_time_between(la(2026, 3, 8, 0), la(2026, 3, 9, 10), GAP) == H(1)


def test_the_same_range_on_an_ordinary_sunday_is_worked():
    # Sunday 2026-03-15 (PDT all day): 02:30-03:15 is 45 minutes, then 15 more from Monday 09:00.
    assert add_business_time(la(2026, 3, 15, 0), H(1), GAP) == la(2026, 3, 16, 9, 15)


def test_a_day_whose_only_range_vanished_is_not_a_working_day():
    # Monday 2026-03-02 09:15 PST is 15 minutes into Monday. The next day with a shift is Sunday
    # 2026-03-08, whose only range vanished, so 1 business day lands on Monday 2026-03-09 09:15 PDT.
    assert add_business_days(la(2026, 3, 2, 9, 15), 1, GAP) == la(2026, 3, 9, 9, 15)


def test_a_clock_change_never_counts_an_hour_twice():
    # Saturday 22:00-02:30 and Sunday 03:00-05:00 on 2026-03-07/08: "02:30" reads as 03:30 PDT,
    # which would overlap Sunday's 03:00 PDT start. Really worked: 22:00-02:00 PST (4h) and
    # 03:00-05:00 PDT (2h) = 6h, i.e. 06:00 to 12:00 UTC without a gap, not 6h30.
    overnight = calendar({"sat": ["22:00-02:30"], "sun": ["03:00-05:00"]}, zone="America/Los_Angeles")
    assert business_time_between(la(2026, 3, 7, 21), la(2026, 3, 8, 6), overnight) == H(6)


# ---------- negative durations ----------
@pytest.mark.parametrize("cal", [NIGHTS, GAP, AlwaysOpen()], ids=["nights", "gap", "24x7"])
def test_a_negative_duration_is_refused_rather_than_answered_with_the_start(cal):
    start = ny(2026, 11, 23, 10)
    with pytest.raises(ValueError, match="must not be negative"):
        add_business_time(start, timedelta(minutes=-1), cal)
    with pytest.raises(ValueError, match="must not be negative"):
        add_business_days(start, -1, cal)
    with pytest.raises(ValueError, match="must not be negative"):
        deadline(start, timedelta(hours=-4), cal)


def test_zero_working_time_is_the_start_itself():
    start = ny(2026, 11, 23, 10)  # 10:00 is outside the night shift: zero still means "now"
    assert add_business_time(start, timedelta(0), NIGHTS) == start
