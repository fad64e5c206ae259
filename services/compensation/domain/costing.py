"""What an offer costs us, in the currency of the complaint's order.

Fixed amounts in the policy are written in the policy currency and converted; percentages apply to
the order amount, or to `pricing.order_amount_when_unknown` when the complaint has no usable order.
Each offer's cost is computed exactly, then rounded half-up to the currency's minor units
(money.py): 15% of 1,234 JPY is 185.1, a 185 JPY coupon. A decision's value is the sum of those.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.events import ComplaintClassified

from ..policy import CompensationPolicy, Coupon, FreeShipping, FreeTrial, Gesture, Gift, Offer
from ..policy import PersonalNote, Refund, Replacement
from .money import format_money, json_number, round_ceiling, round_money


@dataclass(frozen=True)
class Terms:
    """The money frame of one decision."""

    currency: str
    order_amount: Decimal | None  # in `currency`; None when there is no order we can price
    note: str | None = None  # why the order could not be used, for the explanation


@dataclass(frozen=True)
class PricedOffer:
    """One offer as the CRM will read it (`contract`, JSON numbers), with its cost and the rule it came from."""

    contract: dict[str, Any]
    cost: Decimal  # in the decision's currency, in whole minor units
    rule_id: str


def order_terms(complaint: ComplaintClassified, policy: CompensationPolicy) -> Terms:
    """The decision's currency and order amount: the order's, when the policy can convert its currency."""
    order = complaint.order
    if order is None:
        return Terms(policy.currency, None)
    if not policy.knows_currency(order.currency):
        # Without a rate we cannot compare the order with limits written in the policy currency;
        # decide in the policy currency from pricing defaults rather than guess a rate.
        return Terms(policy.currency, None, f"order currency {order.currency} has no exchange rate in the policy")
    # In the currency's minor units once, here: a replacement worth the order and the cap of the
    # order total must be the same amount (3.4499999999999997 USD from a CRM's float is 3.45 for both).
    return Terms(order.currency, round_money(order.amount, order.currency))


def _percent_base(terms: Terms, policy: CompensationPolicy) -> Decimal:
    if terms.order_amount is not None:
        return terms.order_amount
    return policy.convert(policy.pricing.order_amount_when_unknown, terms.currency)


def _exact_cost(offer: Offer, terms: Terms, policy: CompensationPolicy) -> Decimal:
    def money(amount: Decimal) -> Decimal:
        return policy.convert(amount, terms.currency)

    pricing = policy.pricing
    match offer:
        case Coupon():
            worth = offer.percent / 100 * _percent_base(terms, policy)
            return worth if offer.cap is None else min(worth, coupon_cap(offer, terms, policy))
        case FreeShipping():
            return money(pricing.free_shipping_cost if offer.cost is None else offer.cost)
        case FreeTrial():
            return offer.days * money(pricing.trial_daily_price if offer.daily_price is None else offer.daily_price)
        case Replacement():
            return _percent_base(terms, policy) if offer.cost is None else money(offer.cost)
        case Refund():
            if offer.amount is not None:
                return money(offer.amount)
            return offer.percent / 100 * _percent_base(terms, policy)
        case Gift():
            return money(pricing.gift_cost if offer.cost is None else offer.cost)
        case PersonalNote() | Gesture():
            return money(offer.cost)
    raise TypeError(f"no cost estimate for offer {offer!r}")


def offer_cost(offer: Offer, terms: Terms, policy: CompensationPolicy) -> Decimal:
    """What `offer` costs us in `terms.currency`, rounded half-up to its minor units (money.py)."""
    return round_money(_exact_cost(offer, terms, policy), terms.currency)


def coupon_cap(offer: Coupon, terms: Terms, policy: CompensationPolicy) -> Decimal:
    """The most the coupon may be worth, in `terms.currency`: its `cap` converted, rounded down."""
    assert offer.cap is not None
    return round_ceiling(policy.convert(offer.cap, terms.currency), terms.currency)


# Fields that only feed the cost estimate; the CRM gets the estimate itself as `value`.
_PRICING_FIELDS = {"cost", "daily_price"}


def _json_percent(percent: Decimal) -> int | float:
    # the contract writes {"percent": 15}, and {"percent": 12.5} when it has decimals
    return int(percent) if percent == percent.to_integral_value() else float(percent)


def price(offer: Offer, terms: Terms, policy: CompensationPolicy, rule_id: str) -> PricedOffer:
    """The offer with its cost and its contract form: amounts as JSON numbers in the decision's currency."""
    cost = offer_cost(offer, terms, policy)
    contract = offer.model_dump(exclude_none=True, exclude=_PRICING_FIELDS)
    if "percent" in contract:
        contract["percent"] = _json_percent(contract["percent"])
    if isinstance(offer, Coupon) and offer.cap is not None:
        contract["cap"] = json_number(coupon_cap(offer, terms, policy))
    if isinstance(offer, Refund):
        contract["amount"] = json_number(cost)
    contract["value"] = json_number(cost)
    return PricedOffer(contract, cost, rule_id)


def shrink(offer: PricedOffer, room: Decimal, currency: str) -> PricedOffer | None:
    """The offer cut down to `room` (rounded down to whole minor units, so it fits), when its kind
    can be cut (a coupon's cap, a refund's amount); None when it cannot or nothing is left."""
    kind = offer.contract["kind"]
    room = round_ceiling(room, currency)
    if room <= 0 or kind not in ("coupon", "refund"):
        return None
    contract = dict(offer.contract, value=json_number(room))
    if kind == "coupon":
        contract["cap"] = json_number(room)
    else:
        contract.pop("percent", None)
        contract["amount"] = json_number(room)
    return PricedOffer(contract, room, offer.rule_id)


def describe(offer: PricedOffer, currency: str) -> str:
    """'coupon (percent=15): 185 JPY [from confusing_process]', for the explanation."""
    details = ", ".join(f"{k}={v}" for k, v in offer.contract.items() if k not in ("kind", "value"))
    what = offer.contract["kind"] + (f" ({details})" if details else "")
    return f"{what}: {format_money(offer.cost, currency)} [from {offer.rule_id}]"
