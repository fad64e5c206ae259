"""Classification of a complaint: pure rules applied from the ClassificationPolicy, no I/O.

Each dimension has its own function returning its value and the reasons for it. Reasons are
written for the agent who picks up the case; they name matched policy keywords and numbers,
never the customer's name, email or words beyond a matched keyword.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from services.intake.contract import Complaint, Customer
from services.intake.policy import (
    PRIORITIES, SEVERITIES, ClassificationPolicy, Effect, LoyaltyRule, LoyaltyRules, OrderValue,
    PriorityRules, PublicityRules, SeverityRules, TemperamentRules,
)
from shared.events import Loyalty, Order, Priority, PublicityRisk, Severity, Temperament

Finding = tuple[str, list[str]]  # a value and the reasons for it
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


@dataclass(frozen=True)
class Classification:
    category: str
    severity: Severity
    temperament: Temperament
    loyalty: Loyalty
    publicity_risk: PublicityRisk
    priority: Priority
    reasons: tuple[str, ...]
    decided_by: DecidedBy = "keywords"
    needs_review: bool = False
    confidence: float | None = None


def classify(complaint: Complaint, policy: ClassificationPolicy, repeat_contacts: int,
             prediction: Prediction | None = None) -> Classification:
    """`repeat_contacts`: how many earlier complaints this case already had (0 for a new case);
    `prediction`: the learned classifier's opinion of the complaint's text, None for keywords only."""
    text = complaint_text(complaint)
    decision = decide_category(text, policy, prediction, complaint.crm_category)
    category = decision.category
    severity, severity_reasons = assess_severity(text, category, complaint.order, repeat_contacts, policy.severity)
    temperament, temperament_reasons = assess_temperament(text, policy.temperament)
    loyalty, loyalty_reasons = assess_loyalty(complaint.customer, policy.loyalty)
    publicity, publicity_reasons = assess_publicity_risk(complaint, policy.publicity)
    priority, priority_reasons = assign_priority(severity, temperament, loyalty, publicity, policy.priority, category,
                                                 complaint.public)
    reasons = decision.reasons + severity_reasons + temperament_reasons + loyalty_reasons + publicity_reasons + priority_reasons
    return Classification(category, severity, temperament, loyalty, publicity, priority, tuple(reasons),
                          decision.decided_by, decision.needs_review, decision.confidence)


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


_WORD_RUN = re.compile(r"\w+")


@lru_cache(maxsize=64)
def _words_in(text: str) -> frozenset[str]:
    """The text's maximal runs of word characters, lower-cased: the only places a keyword can start."""
    return frozenset(_WORD_RUN.findall(text.lower()))


@dataclass(frozen=True)
class _KeywordIndex:
    """One keyword list, indexed by the first run of word characters of each keyword.

    A match starts where no word character precedes it, so that first run is a whole word of the
    text, or, for a keyword that is one stem with `*`, the start of one. Looking the text's words
    up here rules out nearly every keyword before its own regex runs; the result is the same."""

    by_word: dict[str, tuple[int, ...]]   # first run → positions of keywords that need it as a whole word
    stems: dict[str, tuple[int, ...]]     # stem → positions of "stem*" keywords
    stem_lengths: tuple[int, ...]
    always: tuple[int, ...]               # keywords that start with no word character

    @classmethod
    @lru_cache(maxsize=256)
    def of(cls, keywords: tuple[str, ...]) -> _KeywordIndex:
        by_word: dict[str, list[int]] = {}
        stems: dict[str, list[int]] = {}
        always = []
        for i, keyword in enumerate(keywords):
            body = keyword.rstrip("*").lower()
            run = _WORD_RUN.match(body)
            if run is None:
                always.append(i)
            elif keyword.endswith("*") and run.end() == len(body):
                stems.setdefault(run.group(), []).append(i)
            else:
                by_word.setdefault(run.group(), []).append(i)
        return cls({w: tuple(ix) for w, ix in by_word.items()}, {w: tuple(ix) for w, ix in stems.items()},
                   tuple(sorted({len(stem) for stem in stems})), tuple(always))

    def candidates(self, words: frozenset[str]) -> list[int]:
        found = set(self.always)
        by_word, stems = self.by_word, self.stems
        for word in words:
            if word in by_word:
                found.update(by_word[word])
            for length in self.stem_lengths:
                if length <= len(word) and word[:length] in stems:
                    found.update(stems[word[:length]])
        return sorted(found)


def matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """The policy keywords found in the text as whole words, each once, in policy order."""
    if not keywords:
        return []
    index = _KeywordIndex.of(tuple(keywords))
    candidates = (keywords[i] for i in index.candidates(_words_in(text)))
    return [k for k in candidates if _keyword_pattern(k).search(text)]


def _quoted(keywords: list[str]) -> str:
    return ", ".join(f"'{k}'" for k in keywords)


# ---------- category ----------
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
    return name, [f"category {name}: mentions {_quoted(found)}"]


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
            return CategoryDecision(name, "keywords", False, None, unmapped + [f"category {name}: mentions {_quoted(found)}"])
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
        why = f"category {name}: mentions {_quoted(found)}" if found else f"category {name}: no category keyword matched"
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
                                reasons + [f"category {name}: mentions {_quoted(found)}, a weak match; {unsure}{review}"])
    fallback = policy.fallback_category
    return CategoryDecision(fallback, "fallback", True, confidence, reasons + [
        f"category {fallback}: no category keyword matched and the model was unsure ({_model_words(prediction)},"
        f" below {rules.min_confidence:.2f}); needs review"])


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


@lru_cache(maxsize=1)
def _sentiment_analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # loads its lexicon once

    return SentimentIntensityAnalyzer()


SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
MAX_SENTENCES = 50


def negativity(text: str, sarcasm_markers: list[str]) -> tuple[float, list[str]]:
    """How negative the text reads, 0 (neutral or positive) to 1: the mean of VADER's compound
    score (Hutto & Gilbert, 2014) over its first 50 sentences, negated. VADER's cost grows faster
    than the text (a 20,000-character description took over a second whole); sentence by sentence
    it stays linear, and the first 50 sentences say how the customer feels. In a complaint, praise
    next to a sarcasm marker ("oh great", "thanks for nothing") is read as its opposite.
    Returns the score and the markers found."""
    sentences = [s for s in SENTENCE_END.split(text, maxsplit=MAX_SENTENCES) if s.strip()][:MAX_SENTENCES]
    if not sentences:
        return 0.0, []
    analyzer = _sentiment_analyzer()
    compound = sum(analyzer.polarity_scores(s)["compound"] for s in sentences) / len(sentences)
    markers = matched_keywords(text, sarcasm_markers) if sarcasm_markers else []
    if markers:
        compound = -abs(compound)
    return max(0.0, -compound), markers


def assess_temperament(text: str, rules: TemperamentRules) -> Finding:
    anger = matched_keywords(text, rules.anger_words)
    exclamations = text.count("!")
    capitals = _capital_share(text, rules.min_letters_for_capitals)
    signals = [
        (len(anger), rules.anger_word_hits, f"anger words {_quoted(anger)}"),
        (exclamations, rules.exclamation_marks, f"{exclamations} exclamation marks"),
        (capitals or 0.0, rules.capital_letter_share, f"{capitals or 0:.0%} of letters in capitals"),
    ]
    if rules.negative_sentiment is not None:
        score, markers = negativity(text, rules.sarcasm_markers)
        if markers:  # sarcasm is not calm, whatever the words around it score
            score = max(score, rules.negative_sentiment.upset)
        sarcasm = f", sarcasm {_quoted(markers)}" if markers else ""
        signals.append((score, rules.negative_sentiment, f"negative sentiment {score:.2f}{sarcasm}"))
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
                    publicity_risk: PublicityRisk, rules: PriorityRules, category: str | None = None,
                    public: bool = False) -> Finding:
    """Priority from the severity matrix and its bumps, then the policy's floors (`at_least`)."""
    priority, reasons = _bumped_priority(severity, temperament, loyalty, publicity_risk, rules)
    for floor in rules.at_least:
        holds = (category in floor.categories and floor.public in (None, public)
                 and floor.publicity_risk in (None, publicity_risk))
        if holds and PRIORITIES.index(floor.priority) > PRIORITIES.index(priority):
            priority = floor.priority
            why = "a public complaint" if floor.public else f"{publicity_risk} publicity risk"
            reasons = [f"priority {priority}: {category} in {why} (was {reasons[0].removeprefix('priority ')})"]
    return priority, reasons


def _bumped_priority(severity: Severity, temperament: Temperament, loyalty: Loyalty,
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
