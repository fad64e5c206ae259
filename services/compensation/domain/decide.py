"""The decision: which rule applies to a classified complaint, what it offers, what it costs, who may grant it.

Order of reasoning, as a support manager would:
1. a case that already had an automatic grant gets nothing more, unless it was reopened and the rule
   says a reopened case may get a second one;
2. the first rule that matches (by priority, then file order) decides the offers, or the fallback
   when none matches, so the customer always gets something; matching extras add a little more;
3. the total granted on the case stays within order total × cap factor unless the rule allows more:
   offers that do not fit are trimmed (coupons and refunds cut down) or dropped; when that leaves
   the matched rule with no offer at all, the fallback's offers that fit are offered instead (with
   the extras that fit), so a cap never turns a complaint away with nothing;
4. within the front-line limit and the team's monthly budget the grant is automatic; above it, it
   waits for the lowest role whose limit covers it; above every limit, the fallback is offered instead.

Amounts are exact decimals in the decision's currency, each offer rounded to its minor units (money.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy, Extra, Fallback, Rule
from .approvals import lowest_role_covering
from .budgets import BudgetCharge, BudgetLine, budget_line, charge
from .costing import PricedOffer, Terms, describe, order_terms, price, shrink
from .matching import mismatches
from .money import ZERO, exact, format_amount, format_money, round_ceiling

Outcome = Literal["granted", "pending_approval", "none"]

# When several reasons apply, the decision's `reason_code` is the first of these that does.
REASON_PRECEDENCE = (
    "already_granted", "cap_reached", "over_all_limits", "budget_exceeded", "over_agent_limit",
    "cap_applied", "fallback", "within_agent_limit",
)


@dataclass(frozen=True)
class CaseFacts:
    """What the store knows about the case and the team. Numbers given as floats are read exactly."""

    granted_total: Decimal = ZERO  # granted or awaiting approval on this case so far, in the decision's currency
    # The case already got a compensation (granted, or sent for approval): one per case.
    already_compensated: bool = False
    # The case was reopened since its last compensation (or, without one, at all).
    reopened: bool = False
    # spent this month from the budget line the grant counts against (budgets.py), in that line's currency
    month_spent: Decimal = ZERO

    def __post_init__(self) -> None:
        object.__setattr__(self, "granted_total", exact(self.granted_total))
        object.__setattr__(self, "month_spent", exact(self.month_spent))


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    rule_id: str | None
    offers: list[dict[str, Any]]  # the contract's form: amounts as JSON numbers
    value: Decimal  # total estimated cost, in `currency`, in whole minor units
    currency: str
    authority: str | None
    reason_code: str
    reason_codes: tuple[str, ...]
    explanation: tuple[str, ...]
    policy_version: str
    extras: tuple[str, ...] = ()
    budget: BudgetCharge | None = None  # what it spends of a monthly budget once granted or approved

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", exact(self.value))


@dataclass
class _Draft:
    """A decision being worked out; collects reasons and explanation lines on the way."""

    terms: Terms
    source: str
    budget: BudgetLine | None = None
    lines: list[str] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)

    def finish(self, outcome: Outcome, rule_id: str | None, offers: list[PricedOffer], authority: str | None,
               version: str, extras: tuple[str, ...] = (), spends: BudgetCharge | None = None) -> Decision:
        value = _total(offers)
        codes = tuple(c for c in REASON_PRECEDENCE if c in self.codes)
        self.lines.append(f"decision: {outcome}, value {format_money(value, self.terms.currency)}, "
                          f"authority {authority or '-'}, reason {codes[0]}")
        return Decision(outcome, rule_id, [o.contract for o in offers], value, self.terms.currency, authority,
                        codes[0], codes, tuple(self.lines), version, extras, spends)


def _total(offers: list[PricedOffer]) -> Decimal:
    return sum((o.cost for o in offers), ZERO)


def decide(complaint: ComplaintClassified, policy: CompensationPolicy, policy_version: str,
           facts: CaseFacts = CaseFacts()) -> Decision:
    """What `complaint` gets under `policy`, given what the store knows (`facts`); pure, no I/O."""
    terms = order_terms(complaint, policy)
    draft = _Draft(terms, complaint.source, budget_line(policy, complaint.source, terms.currency))
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
    given = [o.model_dump() for o in rule.offers]
    for extra in extras:
        for offer in extra.offers:
            # The same offer twice (a handwritten note from the fallback and one from the loyal
            # customers' extra) is one offer: the customer gets one note, not two.
            if offer.model_dump() in given:
                draft.lines.append(f"extra {extra.id}: its {offer.kind} is offered already, not twice")
                continue
            given.append(offer.model_dump())
            offers.append(price(offer, draft.terms, policy, extra.id))
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


def _cap_ceiling(policy: CompensationPolicy, terms: Terms) -> Decimal | None:
    """Order total × cap_factor in whole minor units, rounded down; None without an order."""
    if terms.order_amount is None:
        return None
    return round_ceiling(terms.order_amount * policy.cap_factor, terms.currency)


def _apply_cap(offers: list[PricedOffer], allow_over_cap: bool, policy: CompensationPolicy, facts: CaseFacts,
               draft: _Draft) -> tuple[list[PricedOffer], bool]:
    """The offers that fit under the case's cap, in order, and whether any was cut or dropped."""
    ceiling = _cap_ceiling(policy, draft.terms)
    wanted = facts.granted_total + _total(offers)
    if ceiling is None or wanted <= ceiling:
        return offers, False
    currency = draft.terms.currency
    if allow_over_cap:
        draft.lines.append(f"cap: {format_amount(wanted, currency)} exceeds {format_money(ceiling, currency)}, "
                           "allowed by the rule")
        return offers, False
    room = max(ceiling - facts.granted_total, ZERO)  # a case already over its cap has no room, not less
    kept: list[PricedOffer] = []
    for offer in offers:
        if offer.cost <= room:  # a free offer always fits
            kept.append(offer)
            room -= offer.cost
        elif (cut := shrink(offer, room, currency)) is not None:
            kept.append(cut)
            room = ZERO
    draft.lines.append(
        f"cap: case total would be {format_amount(wanted, currency)}, cap is {format_money(ceiling, currency)} "
        f"(order total × {policy.cap_factor:g}, {format_amount(facts.granted_total, currency)} already granted): "
        "offers trimmed")
    return kept, True


def _may_fall_back(rule: Rule | Fallback, policy: CompensationPolicy, facts: CaseFacts) -> bool:
    # The fallback stands in for a rule, never for itself; on a second grant only where it allows one.
    return rule is not policy.fallback and (policy.fallback.allow_on_reopen or not facts.already_compensated)


def _fallback_offers(draft: _Draft, policy: CompensationPolicy) -> list[PricedOffer]:
    return [price(o, draft.terms, policy, policy.fallback.id) for o in policy.fallback.offers]


def _settle(rule: Rule | Fallback, offers: list[PricedOffer], extras: tuple[str, ...], policy: CompensationPolicy,
            version: str, facts: CaseFacts, draft: _Draft) -> Decision:
    kept, trimmed = _apply_cap(offers, rule.allow_over_cap, policy, facts, draft)
    if trimmed and not any(o.rule_id == rule.id for o in kept) and _may_fall_back(rule, policy, facts):
        # "Every complaint gets something": the cap left the rule nothing, the fallback stands in.
        draft.lines.append(f"the cap leaves rule {rule.id} no offer: offering the fallback "
                           f"{policy.fallback.id} instead, where it fits")
        draft.codes += ["cap_applied", "fallback"]
        extra_offers = [o for o in offers if o.rule_id != rule.id]
        return _settle(policy.fallback, _fallback_offers(draft, policy) + extra_offers, extras, policy, version,
                       facts, draft)
    if trimmed:
        draft.codes.append("cap_applied" if kept else "cap_reached")
    if not kept:
        return draft.finish("none", rule.id, [], None, version)
    return _authorise(rule, kept, extras, policy, version, facts, draft)


def _authorise(rule: Rule | Fallback, offers: list[PricedOffer], extras: tuple[str, ...], policy: CompensationPolicy,
               version: str, facts: CaseFacts, draft: _Draft) -> Decision:
    """Who may grant `offers`: the front line at once, a higher role, or nobody (then the fallback)."""
    draft.lines.extend("offer " + describe(o, draft.terms.currency) for o in offers)
    value = _total(offers)
    currency = draft.terms.currency
    authority = lowest_role_covering(value, currency, policy)
    if authority is None:
        draft.codes.append("over_all_limits")
        draft.lines.append(f"{format_money(value, currency)} is above every role's limit")
        if rule is policy.fallback:
            return draft.finish("none", rule.id, [], None, version)
        draft.lines.append(f"offering the fallback {policy.fallback.id} instead")
        return _settle(policy.fallback, _fallback_offers(draft, policy), (), policy, version, facts, draft)
    spends = None if draft.budget is None else charge(value, currency, draft.budget, policy)
    if authority != policy.authority[0].role:
        draft.codes.append("over_agent_limit")
        return draft.finish("pending_approval", rule.id, offers, authority, version, extras, spends)
    if _over_budget(spends, facts, draft):
        draft.codes.append("budget_exceeded")
        approver = lowest_role_covering(value, currency, policy, above_first=True)
        return draft.finish("pending_approval", rule.id, offers, approver, version, extras, spends)
    draft.codes.append("within_agent_limit")
    return draft.finish("granted", rule.id, offers, authority, version, extras, spends)


def _over_budget(spends: BudgetCharge | None, facts: CaseFacts, draft: _Draft) -> bool:
    """Would the grant overrun its source's monthly budget line? (budgets.py says which line.)"""
    if spends is None or spends.amount == 0:
        return False
    line = draft.budget
    assert line is not None  # a charge is only worked out against a line
    who = draft.source or "default"
    remaining = line.amount - facts.month_spent
    costs = format_money(spends.amount, spends.currency)
    left = format_money(remaining, spends.currency)
    if spends.amount <= remaining:
        draft.lines.append(f"budget of {who}: {left} left this month, this grant spends {costs}: enough")
        return False
    draft.lines.append(f"budget of {who}: only {left} left this month, this grant spends {costs}: needs approval")
    return True
