"""Temperament: anger words, exclamation marks, capitals and negative sentiment (with sarcasm)."""
from __future__ import annotations

import re
from functools import lru_cache

from services.intake.domain.keywords import Finding, matched_keywords, quoted
from services.intake.policy import TemperamentRules


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
    """Irate when one signal reaches its irate level or enough reach upset; upset when any does; else calm."""
    anger = matched_keywords(text, rules.anger_words)
    exclamations = text.count("!")
    capitals = _capital_share(text, rules.min_letters_for_capitals)
    signals = [
        (len(anger), rules.anger_word_hits, f"anger words {quoted(anger)}"),
        (exclamations, rules.exclamation_marks, f"{exclamations} exclamation marks"),
        (capitals or 0.0, rules.capital_letter_share, f"{capitals or 0:.0%} of letters in capitals"),
    ]
    if rules.negative_sentiment is not None:
        score, markers = negativity(text, rules.sarcasm_markers)
        if markers:  # sarcasm is not calm, whatever the words around it score
            score = max(score, rules.negative_sentiment.upset)
        sarcasm = f", sarcasm {quoted(markers)}" if markers else ""
        signals.append((score, rules.negative_sentiment, f"negative sentiment {score:.2f}{sarcasm}"))
    irate = [label for value, levels, label in signals if value >= levels.irate]
    upset = [label for value, levels, label in signals if levels.upset <= value < levels.irate]
    if irate or len(upset) >= rules.upset_signals_make_irate:
        return "irate", [f"irate: {'; '.join(irate + upset)}"]
    if upset:
        return "upset", [f"upset: {'; '.join(upset)}"]
    return "calm", []
