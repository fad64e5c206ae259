"""The classification policy (config/classification.yaml): every rule that classifies a complaint.

The code only knows how to apply rules; which words mean what, which amounts matter and how
priority is set is the admin's to change in the YAML. Load it through shared.policy.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from shared.events import Channel, Loyalty, Priority, PublicityRisk, Severity, Temperament
from shared.policy import Strict

SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
PRIORITIES: tuple[Priority, ...] = ("P4", "P3", "P2", "P1")  # from least to most urgent

# A keyword is one word or a phrase; a trailing `*` matches any ending ("overcharg*").
Keyword = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^*]+\*?$")]
Keywords = Annotated[list[Keyword], Field(min_length=1)]
CategoryName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]


class CategoryRule(Strict):
    """A category of the organisation's. Keywords are optional: a category may be learned from
    examples alone (see `model`)."""

    name: CategoryName
    keywords: list[Keyword] = []


class Effect(Strict):
    """How a signal moves severity: up to at least a level, and/or up by some steps."""

    at_least: Severity | None = None
    raise_by: Annotated[int, Field(ge=0, le=3)] = 0

    @model_validator(mode="after")
    def _does_something(self) -> Effect:
        if self.at_least is None and self.raise_by == 0:
            raise ValueError("give at_least, raise_by or both")
        return self


class OrderValueRule(Effect):
    over: Annotated[float, Field(ge=0)]


class OrderValue(Strict):
    # Thresholds are in the reference currency; other currencies are converted with these rates
    # (a currency not listed is compared as if it were the reference currency).
    reference_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "USD"
    rates: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], Annotated[float, Field(gt=0)]] = {}
    thresholds: list[OrderValueRule] = []


class WordSignal(Effect):
    keywords: Keywords


class RepeatContact(Strict):
    raise_by_each: Annotated[int, Field(ge=0, le=3)] = 1
    max_raise: Annotated[int, Field(ge=0, le=3)] = 2


class SeverityRules(Strict):
    base: dict[CategoryName, Severity]
    default_base: Severity = "low"
    order_value: OrderValue = OrderValue()
    safety: WordSignal
    threat_to_leave: WordSignal
    threat_to_sue: WordSignal
    repeat_contact: RepeatContact = RepeatContact()
    cap: Severity = "critical"


class HistoryFile(Strict):
    """An organisation's labelled complaints: a CSV (UTF-8, RFC 4180) with a text and a label column.

    Labels are category names, or names that normalise to one: lower case, every run of other
    characters than letters and digits made one `_`, apostrophes dropped ("Late Flight" → late_flight)."""

    file: Annotated[str, Field(min_length=1)]  # relative to the policy's folder, or absolute
    text_column: Annotated[str, Field(min_length=1)] = "text"
    label_column: Annotated[str, Field(min_length=1)] = "category"


class ModelRules(Strict):
    """How the learned classifier (services/intake/classifier) and the keywords share the category.

    Order of decision (services/intake/domain/category.py, decide_category): a mapped `crm_category`; a strong
    keyword match (`keywords_win_at` different keywords of one category and more than any other);
    the model's category when its probability reaches `min_confidence`; a weak keyword match;
    otherwise the fallback category, flagged `needs_review`."""

    examples: Annotated[str, Field(min_length=1)] | None = "classification_examples.yaml"
    history: list[HistoryFile] = []
    min_confidence: Annotated[float, Field(gt=0, le=1)] = 0.25
    keywords_win_at: Annotated[int, Field(ge=1, le=10)] = 2


class Levels(Strict):
    """Where one text signal starts to mean upset, and where irate."""

    upset: Annotated[float, Field(gt=0)]
    irate: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.irate < self.upset:
            raise ValueError("irate must not be below upset")
        return self


class TemperamentRules(Strict):
    anger_words: Keywords
    anger_word_hits: Levels
    exclamation_marks: Levels
    capital_letter_share: Levels
    # Short texts ("TV broken") would look like shouting; below this many letters, capitals are ignored.
    min_letters_for_capitals: Annotated[int, Field(ge=1)] = 20
    upset_signals_make_irate: Annotated[int, Field(ge=2)] = 2
    # VADER's compound score (-1 … 1) turned negative-is-high: 0.6 means compound -0.6 or below.
    negative_sentiment: Levels | None = None
    # Praise next to these reads as sarcasm: the sentiment counts as negative.
    sarcasm_markers: list[Keyword] = []


class LoyaltyRule(Strict):
    tier: Loyalty
    min_tenure_days: Annotated[int, Field(ge=0)] | None = None
    max_tenure_days: Annotated[int, Field(ge=0)] | None = None
    min_lifetime_value: Annotated[float, Field(ge=0)] | None = None
    min_referrals: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> LoyaltyRule:
        if all(v is None for v in (self.min_tenure_days, self.max_tenure_days, self.min_lifetime_value, self.min_referrals)):
            raise ValueError("a loyalty rule needs at least one condition")
        return self


class LoyaltyRules(Strict):
    derive: list[LoyaltyRule] = []
    otherwise: Loyalty = "standard"


class PublicityRules(Strict):
    high_when_public: bool = True
    high_channels: list[Channel] = ["social"]


class PriorityFloor(Strict):
    """At least `priority` for complaints in these categories that are public (when `public` is
    given) and have this publicity risk (when `publicity_risk` is given)."""

    categories: Annotated[list[CategoryName], Field(min_length=1)]
    public: bool | None = None
    publicity_risk: PublicityRisk | None = None
    priority: Priority


class PriorityBumps(Strict):
    temperament: dict[Temperament, Annotated[int, Field(ge=0, le=3)]] = {}
    loyalty: dict[Loyalty, Annotated[int, Field(ge=0, le=3)]] = {}
    publicity_risk: dict[PublicityRisk, Annotated[int, Field(ge=0, le=3)]] = {}


class PriorityRules(Strict):
    base: dict[Severity, Priority]
    bumps: PriorityBumps = PriorityBumps()
    max_total_bump: Annotated[int, Field(ge=0, le=3)] = 2
    at_least: list[PriorityFloor] = []

    @model_validator(mode="after")
    def _every_severity(self) -> PriorityRules:
        missing = [s for s in SEVERITIES if s not in self.base]
        if missing:
            raise ValueError(f"base needs a priority for every severity; missing: {', '.join(missing)}")
        return self


class ClassificationPolicy(Strict):
    categories: Annotated[list[CategoryRule], Field(min_length=1)]
    fallback_category: CategoryName = "other"
    severity: SeverityRules
    temperament: TemperamentRules
    loyalty: LoyaltyRules = LoyaltyRules()
    publicity: PublicityRules = PublicityRules()
    priority: PriorityRules
    model: ModelRules | None = None  # absent: keywords only
    # The CRM's own category names (`crm_category` on complaint.received) mapped to ours.
    crm_categories: dict[Annotated[str, Field(min_length=1, max_length=100)], CategoryName] = {}

    @model_validator(mode="after")
    def _categories_consistent(self) -> ClassificationPolicy:
        names = [c.name for c in self.categories]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"category listed twice: {', '.join(duplicates)}")
        unknown = sorted(set(self.severity.base) - set(names) - {self.fallback_category})
        if unknown:
            raise ValueError(f"severity.base names unknown categories: {', '.join(unknown)}")
        known = set(names) | {self.fallback_category}
        unmapped = sorted(set(self.crm_categories.values()) - known)
        if unmapped:
            raise ValueError(f"crm_categories maps to unknown categories: {', '.join(unmapped)}")
        floors = sorted({c for floor in self.priority.at_least for c in floor.categories} - known)
        if floors:
            raise ValueError(f"priority.at_least names unknown categories: {', '.join(floors)}")
        return self

    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories] + [self.fallback_category]

