"""What a compensation policy would have decided: stored complaints replayed through `decide`.

Pure: no I/O, no clock. `helpdesk policy simulate` (services/simulate_policy.py) reads the stored
decisions (store.decisions_for_simulation), replays them once with the policy in force and once
with a draft, and these functions compare the two.

How a replay treats the facts a decision read (`CaseFacts`, recorded in each decision's `inputs`):
- `already_compensated` and `reopened` are taken as recorded: the case's history as the service
  saw it (how often it was reopened, whether it had a grant before the replayed window);
- `granted_total` is the recorded one, corrected by what the replay changed earlier on the same
  case (a reopened case's first grant worth more under the draft leaves less room under its cap);
- `month_spent` is the replay's own: each (source, budget line currency, UTC month) adds up what
  the replayed decisions spend of it, in `decided_at` order, as the service does
  (domain/budgets.py). A replay cannot know which approvals an approver would give, so a decision
  sent for approval counts as approved, at its decision time: the budget figures are what the
  policy commits the team to if every approval is given.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy
from .budgets import budget_line, month_start
from .costing import order_terms
from .decide import CaseFacts, Decision, decide
from .money import ZERO

OFFERED = ("granted", "pending_approval")  # outcomes that offer something (and spend a budget)


@dataclass(frozen=True)
class StoredDecision:
    """One row of `compensation.decisions` as the simulation reads it: the decision's inputs (the
    complaint and the case facts it was decided from) and what was decided then."""

    decision_id: str
    case_id: str
    source: str
    decided_at: datetime  # timezone-aware
    complaint: ComplaintClassified
    facts: CaseFacts
    outcome: str
    rule_id: str | None
    offers: list[dict[str, Any]]
    value: Decimal  # in `currency`
    currency: str
    authority: str | None


def stored_decision(row: dict[str, Any]) -> StoredDecision:
    """A `StoredDecision` from a decisions row (`decision_id`, `case_id`, `source`, `decided_at`,
    `inputs` as a dict with `complaint` and `facts`, `outcome`, `rule_id`, `offers`, `value`,
    `currency`, `authority`). Raises ValueError (pydantic's ValidationError is one) when the inputs
    cannot be read as a complaint.classified event and case facts."""
    inputs = row["inputs"]
    facts = inputs.get("facts") or {}
    known = {k: facts[k] for k in ("granted_total", "already_compensated", "reopened", "month_spent") if k in facts}
    return StoredDecision(
        decision_id=row["decision_id"], case_id=row["case_id"], source=row["source"], decided_at=row["decided_at"],
        complaint=ComplaintClassified.model_validate(inputs["complaint"]), facts=CaseFacts(**known),
        outcome=row["outcome"], rule_id=row["rule_id"], offers=list(row["offers"]), value=Decimal(row["value"]),
        currency=row["currency"], authority=row["authority"],
    )


@dataclass(frozen=True)
class Replayed:
    """One stored decision and what a policy decides for it in the replay."""

    stored: StoredDecision
    decision: Decision
    month: date  # the UTC month of `stored.decided_at` (first day)


def _month(at: datetime) -> date:
    return month_start(at).date()


def replay(stored: Sequence[StoredDecision], policy: CompensationPolicy, version: str,
           on_each: Callable[[], None] | None = None) -> list[Replayed]:
    """Every stored decision decided again under `policy` (recorded with `version`), in
    `decided_at` order (ties by id), with the facts described in the module docstring. Returns them
    in that order; `on_each` is called after each (a progress bar)."""
    spent: dict[tuple[str, str, date], Decimal] = defaultdict(lambda: ZERO)
    # per (case, currency): replayed minus recorded value of the case's earlier offers in the replay
    drift: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    out: list[Replayed] = []
    for row in sorted(stored, key=lambda s: (s.decided_at, s.decision_id)):
        month = _month(row.decided_at)
        currency = order_terms(row.complaint, policy).currency
        line = budget_line(policy, row.source, currency)
        facts = replace(
            row.facts,
            granted_total=max(ZERO, row.facts.granted_total + drift[(row.case_id, currency)]),
            month_spent=ZERO if line is None else spent[(row.source, line.currency, month)],
        )
        decision = decide(row.complaint, policy, version, facts)
        if decision.outcome in OFFERED and decision.budget is not None:
            spent[(row.source, decision.budget.currency, month)] += decision.budget.amount
        if decision.outcome in OFFERED:
            drift[(row.case_id, decision.currency)] += decision.value
        if row.outcome in OFFERED:
            drift[(row.case_id, row.currency)] -= row.value
        out.append(Replayed(row, decision, month))
        if on_each is not None:
            on_each()
    return out


@dataclass
class RuleStats:
    """What one rule did in a replay: `matched` decisions it decided (the fallback's when it stood
    in), `offers` made (offers in decisions granted or sent for approval), `value` per currency
    (those decisions' value), `approvals` per role (decisions sent for approval to that role)."""

    matched: int = 0
    offers: int = 0
    value: dict[str, Decimal] = field(default_factory=dict)
    approvals: Counter[str] = field(default_factory=Counter)


NO_RULE = "(none)"
"""The rule name of decisions no rule decided (`already_granted`: the case was compensated before)."""


def rule_stats(replayed: Iterable[Replayed]) -> dict[str, RuleStats]:
    """Per rule id (NO_RULE for decisions without one), sorted by rule id."""
    stats: dict[str, RuleStats] = defaultdict(RuleStats)
    for r in replayed:
        d = r.decision
        one = stats[d.rule_id or NO_RULE]
        one.matched += 1
        if d.outcome in OFFERED:
            one.offers += len(d.offers)
            one.value[d.currency] = one.value.get(d.currency, ZERO) + d.value
        if d.outcome == "pending_approval" and d.authority:
            one.approvals[d.authority] += 1
    return dict(sorted(stats.items()))


@dataclass(frozen=True)
class MonthBudget:
    """One budget line in one UTC month: what the replay spent of it against its `budget`."""

    source: str
    currency: str  # the budget line's
    month: date
    spent: Decimal
    budget: Decimal

    @property
    def over(self) -> bool:
        return self.spent > self.budget


def month_budgets(replayed: Iterable[Replayed], policy: CompensationPolicy) -> list[MonthBudget]:
    """Every (source, budget line, month) the replay spent from, sorted; `over` marks the months
    whose total exceeds the line (the budget of `policy`, the one replayed)."""
    spent: dict[tuple[str, str, date], Decimal] = defaultdict(lambda: ZERO)
    for r in replayed:
        d = r.decision
        if d.outcome in OFFERED and d.budget is not None:
            spent[(r.stored.source, d.budget.currency, r.month)] += d.budget.amount
    out = []
    for (source, currency, month), amount in sorted(spent.items()):
        lines = policy.budget_of(source)
        if currency in lines:
            out.append(MonthBudget(source, currency, month, amount, lines[currency]))
    return out


@dataclass(frozen=True)
class Change:
    """A stored complaint decided differently by the draft than by the policy in force."""

    stored: StoredDecision
    before: Decision  # under the policy in force
    after: Decision  # under the draft
    fields: tuple[str, ...]  # which of COMPARED differ


COMPARED = ("outcome", "rule_id", "offers", "value", "currency", "authority")
"""What makes a decision different: its outcome, rule, offers, value (and its currency), authority."""


def changes(before: Sequence[Replayed], after: Sequence[Replayed]) -> list[Change]:
    """The decisions that differ between two replays of the same stored decisions (paired by
    decision id), in `decided_at` order."""
    by_id = {r.stored.decision_id: r for r in after}
    out = []
    for old in before:
        new = by_id[old.stored.decision_id]
        differ = tuple(f for f in COMPARED if getattr(old.decision, f) != getattr(new.decision, f))
        if differ:
            out.append(Change(old.stored, old.decision, new.decision, differ))
    return out


def differs_from_stored(replayed: Iterable[Replayed]) -> int:
    """How many replayed decisions differ from what was stored (outcome, rule, value, currency,
    authority): the policy in force was edited since, or the budget or approvals went otherwise."""
    return sum(1 for r in replayed
               if (r.decision.outcome, r.decision.rule_id, r.decision.value, r.decision.currency, r.decision.authority)
               != (r.stored.outcome, r.stored.rule_id, r.stored.value, r.stored.currency, r.stored.authority))
