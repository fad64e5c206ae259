"""Grant rounds: one compensation per case and round, a new round each time the case is reopened.

The store keeps the raw facts (how often a case was reopened, the round of each compensation it got,
the amounts); these rules turn them into the `CaseFacts` a decision reads.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal

from .decide import CaseFacts, Decision
from .money import ZERO


@dataclass(frozen=True)
class CaseHistory:
    """What the store holds of a case and its team for one decision, uninterpreted."""

    reopens: int = 0  # how often the case was reopened
    compensated_rounds: tuple[int, ...] = ()  # the grant round of each compensation granted or sent for approval
    granted_total: Decimal = ZERO  # their value in the decision's currency
    month_spent: Decimal = ZERO  # spent this month from the budget line the grant counts against


def grant_round(reopens: int) -> int:
    """The round a decision on a case reopened `reopens` times belongs to: the first is 1."""
    return reopens + 1


def reopened_since_compensated(reopens: int, compensated_rounds: Iterable[int]) -> bool:
    """Was the case reopened since its last compensation (or, without one, at all)? True when it was
    reopened and nothing was granted or sent for approval in the current round yet."""
    current = grant_round(reopens)
    return reopens > 0 and all(r != current for r in compensated_rounds)


def case_facts(history: CaseHistory) -> CaseFacts:
    """The facts a decision reads, from the case's history."""
    return CaseFacts(
        granted_total=history.granted_total,
        already_compensated=len(history.compensated_rounds) > 0,
        reopened=reopened_since_compensated(history.reopens, history.compensated_rounds),
        month_spent=history.month_spent,
    )


def refused_as_duplicate(decision: Decision) -> Decision:
    """What `decision` becomes when the store's one-compensation-per-round constraint refused it
    (another decision of the same case and round was recorded first, e.g. by a concurrent instance):
    outcome "none", no offers, value 0, reason `already_granted`, with the refusal added to its
    explanation. Never grant twice in a round (README, "Compensation")."""
    return replace(decision, outcome="none", offers=[], value=Decimal(0), authority=None, budget=None,
                   reason_code="already_granted",
                   reason_codes=("already_granted",),
                   explanation=decision.explanation + ("refused by the one-compensation-per-case constraint",))
