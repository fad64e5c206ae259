"""Intake's keyword matcher (services/intake/domain/keywords.py): one compiled pattern per keyword
list gives exactly what the matcher it replaced gave (kept below as `previous_matched_keywords`,
verbatim: a first-word index, then each candidate keyword's own regex), on every text of the
keyword-free test set and of config/classification_examples.yaml, for every keyword list of the
shipped policy, and each keyword is reported once however often it occurs."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from services.intake.domain import matched_keywords
from services.intake.policy import ClassificationPolicy

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parents[1] / "config"


# ---------- the previous implementation, verbatim ----------
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


def previous_matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """The policy keywords found in the text as whole words, each once, in policy order."""
    if not keywords:
        return []
    index = _KeywordIndex.of(tuple(keywords))
    candidates = (keywords[i] for i in index.candidates(_words_in(text)))
    return [k for k in candidates if _keyword_pattern(k).search(text)]



# ---------- the texts and the keyword lists ----------
def texts() -> list[str]:
    yaml = YAML(typ="safe")
    free = [c["text"] for c in yaml.load((HERE / "keyword_free_complaints.yaml").read_text(encoding="utf-8"))["complaints"]]
    examples = yaml.load((CONFIG / "classification_examples.yaml").read_text(encoding="utf-8"))["examples"]
    return free + [text for category in examples.values() for text in category]


def keyword_lists(policy: ClassificationPolicy) -> dict[str, list[str]]:
    s, t = policy.severity, policy.temperament
    lists = {f"category {c.name}": list(c.keywords) for c in policy.categories}
    lists.update({"safety": s.safety.keywords, "threat_to_leave": s.threat_to_leave.keywords,
                  "threat_to_sue": s.threat_to_sue.keywords, "anger_words": t.anger_words,
                  "sarcasm_markers": t.sarcasm_markers})
    return lists


def test_one_pattern_per_list_finds_what_the_previous_matcher_found(shipped_policy):
    corpus = texts()
    assert len(corpus) > 200
    lists = keyword_lists(shipped_policy)
    found_any = 0
    for text in corpus:
        for name, keywords in lists.items():
            now, before = matched_keywords(text, keywords), previous_matched_keywords(text, keywords)
            assert now == before, (name, text[:60])
            found_any += bool(now)
    assert found_any > 50, "the examples do hit keywords: the comparison is not over empty results only"


@pytest.mark.parametrize("text, keywords, found", [
    ("late, late and LATE again", ["late"], ["late"]),  # counted once
    ("the late delivery was late", ["late delivery", "late", "delay*"], ["late delivery", "late"]),  # same start
    ("overcharged and overcharging", ["overcharg*", "charged"], ["overcharg*"]),
    ("I did not\n  want it", ["want", "did not want"], ["want", "did not want"]),  # policy order
    ("chocolate", ["late", "choc"], []),
])
def test_keywords_sharing_a_start_are_all_found_each_once_in_policy_order(text, keywords, found):
    assert matched_keywords(text, keywords) == found == previous_matched_keywords(text, keywords)
