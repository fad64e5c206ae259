"""Text matching: the complaint's text and the policy keywords found in it as whole words.

Keyword lists are indexed by their first word, so a text is matched against only the keywords that
could start in it; the result is the same as trying every keyword's regex.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from services.intake.domain.facts import ComplaintFacts as Complaint

Finding = tuple[str, list[str]]  # a value and the reasons for it


def complaint_text(complaint: Complaint) -> str:
    """The text the rules read: subject and description, curly apostrophes made straight."""
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


def quoted(keywords: list[str]) -> str:
    """Keywords as a reason shows them: 'late', 'broken'."""
    return ", ".join(f"'{k}'" for k in keywords)
