"""Contact-frequency rules and quiet hours: when may one more follow-up reach this customer?

Rules are checked as at send time (the way Qualtrics and Medallia evaluate them): the cap counts
contacts in the trailing period; the minimum gap also looks at follow-ups already scheduled later,
so two plans from two cases do not land on the same day.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

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
    return [c for c in contacts if c.kind not in rules.exempt]


def first_broken_rule(
    at: datetime, contacts: Sequence[Contact], responses: Sequence[datetime], rules: FrequencyRules,
) -> BrokenRule | None:
    """The first frequency rule one more contact at `at` would break; `contacts` are counted ones."""
    too_close = [c.at for c in contacts if abs(at - c.at) < rules.min_gap]
    if too_close:
        return BrokenRule(MIN_GAP, max(too_close) + rules.min_gap)
    surveys = [c.at for c in contacts if c.kind == "satisfaction_survey" and c.at <= at < c.at + rules.cooldown_after_survey]
    if surveys:
        return BrokenRule(COOLDOWN_AFTER_SURVEY, max(surveys) + rules.cooldown_after_survey)
    answered = [r for r in responses if r <= at < r + rules.cooldown_after_response]
    if answered:
        return BrokenRule(COOLDOWN_AFTER_RESPONSE, max(answered) + rules.cooldown_after_response)
    in_period = sorted(c.at for c in contacts if at - rules.period < c.at <= at)
    if len(in_period) >= rules.max_contacts:
        # The window frees a place once its oldest contacts fall out of it.
        return BrokenRule(MAX_CONTACTS, in_period[len(in_period) - rules.max_contacts] + rules.period)
    return None


def find_slot(
    due: datetime,
    *,
    contacts: Sequence[Contact],
    responses: Sequence[datetime],
    rules: FrequencyRules | None,
    release: Callable[[datetime], datetime],
) -> Slot:
    """The earliest time at or after `due` that is outside quiet hours and breaks no rule.

    `rules=None` means the kind is exempt from frequency rules (quiet hours still apply through
    `release`). With `on_violation: skip` the first broken rule skips the follow-up; quiet hours
    always defer, they are not a reason to drop a message.
    """
    at, moved_by = due, []
    for _ in range(_MAX_STEPS):
        released = release(at)
        if released != at:
            moved_by.append(QUIET_HOURS)
            at = released
        broken = first_broken_rule(at, contacts, responses, rules) if rules else None
        if broken is None:
            return Slot(at, tuple(dict.fromkeys(moved_by)))
        if rules.on_violation == "skip":
            return Slot(at, skipped=broken.rule)
        moved_by.append(broken.rule)
        at = broken.clears_at
        if at - due > rules.max_defer:
            return Slot(at, skipped=NO_SLOT_WITHIN_MAX_DEFER)
    return Slot(at, skipped=NO_SLOT_WITHIN_MAX_DEFER)
