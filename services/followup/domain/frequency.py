"""Contact-frequency rules and quiet hours: when may one more follow-up reach this customer?

Rules are checked as at send time (the way Qualtrics and Medallia evaluate them): the cap counts
contacts in the trailing period; the minimum gap also looks at follow-ups already scheduled later,
so two plans from two cases do not land on the same day. Every span is measured with
`localtime.after` in the customer's zone: `2d` of gap is two calendar days at the same local
clock time, `48h` is 48 elapsed hours.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence
from zoneinfo import ZoneInfo

from services.followup.domain.localtime import UTC_ZONE, after, utc
from services.followup.domain.model import (
    COOLDOWN_AFTER_RESPONSE, COOLDOWN_AFTER_SURVEY, MAX_CONTACTS, MIN_GAP, NO_SLOT_WITHIN_MAX_DEFER,
    Contact,
)
from services.followup.policy import FrequencyRules

QUIET_HOURS = "quiet_hours"
_MAX_STEPS = 200  # each step moves strictly forward past one contact; this bounds a pathological history


@dataclass(frozen=True)
class BrokenRule:
    rule: str
    clears_at: datetime  # the earliest instant at which this one rule no longer objects


@dataclass(frozen=True)
class Slot:
    """Where a follow-up fits: `due_at`, or `skipped` with the rule that refused it."""

    due_at: datetime
    deferred_by: tuple[str, ...] = ()
    skipped: str | None = None


def counted_contacts(contacts: Sequence[Contact], rules: FrequencyRules) -> list[Contact]:
    """The contacts the frequency rules count: all but the kinds the policy exempts."""
    return [c for c in contacts if c.kind not in rules.exempt]


def within(at: datetime, other: datetime, span: timedelta, zone: ZoneInfo) -> bool:
    """Whether `at` and `other` are closer than `span` (measured forward from the earlier one)."""
    return other < after(at, span, zone) and at < after(other, span, zone)


def first_broken_rule(
    at: datetime, contacts: Sequence[Contact], responses: Sequence[datetime], rules: FrequencyRules,
    zone: ZoneInfo = UTC_ZONE,
) -> BrokenRule | None:
    """The first frequency rule one more contact at `at` would break; `contacts` are counted ones.

    Spans count in the customer's `zone` (see the module docstring); `clears_at` is in UTC.
    """
    too_close = [c.at for c in contacts if within(at, c.at, rules.min_gap, zone)]
    if too_close:
        return BrokenRule(MIN_GAP, max(after(c, rules.min_gap, zone) for c in too_close))
    return _cooldown(at, contacts, responses, rules, zone) or _cap(at, contacts, rules, zone)


def _cooldown(
    at: datetime, contacts: Sequence[Contact], responses: Sequence[datetime], rules: FrequencyRules, zone: ZoneInfo,
) -> BrokenRule | None:
    cooldown = rules.cooldown_after_survey
    surveys = [c.at for c in contacts if c.kind == "satisfaction_survey" and c.at <= at < after(c.at, cooldown, zone)]
    if surveys:
        return BrokenRule(COOLDOWN_AFTER_SURVEY, after(max(surveys), cooldown, zone))
    answered = [r for r in responses if r <= at < after(r, rules.cooldown_after_response, zone)]
    if answered:
        return BrokenRule(COOLDOWN_AFTER_RESPONSE, after(max(answered), rules.cooldown_after_response, zone))
    return None


def _cap(at: datetime, contacts: Sequence[Contact], rules: FrequencyRules, zone: ZoneInfo) -> BrokenRule | None:
    in_period = sorted(c.at for c in contacts if c.at <= at < after(c.at, rules.period, zone))
    if len(in_period) >= rules.max_contacts:
        # The window frees a place once its oldest contacts fall out of it.
        return BrokenRule(MAX_CONTACTS, after(in_period[len(in_period) - rules.max_contacts], rules.period, zone))
    return None


def find_slot(
    due: datetime,
    *,
    contacts: Sequence[Contact],
    responses: Sequence[datetime],
    rules: FrequencyRules | None,
    release: Callable[[datetime], datetime],
    zone: ZoneInfo = UTC_ZONE,
) -> Slot:
    """The earliest time at or after `due` that is outside quiet hours and breaks no rule (UTC).

    `rules=None` means the kind is exempt from frequency rules (quiet hours still apply through
    `release`). With `on_violation: skip` the first broken rule skips the follow-up; quiet hours
    always defer, they are not a reason to drop a message. `max_defer` counts from `due` in the
    customer's `zone`, like every span.
    """
    at, moved_by = utc(due), []
    for _ in range(_MAX_STEPS):
        released = utc(release(at))
        if released != at:
            moved_by.append(QUIET_HOURS)
            at = released
        broken = first_broken_rule(at, contacts, responses, rules, zone) if rules else None
        if broken is None:
            return Slot(at, tuple(dict.fromkeys(moved_by)))
        if rules.on_violation == "skip":
            return Slot(at, skipped=broken.rule)
        moved_by.append(broken.rule)
        at = broken.clears_at
        if at > after(due, rules.max_defer, zone):
            return Slot(at, skipped=NO_SLOT_WITHIN_MAX_DEFER)
    return Slot(at, skipped=NO_SLOT_WITHIN_MAX_DEFER)
