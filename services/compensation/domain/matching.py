"""Does a rule's `when` hold for a classified complaint? And if not, why not, in an admin's words."""
from __future__ import annotations

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy, When
from .costing import Terms
from .money import format_amount, format_money

# The `when` keys that compare one field of the complaint against a value or a list of values.
_LISTED = ("category", "severity", "temperament", "loyalty", "publicity_risk", "channel")


def _listed(wanted: list[str]) -> str:
    return wanted[0] if len(wanted) == 1 else "one of " + ", ".join(wanted)


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def mismatches(
    when: When, complaint: ComplaintClassified, terms: Terms, policy: CompensationPolicy, *, reopened: bool,
) -> list[str]:
    """Every condition of `when` that the complaint fails; an empty list means the rule matches."""
    reasons = []
    for key in _LISTED:
        wanted = getattr(when, key)
        actual = getattr(complaint, key)
        if wanted is not None and actual not in wanted:
            reasons.append(f"{key} is {actual}, rule wants {_listed(wanted)}")
    if when.public is not None and complaint.public != when.public:
        reasons.append(f"public is {_yes_no(complaint.public)}, rule wants {_yes_no(when.public)}")
    repeat = complaint.repeat_contacts > 0
    if when.repeat_contact is not None and repeat != when.repeat_contact:
        reasons.append(
            f"repeat contact is {_yes_no(repeat)} ({complaint.repeat_contacts} earlier), "
            f"rule wants {_yes_no(when.repeat_contact)}")
    if when.reopened is not None and reopened != when.reopened:
        reasons.append(f"case reopened is {_yes_no(reopened)}, rule wants {_yes_no(when.reopened)}")
    if when.order_amount is not None:
        problem = _amount_mismatch(when, terms, policy)
        if problem:
            reasons.append(problem)
    return reasons


def _amount_mismatch(when: When, terms: Terms, policy: CompensationPolicy) -> str | None:
    bounds = when.order_amount
    assert bounds is not None
    if terms.order_amount is None:
        return "order amount is unknown (no order, or a currency without an exchange rate), rule needs one"
    currency = terms.currency
    # exact comparison with the bounds converted, not rounded: inclusive means inclusive
    low = None if bounds.min is None else policy.convert(bounds.min, currency)
    high = None if bounds.max is None else policy.convert(bounds.max, currency)
    amount = terms.order_amount
    if (low is not None and amount < low) or (high is not None and amount > high):
        if low is None:
            wanted = f"at most {format_amount(high, currency)}"
        elif high is None:
            wanted = f"at least {format_amount(low, currency)}"
        else:
            wanted = f"{format_amount(low, currency)} to {format_amount(high, currency)}"
        return f"order amount is {format_money(amount, currency)}, rule wants {wanted}"
    return None
