"""Issue 12, ambiguous units: on a business-hours calendar `3d` is 72 working hours, not three days.
A policy may say business days (`3bd`); `d` and `w` there draw a warning at load (log) and from
`helpdesk policy validate`, naming file, line and field. Figures worked out by hand beside them."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.sla.domain.calendar import deadline
from services.sla.service import Sla
from services.sla.policy import BusinessDays, SlaPolicy
from shared.durations import written_in_days
from shared.policy import PolicyHolder, load_policy, parse_policy
from tests.support.stubs import PlainTopics

ROOT = Path(__file__).resolve().parents[2]
NINE_TO_FIVE = '{mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"], fri: ["09:00-17:00"]}'
US_OFFICE = ('{mon: ["09:00-12:00", "13:00-17:00"], tue: ["09:00-12:00", "13:00-17:00"], wed: ["09:00-12:00", "13:00-17:00"], '
             'thu: ["09:00-12:00", "13:00-17:00"], fri: ["09:00-12:00", "13:00-16:00"]}')


def policy_text(targets: str, *, hours: str = NINE_TO_FIVE, choice: str = "{default: office}", escalations: str = "[]") -> str:
    return f"""\
targets:
{targets}
escalations: {escalations}
calendars:
  office: {{type: business_hours, timezone: America/New_York, hours: {hours}}}
calendar: {choice}
"""


def advice(text: str) -> dict[str, str]:
    return {".".join(map(str, loc)): message for loc, message in parse_policy(text, SlaPolicy).load_warnings()}


@pytest.mark.parametrize("text, in_days", [
    ("3d", True), ("1w", True), ("1d12h", True), ("2 d", True), ("72h", False), ("90m", False),
    ("3bd", False), ("1 business day", False), ("soon", False), (3600, False),
])
def test_which_durations_are_written_in_days_or_weeks(text, in_days):
    assert written_in_days(text) is in_days


def test_three_business_days_on_an_office_calendar_are_three_working_days():
    policy = parse_policy(policy_text("  P3: {first_contact: 4h, update: 1bd, resolution: 3bd}"), SlaPolicy)
    assert policy.targets["P3"].resolution == BusinessDays(3)
    office = policy.calendars["office"]
    monday_10 = datetime(2026, 11, 23, 15, tzinfo=timezone.utc)  # 10:00 EST
    # 3bd from Monday 10:00: Thursday 10:00 (15:00 UTC); "3d" = 72 working hours = 9 eight-hour days:
    # Monday 10:00 + 7h (Mon) + 8h x 8 (Tue, Wed, Thu, Fri, Mon, Tue, Wed, Thu) + 1h = Friday Dec 4, 10:00.
    assert deadline(monday_10, policy.targets["P3"].resolution, office) == datetime(2026, 11, 26, 15, tzinfo=timezone.utc)
    assert deadline(monday_10, timedelta(days=3), office) == datetime(2026, 12, 4, 15, tzinfo=timezone.utc)
    assert policy.load_warnings() == []


def test_days_on_an_office_calendar_draw_a_warning_that_says_what_they_count():
    notes = advice(policy_text("  P3: {first_contact: 4h, update: 1d, resolution: 3d}"))
    # 72 working hours / 8 hours a day = about 9 working days
    assert notes["targets.P3.resolution"] == (
        "'3d' counts 72 working hours on business-hours calendar office (about 9 of its working days), "
        "not 3 calendar days: write '3bd' for 3 business days, or write '72h' to keep 72 working hours")
    assert notes["targets.P3.update"].startswith("'1d' counts 24 working hours on business-hours calendar office (about 3 of its working days)")
    assert set(notes) == {"targets.P3.update", "targets.P3.resolution"}  # the defaults of P1, P2, P4 were not written


def test_on_the_shipped_us_office_hours_three_days_are_about_eleven_working_days():
    # 4 x 7h + 6h on Friday = 34h a week over 5 days = 6.8h a day; 72 / 6.8 = 10.6, about 11
    notes = advice(policy_text("  P3: {first_contact: 4h, update: 1bd, resolution: 3d}", hours=US_OFFICE))
    assert "72 working hours on business-hours calendar office (about 11 of its working days)" in notes["targets.P3.resolution"]


def test_a_week_suggests_hours_not_seven_business_days():
    notes = advice(policy_text("  P4: {first_contact: 1bd, update: 2bd, resolution: 1w}"))
    # 168 working hours / 8 = 21 working days
    assert notes["targets.P4.resolution"] == (
        "'1w' counts 168 working hours on business-hours calendar office (about 21 of its working days), "
        "not 7 calendar days: write '168h' to keep 168 working hours")


def test_days_round_the_clock_are_plain_days_and_draw_no_warning():
    text = policy_text("  P1: {first_contact: 15m, update: 2h, resolution: 1d}", choice="{default: office, by_priority: {P1: 24x7}}")
    assert advice(text) == {}


def test_a_source_that_puts_the_priority_on_office_hours_draws_the_warning():
    choice = "{default: 24x7, by_source: {crm-emea: {P1: office}}}"
    assert set(advice(policy_text("  P1: {first_contact: 15m, update: 2h, resolution: 1d}", choice=choice))) == {"targets.P1.resolution"}
    choice = "{default: 24x7, by_source: {crm-japan: office}}"  # one calendar for every priority of that source
    assert set(advice(policy_text("  P1: {first_contact: 15m, update: 2h, resolution: 1d}", choice=choice))) == {"targets.P1.resolution"}


def test_an_escalation_delay_in_days_on_office_hours_draws_the_warning_and_suggests_hours():
    notes = advice(policy_text("  P3: {first_contact: 4h, update: 1bd, resolution: 3bd}", escalations="[{after: 1d, notify: head}]"))
    assert notes == {"escalations.0.after": (
        "'1d' counts 24 working hours on business-hours calendar office (about 3 of its working days), "
        "not 1 calendar day: write '24h' to keep 24 working hours")}


def test_the_shipped_policy_says_what_it_means():
    policy = load_policy(ROOT / "config" / "sla.yaml", SlaPolicy)
    assert policy.load_warnings() == []
    assert (policy.targets["P3"].update, policy.targets["P3"].resolution) == (BusinessDays(1), BusinessDays(3))
    assert (policy.targets["P4"].update, policy.targets["P4"].resolution) == (BusinessDays(2), BusinessDays(5))


def test_policy_validate_prints_the_warning_with_file_and_line(tmp_path):
    file = tmp_path / "sla.yaml"
    file.write_text(policy_text("  P3: {first_contact: 4h, update: 1bd, resolution: 3d}"))
    result = CliRunner().invoke(app, ["policy", "validate", str(file)])
    assert result.exit_code == 0, result.output  # valid: a warning is advice, not a refusal
    assert "OK:" in result.output
    assert f"warning: {file}:2: targets.P3.resolution: '3d' counts 72 working hours" in result.output


def test_policy_validate_of_the_shipped_file_warns_about_nothing():
    result = CliRunner().invoke(app, ["policy", "validate", str(ROOT / "config" / "sla.yaml")])
    assert result.exit_code == 0 and "warning" not in result.output


def test_the_sla_service_logs_the_warning_when_it_loads_the_policy(tmp_path, caplog):
    file = tmp_path / "sla.yaml"
    file.write_text(policy_text("  P4: {first_contact: 1bd, update: 2d, resolution: 5bd}"))
    with caplog.at_level(logging.WARNING, logger="services.sla.service"):
        Sla(PlainTopics(), PolicyHolder(file, SlaPolicy)).current_policy()  # type: ignore[arg-type]
    [record] = caplog.records
    assert record.getMessage().startswith(f"{file}:2: targets.P4.update: '2d' counts 48 working hours")
