"""The second stage: the documents a question is about.

A knowledge base often holds several documents alike (one company's four quarterly filings; twenty short
reports of one kind; forty privacy policies): the same words occur in all of them, and passage search
alone fills the context with the right document's siblings. This stage finds the documents the question
points to, and retrieval then raises their passages (and searches within them). In order:

1. **by name** (rag/routing.py): the question uses words of a document's title or file name that few
   documents' texts hold ("Acme's FY2023 report");
2. **by its place in time** (rag/retrieval/editions.py): "the latest report", "the earliest accident",
   "last year's plan" — among the documents named, or else among those the question's passages come from;
   and **by the period it names** ("Q2 2023", "FY2022"): among those same documents, when each says on its
   cover which period it reports on, the ones of that period;
3. **by content**: otherwise, the document whose passages match the question best stands out from the
   others; each document counts as much as its best passage, relative to the best document's, raised to a
   steep power, so that a document well ahead gets nearly all the weight and near ties share it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from rag.chunking import chunk_id, doc_of
from rag.keyword_index import STOPWORDS
from rag.retrieval.editions import Edition, Period, asked_period, edition_of, period_matches, resolve, time_reference
from rag.routing import DocumentCard, DocumentRouter
from rag.store import Store

# A passage of a document the question is about gains this much, times the document's weight (1.0 for the
# one it is most about), on top of its fused score in [0, 1]: enough for it to win over the same words in a
# sibling document, not enough to bury a much better passage elsewhere.
DOC_WEIGHT = 0.3
# The edition a question asks for ("the latest report") is what it is about: its passages come first.
EDITION_WEIGHT = 1.0
# By content: a document's weight is (its best passage's score / the best document's) ** FOCUS_SHARPNESS.
FOCUS_SHARPNESS = 4.0
# "The latest …", among documents of no series, picks among those whose best passage scores at least this
# share of the best one's (a period named, likewise).
EDITION_RELEVANCE = 0.6
# The passages that say which period a document reports on: its cover (a filing's first page).
COVER_PASSAGES = 3


@dataclass(frozen=True)
class Focus:
    """Which documents the question is about, with their weight (1.0 for the one it is most about; more for
    the edition it asks for, whose passages then come first)."""

    weights: dict[str, float] = field(default_factory=dict)
    how: str = ""  # "named", "edition" or "content"; "" when the question is about no document in particular
    searched: tuple[str, ...] = ()  # documents searched on their own too (their best passages join the candidates)
    note: str = ""


class DocumentFocus:
    """The documents a question points to, against the knowledge base as it is now (cards and editions are
    rebuilt when the set of documents changes, in any process)."""

    def __init__(self, store: Store, today: Callable[[], date] = date.today) -> None:
        self.store = store
        self.today = today  # "last year's report" counts from it
        self._state: tuple[str, DocumentRouter, list[Edition], dict[str, str]] | None = None
        self._lock = threading.Lock()

    def named(self, question: str) -> dict[str, float]:
        """The documents the question names, with their score relative to the best-named one."""
        return dict(self._current()[1].named(question, STOPWORDS))

    def focus(
        self,
        question: str,
        ranking: Sequence[tuple[str, float]],
        *,
        by_name: bool = True,
        by_time: bool = True,
        by_content: bool = True,
        sharpness: float = FOCUS_SHARPNESS,
    ) -> Focus:
        """The focus of a question, given its fused candidates (`ranking`: chunk id and score, best first)."""
        _, _, editions, names = self._current()
        named = self.named(question) if by_name else {}
        reference = time_reference(question) if by_time else None
        if reference is not None:
            among = named or _relevant(ranking)
            chosen = resolve(reference, editions, among, EDITION_RELEVANCE, self.today())
            if chosen is not None:
                said = f"{reference}'s" if reference.startswith("last ") else f"the {reference}"
                note = f"{said} of the documents alike: {names.get(chosen, chosen)}"
                return Focus({chosen: EDITION_WEIGHT / DOC_WEIGHT}, "edition", (chosen,), note)
        if (asked := asked_period(question) if by_time else None) is not None:
            pool = named or {d: r for d, r in _relevant(ranking).items() if r >= EDITION_RELEVANCE}
            if (of_period := _of_period(asked, pool, editions, names)) is not None:
                return of_period
        if named:
            note = "named: " + ", ".join(f"{names.get(d, d)} ({w:.2f})" for d, w in named.items())
            return Focus(named, "named", tuple(named), note)
        if by_content and ranking:
            best = _best_per_document(ranking)
            top = max(best.values())
            if top > 0:
                weights = {d: (s / top) ** sharpness for d, s in best.items() if s > 0}
                weights = {d: round(w, 4) for d, w in weights.items() if w >= 0.01}
                leader = max(weights, key=lambda d: weights[d])
                others = sorted((w for d, w in weights.items() if d != leader), reverse=True)
                note = f"by content: {names.get(leader, leader)}" + (
                    f" (the next at {others[0]:.2f})" if others else " (no other document matched)"
                )
                return Focus(weights, "content", (), note)
        return Focus(note="about no document in particular")

    def names(self) -> dict[str, str]:
        """doc id → file name, of the documents held now."""
        return self._current()[3]

    def editions(self) -> list[Edition]:
        return self._current()[2]

    def _current(self) -> tuple[str, DocumentRouter, list[Edition], dict[str, str]]:
        generation = self.store.keyword_generation()
        with self._lock:
            if self._state is None or self._state[0] != generation:
                documents = self.store.documents()
                cards = [DocumentCard(d.doc_id, f"{d.title} {d.name}") for d in documents]
                router = DocumentRouter(cards, self.store.document_frequency)
                openings = self.store.fetch([chunk_id(d.doc_id, i) for d in documents for i in range(COVER_PASSAGES)])
                covers: dict[str, dict[int, str]] = {}  # doc id → position → text, of its first passages
                for chunk, _ in openings.values():
                    covers.setdefault(chunk.doc_id, {})[chunk.position] = chunk.text
                editions = []
                for d in documents:
                    cover = covers.get(d.doc_id, {})
                    text = "\n".join(cover[p] for p in sorted(cover))
                    editions.append(edition_of(d.doc_id, d.title, d.name, cover.get(0, ""), text))
                self._state = (generation, router, editions, {d.doc_id: d.name for d in documents})
            return self._state


def _of_period(
    asked: Period, pool: Mapping[str, float], editions: Sequence[Edition], names: Mapping[str, str]
) -> Focus | None:
    """Among the documents a question is about (`pool`: doc id → weight), those of the period it names, when
    every one of them says its period on its cover (one that does not may be the one asked about) and some, not
    all, are of that period."""
    periods = {e.doc_id: e.period for e in editions}
    covered = {d: p for d in pool if (p := periods.get(d)) is not None}
    if len(pool) < 2 or len(covered) < len(pool):
        return None
    of_period = {d: w for d, w in pool.items() if period_matches(covered[d], asked)}
    if not of_period or len(of_period) == len(pool):
        return None
    top = max(of_period.values())
    weights = {d: round(w / top, 4) for d, w in of_period.items()}
    year, quarter = asked
    said = f"Q{quarter} {year}" if quarter else f"fiscal {year}"
    return Focus(weights, "period", tuple(weights), f"of {said}: " + ", ".join(names.get(d, d) for d in weights))


def _best_per_document(ranking: Sequence[tuple[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for cid, score in ranking:
        doc = doc_of(cid)
        best[doc] = max(best.get(doc, float("-inf")), score)
    return best


def _relevant(ranking: Sequence[tuple[str, float]]) -> dict[str, float]:
    """The documents of the candidates, each with its best passage's score relative to the best one's."""
    best = _best_per_document(ranking)
    if not best:
        return {}
    top = max(best.values())
    if top <= 0:
        return {}
    return {d: s / top for d, s in best.items()}
