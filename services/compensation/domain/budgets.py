"""Monthly budgets per CRM source: which budget line a grant spends, and how much of it.

A source's budget (`budgets:` in config/compensation.yaml, its own entry or "*") has one line per
currency, each in that currency. A grant spends:
1. the line in the grant's own currency, when the source has one;
2. otherwise the line in the policy currency;
3. otherwise the first line written;
converted into that line's currency at `exchange_rates` (through the policy currency) and rounded
half-up to its minor units. So `crm-east: {USD: 2000}` limits EUR and JPY grants too, and
`crm-east: {USD: 2000, EUR: 1800}` keeps euros apart from dollars.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from ..policy import CompensationPolicy
from .money import round_money


@dataclass(frozen=True)
class BudgetLine:
    """The monthly budget a grant counts against: `amount` per UTC calendar month, in `currency`."""

    currency: str
    amount: Decimal


@dataclass(frozen=True)
class BudgetCharge:
    """What one decision spends of a budget line when it is granted or approved."""

    currency: str
    amount: Decimal  # in `currency`, in whole minor units


def month_start(now: datetime) -> datetime:
    """The start of the UTC calendar month `now` falls in (00:00 UTC on the 1st, timezone-aware):
    budgets are per UTC calendar month, by the decision's time. `now` must be timezone-aware."""
    return now.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def budget_line(policy: CompensationPolicy, source: str, currency: str) -> BudgetLine | None:
    """The line a grant in `currency` from `source` spends (rules above); None: no budget applies."""
    lines = policy.budget_of(source)
    if not lines:
        return None
    for wanted in (currency, policy.currency):
        if wanted in lines:
            return BudgetLine(wanted, lines[wanted])
    first = next(iter(lines))
    return BudgetLine(first, lines[first])


def charge(value: Decimal, currency: str, line: BudgetLine, policy: CompensationPolicy) -> BudgetCharge:
    """A grant of `value` `currency`, in the line's currency: converted, rounded half-up.
    45.00 EUR against a USD line at 0.92 EUR per USD: 45 / 0.92 = 48.913… → 48.91 USD."""
    converted = policy.convert_between(value, currency, line.currency)
    return BudgetCharge(line.currency, round_money(converted, line.currency))


def budgets_remaining(policy: CompensationPolicy,
                      spent: Mapping[tuple[str, str], Decimal]) -> dict[tuple[str, str], Decimal]:
    """What each (source, budget line currency) has left this month, given what each spent (`spent`).

    Every source the policy names and every source that spent something is listed, each with all
    its lines (its own budget, else "*"); a source without a budget line lists nothing. Sources in
    sorted order, lines in the policy's order; an overspent line has a negative remainder.
    """
    sources = {s for s in policy.budgets if s != "*"} | {s for s, _ in spent}
    return {
        (source, currency): budget - spent.get((source, currency), Decimal(0))
        for source in sorted(sources)
        for currency, budget in policy.budget_of(source).items()
    }
