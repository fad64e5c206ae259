"""Classification of a complaint: pure rules applied from the ClassificationPolicy, no I/O.

Each dimension has its own function returning its value and the reasons for it. Reasons are
written for the agent who picks up the case; they name matched policy keywords and numbers,
never the customer's name, email or words beyond a matched keyword.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from services.intake.contract import Complaint, Customer
from services.intake.policy import (
    PRIORITIES, SEVERITIES, ClassificationPolicy, Effect, LoyaltyRule, LoyaltyRules, OrderValue,
    PriorityRules, PublicityRules, SeverityRules, TemperamentRules,
)
from shared.events import Loyalty, Order, Priority, PublicityRisk, Severity, Temperament

Finding = tuple[str, list[str]]  # a value and the reasons for it


@dataclass(frozen=True)
class Classification:
    category: str
    severity: Severity
    temperament: Temperament
    loyalty: Loyalty
    publicity_risk: PublicityRisk
    priority: Priority
    reasons: tuple[str, ...]


def classify(complaint: Complaint, policy: ClassificationPolicy, repeat_contacts: int) -> Classification:
    """`repeat_contacts`: how many earlier complaints this case already had (0 for a new case)."""
    text = complaint_text(complaint)
    category, category_reasons = classify_category(text, policy)
    severity, severity_reasons = assess_severity(text, category, complaint.order, repeat_contacts, policy.severity)
    temperament, temperament_reasons = assess_temperament(text, policy.temperament)
    loyalty, loyalty_reasons = assess_loyalty(complaint.customer, policy.loyalty)
    publicity, publicity_reasons = assess_publicity_risk(complaint, policy.publicity)
    priority, priority_reasons = assign_priority(severity, temperament, loyalty, publicity, policy.priority)
    reasons = category_reasons + severity_reasons + temperament_reasons + loyalty_reasons + publicity_reasons + priority_reasons
    return Classification(category, severity, temperament, loyalty, publicity, priority, tuple(reasons))


# ---------- text matching ----------
def complaint_text(complaint: Complaint) -> str:
    # Curly apostrophes from phones and word processors must match "didn't" in the policy.
    return f"{complaint.subject}\n{complaint.description}".replace("\u2019", "'")


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    words = keyword.rstrip("*").split()
    body = r"\s+".join(re.escape(word) for word in words)
    ending = r"\w*" if keyword.endswith("*") else ""
    return re.compile(rf"(?<!\w){body}{ending}(?!\w)", re.IGNORECASE)


def matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """The policy keywords found in the text as whole words, each once, in policy order."""
    return [k for k in keywords if _keyword_pattern(k).search(text)]


def _quoted(keywords: list[str]) -> str:
    return ", ".join(f"'{k}'" for k in keywords)


# ---------- category ----------
def classify_category(text: str, policy: ClassificationPolicy) -> Finding:
    best_name, best_hits = policy.fallback_category, []
    for rule in policy.categories:
        hits = matched_keywords(text, rule.keywords)
        if len(hits) > len(best_hits):  # strictly more: on a tie the earlier category stays
            best_name, best_hits = rule.name, hits
    if not best_hits:
        return best_name, [f"category {best_name}: no category keyword matched"]
    return best_name, [f"category {best_name}: mentions {_quoted(best_hits)}"]


# ---------- severity ----------
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
            reasons.append(f"{label}: {_quoted(hits)}")
    if repeat_contacts > 0:
        level += min(repeat_contacts * rules.repeat_contact.raise_by_each, rules.repeat_contact.max_raise)
        reasons.append(f"{_ordinal(repeat_contacts + 1)} complaint on this case")
    level = min(level, SEVERITIES.index(rules.cap), len(SEVERITIES) - 1)
    return SEVERITIES[level], reasons


# ---------- temperament ----------
def _capital_share(text: str, min_letters: int) -> float | None:
    cased = [c for c in text if c.isupper() or c.islower()]
    if len(cased) < min_letters:
        return None
    return sum(c.isupper() for c in cased) / len(cased)


def assess_temperament(text: str, rules: TemperamentRules) -> Finding:
    anger = matched_keywords(text, rules.anger_words)
    exclamations = text.count("!")
    capitals = _capital_share(text, rules.min_letters_for_capitals)
    signals = [
        (len(anger), rules.anger_word_hits, f"anger words {_quoted(anger)}"),
        (exclamations, rules.exclamation_marks, f"{exclamations} exclamation marks"),
        (capitals or 0.0, rules.capital_letter_share, f"{capitals or 0:.0%} of letters in capitals"),
    ]
    irate = [label for value, levels, label in signals if value >= levels.irate]
    upset = [label for value, levels, label in signals if levels.upset <= value < levels.irate]
    if irate or len(upset) >= rules.upset_signals_make_irate:
        return "irate", [f"irate: {'; '.join(irate + upset)}"]
    if upset:
        return "upset", [f"upset: {'; '.join(upset)}"]
    return "calm", []


# ---------- loyalty ----------
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
    if customer.tier is not None:
        return customer.tier, [f"{customer.tier} customer (tier from CRM)"]
    for rule in rules.derive:
        met = _rule_holds(rule, customer)
        if met is not None:
            return rule.tier, [f"{rule.tier} customer: {', '.join(met)}"]
    return rules.otherwise, []


# ---------- publicity ----------
def assess_publicity_risk(complaint: Complaint, rules: PublicityRules) -> Finding:
    reasons = []
    if rules.high_when_public and complaint.public:
        reasons.append("posted publicly")
    if complaint.channel in rules.high_channels:
        reasons.append(f"came in on {complaint.channel}")
    return ("high", ["publicity risk high: " + ", ".join(reasons)]) if reasons else ("low", [])


# ---------- priority ----------
def assign_priority(severity: Severity, temperament: Temperament, loyalty: Loyalty,
                    publicity_risk: PublicityRisk, rules: PriorityRules) -> Finding:
    base = rules.base[severity]
    bumps = [
        (rules.bumps.temperament.get(temperament, 0), f"{temperament} customer"),
        (rules.bumps.loyalty.get(loyalty, 0), f"{loyalty} customer"),
        (rules.bumps.publicity_risk.get(publicity_risk, 0), "publicity risk"),
    ]
    applied = [(steps, label) for steps, label in bumps if steps > 0]
    total = min(sum(steps for steps, _ in applied), rules.max_total_bump)
    level = min(PRIORITIES.index(base) + total, len(PRIORITIES) - 1)
    priority = PRIORITIES[level]
    if not applied:
        return priority, [f"priority {priority} for {severity} severity"]
    raised = ", ".join(label for _, label in applied)
    return priority, [f"priority {priority}: {base} for {severity} severity, raised for {raised}"]
