"""The follow-up rules the handler used to hold, now pure (services/followup/domain): what counts as a
reopen, as an improvement, as entering retention, and how follow-ups are numbered. No database."""
from __future__ import annotations

from datetime import timedelta

import pytest

from services.followup.domain import (
    Contact, PlannedFollowup, SkippedFollowup, complaint_reopens, enters_retention, followup_id_for, in_retention,
    names_improvement, number_followups, resolution_plans,
)
from .helpers import at, customer

NOON = at("2026-11-23T12:00:00Z")


# ---------- a new complaint on a resolved case ----------
def test_a_complaint_received_after_the_resolution_reopens_a_resolved_case() -> None:
    assert complaint_reopens("resolved", NOON, NOON + timedelta(seconds=1))


@pytest.mark.parametrize("received", [NOON, NOON - timedelta(hours=1)])
def test_a_complaint_received_at_or_before_the_resolution_does_not_reopen(received) -> None:
    # a late or redelivered classification of the complaint the resolution already answered
    assert not complaint_reopens("resolved", NOON, received)


def test_a_complaint_on_an_open_case_is_no_reopen() -> None:
    assert not complaint_reopens("open", NOON, NOON + timedelta(days=1))
    assert not complaint_reopens("open", None, NOON)


def test_a_resolved_case_without_a_resolution_time_is_not_reopened() -> None:
    assert not complaint_reopens("resolved", None, NOON)


def test_only_the_first_resolution_since_a_reopen_plans() -> None:
    assert resolution_plans("open")
    assert not resolution_plans("resolved")


# ---------- what counts as an improvement ----------
@pytest.mark.parametrize("text, counts", [
    ("checkout now shows the delivery fee up front", True),
    ("  x ", True),
    ("", False),
    ("   \n\t", False),
    (None, False),
])
def test_an_improvement_is_a_resolution_that_names_a_change(text, counts) -> None:
    assert names_improvement(text) is counts


# ---------- retention ----------
def _planned(kind: str, customer_id: str = "C-881") -> PlannedFollowup:
    return PlannedFollowup(kind, "CRM-1", customer_id, NOON + timedelta(days=7), "email", "test")


def test_a_scheduled_check_in_keeps_a_customer_in_retention() -> None:
    assert in_retention(customer(contacts=(Contact("retention_checkin", NOON, "CRM-0", pending=True),)))


def test_sent_check_ins_and_other_kinds_do_not() -> None:
    assert not in_retention(customer())
    assert not in_retention(customer(contacts=(
        Contact("retention_checkin", NOON, "CRM-0", pending=False),
        Contact("satisfaction_survey", NOON, "CRM-0", pending=True),
    )))


def test_the_first_planned_check_in_enters_retention() -> None:
    assert enters_retention(customer(), [_planned("thank_you_note"), _planned("retention_checkin")])


def test_a_customer_already_in_retention_does_not_enter_it_again() -> None:
    kept = customer(contacts=(Contact("retention_checkin", NOON, "CRM-0", pending=True),))
    assert not enters_retention(kept, [_planned("retention_checkin")])


def test_a_plan_without_check_ins_enters_nobody() -> None:
    assert not enters_retention(customer(), [_planned("thank_you_note"), _planned("satisfaction_survey")])
    assert not enters_retention(customer(), [])


# ---------- how follow-ups are numbered ----------
def _skip(kind: str, due_days: int, customer_id: str = "C-881") -> SkippedFollowup:
    return SkippedFollowup(kind, "CRM-1", customer_id, NOON + timedelta(days=due_days), "email", "open_case")


def _plan(kind: str, due_days: int, customer_id: str = "C-881") -> PlannedFollowup:
    return PlannedFollowup(kind, "CRM-1", customer_id, NOON + timedelta(days=due_days), "email", "test")


def test_ids_number_each_customer_and_kind_in_due_order_whatever_the_plan_order() -> None:
    late, early = _plan("retention_checkin", 30), _plan("retention_checkin", 7)
    numbered, _ = number_followups("evt-1", [late, early], [])
    assert numbered == [
        (followup_id_for("evt-1", "C-881", "retention_checkin", 1), late),
        (followup_id_for("evt-1", "C-881", "retention_checkin", 0), early),
    ]


def test_planned_and_skipped_share_one_sequence_per_customer_and_kind() -> None:
    planned, skipped = _plan("retention_checkin", 30), _skip("retention_checkin", 7)
    numbered, numbered_skips = number_followups("evt-1", [planned], [skipped])
    assert numbered_skips == [(followup_id_for("evt-1", "C-881", "retention_checkin", 0), skipped)]
    assert numbered == [(followup_id_for("evt-1", "C-881", "retention_checkin", 1), planned)]


def test_other_customers_and_kinds_count_from_zero() -> None:
    mine, theirs, note = _plan("retention_checkin", 7), _plan("retention_checkin", 7, "C-2"), _plan("thank_you_note", 1)
    numbered, _ = number_followups("evt-1", [mine, theirs, note], [])
    assert [fid for fid, _ in numbered] == [
        followup_id_for("evt-1", "C-881", "retention_checkin", 0),
        followup_id_for("evt-1", "C-2", "retention_checkin", 0),
        followup_id_for("evt-1", "C-881", "thank_you_note", 0),
    ]


def test_the_same_event_numbers_the_same_plan_the_same_way_and_another_event_differently() -> None:
    plan = [_plan("thank_you_note", 1), _plan("retention_checkin", 7), _plan("retention_checkin", 30)]
    first, again, other = (number_followups(e, plan, [])[0] for e in ("evt-1", "evt-1", "evt-2"))
    assert first == again
    assert {fid for fid, _ in first}.isdisjoint(fid for fid, _ in other)
    assert len({fid for fid, _ in first}) == 3


def test_nothing_planned_numbers_nothing() -> None:
    assert number_followups("evt-1", [], []) == ([], [])
