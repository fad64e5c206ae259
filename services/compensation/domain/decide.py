"""The decision: which rule applies to a classified complaint, what it offers, what it costs, who may grant it.

Order of reasoning, as a support manager would:
1. a case that already had an automatic grant gets nothing more, unless it was reopened and the rule
   says a reopened case may get a second one;
2. the first rule that matches (by priority, then file order) decides the offers, or the fallback
   when none matches, so the customer always gets something; matching extras add a little more;
3. the total granted on the case stays within order total × cap factor unless the rule allows more:
   offers that do not fit are trimmed (coupons and refunds cut down) or dropped;
4. within the front-line limit and the team's monthly budget the grant is automatic; above it, it
   waits for the lowest role whose limit covers it; above every limit, the fallback is offered instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy, Extra, Fallback, Rule
from .approvals import lowest_role_covering
from .costing import PricedOffer, Terms, cents, describe, order_terms, price, shrink
from .matching import mismatches

Outcome = Literal["granted", "pending_approval", "none"]

# When several reasons apply, the decision's `reason_code` is the first of these that does.
REASON_PRECEDENCE = (
    "already_granted", "cap_reached", "over_all_limits", "budget_exceeded", "over_agent_limit",
    "cap_applied", "fallback", "within_agent_limit",
)


@dataclass(frozen=True)
class CaseFacts:
    """What the store knows about the case and the team; amounts in the decision's currency."""

    granted_total: float = 0.0  # granted or awaiting approval on this case so far
    # The case already got a compensation (granted, or sent for approval): one per case.
    already_compensated: bool = False
    # The case was reopened since its last compensation (or, without one, at all).
    reopened: bool = False
    month_spent: float = 0.0  # granted this month for the complaint's source


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    rule_id: str | None
    offers: list[dict[str, Any]]
    value: float
    currency: str
    authority: str | None
    reason_code: str
    reason_codes: tuple[str, ...]
    explanation: tuple[str, ...]
    policy_version: str
    extras: tuple[str, ...] = ()


@dataclass
class _Draft:
    """A decision being worked out; collects reasons and explanation lines on the way."""

    terms: Terms
    source: str
    lines: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def finish(self, outcome: Outcome, rule_id: str | None, offers: list[PricedOffer], authority: str | None,
               version: str, extras: tuple[str, ...] = ()) -> Decision:
        value = cents(sum(o.cost for o in offers))
        codes = tuple(c for c in REASON_PRECEDENCE if c in self.codes)
        self.lines.append(f"decision: {outcome}, value {value:.2f} {self.terms.currency}, "
                          f"authority {authority or '-'}, reason {codes[0]}")
        return Decision(outcome, rule_id, [o.contract for o in offers], value, self.terms.currency, authority,
                        codes[0], codes, tuple(self.lines), version, extras)


def decide(complaint: ComplaintClassified, policy: CompensationPolicy, policy_version: str,
           facts: CaseFacts = CaseFacts()) -> Decision:
    draft = _Draft(order_terms(complaint, policy), complaint.source)
    if draft.terms.note:
        draft.lines.append(f"note: {draft.terms.note}; pricing defaults used")
    if facts.already_compensated and not facts.reopened:
        draft.lines.append("this case was already compensated: a repeat complaint never grants twice")
        draft.codes.append("already_granted")
        return draft.finish("none", None, [], None, policy_version)
    second_grant = facts.already_compensated
    rule = _select_rule(complaint, policy, facts, draft, second_grant)
    if rule is None:
        draft.codes.append("already_granted")
        return draft.finish("none", None, [], None, policy_version)
    extras = _select_extras(complaint, policy, facts, draft, second_grant)
    offers = [price(o, draft.terms, policy, rule.id) for o in rule.offers]
    offers += [price(o, draft.terms, policy, e.id) for e in extras for o in e.offers]
    return _settle(rule, offers, tuple(e.id for e in extras), policy, policy_version, facts, draft)


def _select_rule(complaint: ComplaintClassified, policy: CompensationPolicy, facts: CaseFacts, draft: _Draft,
                 second_grant: bool) -> Rule | Fallback | None:
    chosen: Rule | None = None
    for rule in policy.ordered_rules():
        failed = mismatches(rule.when, complaint, draft.terms, policy, reopened=facts.reopened)
        label = f"rule {rule.id}" + (f" (priority {rule.priority})" if "priority" in rule.model_fields_set else "")
        if failed:
            draft.lines.append(f"{label}: no: " + "; ".join(failed))
        elif chosen is not None:
            draft.lines.append(f"{label}: would match, but {chosen.id} comes first")
        elif second_grant and not rule.allow_on_reopen:
            draft.lines.append(f"{label}: matches, but does not allow a second grant on a reopened case")
        else:
            draft.lines.append(f"{label}: MATCHED")
            chosen = rule
    if chosen is not None:
        return chosen
    if second_grant and not policy.fallback.allow_on_reopen:
        draft.lines.append("no rule allows a second grant on this reopened case")
        return None
    draft.lines.append(f"no rule matched: fallback {policy.fallback.id} applies")
    draft.codes.append("fallback")
    return policy.fallback


def _select_extras(complaint: ComplaintClassified, policy: CompensationPolicy, facts: CaseFacts, draft: _Draft,
                   second_grant: bool) -> list[Extra]:
    chosen = []
    for extra in policy.extras:
        failed = mismatches(extra.when, complaint, draft.terms, policy, reopened=facts.reopened)
        if failed:
            draft.lines.append(f"extra {extra.id}: no: " + "; ".join(failed))
        elif second_grant and not extra.allow_on_reopen:
            draft.lines.append(f"extra {extra.id}: matches, but not on a second grant")
        else:
            draft.lines.append(f"extra {extra.id}: added")
            chosen.append(extra)
    return chosen


def _apply_cap(offers: list[PricedOffer], allow_over_cap: bool, policy: CompensationPolicy, facts: CaseFacts,
               draft: _Draft) -> list[PricedOffer]:
    terms = draft.terms
    if terms.order_amount is None:
        return offers
    ceiling = cents(terms.order_amount * policy.cap_factor)
    wanted = cents(facts.granted_total + sum(o.cost for o in offers))
    if wanted <= ceiling:
        return offers
    if allow_over_cap:
        draft.lines.append(f"cap: {wanted:.2f} exceeds {ceiling:.2f} {terms.currency}, allowed by the rule")
        return offers
    room = ceiling - facts.granted_total
    kept: list[PricedOffer] = []
    for offer in offers:
        if offer.cost <= room + 1e-6:
            kept.append(offer)
            room -= offer.cost
        elif (cut := shrink(offer, room)) is not None:
            kept.append(cut)
            room = 0
    draft.lines.append(
        f"cap: case total would be {wanted:.2f}, cap is {ceiling:.2f} {terms.currency} "
        f"(order total × {policy.cap_factor:g}, {facts.granted_total:.2f} already granted): offers trimmed")
    draft.codes.append("cap_applied" if kept else "cap_reached")
    return kept


def _settle(rule: Rule | Fallback, offers: list[PricedOffer], extras: tuple[str, ...], policy: CompensationPolicy,
            version: str, facts: CaseFacts, draft: _Draft) -> Decision:
    offers = _apply_cap(offers, rule.allow_over_cap, policy, facts, draft)
    if not offers:
        return draft.finish("none", rule.id, [], None, version)
    draft.lines.extend("offer " + describe(o, draft.terms.currency) for o in offers)
    value = cents(sum(o.cost for o in offers))
    currency = draft.terms.currency
    authority = lowest_role_covering(value, currency, policy)
    if authority is None:
        draft.codes.append("over_all_limits")
        draft.lines.append(f"{value:.2f} {currency} is above every role's limit")
        if rule is policy.fallback:
            return draft.finish("none", rule.id, [], None, version)
        draft.lines.append(f"offering the fallback {policy.fallback.id} instead")
        fallback_offers = [price(o, draft.terms, policy, policy.fallback.id) for o in policy.fallback.offers]
        return _settle(policy.fallback, fallback_offers, (), policy, version, facts, draft)
    if authority != policy.authority[0].role:
        draft.codes.append("over_agent_limit")
        return draft.finish("pending_approval", rule.id, offers, authority, version, extras)
    if _over_budget(value, policy, facts, draft):
        draft.codes.append("budget_exceeded")
        approver = lowest_role_covering(value, currency, policy, above_first=True)
        return draft.finish("pending_approval", rule.id, offers, approver, version, extras)
    draft.codes.append("within_agent_limit")
    return draft.finish("granted", rule.id, offers, authority, version, extras)


def _over_budget(value: float, policy: CompensationPolicy, facts: CaseFacts, draft: _Draft) -> bool:
    source = draft.source
    budget = policy.monthly_budget(source, draft.terms.currency)
    if budget is None or value == 0:
        return False
    remaining = cents(budget - facts.month_spent)
    if value <= remaining + 1e-6:
        draft.lines.append(f"budget of {source or 'default'}: {remaining:.2f} {draft.terms.currency} left this month, enough")
        return False
    draft.lines.append(f"budget of {source or 'default'}: only {remaining:.2f} {draft.terms.currency} left this month: needs approval")
    return True
