"""The compensation policy (config/compensation.yaml): who gets what, and who may grant it.

Admins edit the YAML; this model refuses typos (extra="forbid"), a policy without a fallback, role
limits that shrink as seniority grows, and currencies nobody can price (a limit or a budget in a
currency with no exchange rate to the policy currency). Every fixed amount in the file (costs,
limits, budgets) is written in the policy's `currency` unless it names its own, and converted with
`exchange_rates` when a complaint's order is in another currency.

Every number is read as an exact `Decimal` (a YAML float through its text: 0.92 is 0.92, not the
nearest binary fraction); rounding to a currency's minor units is the domain's (domain/money.py).
"""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from shared.durations import Duration
from shared.events import Channel, Loyalty, PublicityRisk, Severity, Temperament
from shared.policy import Strict


def _known_category(name: str, info: ValidationInfo) -> str:
    # The categories are the organisation's (config/classification.yaml), not this code's. Naming
    # one that intake never assigns would make a rule silently dead, so when the classification
    # policy sits beside this file, a category it does not have is refused.
    known = intake_categories(info.context.get("policy_file") if info.context else None)
    if known is not None and name not in known:
        raise ValueError(f"category {name!r} is not in classification.yaml beside this file "
                         f"(it has {', '.join(sorted(known))})")
    return name


def intake_categories(policy_file: Path | None) -> frozenset[str] | None:
    """The category names of the classification.yaml next to `policy_file` (its categories and its
    fallback), or None when there is none or it cannot be read (then any name is accepted)."""
    if policy_file is None:
        return None
    path = Path(policy_file).with_name("classification.yaml")
    try:
        tree = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        names = {str(c["name"]) for c in tree["categories"]}
    except (OSError, YAMLError, KeyError, TypeError):
        return None
    return frozenset(names | {str(tree.get("fallback_category", "other"))})


Category = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60), AfterValidator(_known_category)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _exact(value: Any) -> Any:
    # YAML gives floats; Decimal(0.92) would be 0.92000000000000003996..., Decimal("0.92") is 0.92.
    return Decimal(str(value)) if isinstance(value, float) else value


def Number(**bounds: Any) -> Any:  # noqa: N802 - reads like a type in the models below
    """An exact decimal number from YAML, within `bounds` (pydantic's ge/gt/le)."""
    return Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, **bounds)]


Money = Number(ge=0, le=1_000_000_000)  # an amount, in the currency its place in the file says
Percent = Number(gt=0, le=100)
RuleId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9_.-]+$")]
RoleName = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_-]*$")]


def _one_or_many(value: Any) -> Any:
    # Admins write `category: defect` as often as `category: [defect, damaged_in_transit]`.
    return value if isinstance(value, list) else [value]


def OneOrMany(item: Any) -> Any:  # noqa: N802 - reads like a type in the models below
    return Annotated[list[item], BeforeValidator(_one_or_many), Field(min_length=1)]


# ---------- offers ----------
class Coupon(Strict):
    kind: Literal["coupon"]
    percent: Percent
    cap: Money | None = None  # the most the coupon can be worth


class FreeShipping(Strict):
    kind: Literal["free_shipping"]
    cost: Money | None = None  # default: pricing.free_shipping_cost


class FreeTrial(Strict):
    kind: Literal["free_trial"]
    days: Annotated[int, Field(ge=1, le=3650)]
    product: Annotated[str, Field(max_length=200)] | None = None
    daily_price: Money | None = None  # default: pricing.trial_daily_price


class Replacement(Strict):
    kind: Literal["replacement"]
    cost: Money | None = None  # default: the order amount (we give the whole thing again)
    note: Annotated[str, Field(max_length=200)] | None = None


class Refund(Strict):
    kind: Literal["refund"]
    percent: Percent | None = None
    amount: Money | None = None

    @model_validator(mode="after")
    def _percent_or_amount(self) -> Refund:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("a refund needs exactly one of `percent` or `amount`")
        return self


class Gift(Strict):
    kind: Literal["gift"]
    item: Annotated[str, Field(min_length=1, max_length=200)]
    cost: Money | None = None  # default: pricing.gift_cost


class PersonalNote(Strict):
    kind: Literal["personal_note"]
    cost: Money = Decimal(0)
    handwritten: bool = False


class Gesture(Strict):
    kind: Literal["gesture"]
    description: Annotated[str, Field(min_length=1, max_length=200)]
    cost: Money


Offer = Annotated[
    Union[Coupon, FreeShipping, FreeTrial, Replacement, Refund, Gift, PersonalNote, Gesture],
    Field(discriminator="kind"),
]
Offers = Annotated[list[Offer], Field(min_length=1)]


# ---------- rules ----------
class AmountRange(Strict):
    """Order amount bounds, both inclusive, in the order's own currency."""

    min: Money | None = None
    max: Money | None = None

    @model_validator(mode="after")
    def _ordered(self) -> AmountRange:
        if self.min is None and self.max is None:
            raise ValueError("give `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("`min` is larger than `max`")
        return self


class When(Strict):
    """All given conditions must hold; a list means any of its values."""

    category: OneOrMany(Category) | None = None
    severity: OneOrMany(Severity) | None = None
    temperament: OneOrMany(Temperament) | None = None
    loyalty: OneOrMany(Loyalty) | None = None
    publicity_risk: OneOrMany(PublicityRisk) | None = None
    channel: OneOrMany(Channel) | None = None
    public: bool | None = None
    order_amount: AmountRange | None = None
    repeat_contact: bool | None = None
    reopened: bool | None = None


class Rule(Strict):
    id: RuleId
    priority: Annotated[int, Field(ge=0, le=1_000_000)] = 100  # lower is tried first
    when: When = When()
    offers: Offers
    allow_over_cap: bool = False  # may push the case's total past order total × cap_factor
    allow_on_reopen: bool = False  # may grant again on a reopened case that already had a grant
    description: Annotated[str, Field(max_length=500)] = ""


class Extra(Strict):
    """'Do a little more': added on top of whichever rule matched, when its conditions hold."""

    id: RuleId
    when: When
    offers: Offers
    allow_on_reopen: bool = False
    description: Annotated[str, Field(max_length=500)] = ""


class Fallback(Strict):
    """Used when no rule matches: the customer always gets something."""

    id: RuleId = "fallback"
    offers: Offers
    allow_over_cap: bool = False
    allow_on_reopen: bool = False
    description: Annotated[str, Field(max_length=500)] = ""


# ---------- limits, budgets, pricing ----------
class Role(Strict):
    role: RoleName
    limit: Money | None = None  # in the policy currency; None: no limit at all
    limits: dict[CurrencyCode, Money] = {}  # explicit limit for a currency, instead of converting


class Pricing(Strict):
    """What offers cost us when the offer itself does not say; used to estimate a decision's value."""

    free_shipping_cost: Money = Decimal(10)
    trial_daily_price: Money = Decimal(1)
    gift_cost: Money = Decimal(10)
    order_amount_when_unknown: Money = Decimal(50)  # for percent offers on complaints without an order


class CompensationPolicy(Strict):
    description: Annotated[str, Field(max_length=2000)] = ""
    currency: CurrencyCode = "USD"
    # units of each other currency that one unit of `currency` buys
    exchange_rates: dict[CurrencyCode, Number(gt=0, le=1_000_000)] = {}
    authority: Annotated[list[Role], Field(min_length=1)]
    approval_escalation_after: Duration
    cap_factor: Number(ge=0, le=100) = Decimal(1)
    # per CRM source ("*": any other), per currency: the monthly budget, in that currency
    budgets: dict[Annotated[str, Field(min_length=1, max_length=200)], dict[CurrencyCode, Money]] = {}
    pricing: Pricing = Pricing()
    rules: list[Rule] = []
    extras: list[Extra] = []
    fallback: Fallback  # required: the policy is refused without one

    @model_validator(mode="after")
    def _consistent(self) -> CompensationPolicy:
        ids = [r.id for r in self.rules] + [e.id for e in self.extras] + [self.fallback.id]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(duplicates)}")
        roles = [r.role for r in self.authority]
        if len(set(roles)) != len(roles):
            raise ValueError("each role may appear once in `authority`")
        self._check_limits_grow()
        return self

    @field_validator("authority")
    @classmethod
    def _limits_convertible(cls, authority: list[Role], info: ValidationInfo) -> list[Role]:
        # A limit in a currency we cannot convert could never be compared with a grant in another.
        for role in authority:
            _refuse_unconvertible(f"role {role.role}: limit", role.limits, info)
        return authority

    @field_validator("budgets")
    @classmethod
    def _budgets_convertible(cls, budgets: dict[str, dict[str, Decimal]],
                             info: ValidationInfo) -> dict[str, dict[str, Decimal]]:
        # Grants in other currencies are converted into a budget's currency (domain/budgets.py).
        for source, per_currency in budgets.items():
            _refuse_unconvertible(f"budget of {source}", per_currency, info)
        return budgets

    def _check_limits_grow(self) -> None:
        # A supervisor who may grant less than an agent would make escalation go backwards.
        for currency in [self.currency, *self.exchange_rates]:
            previous: tuple[str, Decimal] | None = None
            for role in self.authority:
                limit = self.role_limit(role, currency)
                bound = Decimal("Infinity") if limit is None else limit
                if previous is not None and bound < previous[1]:
                    raise ValueError(
                        f"`authority` is ordered from the lowest role up: {role.role} may grant less "
                        f"than {previous[0]} in {currency}")
                previous = (role.role, bound)

    # ---------- look-ups the decision engine uses ----------
    def knows_currency(self, currency: str) -> bool:
        return currency == self.currency or currency in self.exchange_rates

    def convert(self, amount: Decimal, currency: str) -> Decimal:
        """An amount written in the policy currency, in `currency` (which must be known); exact,
        not rounded: the caller rounds to `currency`'s minor units (domain/money.py)."""
        if currency == self.currency:
            return amount
        return amount * self.exchange_rates[currency]

    def convert_between(self, amount: Decimal, from_currency: str, to_currency: str) -> Decimal:
        """An amount in `from_currency`, in `to_currency` (both known), through the policy currency
        (`exchange_rates` says how much of each one policy-currency unit buys); not rounded."""
        if from_currency == to_currency:
            return amount
        in_policy = amount if from_currency == self.currency else amount / self.exchange_rates[from_currency]
        return self.convert(in_policy, to_currency)

    def role_limit(self, role: Role, currency: str) -> Decimal | None:
        if currency in role.limits:
            return role.limits[currency]
        if role.limit is None:
            return None
        return self.convert(role.limit, currency)

    def find_role(self, name: str) -> Role | None:
        return next((r for r in self.authority if r.role == name), None)

    def ordered_rules(self) -> list[Rule]:
        # sorted() is stable: equal priorities keep their order in the file.
        return sorted(self.rules, key=lambda r: r.priority)

    def budget_of(self, source: str) -> dict[str, Decimal]:
        """The monthly budget lines (currency → amount) that apply to `source`: its own, else "*"."""
        return self.budgets.get(source, self.budgets.get("*", {}))


def _refuse_unconvertible(what: str, amounts: dict[str, Any], info: ValidationInfo) -> None:
    if "currency" not in info.data or "exchange_rates" not in info.data:
        return  # those fields failed themselves: their errors are reported
    currency, rates = info.data["currency"], info.data["exchange_rates"]
    unknown = [c for c in amounts if c != currency and c not in rates]
    if unknown:
        raise ValueError(
            f"{what} in {', '.join(unknown)} but no exchange rate from {currency} to it; "
            f"add it to `exchange_rates`")
