"""What an offer costs us, in the currency of the complaint's order.

Fixed amounts in the policy are written in the policy currency and converted; percentages apply to
the order amount, or to `pricing.order_amount_when_unknown` when the complaint has no usable order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy, Coupon, FreeShipping, FreeTrial, Gesture, Gift, Offer
from ..policy import PersonalNote, Refund, Replacement


@dataclass(frozen=True)
class Terms:
    """The money frame of one decision."""

    currency: str
    order_amount: float | None  # in `currency`; None when there is no order we can price
    note: str | None = None  # why the order could not be used, for the explanation


@dataclass(frozen=True)
class PricedOffer:
    """One offer as the CRM will read it (`contract`), with its estimated cost and the rule it came from."""

    contract: dict[str, Any]
    cost: float
    rule_id: str


def cents(amount: float) -> float:
    return round(amount + 0.0, 2)


def order_terms(complaint: ComplaintClassified, policy: CompensationPolicy) -> Terms:
    order = complaint.order
    if order is None:
        return Terms(policy.currency, None)
    if not policy.knows_currency(order.currency):
        # Without a rate we cannot compare the order with limits written in the policy currency;
        # decide in the policy currency from pricing defaults rather than guess a rate.
        return Terms(policy.currency, None, f"order currency {order.currency} has no exchange rate in the policy")
    return Terms(order.currency, order.amount)


def _percent_base(terms: Terms, policy: CompensationPolicy) -> float:
    if terms.order_amount is not None:
        return terms.order_amount
    return policy.convert(policy.pricing.order_amount_when_unknown, terms.currency)


def offer_cost(offer: Offer, terms: Terms, policy: CompensationPolicy) -> float:
    def money(amount: float) -> float:
        return policy.convert(amount, terms.currency)

    pricing = policy.pricing
    match offer:
        case Coupon():
            worth = offer.percent / 100 * _percent_base(terms, policy)
            return cents(worth if offer.cap is None else min(worth, money(offer.cap)))
        case FreeShipping():
            return cents(money(pricing.free_shipping_cost if offer.cost is None else offer.cost))
        case FreeTrial():
            daily = pricing.trial_daily_price if offer.daily_price is None else offer.daily_price
            return cents(offer.days * money(daily))
        case Replacement():
            return cents(_percent_base(terms, policy) if offer.cost is None else money(offer.cost))
        case Refund():
            if offer.amount is not None:
                return cents(money(offer.amount))
            return cents(offer.percent / 100 * _percent_base(terms, policy))
        case Gift():
            return cents(money(pricing.gift_cost if offer.cost is None else offer.cost))
        case PersonalNote() | Gesture():
            return cents(money(offer.cost))
    raise TypeError(f"no cost estimate for offer {offer!r}")


# Fields that only feed the cost estimate; the CRM gets the estimate itself as `value`.
_PRICING_FIELDS = {"cost", "daily_price"}


def price(offer: Offer, terms: Terms, policy: CompensationPolicy, rule_id: str) -> PricedOffer:
    cost = offer_cost(offer, terms, policy)
    contract = offer.model_dump(exclude_none=True, exclude=_PRICING_FIELDS)
    if "percent" in contract and float(contract["percent"]).is_integer():
        contract["percent"] = int(contract["percent"])  # the contract writes {"percent": 15}
    if isinstance(offer, Coupon) and offer.cap is not None:
        contract["cap"] = cents(policy.convert(offer.cap, terms.currency))
    if isinstance(offer, Refund):
        contract["amount"] = cost
    contract["value"] = cost
    return PricedOffer(contract, cost, rule_id)


def shrink(offer: PricedOffer, room: float) -> PricedOffer | None:
    """The offer cut down to `room`, when its kind can be cut (a coupon's cap, a refund's amount)."""
    kind = offer.contract["kind"]
    room = cents(room)
    if room <= 0 or kind not in ("coupon", "refund"):
        return None
    contract = dict(offer.contract, value=room)
    if kind == "coupon":
        contract["cap"] = room
    else:
        contract.pop("percent", None)
        contract["amount"] = room
    return PricedOffer(contract, room, offer.rule_id)


def describe(offer: PricedOffer, currency: str) -> str:
    details = ", ".join(f"{k}={v}" for k, v in offer.contract.items() if k not in ("kind", "value"))
    what = offer.contract["kind"] + (f" ({details})" if details else "")
    return f"{what}: {offer.cost:.2f} {currency} [from {offer.rule_id}]"
