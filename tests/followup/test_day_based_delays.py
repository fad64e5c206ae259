"""Day-based delays are calendar days in the customer's zone; hour-based delays are elapsed time.

US clocks go forward on Sunday 8 March 2026 (02:00 EST → 03:00 EDT) and back on Sunday 1 November
2026 (02:00 EDT → 01:00 EST). New York is UTC-5 in winter (EST) and UTC-4 in summer (EDT).
Every expected value below is worked out by hand in the comment beside it.
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.followup.domain import (
    Contact, PendingFollowup, ResolvedCase, after, decide_at_due, plan_improvement_notice, plan_on_resolved,
)
from services.followup.domain.localtime import customer_zone
from services.followup.domain.model import CategoryCase
from services.followup.policy import FollowupPolicy, Span, format_span, parse_span
from shared.policy import parse_policy
from .helpers import at, customer, only_retention, planned, policy

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")
NEW_YORK = customer_zone("America/New_York")
DEFAULT = policy()


def ny_plan(resolved_at: datetime, rules: FollowupPolicy = DEFAULT):
    facts = customer(timezone="America/New_York")
    return plan_on_resolved(rules, ResolvedCase("CRM-31", resolved_at), facts, resolved_at)


def due_times(plan) -> list[tuple[str, str]]:
    return [(p.kind, p.due_at.isoformat()) for p in plan.planned]


# ---------- the example: a survey 3 days after Friday 20:30 EST ----------

FRIDAY_EVENING_NY = datetime(2026, 3, 6, 20, 30, tzinfo=NY)        # Fri 6 March 20:30 EST
FRIDAY_EVENING_UTC = datetime(2026, 3, 7, 1, 30, tzinfo=timezone.utc)  # the same instant: 20:30 + 5 h


def test_survey_three_days_after_friday_evening_is_on_monday_evening_at_the_same_local_time():
    [survey] = planned(ny_plan(FRIDAY_EVENING_UTC), "satisfaction_survey")
    # Fri 6 March 20:30 EST + 3 calendar days = Mon 9 March 20:30 EDT = Tue 10 March 00:30 UTC (UTC-4),
    # before quiet hours (21:00). 72 elapsed hours would be Mon 21:30 EDT, held until Tue 08:00.
    assert survey.due_at == at("2026-03-10T00:30:00Z")
    assert survey.deferred_by == ()


def test_the_same_instant_planned_from_a_new_york_time_and_from_a_utc_time_gives_the_same_plan():
    from_new_york, from_utc = ny_plan(FRIDAY_EVENING_NY), ny_plan(FRIDAY_EVENING_UTC)
    assert due_times(from_new_york) == due_times(from_utc) == [
        ("thank_you_note", "2026-03-07T15:00:00+00:00"),     # Sat 7 March 10:00 EST (UTC-5)
        ("satisfaction_survey", "2026-03-10T00:30:00+00:00"),  # Mon 9 March 20:30 EDT (UTC-4)
        ("retention_checkin", "2026-03-14T00:30:00+00:00"),  # +7d: Fri 13 March 20:30 EDT
        ("retention_checkin", "2026-04-06T00:30:00+00:00"),  # +30d: Sun 5 April 20:30 EDT (6 March + 25 = 31 March, + 5)
        ("retention_checkin", "2026-06-05T00:30:00+00:00"),  # +90d: Thu 4 June 20:30 EDT (25 + 30 + 31 + 4 days)
    ]
    assert from_new_york == from_utc


def test_an_hour_based_delay_is_elapsed_time_and_lands_in_quiet_hours():
    rules = policy(satisfaction_survey={"after": "72h"})
    [survey] = planned(ny_plan(FRIDAY_EVENING_UTC, rules), "satisfaction_survey")
    # Sat 01:30 UTC + 72 h = Tue 10 March 01:30 UTC = Mon 21:30 EDT: quiet until Tue 08:00 EDT = 12:00 UTC.
    assert survey.due_at == at("2026-03-10T12:00:00Z")
    assert survey.deferred_by == ("quiet_hours",)


def test_survey_over_the_fall_back_weekend_keeps_its_local_time_too():
    resolved = datetime(2026, 10, 30, 20, 30, tzinfo=NY)  # Fri 30 October 20:30 EDT = Sat 00:30 UTC
    [survey] = planned(ny_plan(resolved), "satisfaction_survey")
    # + 3 calendar days = Mon 2 November 20:30 EST = Tue 3 November 01:30 UTC (UTC-5): 73 elapsed hours.
    assert survey.due_at == at("2026-11-03T01:30:00Z")


# ---------- every follow-up and check-in: thank-you without a clock time, notices, frequency rules ----------

def test_thank_you_without_a_clock_time_is_due_a_calendar_day_later_at_the_same_local_time():
    rules = policy(thank_you_note={"local_time": None})
    resolved = at("2026-03-07T12:00:00-05:00")  # Sat 7 March 12:00 EST = 17:00 UTC
    [note] = planned(ny_plan(resolved, rules), "thank_you_note")
    assert note.due_at == at("2026-03-08T16:00:00Z")  # Sun 8 March 12:00 EDT (UTC-4): 23 elapsed hours


def test_thank_you_delay_in_hours_without_a_clock_time_is_elapsed():
    rules = policy(thank_you_note={"local_time": None, "delay": "24h"})
    resolved = at("2026-03-07T12:00:00-05:00")
    [note] = planned(ny_plan(resolved, rules), "thank_you_note")
    assert note.due_at == at("2026-03-08T17:00:00Z")  # 17:00 UTC + 24 h = Sun 13:00 EDT


def test_improvement_notice_to_another_customer_a_day_later_keeps_the_local_time():
    rules = policy(improvement_notice={"notify_same_category_customers": True})
    recipient = CategoryCase("C-NY", "CRM-40", "installation", at("2026-03-01T12:00:00Z"))
    now = datetime(2026, 3, 7, 20, 30, tzinfo=NY)  # Sat 7 March 20:30 EST = Sun 01:30 UTC
    notice = plan_improvement_notice(rules, recipient, customer("C-NY", timezone="America/New_York"), now)
    # + 1 calendar day = Sun 8 March 20:30 EDT = Mon 9 March 00:30 UTC; 24 h would be 21:30 EDT (quiet).
    assert notice.due_at == at("2026-03-09T00:30:00Z") and notice.deferred_by == ()


def test_minimum_gap_of_two_days_across_the_change_ends_at_the_same_local_time():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, quiet_hours={"enabled": True})
    resolved = at("2026-02-28T12:00:00-05:00")  # check-in due Sat 7 March 12:00 EST
    other = Contact("retention_checkin", at("2026-03-06T20:30:00-05:00"), "CRM-1")  # 15.5 h before it
    facts = customer(timezone="America/New_York", contacts=(other,))
    [moved] = planned(plan_on_resolved(rules, ResolvedCase("CRM-2", resolved), facts, resolved), "retention_checkin")
    # Fri 20:30 EST + 2 calendar days = Sun 8 March 20:30 EDT = Mon 00:30 UTC (48 h: 21:30 EDT, quiet).
    assert moved.due_at == at("2026-03-09T00:30:00Z")
    assert moved.deferred_by == ("min_gap",)


def test_cooldown_after_an_answer_counts_calendar_days_in_the_customers_zone():
    rules = only_retention(retention_checkin={"cadence": ["7d"]})
    resolved = at("2026-02-28T12:00:00-05:00")  # check-in due Sat 7 March 12:00 EST = 17:00 UTC
    answered = at("2026-03-01T20:30:00-05:00")  # Sun 1 March 20:30 EST
    facts = customer(timezone="America/New_York", survey_responses=(answered,))
    [moved] = planned(plan_on_resolved(rules, ResolvedCase("CRM-2", resolved), facts, resolved), "retention_checkin")
    # Sun 1 March 20:30 EST + 14 calendar days = Sun 15 March 20:30 EDT = Mon 16 March 00:30 UTC.
    assert moved.due_at == at("2026-03-16T00:30:00Z")
    assert moved.deferred_by == ("cooldown_after_response",)


def test_decision_when_due_does_not_depend_on_the_zone_the_clock_came_in():
    checkin = PendingFollowup("f1", "retention_checkin", "CRM-1", "C-881", at("2026-03-09T07:00:00Z"), "email")
    facts = customer(timezone="America/New_York")
    in_new_york = decide_at_due(DEFAULT, checkin, facts, datetime(2026, 3, 9, 3, 0, tzinfo=NY))  # 03:00 EDT
    in_utc = decide_at_due(DEFAULT, checkin, facts, at("2026-03-09T07:00:00Z"))
    assert in_new_york == in_utc
    assert (in_utc.action, in_utc.due_at.isoformat()) == ("defer", "2026-03-09T12:00:00+00:00")  # 08:00 EDT


# ---------- the arithmetic and the policy's spans ----------

def test_a_day_added_onto_a_time_the_spring_change_skips_lands_just_after_the_gap():
    # Sat 7 March 02:30 EST + 1 calendar day: Sun 02:30 does not exist, read as 03:30 EDT = 07:30 UTC.
    assert after(at("2026-03-07T02:30:00-05:00"), parse_span("1d"), NEW_YORK) == at("2026-03-08T07:30:00Z")


def test_days_then_elapsed_hours():
    # Fri 20:30 EST + 1 calendar day = Sat 20:30 EST (01:30 UTC Sun), + 12 h = 13:30 UTC Sun = 09:30 EDT.
    assert after(at("2026-03-06T20:30:00-05:00"), parse_span("1d12h"), NEW_YORK) == at("2026-03-08T13:30:00Z")


def test_a_plain_timedelta_is_elapsed_time():
    assert after(FRIDAY_EVENING_UTC, timedelta(days=3), NEW_YORK) == at("2026-03-10T01:30:00Z")


@pytest.mark.parametrize("text, calendar_days, elapsed", [
    ("3d", 3, timedelta(0)),
    ("72h", 0, timedelta(hours=72)),
    ("1w", 7, timedelta(0)),
    ("1d12h", 1, timedelta(hours=12)),
    ("1.5d", 1, timedelta(hours=12)),  # the fraction of a day is elapsed time
    ("90s", 0, timedelta(seconds=90)),
    (4, 0, timedelta(seconds=4)),      # a bare number is seconds
])
def test_spans_know_their_calendar_days(text, calendar_days, elapsed):
    span = parse_span(text)
    assert (span.calendar_days, span.elapsed) == (calendar_days, elapsed)


def test_three_days_and_seventy_two_hours_are_the_same_length_but_not_the_same_span():
    days, hours = parse_span("3d"), parse_span("72h")
    assert days == timedelta(days=3) and hours == timedelta(days=3)
    assert days != hours
    assert (format_span(days), format_span(hours), format_span(parse_span("1d12h"))) == ("3d", "72h", "1d12h")


def test_policy_written_with_hours_keeps_them_elapsed_when_read_back():
    rules = parse_policy("satisfaction_survey:\n  after: 72h\n", FollowupPolicy)
    assert rules.satisfaction_survey.after.calendar_days == 0
    again = FollowupPolicy.model_validate(rules.model_dump())
    assert again.satisfaction_survey.after == rules.satisfaction_survey.after
    assert isinstance(FollowupPolicy().retention_checkin.cadence[0], Span)


# ---------- the thank-you's local_time: the file's words and the behaviour agree ----------

SHIPPED = (ROOT / "config" / "followup.yaml").read_text(encoding="utf-8")
LOCAL_TIME_LINE = next(line for line in SHIPPED.splitlines() if line.strip().startswith("local_time:"))


def note_due(text: str) -> datetime:
    resolved = at("2026-11-23T15:00:00Z")  # a UTC customer, Monday 15:00
    plan = plan_on_resolved(parse_policy(text, FollowupPolicy), ResolvedCase("K", resolved), customer(), resolved)
    return planned(plan, "thank_you_note")[0].due_at


def test_the_file_says_null_turns_the_clock_time_off_and_it_does():
    assert "local_time: null" in LOCAL_TIME_LINE
    nulled = SHIPPED.replace(LOCAL_TIME_LINE, "  local_time: null")
    assert note_due(nulled) == at("2026-11-24T15:00:00Z")  # 1 calendar day after Monday 15:00


def test_leaving_local_time_out_keeps_the_default_ten_o_clock():
    removed = SHIPPED.replace(LOCAL_TIME_LINE + "\n", "")
    assert not any(line.strip().startswith("local_time:") for line in removed.splitlines())
    assert note_due(removed) == at("2026-11-24T10:00:00Z")  # the next day at 10:00, as with the line


def test_hours_are_elapsed_whatever_zone_the_start_comes_in():
    from services.followup.domain.localtime import after

    ny = ZoneInfo("America/New_York")
    start = datetime(2024, 3, 8, 20, 30, tzinfo=ny)  # Friday 20:30 EST = 2024-03-09 01:30Z
    # + 72 h elapsed = 2024-03-12 01:30Z = Monday 21:30 EDT (a zoned sum would give 20:30 EDT: 71 h)
    expected = datetime(2024, 3, 12, 1, 30, tzinfo=timezone.utc)
    assert after(start, parse_span("72h"), ny) == after(start.astimezone(timezone.utc), parse_span("72h"), ny) == expected


def test_quiet_hours_ending_in_the_repeated_autumn_hour_never_move_a_follow_up_earlier():
    from services.followup.domain.localtime import end_of_quiet_hours
    from services.followup.policy import QuietHours

    london = ZoneInfo("Europe/London")
    due = datetime(2024, 10, 27, 1, 15, tzinfo=timezone.utc)  # 01:15 GMT, the second 01:15 of the night
    # quiet 21:00-01:30: the window ends at 01:30 local; read as BST that is 00:30Z, before the due time
    end = end_of_quiet_hours(due, QuietHours(start=time(21, 0), end=time(1, 30)), london)
    assert end >= due
