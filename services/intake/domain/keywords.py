"""Text matching: the complaint's text and the policy keywords found in it as whole words.

Each keyword list is one compiled pattern (one pass over the text per category, not one search per
keyword); the result is the same as trying every keyword's own regex, each keyword counted once.
"""
from __future__ import annotations

import re
from functools import lru_cache

from services.intake.domain.facts import ComplaintFacts as Complaint

Finding = tuple[str, list[str]]  # a value and the reasons for it


def complaint_text(complaint: Complaint) -> str:
    """The text the rules read: subject and description, curly apostrophes made straight."""
    # Curly apostrophes from phones and word processors must match "didn't" in the policy.
    return f"{complaint.subject}\n{complaint.description}".replace("\u2019", "'")


def _keyword_regex(keyword: str) -> str:
    """One keyword as a regex: its words separated by any whitespace, `*` at its end for any word
    ending, starting and ending at a word boundary (no word character just before or after)."""
    words = keyword.rstrip("*").split()
    body = r"\s+".join(re.escape(word) for word in words)
    ending = r"\w*" if keyword.endswith("*") else ""
    return rf"{body}{ending}(?!\w)"


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str]:
    """One keyword's own pattern: what `matched_keywords` finds is exactly the keywords whose
    pattern `search`es the text (tests/intake/test_classification.py checks the two agree)."""
    return re.compile(rf"(?<!\w){_keyword_regex(keyword)}", re.IGNORECASE)


def _pieces(keyword: str) -> list[str]:
    """`_keyword_regex(keyword)` cut into pieces (a character, the gap between two words, the end),
    for `_prefix_tree`: keywords that begin alike share their first pieces."""
    out: list[str] = []
    for i, word in enumerate(keyword.rstrip("*").split()):
        if i:
            out.append(r"\s+")
        out.extend(re.escape(ch) for ch in word)
    out.append(r"\w*(?!\w)" if keyword.endswith("*") else r"(?!\w)")
    return out


def _prefix_tree(keywords: tuple[str, ...]) -> str:
    """A regex matching where any of `keywords` matches, with the keywords' common beginnings
    factored out ("late" and "late delivery" share "l", "a", "t", "e"): the regex
    engine rejects a place at its first character that no keyword starts with, instead of trying
    every keyword there."""
    tree: dict[str, dict] = {}
    for keyword in keywords:
        node = tree
        for piece in _pieces(keyword):
            node = node.setdefault(piece, {})

    def emit(node: dict[str, dict]) -> str:
        branches = [piece + emit(child) for piece, child in node.items()]
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"
    return emit(tree)


@lru_cache(maxsize=256)
def _list_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """One compiled pattern for a whole keyword list (a category's, the anger words, ...).

    It matches, without consuming text, at each place no word character precedes where at least one
    keyword starts (`_prefix_tree`), and there captures every keyword that matches from that place
    (group i+1 for keyword i, each in its own lookahead, so keywords that share a start, such as
    "late" and "late delivery", are all seen). One pass of the regex engine over the text replaces
    one search per keyword; each keyword still counts once, however often it occurs."""
    captures = "".join(f"(?=({_keyword_regex(k)})?)" for k in keywords)
    return re.compile(rf"(?<!\w)(?={_prefix_tree(keywords)}){captures}", re.IGNORECASE)


def matched_keywords(text: str, keywords: list[str]) -> list[str]:
    """The policy keywords found in the text as whole words, each once, in policy order."""
    if not keywords:
        return []
    found: set[int] = set()
    for match in _list_pattern(tuple(keywords)).finditer(text):
        found.update(i for i, group in enumerate(match.groups()) if group is not None)
    return [keywords[i] for i in sorted(found)]


def quoted(keywords: list[str]) -> str:
    """Keywords as a reason shows them: 'late', 'broken'."""
    return ", ".join(f"'{k}'" for k in keywords)
