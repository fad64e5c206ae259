"""Money: exact decimal amounts, rounded to each currency's ISO 4217 minor units.

Rules (documented for admins in config/compensation.yaml and the README's Compensation section):
- every amount is a `decimal.Decimal`, never a binary float: 0.1 + 0.2 is 0.3;
- an amount granted (a cost, a coupon's worth, a refund, a price converted into another currency)
  is rounded to the currency's minor units, half-up, as tills and payment systems do: 185.1 JPY is
  185 JPY, 249.75 JPY is 250 JPY, 0.0075 USD is 0.01 USD (Python's `Decimal.quantize` would round
  half-even: 0.125 USD to 0.12);
- a ceiling (a role's limit, the case cap, a coupon's cap) that had to be converted or computed is
  rounded down, so that it never allows more than the amount the policy wrote;
- the minor units come from the CLDR data shipped with babel (ISO 4217): JPY 0 decimals, USD and
  EUR 2, BHD and KWD 3. A code CLDR does not know gets 2.
"""
from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel.numbers import get_currency_precision

ZERO = Decimal(0)


def exact(value: Decimal | float | int | str) -> Decimal:
    """`value` as a Decimal; a float goes through its shortest text (0.92 → Decimal('0.92'), not the
    binary 0.92000000000000003996…), which is what a person or a JSON document wrote."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    return Decimal(value)


@lru_cache(maxsize=512)
def minor_units(currency: str) -> int:
    """Decimal places of `currency` per ISO 4217 (babel's CLDR data): JPY 0, USD 2, BHD 3."""
    return get_currency_precision(currency)


def _quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal | float | int, currency: str) -> Decimal:
    """`amount` (in `currency`) in whole minor units, half-up: the rule for every amount granted."""
    return exact(amount).quantize(_quantum(currency), rounding=ROUND_HALF_UP)


def round_ceiling(amount: Decimal | float | int, currency: str) -> Decimal:
    """`amount` (in `currency`) in whole minor units, rounded down: the rule for a limit or cap that
    was converted or computed, so it never allows more than the policy wrote (46.185 EUR → 46.18)."""
    return exact(amount).quantize(_quantum(currency), rounding=ROUND_DOWN)


def format_money(amount: Decimal | float | int, currency: str) -> str:
    """'185 JPY', '15.00 USD', '1.852 BHD': rounded half-up to the currency's minor units."""
    return f"{round_money(amount, currency):f} {currency}"


def format_amount(amount: Decimal | float | int, currency: str) -> str:
    """Like `format_money` without the currency code: '185', '15.00'."""
    return f"{round_money(amount, currency):f}"


def json_number(amount: Decimal) -> float:
    """An amount as the contract's JSON number. Amounts up to 1e9 with at most 4 decimals print
    exactly as the decimal (Python writes a float's shortest round-trip text): 14.99 stays 14.99."""
    return float(amount)
