"""Business-time arithmetic with fixed instants: weekends, holidays, lunch breaks, DST."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.sla.domain.calendar import (
    add_business_days, add_business_time, business_time_between, deadline, target_as_business_time,
)
from services.sla.policy import AlwaysOpen, BusinessDays, BusinessHours

NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def office(hours: list[str], *, zone: str = "America/New_York", holidays: list[str] = (), friday: list[str] | None = None) -> BusinessHours:
    week = {day: list(hours) for day in WEEKDAYS}
    if friday is not None:
        week["fri"] = friday
    return BusinessHours.model_validate({"type": "business_hours", "timezone": zone, "hours": week, "holidays": list(holidays)})


def ny(*args: int) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


def H(hours: float) -> timedelta:
    return timedelta(hours=hours)


NINE_TO_FIVE = office(["09:00-17:00"])
WITH_LUNCH = office(["09:00-12:00", "13:00-17:00"])


def test_four_hours_from_friday_afternoon_fall_due_on_monday_morning():
    # Friday 2026-11-20 15:00: 2h left on Friday, 2h on Monday.
    assert add_business_time(ny(2026, 11, 20, 15), H(4), NINE_TO_FIVE) == ny(2026, 11, 23, 11)


def test_a_complaint_on_saturday_starts_counting_at_monday_opening():
    assert add_business_time(ny(2026, 11, 21, 10), H(1), NINE_TO_FIVE) == ny(2026, 11, 23, 10)


def test_a_holiday_does_not_count_as_working_time():
    thanksgiving = office(["09:00-17:00"], holidays=["2026-11-26"])
    # Wednesday 16:00 + 2h: 1h on Wednesday, Thursday is the holiday, 1h on Friday.
    assert add_business_time(ny(2026, 11, 25, 16), H(2), thanksgiving) == ny(2026, 11, 27, 10)
    assert add_business_time(ny(2026, 11, 25, 16), H(2), NINE_TO_FIVE) == ny(2026, 11, 26, 10)


def test_a_holiday_next_to_the_weekend_pushes_the_deadline_past_both():
    christmas_friday = office(["09:00-17:00"], holidays=["2026-12-25"])
    assert add_business_time(ny(2026, 12, 24, 16), H(3), christmas_friday) == ny(2026, 12, 28, 11)


def test_the_lunch_break_does_not_count():
    assert add_business_time(ny(2026, 11, 23, 11), H(2), WITH_LUNCH) == ny(2026, 11, 23, 14)
    assert business_time_between(ny(2026, 11, 23, 11), ny(2026, 11, 23, 14), WITH_LUNCH) == H(2)


def test_a_deadline_that_uses_up_the_morning_is_due_at_noon_not_after_lunch():
    assert add_business_time(ny(2026, 11, 23, 9), H(3), WITH_LUNCH) == ny(2026, 11, 23, 12)


def test_office_hours_follow_the_local_clock_across_the_spring_dst_change():
    # New York springs forward on Sunday 2026-03-08: 09:00 is 14:00 UTC before, 13:00 UTC after.
    friday_4pm = ny(2026, 3, 6, 16)
    due = add_business_time(friday_4pm, H(2), NINE_TO_FIVE)
    assert due == ny(2026, 3, 9, 10)
    assert due.astimezone(timezone.utc) == datetime(2026, 3, 9, 14, tzinfo=timezone.utc)


def test_a_working_week_across_the_autumn_dst_change_has_forty_working_hours():
    # Clocks fall back on Sunday 2026-11-01; the week before and after both count 5 x 8 hours.
    assert business_time_between(ny(2026, 10, 26, 0), ny(2026, 11, 2, 0), NINE_TO_FIVE) == H(40)
    assert business_time_between(ny(2026, 10, 30, 0), ny(2026, 11, 6, 0), NINE_TO_FIVE) == H(40)


def test_a_round_the_clock_day_of_the_dst_change_is_23_hours_long():
    every_day = BusinessHours.model_validate(
        {"type": "business_hours", "timezone": "America/New_York", "hours": {"sun": ["00:00-24:00"]}}
    )
    assert business_time_between(ny(2026, 3, 8, 0), ny(2026, 3, 9, 0), every_day) == H(23)


def test_24x7_is_plain_addition_in_real_time_even_across_dst():
    start = ny(2026, 3, 7, 12)
    assert add_business_time(start, H(24), AlwaysOpen()) == ny(2026, 3, 8, 13)
    assert business_time_between(start, ny(2026, 3, 8, 13), AlwaysOpen()) == H(24)


def test_elapsed_working_time_from_friday_afternoon_to_monday_morning():
    assert business_time_between(ny(2026, 11, 20, 16), ny(2026, 11, 23, 10), NINE_TO_FIVE) == H(2)


def test_no_working_time_passes_backwards():
    assert business_time_between(ny(2026, 11, 23, 12), ny(2026, 11, 23, 10), NINE_TO_FIVE) == timedelta(0)


def test_one_business_day_from_monday_morning_is_tuesday_morning():
    assert add_business_days(ny(2026, 11, 23, 10), 1, NINE_TO_FIVE) == ny(2026, 11, 24, 10)


def test_one_business_day_from_friday_is_monday_at_the_same_time():
    assert add_business_days(ny(2026, 11, 20, 10, 30), 1, NINE_TO_FIVE) == ny(2026, 11, 23, 10, 30)


def test_one_business_day_from_an_evening_complaint_is_the_end_of_the_next_working_day():
    assert add_business_days(ny(2026, 11, 23, 20), 1, NINE_TO_FIVE) == ny(2026, 11, 24, 17)


def test_one_business_day_onto_a_short_friday_ends_at_its_close():
    short_friday = office(["09:00-17:00"], friday=["09:00-13:00"])
    assert add_business_days(ny(2026, 11, 19, 15), 1, short_friday) == ny(2026, 11, 20, 13)


def test_one_business_day_skips_a_holiday():
    thanksgiving = office(["09:00-17:00"], holidays=["2026-11-26"])
    assert add_business_days(ny(2026, 11, 25, 11), 1, thanksgiving) == ny(2026, 11, 27, 11)


def test_a_target_in_business_days_is_measured_as_working_time_for_warnings():
    start = ny(2026, 11, 20, 10, 30)
    assert deadline(start, BusinessDays(1), NINE_TO_FIVE) == ny(2026, 11, 23, 10, 30)
    assert target_as_business_time(start, BusinessDays(1), NINE_TO_FIVE) == H(8)


@settings(max_examples=200, deadline=None)
@given(
    start=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(timezone.utc)),
    minutes=st.integers(min_value=1, max_value=60 * 24 * 20),
)
def test_the_deadline_is_exactly_the_target_in_working_time_after_the_start(start: datetime, minutes: int):
    target = timedelta(minutes=minutes)
    due = add_business_time(start, target, WITH_LUNCH)
    assert business_time_between(start, due, WITH_LUNCH) == target
    # ... and it is the earliest such instant: a minute earlier the target was not reached.
    assert business_time_between(start, due - timedelta(minutes=1), WITH_LUNCH) < target


@pytest.mark.parametrize("calendar", [NINE_TO_FIVE, WITH_LUNCH, AlwaysOpen()])
def test_deadlines_are_returned_as_utc_instants_comparable_with_event_times(calendar):
    due = add_business_time(ny(2026, 11, 23, 10), H(1), calendar)
    assert due.utcoffset() == timedelta(0)


def test_each_calendar_remembers_its_own_days():
    # Working intervals are remembered per calendar object: the same day in two zones must differ,
    # and asking again gives the same answer as the first time.
    tokyo = office(["09:00-17:00"], zone="Asia/Tokyo")
    start = datetime(2026, 11, 23, 12, tzinfo=timezone.utc)
    first = (add_business_time(start, H(2), NINE_TO_FIVE), add_business_time(start, H(2), tokyo))
    again = (add_business_time(start, H(2), NINE_TO_FIVE), add_business_time(start, H(2), tokyo))
    assert first == again
    assert first[0] == ny(2026, 11, 23, 9) + H(2)  # 07:00 in New York: counts from 09:00
    assert first[1] == datetime(2026, 11, 24, 2, tzinfo=timezone.utc)  # 21:00 in Tokyo: next day 09:00 + 2h
    assert NINE_TO_FIVE.intervals_by_day and tokyo.intervals_by_day
    assert NINE_TO_FIVE.intervals_by_day is not tokyo.intervals_by_day
