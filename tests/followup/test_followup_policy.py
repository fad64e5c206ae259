"""The follow-up policy file: defaults that say what the business asked for, and edits refused with file:line."""
from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from services.followup.policy import FollowupPolicy
from shared.policy import PolicyError, load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_policy_says_what_the_issue_asks_for():
    policy = load_policy(ROOT / "config" / "followup.yaml", FollowupPolicy)
    assert policy.thank_you_note.delay == timedelta(days=1)
    assert policy.thank_you_note.local_time == time(10, 0)
    assert policy.thank_you_note.channel_for("vip") == "mail"
    assert policy.thank_you_note.channel_for("loyal") == "mail"
    assert policy.thank_you_note.channel_for("standard") == "email"
    assert policy.retention_checkin.cadence == [timedelta(days=7), timedelta(days=30), timedelta(days=90)]
    assert policy.satisfaction_survey.after == timedelta(days=3)
    assert policy.satisfaction_survey.window == timedelta(days=30)
    assert policy.frequency.exempt == ["thank_you_note"]
    assert (policy.quiet_hours.start, policy.quiet_hours.end) == (time(21, 0), time(8, 0))


def test_shipped_policy_file_matches_the_model_defaults():
    assert load_policy(ROOT / "config" / "followup.yaml", FollowupPolicy) == FollowupPolicy()


def test_test_policy_counts_in_seconds_with_quiet_hours_off():
    policy = load_policy(ROOT / "tests" / "followup" / "followup_fast.yaml", FollowupPolicy)
    assert policy.thank_you_note.local_time is None
    assert policy.thank_you_note.delay == timedelta(seconds=3)
    assert max(policy.retention_checkin.cadence) < timedelta(minutes=1)
    assert policy.quiet_hours.enabled is False


def _refusal(text: str) -> str:
    with pytest.raises(PolicyError) as refused:
        parse_policy(text, FollowupPolicy, "config/followup.yaml")
    return str(refused.value)


def test_misspelt_key_is_refused_with_its_line():
    message = _refusal("thank_you_note:\n  enabled: true\n  dealy: 1d\n")
    assert "config/followup.yaml:3" in message
    assert "thank_you_note.dealy" in message


def test_impossible_clock_time_is_refused_with_its_line():
    message = _refusal("quiet_hours:\n  start: '25:00'\n")
    assert "config/followup.yaml:2" in message and "quiet_hours.start" in message


def test_unquoted_clock_time_is_read_as_a_time():
    assert parse_policy("quiet_hours:\n  end: 7:30\n", FollowupPolicy).quiet_hours.end == time(7, 30)


def test_cadence_out_of_order_is_refused():
    message = _refusal("retention_checkin:\n  cadence: [30d, 7d]\n")
    assert "config/followup.yaml:2: retention_checkin.cadence" in message
    assert "strictly increasing" in message


def test_bad_duration_names_the_cadence_step():
    message = _refusal("retention_checkin:\n  cadence:\n    - 7d\n    - soon\n")
    assert "config/followup.yaml:4" in message and "retention_checkin.cadence.1" in message


def test_quiet_hours_with_no_length_are_refused():
    assert "enabled: false" in _refusal("quiet_hours:\n  start: '08:00'\n  end: '08:00'\n")


def test_unknown_violation_action_and_channel_are_refused():
    message = _refusal("frequency:\n  on_violation: ignore\nsatisfaction_survey:\n  channel: pigeon\n")
    assert "config/followup.yaml:2: frequency.on_violation" in message
    assert "config/followup.yaml:4: satisfaction_survey.channel" in message


def test_frequency_cap_must_allow_at_least_one_contact():
    assert "frequency.max_contacts" in _refusal("frequency:\n  max_contacts: 0\n")
