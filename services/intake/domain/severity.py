"""Severity: the category's base level, raised by order value, safety, threats and repeat contacts."""
from __future__ import annotations

from services.intake.domain.keywords import Finding, matched_keywords, quoted
from services.intake.policy import SEVERITIES, Effect, OrderValue, SeverityRules
from shared.events import Order


def _apply(level: int, effect: Effect) -> int:
    if effect.at_least is not None:
        level = max(level, SEVERITIES.index(effect.at_least))
    return level + effect.raise_by


def _money(amount: float) -> str:
    return f"{amount:,.0f}" if amount == int(amount) else f"{amount:,.2f}"


def _order_value_effect(order: Order | None, rules: OrderValue) -> tuple[Effect | None, str]:
    if order is None:
        return None, ""
    rate = 1.0 if order.currency == rules.reference_currency else rules.rates.get(order.currency, 1.0)
    value = order.amount * rate
    for threshold in sorted(rules.thresholds, key=lambda t: t.over, reverse=True):
        if value > threshold.over:
            converted = "" if rate == 1.0 else f" (about {_money(round(value))} {rules.reference_currency})"
            return threshold, f"order value {_money(order.amount)} {order.currency}{converted} is over {_money(threshold.over)}"
    return None, ""


def _ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def assess_severity(text: str, category: str, order: Order | None, repeat_contacts: int, rules: SeverityRules) -> Finding:
    """The category's base severity, raised by order value, safety and threat keywords and earlier
    complaints on the case (`repeat_contacts`), never above the policy's cap."""
    base = rules.base.get(category, rules.default_base)
    level, reasons = SEVERITIES.index(base), [f"{base} severity for {category}"]
    effect, why = _order_value_effect(order, rules.order_value)
    if effect is not None:
        level = _apply(level, effect)
        reasons.append(why)
    for signal, label in ((rules.safety, "safety concern"), (rules.threat_to_leave, "customer threatens to leave"),
                          (rules.threat_to_sue, "customer threatens legal action")):
        hits = matched_keywords(text, signal.keywords)
        if hits:
            level = _apply(level, signal)
            reasons.append(f"{label}: {quoted(hits)}")
    if repeat_contacts > 0:
        level += min(repeat_contacts * rules.repeat_contact.raise_by_each, rules.repeat_contact.max_raise)
        reasons.append(f"{_ordinal(repeat_contacts + 1)} complaint on this case")
    level = min(level, SEVERITIES.index(rules.cap), len(SEVERITIES) - 1)
    return SEVERITIES[level], reasons
