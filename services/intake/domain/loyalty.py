"""Loyalty: the CRM's tier, else the first policy rule the customer's facts meet."""
from __future__ import annotations

from services.intake.domain.facts import CustomerFacts as Customer
from services.intake.domain.keywords import Finding
from services.intake.policy import LoyaltyRule, LoyaltyRules


def _rule_holds(rule: LoyaltyRule, customer: Customer) -> list[str] | None:
    """The conditions met, or None when any condition fails or its value is unknown."""
    checks = (
        (rule.min_tenure_days, customer.tenure_days, lambda v, t: v >= t, "customer for {v:,} days (at least {t:,})"),
        (rule.max_tenure_days, customer.tenure_days, lambda v, t: v <= t, "customer for only {v:,} days"),
        (rule.min_lifetime_value, customer.lifetime_value, lambda v, t: v >= t, "lifetime value {v:,.0f} (at least {t:,.0f})"),
        (rule.min_referrals, customer.referrals, lambda v, t: v >= t, "{v} referrals (at least {t})"),
    )
    met = []
    for threshold, value, holds, template in checks:
        if threshold is None:
            continue
        if value is None or not holds(value, threshold):
            return None
        met.append(template.format(v=value, t=threshold))
    return met


def assess_loyalty(customer: Customer, rules: LoyaltyRules) -> Finding:
    """The CRM's tier when it sends one, else the tier of the first `derive` rule met, else `otherwise`."""
    if customer.tier is not None:
        return customer.tier, [f"{customer.tier} customer (tier from CRM)"]
    for rule in rules.derive:
        met = _rule_holds(rule, customer)
        if met is not None:
            return rule.tier, [f"{rule.tier} customer: {', '.join(met)}"]
    return rules.otherwise, []
