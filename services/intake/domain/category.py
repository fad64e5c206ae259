"""Who decides the category: the CRM's mapped category, the keywords, the learned model or the fallback."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.intake.domain.keywords import Finding, matched_keywords, quoted
from services.intake.policy import ClassificationPolicy

DecidedBy = Literal["crm", "keywords", "model", "fallback"]


@dataclass(frozen=True)
class Prediction:
    """The learned classifier's opinion of one text (services/intake/classifier/model.py).

    `confidence` is the model's probability (0–1) of `category`; `nearest` are admin-written
    examples of that category nearest in meaning, shown to the agent as the model's grounds."""

    category: str
    confidence: float
    runner_up: str | None = None
    runner_up_confidence: float = 0.0
    nearest: tuple[str, ...] = ()


@dataclass(frozen=True)
class CategoryDecision:
    """The category, which path decided it, and whether a person should look at it."""

    category: str
    decided_by: DecidedBy
    needs_review: bool
    confidence: float | None  # the model's probability of its own top category, when it ran
    reasons: list[str]


def keyword_hits(text: str, policy: ClassificationPolicy) -> list[tuple[str, list[str]]]:
    """(category, matched keywords) of every category with a match, most matches first; on a tie
    the category listed first in the policy comes first."""
    hits = [(rule.name, matched_keywords(text, rule.keywords)) for rule in policy.categories]
    return sorted(((name, found) for name, found in hits if found), key=lambda h: -len(h[1]))


def classify_category(text: str, policy: ClassificationPolicy) -> Finding:
    """The keyword rules alone: the category with most matched keywords, else the fallback."""
    ranked = keyword_hits(text, policy)
    if not ranked:
        return policy.fallback_category, [f"category {policy.fallback_category}: no category keyword matched"]
    name, found = ranked[0]
    return name, [f"category {name}: mentions {quoted(found)}"]


def _excerpt(example: str, limit: int = 60) -> str:
    flat = " ".join(example.split())
    return f"'{flat}'" if len(flat) <= limit else f"'{flat[:limit].rstrip()}…'"


def _model_words(p: Prediction) -> str:
    return f"model {p.confidence:.2f} {p.category}"


def decided_without_model(text: str, policy: ClassificationPolicy, crm_category: str | None = None,
                          ranked: list[tuple[str, list[str]]] | None = None) -> CategoryDecision | None:
    """The decision when the CRM's mapped category or a strong keyword match settles it, so the
    model need not run (steps 1 and 2 of `decide_category`); None when the model has a say.
    `ranked`: the text's `keyword_hits`, when the caller has them already."""
    if policy.model is None:
        return None
    mapped = mapped_crm_category(policy, crm_category)
    if mapped is not None:
        return CategoryDecision(mapped, "crm", False, None, [f"category {mapped}: the CRM's category '{crm_category}'"])
    ranked = keyword_hits(text, policy) if ranked is None else ranked
    if ranked:
        name, found = ranked[0]
        runner_up = len(ranked[1][1]) if len(ranked) > 1 else 0
        if len(found) >= policy.model.keywords_win_at and len(found) > runner_up:
            unmapped = _unmapped_crm_category(policy, crm_category)
            return CategoryDecision(name, "keywords", False, None, unmapped + [f"category {name}: mentions {quoted(found)}"])
    return None


def mapped_crm_category(policy: ClassificationPolicy, crm_category: str | None) -> str | None:
    """Our category for the CRM's, matched ignoring case and surrounding spaces ("refund" and
    " Refund " are the policy's "Refund"); None when the policy does not map it."""
    if crm_category is None:
        return None
    wanted = crm_category.strip().casefold()
    return next((ours for theirs, ours in policy.crm_categories.items() if theirs.strip().casefold() == wanted), None)


def _unmapped_crm_category(policy: ClassificationPolicy, crm_category: str | None) -> list[str]:
    if crm_category is None or mapped_crm_category(policy, crm_category) is not None:
        return []
    return [f"the CRM's category '{crm_category}' is not mapped in crm_categories: ignored"]


def decide_category(text: str, policy: ClassificationPolicy, prediction: Prediction | None,
                    crm_category: str | None = None) -> CategoryDecision:
    """Who decides the category, in this order (the policy's `model` section sets the numbers):

    1. the CRM's own category, when `crm_categories` maps it;
    2. a strong keyword match: at least `keywords_win_at` different keywords of one category, and
       more than any other category has: explicit and auditable;
    3. the model's category, when its probability reaches `min_confidence`;
    4. a weak keyword match (fewer keywords, or a tie), flagged for review if the model disagrees;
    5. the fallback category, flagged for review.
    Without a `model` section (or a prediction) the keywords decide as they always did, after a
    mapped CRM category. `prediction` may be None when steps 1 or 2 decide (`decided_without_model`)."""
    ranked = keyword_hits(text, policy)
    early = decided_without_model(text, policy, crm_category, ranked)
    if early is not None:
        return early
    mapped = mapped_crm_category(policy, crm_category)
    if mapped is not None:
        return CategoryDecision(mapped, "crm", False, None, [f"category {mapped}: the CRM's category '{crm_category}'"])
    reasons = _unmapped_crm_category(policy, crm_category)
    confidence = prediction.confidence if prediction is not None else None
    rules = policy.model
    if rules is None or prediction is None:
        name, found = ranked[0] if ranked else (policy.fallback_category, [])
        why = f"category {name}: mentions {quoted(found)}" if found else f"category {name}: no category keyword matched"
        return CategoryDecision(name, "keywords" if found else "fallback", False, confidence, reasons + [why])
    if prediction.category not in set(policy.category_names):
        reasons.append(f"{_model_words(prediction)}, a category this policy does not have: ignored")
    elif prediction.confidence >= rules.min_confidence:
        nearest = f"; nearest examples: {', '.join(_excerpt(e) for e in prediction.nearest)}" if prediction.nearest else ""
        # The fallback category means "none of ours": a person should look, however sure the model is.
        fallback = prediction.category == policy.fallback_category
        review = "; needs review: none of the categories fits" if fallback else ""
        return CategoryDecision(prediction.category, "model", fallback, confidence,
                                reasons + [f"category {prediction.category}: {_model_words(prediction)}{nearest}{review}"])
    if ranked:
        name, found = ranked[0]
        disagrees = prediction.category != name
        unsure = f"the model was unsure ({_model_words(prediction)})"
        review = "; needs review" if disagrees else ""
        return CategoryDecision(name, "keywords", disagrees, confidence,
                                reasons + [f"category {name}: mentions {quoted(found)}, a weak match; {unsure}{review}"])
    fallback = policy.fallback_category
    return CategoryDecision(fallback, "fallback", True, confidence, reasons + [
        f"category {fallback}: no category keyword matched and the model was unsure ({_model_words(prediction)},"
        f" below {rules.min_confidence:.2f}); needs review"])
