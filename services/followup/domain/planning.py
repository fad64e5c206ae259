"""What to schedule when a case is resolved: thank-you note, survey, retention check-ins, improvement notice."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from services.followup.policy import FollowupChannel, FollowupKind
from services.followup.domain.frequency import counted_contacts, find_slot, within
from services.followup.domain.localtime import (
    after, customer_zone, end_of_quiet_hours, next_day_at, quiet_hours_apply, utc,
)
from services.followup.domain.model import (
    ALREADY_SCHEDULED, ALREADY_SENT, CASE_ALREADY_SURVEYED, IRATE_CASE_UNRESOLVED, OPEN_CASE, SURVEY_WITHIN_WINDOW,
    Contact, CustomerFacts, FollowupPlan, PlannedFollowup, ResolvedCase, SkippedFollowup,
)
from services.followup.policy import FollowupPolicy, format_span

def thank_you_due(policy: FollowupPolicy, resolved_at: datetime, timezone_name: str) -> datetime:
    """When the thank-you note is due (UTC): `local_time` on the local day `delay` after the
    resolution; with `local_time: null`, `delay` after it (calendar days keep the local clock time,
    hours are elapsed; see `localtime.after`)."""
    note, zone = policy.thank_you_note, customer_zone(timezone_name)
    if note.local_time is None:
        return after(resolved_at, note.delay, zone)
    return next_day_at(resolved_at, note.delay, note.local_time, zone)


def survey_blocked_by(policy: FollowupPolicy, at: datetime, customer: CustomerFacts, case_id: str | None = None) -> str | None:
    """Why a survey at `at` would add to survey fatigue or reach an unhappy customer; None if welcome.

    With `case_id`, a case already surveyed (sent or scheduled) is not surveyed again when the
    policy's `once_per_case` says so. The window counts in the customer's zone (`localtime.after`).
    """
    if any(case.open and case.irate for case in customer.cases):
        return IRATE_CASE_UNRESOLVED
    if any(case.open for case in customer.cases):
        return OPEN_CASE
    survey = policy.satisfaction_survey
    surveys = [c for c in customer.contacts if c.kind == "satisfaction_survey"]
    if case_id is not None and survey.once_per_case and any(c.case_id == case_id for c in surveys):
        return CASE_ALREADY_SURVEYED
    zone = customer_zone(customer.timezone)
    if any(within(at, c.at, survey.window, zone) for c in surveys):
        return SURVEY_WITHIN_WINDOW
    return None


def fit(
    policy: FollowupPolicy, kind: FollowupKind, channel: FollowupChannel, due: datetime,
    customer: CustomerFacts, case_id: str, reason: str,
) -> PlannedFollowup | SkippedFollowup:
    """Places one follow-up due at `due` under quiet hours and frequency rules (in the customer's zone)."""
    zone = customer_zone(customer.timezone)
    quiet = policy.quiet_hours
    release = (lambda at: end_of_quiet_hours(at, quiet, zone)) if quiet_hours_apply(quiet, channel) else (lambda at: at)
    rules = None if kind in policy.frequency.exempt else policy.frequency
    slot = find_slot(
        due, contacts=counted_contacts(customer.contacts, policy.frequency),
        responses=customer.survey_responses, rules=rules, release=release, zone=zone,
    )
    if slot.skipped:
        return SkippedFollowup(kind, case_id, customer.customer_id, due, channel, slot.skipped)
    if slot.deferred_by:
        reason = f"{reason}, deferred: {', '.join(slot.deferred_by)}"
    return PlannedFollowup(kind, case_id, customer.customer_id, slot.due_at, channel, reason, slot.deferred_by)


def _candidates(policy: FollowupPolicy, case: ResolvedCase, customer: CustomerFacts) -> list[tuple[FollowupKind, FollowupChannel, datetime, str]]:
    """Each follow-up this resolution asks for, at its due time before quiet hours and frequency rules.

    Every delay counts from the resolution with `localtime.after` in the customer's zone.
    """
    wanted: list[tuple[FollowupKind, FollowupChannel, datetime, str]] = []
    zone, resolved = customer_zone(customer.timezone), case.resolved_at
    note = policy.thank_you_note
    if note.enabled:
        due = thank_you_due(policy, resolved, customer.timezone)
        wanted.append(("thank_you_note", note.channel_for(customer.loyalty), due, "thank-you note the day after resolution"))
    survey = policy.satisfaction_survey
    if survey.enabled:
        wanted.append(("satisfaction_survey", survey.channel, after(resolved, survey.after, zone), f"survey {_short(survey.after)} after resolution"))
    notice = policy.improvement_notice
    if notice.enabled and case.improvement:
        wanted.append(("improvement_notice", notice.channel, after(resolved, notice.delay, zone), "tell the customer what changed"))
    retention = policy.retention_checkin
    if retention.enabled:
        for step in retention.cadence:
            wanted.append(("retention_checkin", retention.channel, after(resolved, step, zone), f"retention check-in +{_short(step)}"))
    return wanted


def _short(delta: timedelta) -> str:
    return format_span(delta)


def _repeat_reason(kind: FollowupKind, case: ResolvedCase, customer: CustomerFacts) -> str | None:
    """A resolution after a reopen must not double what the first one left in place."""
    mine = [c for c in customer.contacts if c.case_id == case.case_id and c.kind == kind]
    if kind == "retention_checkin" and any(c.pending for c in mine):
        return ALREADY_SCHEDULED  # the check-ins of the first resolution still run
    if kind == "thank_you_note" and any(not c.pending for c in mine):
        return ALREADY_SENT  # one thank-you per case, however often it is resolved
    return None


def plan_on_resolved(policy: FollowupPolicy, case: ResolvedCase, customer: CustomerFacts, now: datetime) -> FollowupPlan:
    """The follow-ups of a resolved case, planned and skipped (with reasons, so skips can be counted).

    Follow-ups are placed in due order and each one planned becomes a fact for the next, so the
    plan of one resolution obeys the frequency rules within itself too. A due time already passed
    (the event arrived late) is moved to `now` before quiet hours apply. Instants may come in any
    zone: the plan is the same for the same instants, in UTC.
    """
    plan, facts, now = FollowupPlan(), customer, utc(now)
    case = replace(case, resolved_at=utc(case.resolved_at))
    for kind, channel, due, reason in sorted(_candidates(policy, case, customer), key=lambda w: w[2]):
        due = max(due, now)
        blocked = _repeat_reason(kind, case, customer)
        if blocked is None and kind == "satisfaction_survey":
            blocked = survey_blocked_by(policy, due, facts, case.case_id)
        if blocked:
            plan.skipped.append(SkippedFollowup(kind, case.case_id, customer.customer_id, due, channel, blocked))
            continue
        placed = fit(policy, kind, channel, due, facts, case.case_id, reason)
        if isinstance(placed, PlannedFollowup) and kind == "satisfaction_survey":
            # Deferral may have pushed it next to another survey.
            if survey_blocked_by(policy, placed.due_at, facts):
                placed = SkippedFollowup(kind, case.case_id, customer.customer_id, due, channel, SURVEY_WITHIN_WINDOW)
        if isinstance(placed, SkippedFollowup):
            plan.skipped.append(placed)
            continue
        plan.planned.append(placed)
        facts = _with_contact(facts, Contact(kind, placed.due_at, case.case_id, pending=True))
    return plan


def _with_contact(customer: CustomerFacts, contact: Contact) -> CustomerFacts:
    return replace(customer, contacts=customer.contacts + (contact,))
