"""Where a passage stands among a page's words: word-sequence alignment of the stored text against the page's.

A chunk keeps its text, not where it came from on the page. The loaders also change the text on the way
(whitespace collapsed, running headers and page numbers dropped, hyphenated line breaks joined, a table's
column headers repeated atop each of its pieces), so the passage is found by aligning word tokens, not by
searching characters: tokens are runs of letters and digits, lower-cased, so "1,234" and "$1,234" agree
and punctuation never decides. A page word may hold several tokens ("1,234" is "1" and "234"), and a word
broken across lines by a hyphen ("exam-" "ple") is one token, "example", as the loader made it.

Only runs of at least MIN_RUN tokens count, so that a lone "the" elsewhere on the page is not highlighted;
short gaps between them (a word the loader changed) are filled.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

_TOKEN = re.compile(r"[^\W_]+")
MIN_RUN = 2  # matched tokens in a row for a run to count (a lone token only between runs)
MAX_GAP = 3  # unmatched page tokens between two runs that are highlighted with them
MIN_SHARE = 0.5  # of the passage's tokens found on the page for it to count as found there


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


@dataclass(frozen=True)
class PageTokens:
    """A page's words as tokens, each with the index of the word (or words) it comes from."""

    tokens: tuple[str, ...]
    words: tuple[tuple[int, ...], ...]  # per token: the indices of its words in the page's word list

    @classmethod
    def of(cls, words: Sequence[str]) -> PageTokens:
        out: list[str] = []
        owners: list[tuple[int, ...]] = []
        i = 0
        while i < len(words):
            parts = tokens(words[i])
            following = tokens(words[i + 1]) if i + 1 < len(words) else []
            hyphen_break = (
                len(words[i]) >= 3 and words[i].endswith("-") and words[i][-2].islower() and following
                and words[i + 1][:1].islower()
            )  # fmt: skip
            if hyphen_break and parts:
                out.extend(parts[:-1])
                owners.extend((i,) for _ in parts[:-1])
                out.append(parts[-1] + following[0])
                owners.append((i, i + 1))
                out.extend(following[1:])
                owners.extend((i + 1,) for _ in following[1:])
                i += 2
                continue
            out.extend(parts)
            owners.extend((i,) for _ in parts)
            i += 1
        return cls(tuple(out), tuple(owners))


@dataclass(frozen=True)
class Located:
    """Where a passage's tokens fell on the page."""

    token_map: dict[int, int]  # passage token index -> page token index, for the tokens found
    page_tokens: frozenset[int]  # page token indices highlighted (found, and short gaps between)
    share: float  # of the passage's tokens found

    @property
    def found(self) -> bool:
        return self.share >= MIN_SHARE


def locate(passage: str, page: PageTokens) -> Located:
    """The passage's tokens aligned with the page's (in order: a passage is read top to bottom)."""
    wanted = tokens(passage)
    if not wanted or not page.tokens:
        return Located({}, frozenset(), 0.0)
    matcher = SequenceMatcher(None, wanted, page.tokens, autojunk=False)
    blocks = [b for b in matcher.get_matching_blocks() if b.size]
    runs = [b for b in blocks if b.size >= MIN_RUN]
    # A lone token counts only where it stands between runs, close to them (a changed word between two).
    kept = [
        b
        for b in blocks
        if b.size >= MIN_RUN
        or any(abs(b.b - (r.b + r.size)) <= MAX_GAP or abs(r.b - (b.b + b.size)) <= MAX_GAP for r in runs)
    ]
    token_map: dict[int, int] = {}
    for block in kept:
        for k in range(block.size):
            token_map[block.a + k] = block.b + k
    highlighted: set[int] = set(token_map.values())
    ordered = sorted(highlighted)
    for left, right in itertools.pairwise(ordered):
        if 1 < right - left <= MAX_GAP + 1:
            highlighted.update(range(left + 1, right))
    return Located(token_map, frozenset(highlighted), len(token_map) / len(wanted))


def words_of(page: PageTokens, page_tokens: frozenset[int] | set[int]) -> list[int]:
    """The page's word indices behind these tokens, in order."""
    return sorted({w for t in page_tokens for w in page.words[t]})


def span_tokens(passage: str, start: int, end: int) -> range:
    """The passage's token indices inside its characters [start, end)."""
    first = last = None
    for index, match in enumerate(_TOKEN.finditer(passage.casefold())):
        if match.end() <= start:
            continue
        if match.start() >= end:
            break
        first = index if first is None else first
        last = index
    return range(0) if first is None or last is None else range(first, last + 1)


def span_on_page(located: Located, passage: str, start: int, end: int) -> frozenset[int]:
    """The page tokens of a part of the passage (its characters [start, end)), e.g. the line that answers."""
    found = [located.token_map[t] for t in span_tokens(passage, start, end) if t in located.token_map]
    if not found:
        return frozenset()
    return frozenset(t for t in range(min(found), max(found) + 1) if t in located.page_tokens)
