"""When follow-ups fall due: the customer's clock, quiet hours, survey fatigue and frequency rules."""
from __future__ import annotations

from datetime import timedelta

from services.followup.domain import Contact, CustomerCase, ResolvedCase, end_of_quiet_hours, plan_on_resolved
from services.followup.domain.localtime import customer_zone
from .helpers import at, customer, only_retention, planned, policy, skipped

DEFAULT = policy()


def thank_you(resolved: str, zone: str, loyalty: str = "standard", rules=DEFAULT):
    resolved_at = at(resolved)
    plan = plan_on_resolved(rules, ResolvedCase("CRM-10442", resolved_at), customer(timezone=zone, loyalty=loyalty), resolved_at)
    [note] = planned(plan, "thank_you_note")
    return note


# ---------- the thank-you note, the day after, at 10:00 the customer's time ----------

def test_tokyo_customer_resolved_late_evening_gets_the_note_at_ten_next_morning_tokyo_time():
    note = thank_you("2026-11-23T23:00:00+09:00", "Asia/Tokyo")
    assert note.due_at == at("2026-11-24T10:00:00+09:00")


def test_new_york_customer_resolved_at_half_past_eleven_gets_the_note_the_next_day_not_the_one_after():
    note = thank_you("2026-11-23T23:30:00-05:00", "America/New_York")
    assert note.due_at == at("2026-11-24T10:00:00-05:00")


def test_note_after_the_us_fall_back_night_is_still_at_ten_local():
    # Clocks go back on Sunday 1 November 2026: Saturday noon EDT, the note Sunday 10:00 EST.
    note = thank_you("2026-10-31T12:00:00-04:00", "America/New_York")
    assert note.due_at == at("2026-11-01T10:00:00-05:00")
    assert note.due_at - at("2026-10-31T12:00:00-04:00") == timedelta(hours=23)


def test_note_after_the_us_spring_forward_night_is_still_at_ten_local():
    note = thank_you("2026-03-07T12:00:00-05:00", "America/New_York")
    assert note.due_at == at("2026-03-08T10:00:00-04:00")


def test_resolved_just_before_midnight_on_the_spring_forward_eve_is_thanked_on_sunday_not_monday():
    # 24 real hours after Saturday 23:30 EST is already Monday 00:30 EDT: "next day" is on the calendar.
    note = thank_you("2026-03-07T23:30:00-05:00", "America/New_York")
    assert note.due_at == at("2026-03-08T10:00:00-04:00")


def test_resolved_just_after_midnight_on_the_fall_back_night_is_thanked_on_monday_not_the_same_day():
    # 24 real hours after Sunday 00:30 EDT is still Sunday (23:30 EST).
    note = thank_you("2026-11-01T00:30:00-04:00", "America/New_York")
    assert note.due_at == at("2026-11-02T10:00:00-05:00")


def test_note_at_a_clock_time_that_spring_forward_skips_lands_just_after_the_gap():
    rules = policy(thank_you_note={"local_time": "02:30"}, quiet_hours={"enabled": False})
    note = thank_you("2026-03-07T12:00:00-05:00", "America/New_York", rules=rules)
    assert note.due_at == at("2026-03-08T03:30:00-04:00")


def test_customer_without_a_known_zone_is_thanked_at_ten_utc():
    note = thank_you("2026-11-23T15:00:00Z", "Mars/Olympus_Mons")
    assert note.due_at == at("2026-11-24T10:00:00Z")


def test_loyal_and_vip_customers_get_a_handwritten_note_others_an_email():
    assert thank_you("2026-11-23T15:00:00Z", "UTC", loyalty="loyal").channel == "mail"
    assert thank_you("2026-11-23T15:00:00Z", "UTC", loyalty="vip").channel == "mail"
    assert thank_you("2026-11-23T15:00:00Z", "UTC", loyalty="new").channel == "email"


def test_test_policy_without_local_time_makes_the_note_due_seconds_after_resolution():
    rules = policy(thank_you_note={"delay": "3s", "local_time": None}, quiet_hours={"enabled": False})
    note = thank_you("2026-11-23T15:00:00Z", "Asia/Tokyo", rules=rules)
    assert note.due_at == at("2026-11-23T15:00:03Z")


def test_resolution_processed_late_makes_overdue_follow_ups_due_now_not_in_the_past():
    resolved, now = at("2026-11-20T12:00:00Z"), at("2026-11-25T12:00:00Z")
    plan = plan_on_resolved(DEFAULT, ResolvedCase("K", resolved), customer(), now)
    assert min(p.due_at for p in plan.planned) == now


def test_one_resolution_plans_note_survey_and_the_whole_retention_cadence():
    resolved = at("2026-11-23T12:00:00Z")
    plan = plan_on_resolved(DEFAULT, ResolvedCase("K", resolved), customer(), resolved)
    assert [p.due_at - resolved for p in planned(plan, "retention_checkin")] == [
        timedelta(days=7), timedelta(days=30), timedelta(days=90)]
    assert planned(plan, "satisfaction_survey")[0].due_at == resolved + timedelta(days=3)
    assert planned(plan, "improvement_notice") == []  # no improvement was named
    assert plan.skipped == []


# ---------- quiet hours ----------

NEW_YORK = customer_zone("America/New_York")


def test_check_in_due_at_eleven_at_night_moves_to_eight_next_morning():
    due = at("2026-11-23T23:00:00-05:00")
    assert end_of_quiet_hours(due, DEFAULT.quiet_hours, NEW_YORK) == at("2026-11-24T08:00:00-05:00")


def test_check_in_due_at_three_in_the_morning_moves_to_eight_the_same_morning():
    due = at("2026-11-24T03:00:00-05:00")
    assert end_of_quiet_hours(due, DEFAULT.quiet_hours, NEW_YORK) == at("2026-11-24T08:00:00-05:00")


def test_check_in_just_before_quiet_hours_and_at_their_end_is_not_moved():
    for due in (at("2026-11-23T20:59:00-05:00"), at("2026-11-24T08:00:00-05:00")):
        assert end_of_quiet_hours(due, DEFAULT.quiet_hours, NEW_YORK) == due


def test_quiet_hours_within_one_day_hold_a_message_until_they_end():
    lunch = policy(quiet_hours={"start": "12:00", "end": "14:00"}).quiet_hours
    assert end_of_quiet_hours(at("2026-11-23T12:30:00-05:00"), lunch, NEW_YORK) == at("2026-11-23T14:00:00-05:00")
    assert end_of_quiet_hours(at("2026-11-23T23:30:00-05:00"), lunch, NEW_YORK) == at("2026-11-23T23:30:00-05:00")


def test_quiet_night_of_the_fall_back_ends_at_eight_standard_time():
    # 01:30 happens twice that night; either way the message waits for 08:00 EST.
    first_half_past_one = at("2026-11-01T01:30:00-04:00")
    assert end_of_quiet_hours(first_half_past_one, DEFAULT.quiet_hours, NEW_YORK) == at("2026-11-01T08:00:00-05:00")


def test_retention_check_in_falling_at_night_in_tokyo_is_sent_in_the_morning():
    resolved = at("2026-11-23T22:00:00+09:00")
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, quiet_hours={"enabled": True})
    plan = plan_on_resolved(rules, ResolvedCase("K", resolved), customer(timezone="Asia/Tokyo"), resolved)
    [checkin] = planned(plan, "retention_checkin")
    assert checkin.due_at == at("2026-12-01T08:00:00+09:00")
    assert checkin.deferred_by == ("quiet_hours",)


def test_handwritten_note_ignores_quiet_hours_but_an_email_waits_for_the_morning():
    rules = policy(thank_you_note={"local_time": "22:00"})
    assert thank_you("2026-11-23T12:00:00Z", "UTC", loyalty="vip", rules=rules).due_at == at("2026-11-24T22:00:00Z")
    assert thank_you("2026-11-23T12:00:00Z", "UTC", loyalty="standard", rules=rules).due_at == at("2026-11-25T08:00:00Z")


# ---------- survey fatigue, across all the customer's cases ----------

def survey_plan(resolved: str, rules=DEFAULT, **facts):
    resolved_at = at(resolved)
    return plan_on_resolved(rules, ResolvedCase("CRM-2", resolved_at), customer(**facts), resolved_at)


def test_second_case_resolved_within_thirty_days_of_a_survey_gets_no_second_survey():
    earlier = Contact("satisfaction_survey", at("2026-11-04T12:00:00Z"), "CRM-1")
    plan = survey_plan("2026-11-10T12:00:00Z", contacts=(earlier,))
    assert planned(plan, "satisfaction_survey") == []
    assert [s.reason for s in skipped(plan, "satisfaction_survey")] == ["survey_within_window"]
    assert planned(plan, "thank_you_note") and planned(plan, "retention_checkin")  # only the survey is dropped


def test_survey_is_asked_again_once_the_window_since_the_last_one_has_passed():
    earlier = Contact("satisfaction_survey", at("2026-10-01T12:00:00Z"), "CRM-1")
    plan = survey_plan("2026-11-10T12:00:00Z", contacts=(earlier,))
    assert planned(plan, "satisfaction_survey")[0].due_at == at("2026-11-13T12:00:00Z")


def test_survey_already_scheduled_for_another_case_blocks_a_second_one_just_before_it():
    coming = Contact("satisfaction_survey", at("2026-11-25T12:00:00Z"), "CRM-1", pending=True)
    plan = survey_plan("2026-11-20T12:00:00Z", contacts=(coming,))
    assert [s.reason for s in skipped(plan, "satisfaction_survey")] == ["survey_within_window"]


def test_no_survey_while_another_case_of_the_customer_is_open():
    plan = survey_plan("2026-11-10T12:00:00Z", cases=(CustomerCase("CRM-3", open=True),))
    assert [s.reason for s in skipped(plan, "satisfaction_survey")] == ["open_case"]


def test_no_survey_while_an_irate_case_of_the_customer_is_unresolved():
    cases = (CustomerCase("CRM-3", open=True), CustomerCase("CRM-4", open=True, irate=True))
    plan = survey_plan("2026-11-10T12:00:00Z", cases=cases)
    assert [s.reason for s in skipped(plan, "satisfaction_survey")] == ["irate_case_unresolved"]


def test_an_irate_case_that_was_resolved_does_not_block_the_survey():
    plan = survey_plan("2026-11-10T12:00:00Z", cases=(CustomerCase("CRM-4", open=False, irate=True),))
    assert len(planned(plan, "satisfaction_survey")) == 1


# ---------- contact-frequency rules ----------

RESOLVED = at("2026-11-10T12:00:00Z")
CHECKIN_DUE = RESOLVED + timedelta(days=7)


def checkin(rules, contacts=(), responses=()):
    facts = customer(contacts=tuple(contacts), survey_responses=tuple(responses))
    return plan_on_resolved(rules, ResolvedCase("CRM-2", RESOLVED), facts, RESOLVED)


def test_check_in_a_day_after_another_contact_is_deferred_to_keep_the_minimum_gap():
    other = Contact("retention_checkin", CHECKIN_DUE - timedelta(days=1), "CRM-1")
    [moved] = planned(checkin(only_retention(retention_checkin={"cadence": ["7d"]}), [other]), "retention_checkin")
    assert moved.due_at == other.at + timedelta(days=2)
    assert moved.deferred_by == ("min_gap",) and "deferred: min_gap" in moved.reason


def test_check_in_breaking_the_minimum_gap_is_skipped_when_the_policy_says_skip():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, frequency={"on_violation": "skip"})
    other = Contact("retention_checkin", CHECKIN_DUE - timedelta(days=1), "CRM-1")
    plan = checkin(rules, [other])
    assert planned(plan, "retention_checkin") == []
    assert [s.reason for s in skipped(plan, "retention_checkin")] == ["min_gap"]


def test_fifth_contact_in_thirty_days_waits_until_the_oldest_falls_out_of_the_window():
    rules = only_retention(retention_checkin={"cadence": ["7d"]})
    recent = [Contact("improvement_notice", CHECKIN_DUE - timedelta(days=d), "CRM-1") for d in (20, 15, 10, 5)]
    [moved] = planned(checkin(rules, recent), "retention_checkin")
    assert moved.due_at == CHECKIN_DUE + timedelta(days=10)
    assert moved.deferred_by == ("max_contacts",)


def test_fifth_contact_in_thirty_days_is_skipped_when_the_policy_says_skip():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, frequency={"on_violation": "skip"})
    recent = [Contact("improvement_notice", CHECKIN_DUE - timedelta(days=d), "CRM-1") for d in (20, 15, 10, 5)]
    assert [s.reason for s in checkin(rules, recent).skipped] == ["max_contacts"]


def test_thank_you_notes_do_not_count_towards_the_cap_or_the_gap():
    rules = only_retention(retention_checkin={"cadence": ["7d"]})
    notes = [Contact("thank_you_note", CHECKIN_DUE - timedelta(hours=h), "CRM-1") for h in (1, 2, 3, 4, 5)]
    [sent] = planned(checkin(rules, notes), "retention_checkin")
    assert sent.due_at == CHECKIN_DUE and sent.deferred_by == ()


def test_thank_you_note_is_never_deferred_by_frequency_rules():
    crowd = tuple(Contact("retention_checkin", at("2026-11-24T10:00:00Z") + timedelta(hours=h), "CRM-1") for h in (-2, 2))
    resolved = at("2026-11-23T15:00:00Z")
    plan = plan_on_resolved(DEFAULT, ResolvedCase("K", resolved), customer(contacts=crowd), resolved)
    assert planned(plan, "thank_you_note")[0].due_at == at("2026-11-24T10:00:00Z")


def test_nothing_is_sent_during_the_cooldown_after_a_survey_answer():
    rules = only_retention(retention_checkin={"cadence": ["7d"]})
    answered = CHECKIN_DUE - timedelta(days=4)
    [moved] = planned(checkin(rules, responses=[answered]), "retention_checkin")
    assert moved.due_at == answered + timedelta(days=14)
    assert moved.deferred_by == ("cooldown_after_response",)


def test_nothing_is_sent_during_the_cooldown_after_a_survey_invitation():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, frequency={"min_gap": "0s"})
    invited = Contact("satisfaction_survey", CHECKIN_DUE - timedelta(days=1), "CRM-1")
    [moved] = planned(checkin(rules, [invited]), "retention_checkin")
    assert moved.due_at == invited.at + timedelta(days=3)
    assert moved.deferred_by == ("cooldown_after_survey",)


def test_deferral_beyond_the_limit_becomes_a_skip():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, frequency={"max_defer": "1d"})
    other = Contact("retention_checkin", CHECKIN_DUE, "CRM-1")
    assert [s.reason for s in checkin(rules, [other]).skipped] == ["no_slot_within_max_defer"]


def test_deferred_check_in_that_would_land_at_night_waits_for_the_morning():
    rules = only_retention(retention_checkin={"cadence": ["7d"]}, quiet_hours={"enabled": True})
    resolved = at("2026-11-10T12:00:00-05:00")
    # The gap clears at 23:00 New York time; quiet hours then hold it until 08:00.
    other = Contact("retention_checkin", at("2026-11-15T23:00:00-05:00"), "CRM-1")
    facts = customer(timezone="America/New_York", contacts=(other,))
    [moved] = planned(plan_on_resolved(rules, ResolvedCase("CRM-2", resolved), facts, resolved), "retention_checkin")
    assert moved.due_at == at("2026-11-18T08:00:00-05:00")
    assert moved.deferred_by == ("min_gap", "quiet_hours")


def test_follow_ups_of_one_resolution_keep_their_distance_from_each_other():
    rules = policy(satisfaction_survey={"after": "1d"}, improvement_notice={"delay": "1d"}, quiet_hours={"enabled": False})
    plan = plan_on_resolved(rules, ResolvedCase("K", RESOLVED, improvement=True), customer(), RESOLVED)
    [survey], [notice] = planned(plan, "satisfaction_survey"), planned(plan, "improvement_notice")
    assert survey.due_at == RESOLVED + timedelta(days=1)
    assert notice.due_at == survey.due_at + timedelta(days=3)  # gap, then the survey's cooldown
    assert notice.deferred_by == ("min_gap", "cooldown_after_survey")
