"""Targets a calendar cannot reach: the deadline arithmetic looks ten years ahead for working time
(`NoWorkingTime` past that). The policy refuses a target, or an escalation delay on top of one,
that its calendar cannot give within that horizon, naming file, line and field; what validation
cannot see (holidays covering years) makes the sla service count that decision round the clock."""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone

import pytest

from services.sla import metrics
from services.sla.domain import on_classified
from services.sla.domain import calendar as business_time
from services.sla.domain.calendar import NoWorkingTime, deadline
from services.sla.service import Sla
from services.sla.policy import CALENDAR_SEARCH_DAYS, BusinessDays, BusinessHours, SlaPolicy
from shared.events import ComplaintClassified
from shared.policy import PolicyError, PolicyHolder, parse_policy
from tests.support.stubs import PlainTopics

ONE_HOUR_A_WEEK = '{mon: ["09:00-10:00"]}'


def policy_text(resolution: str, *, hours: str = ONE_HOUR_A_WEEK, escalations: str = "[]",
                holidays: str = "[]", choice: str = "{default: office}") -> str:
    return f"""\
targets:
  P3: {{first_contact: 4h, update: 1bd, resolution: {resolution}}}
escalations: {escalations}
calendars:
  office: {{type: business_hours, timezone: UTC, hours: {hours}, holidays: {holidays}}}
calendar: {choice}
"""


def refused(text: str) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, SlaPolicy, "sla.yaml")
    return str(caught.value)


def test_the_horizon_the_policy_checks_is_the_one_the_calendar_searches():
    assert CALENDAR_SEARCH_DAYS == business_time._SEARCH_DAYS


@pytest.mark.parametrize("resolution", ["365d", "8760h", "52w", "501h"])
def test_a_target_an_hour_a_week_cannot_reach_in_ten_years_is_refused_with_file_line_and_field(resolution):
    message = refused(policy_text(resolution))
    assert message.startswith("sla.yaml:2: targets.P3.resolution: P3 resolution target ")
    assert "calendar office works 1h a week: at most 500h within the 10 years" in message
    assert "Shorten the target" in message


def test_the_longest_target_accepted_is_reached_whenever_the_clock_starts():
    policy = parse_policy(policy_text("500h"), SlaPolicy)
    office = policy.calendars["office"]
    assert isinstance(office, BusinessHours) and office.reachable_working_time() == timedelta(hours=500)
    start = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)  # inside the week's only hour
    for day in range(8):
        deadline(start + timedelta(days=day, hours=day * 3), timedelta(hours=500), office)


@pytest.mark.parametrize("zone, hours", [
    ("America/New_York", {"sun": ["02:00-03:00"]}),  # vanishes every spring-forward night
    ("Europe/Berlin", {"sun": ["23:30-02:30"]}),  # a night shift
    ("Australia/Lord_Howe", {"sun": ["02:00-02:30"]}),  # a half-hour clock change
])
def test_what_validation_accepts_survives_clock_changes(zone, hours):
    office = BusinessHours.model_validate({"type": "business_hours", "timezone": zone, "hours": hours})
    reach = office.reachable_working_time()
    for day in range(10):
        deadline(datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(days=day, hours=day * 2.5), reach, office)


def test_business_days_fit_even_on_one_working_day_a_week():
    # 260 working days a year-long target at most, one a week: some five years, inside the ten.
    policy = parse_policy(policy_text("260bd"), SlaPolicy)
    office = policy.calendars["office"]
    assert isinstance(office, BusinessHours)
    deadline(datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc), BusinessDays(260), office)


def test_an_escalation_delay_on_top_of_the_target_that_no_longer_fits_is_refused_on_its_line():
    message = refused(policy_text("480h", escalations="\n  - {after: 10h, notify: lead}\n  - {after: 30h, notify: head}"))
    assert message.startswith("sla.yaml:5: escalations.1.after: escalation after 30h on top of the P3 resolution "
                              "target 480h needs 510h of working time")


def test_a_target_is_checked_on_every_calendar_its_priority_may_run_on():
    text = policy_text("365d", choice="{default: 24x7, by_source: {crm-night: {P3: office}}}")
    assert "sla.yaml:2: targets.P3.resolution" in refused(text)
    assert parse_policy(policy_text("365d", choice="{default: 24x7}"), SlaPolicy)  # round the clock: fine


def test_the_same_target_fits_a_full_office_week():
    nine_to_five = "{" + ", ".join(f'{d}: ["09:00-17:00"]' for d in ("mon", "tue", "wed", "thu", "fri")) + "}"
    escalations = "\n  - {after: 365d, notify: head}"
    assert parse_policy(policy_text("365d", hours=nine_to_five, escalations=escalations), SlaPolicy)


@pytest.mark.parametrize("hours", ["{}", "{mon: [], tue: []}"])
def test_a_calendar_without_any_working_hours_is_refused_with_file_line_and_field(hours):
    message = refused(policy_text("4h", hours=hours))
    assert message.startswith("sla.yaml:5: calendars.office.business_hours.hours: ")
    assert "needs working hours on at least one weekday" in message


# ---------- at run time: what validation cannot see ----------
def every_monday_for_eleven_years(first: date) -> str:
    return "[" + ", ".join(str(first + timedelta(weeks=n)) for n in range(11 * 53)) + "]"


def classified(case_id: str, when: datetime) -> ComplaintClassified:
    return ComplaintClassified(
        event_id=f"cls-{case_id}", occurred_at=when, case_id=case_id, causation_id="cmp-1", customer_id="C-881",
        source="crm-east", category="delay", severity="medium", temperament="upset", loyalty="loyal",
        publicity_risk="low", priority="P3", channel="phone", received_at=when,
    )


def test_holidays_covering_years_make_the_decision_count_round_the_clock_logged_once(tmp_path, caplog):
    monday = datetime(2026, 11, 23, 9, 30, tzinfo=timezone.utc)
    file = tmp_path / "sla.yaml"
    file.write_text(policy_text("3bd", holidays=every_monday_for_eleven_years(monday.date())))
    sla = Sla(PlainTopics(), PolicyHolder(file, SlaPolicy))  # type: ignore[arg-type]
    sla.current_policy()  # publishing the targets measures 3bd round the clock rather than raising
    assert metrics.target_seconds.labels("resolution", "P3")._value.get() == 3 * 86400
    with pytest.raises(NoWorkingTime):  # what stopped the consumer before
        on_classified(None, classified("CRM-1", monday), sla.current_policy(), monday)
    counted = metrics.round_the_clock_fallbacks._value.get()

    with caplog.at_level(logging.DEBUG, logger="services.sla.service"):
        outcomes = [sla.decide(case_id, lambda policy, c=case_id: on_classified(None, classified(c, monday), policy, monday))
                    for case_id in ("CRM-1", "CRM-2")]

    for outcome in outcomes:
        assert outcome.case is not None
        clocks = outcome.case.clocks
        assert {clock.calendar for clock in clocks.values()} == {"24x7"}
        assert clocks["first_contact"].due_at == monday + timedelta(hours=4)
        assert clocks["resolution"].due_at == monday + timedelta(days=3)  # 3bd round the clock: 3 days
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "case CRM-1: no working hours within 3660 days" in warnings[0].getMessage()
    assert "round the clock (24x7)" in warnings[0].getMessage() and "sla.yaml" in warnings[0].getMessage()
    assert [r.levelno for r in caplog.records if "CRM-2" in r.getMessage()] == [logging.DEBUG]
    assert metrics.round_the_clock_fallbacks._value.get() == counted + 2
