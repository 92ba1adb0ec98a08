"""Which documents does a question name? "Apple's iPhone sales in Q3 2023", "the 2022 annual report".

A knowledge base of filings holds several nearly identical documents (one company, four quarters; five
companies, one form): the same words occur in all of them, and passage search alone picks the sibling as
often as the right one. Each document has a card (its title and file name); a question's words are
matched against the cards, each word weighing how rare it is among them (BM25's idf over documents), so
"3M" or "2018" that name one document weigh far more than "report" that every card has. Retrieval then
draws candidates from the named documents too and adds their score to the fusion (rag/retrieval.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rag.keyword_index import WORD, YEAR

_QUARTER = re.compile(r"^(?:q([1-4])|([1-4])q)$|(?<=\d)q([1-4])$|^q([1-4])(?=\d)")
NAMED_SHARE = 0.5  # a document scoring at least this share of the best one is named by the question


def card_terms(text: str) -> set[str]:
    """The words of a title, a file name or a question, lower-cased, with the years and quarters inside
    codes spelled out: "FY2024" → fy2024, 2024; "2023Q4" → 2023q4, 2023, q4; "4Q" → q4."""
    terms: set[str] = set()
    for word in WORD.findall(text.lower()):
        terms.add(word)
        if word.isalpha() or word.isdigit():
            continue
        terms.update(YEAR.findall(word))
        for match in _QUARTER.finditer(word):
            terms.add("q" + next(g for g in match.groups() if g))
    return terms


@dataclass(frozen=True)
class DocumentCard:
    doc_id: str
    text: str  # title and file name


class DocumentRouter:
    """Scores documents against a question by the rarity-weighted words their cards share with it."""

    def __init__(self, cards: Sequence[DocumentCard]) -> None:
        self._cards = [(card.doc_id, card_terms(card.text)) for card in cards]
        total = len(self._cards)
        frequency: dict[str, int] = {}
        for _, terms in self._cards:
            for term in terms:
                frequency[term] = frequency.get(term, 0) + 1
        self._idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}

    def scores(self, question: str, stopwords: Iterable[str] = ()) -> dict[str, float]:
        """Each matching document's score divided by the best one's (1.0 for the best); empty when no card
        shares a word with the question or there is only one document to choose from."""
        if len(self._cards) < 2:
            return {}
        words = card_terms(question) - set(stopwords)
        raw = {doc_id: sum(self._idf[t] for t in words & terms) for doc_id, terms in self._cards}
        best = max(raw.values(), default=0.0)
        if best <= 0:
            return {}
        return {doc_id: score / best for doc_id, score in raw.items() if score > 0}

    def named(self, question: str, stopwords: Iterable[str] = (), limit: int = 3) -> list[tuple[str, float]]:
        """The documents the question names (score ≥ NAMED_SHARE of the best), best first, at most `limit`;
        none when the words fit most documents alike (they name no one document)."""
        ranked = sorted(self.scores(question, stopwords).items(), key=lambda pair: -pair[1])
        named = [(doc_id, score) for doc_id, score in ranked if score >= NAMED_SHARE]
        if len(named) > max(1, len(self._cards) // 2):
            return []
        return named[:limit]
