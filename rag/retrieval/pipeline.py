"""Retrieval composed: candidates → document focus → profile preference → rerank → select.

One call, `Retriever.retrieve`, returns what a chat turn injects (and what each stage did, for the
Documents page's "Test retrieval" and `rag eval --stages`); nothing is kept between calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import TYPE_CHECKING

import numpy as np

from rag.chunking import chunk_id, doc_of
from rag.embeddings import Embedder
from rag.keyword_index import query_terms
from rag.profiles import Profile, ProfileName, choose_profile
from rag.retrieval.candidates import CANDIDATES, Candidates, CandidateSearch, Query, SearchMode
from rag.retrieval.focus import DOC_WEIGHT, FOCUS_SHARPNESS, DocumentFocus, Focus
from rag.retrieval.fusion import FUSIONS, Fusion, fuse, fuse_within
from rag.retrieval.rerank import RERANK_WEIGHT, SentenceRerank
from rag.retrieval.select import select
from rag.schema import RetrievedChunk
from rag.store import Store

if TYPE_CHECKING:
    from rag.config import Rerank

# A question the profile expands (a financial metric, a contract's clause) raises, among the PREFER_CANDIDATES
# best passages, those of the kind it prefers (the statements that print the metric's inputs, the clause's
# wording) by this much, times the focus score of their document when the question is about some documents
# (found by name, edition or content): such a passage rarely reads like the question.
PREFER_WEIGHT = 0.5
PREFER_CANDIDATES = 100
# The documents in focus with at least this weight (1.0: the one the question is most about), the first
# WITHIN_DOCUMENTS of them, have their passages ranked again within themselves (`Retriever._within`).
WITHIN_LEAD = 0.5
WITHIN_DOCUMENTS = 3
# How much a word's rarity within a document counts, beside its rarity in the knowledge base: the more passages
# the document has, the more its own statistics say (half at WITHIN_HALF passages).
WITHIN_HALF = 50
# Within the document in focus, the question is then moved towards its FEEDBACK_PASSAGES best passages (their
# mean vector, weighed FEEDBACK_WEIGHT against the question's) and the document searched by meaning again:
# pseudo-relevance feedback (Rocchio), which finds the passages worded like the ones that answer rather than
# like the question. That ranking shares meaning's weight with the question's own in the fusion within.
# Chosen on the suite's development halves (README, "Retrieval across domains").
FEEDBACK_WEIGHT = 0.5
FEEDBACK_PASSAGES = 3
# A profile's question about what a document states at its opening (an agreement's date) is given the first
# passages of the document in focus.
OPENING_PASSAGES = 2


def within_share(passages: int) -> float:
    return passages / (passages + WITHIN_HALF) if passages > 0 else 0.0


STAGES = ("candidates", "focus", "within", "opening", "prefer", "rerank", "select")

Ranking = list[tuple[str, float]]


@dataclass(frozen=True)
class RetrievalOptions:
    """How retrieval runs (from the settings, or chosen by `rag eval` to compare)."""

    mode: SearchMode = "hybrid"
    fusion: Fusion = "convex"
    profile: ProfileName = "auto"
    focus: bool = True  # the documents a question is about are raised (and searched on their own)
    by_content: bool = True  # … also when it names none: the document whose passages stand out
    by_time: bool = True  # "the latest report": the edition, from the documents' own numbers and dates
    doc_weight: float = DOC_WEIGHT
    focus_sharpness: float = FOCUS_SHARPNESS
    prefer_weight: float = PREFER_WEIGHT
    within: bool = True  # the passages of the documents in focus ranked again by the words rare within them
    feedback: bool = True  # … and by meaning, the question moved towards their best passages
    sentences: bool = True  # a question of several sentences is also searched sentence by sentence
    opening: bool = True  # the profile's questions about a document's opening are given it
    rerank: Rerank = "off"  # "sentences": the best candidates also judged by their sentence closest to the question
    rerank_weight: float = RERANK_WEIGHT

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {self.fusion!r}: use one of {', '.join(FUSIONS)}.")


# The parts of retrieval `rag eval --without` can turn off, to measure what each adds, and the option each sets.
OPTIONAL_STAGES: dict[str, str] = {
    "focus": "focus",  # every document focus: names, time and content
    "content-focus": "by_content",
    "time-focus": "by_time",
    "within-document": "within",
    "feedback": "feedback",
    "sentences": "sentences",
    "opening": "opening",
    "rerank": "rerank",
}


def without(options: RetrievalOptions, stages: Sequence[str]) -> RetrievalOptions:
    """`options` with the named optional stages off (names from OPTIONAL_STAGES)."""
    unknown = [s for s in stages if s not in OPTIONAL_STAGES]
    if unknown:
        raise ValueError(f"Unknown stage {unknown[0]!r}: use one of {', '.join(OPTIONAL_STAGES)}.")
    off = {OPTIONAL_STAGES[s] for s in stages}
    return replace(
        options,
        focus=options.focus and "focus" not in off,
        by_content=options.by_content and "by_content" not in off,
        by_time=options.by_time and "by_time" not in off,
        within=options.within and "within" not in off,
        feedback=options.feedback and "feedback" not in off,
        sentences=options.sentences and "sentences" not in off,
        opening=options.opening and "opening" not in off,
        rerank="off" if "rerank" in off else options.rerank,
    )


@dataclass(frozen=True)
class StageReport:
    """What one stage did: the ranking after it (best first, chunk id and the stage's score) and a note."""

    stage: str
    seconds: float
    ranking: tuple[tuple[str, float], ...]
    note: str = ""


@dataclass(frozen=True)
class StageSummary:
    """A stage as a person reads it: what it did, its time, and which documents its best passages are from."""

    stage: str
    milliseconds: float
    note: str
    documents: str  # "a.pdf ×3, b.pdf ×1": the documents of its best passages, best first


@dataclass(frozen=True)
class RetrievalResult:
    query: str  # what was searched for
    hits: list[RetrievedChunk]  # the ranked passages, best first, each scored by its cosine similarity
    selected: list[RetrievedChunk]  # what the model is given: past the evidence gate, the threshold and the budget
    coverages: list[float]  # per hit: its share of the question's keyword weight
    stages: list[StageReport] = field(default_factory=list)
    seconds: float = 0.0
    knowledge_base_empty: bool = False
    searched: Query | None = None  # the question as the stages searched it (vectors, keyword terms)

    def summaries(self, names: dict[str, str], top: int = 12) -> list[StageSummary]:
        """Each stage in words (`names`: doc id → file name), its `top` passages grouped by document."""
        rows = []
        for report in self.stages:
            counts: dict[str, int] = {}
            for cid, _ in report.ranking[:top]:
                doc = doc_of(cid)
                name = names.get(doc, doc)
                counts[name] = counts.get(name, 0) + 1
            documents = ", ".join(f"{name} ×{n}" for name, n in counts.items())
            rows.append(StageSummary(report.stage, round(1000 * report.seconds, 1), report.note, documents))
        return rows

    @property
    def declined(self) -> bool:
        """Retrieval found passages, but none is evidence enough to answer from."""
        return bool(self.hits) and not self.selected


class Retriever:
    """Cheap to build; safe to share between threads (nothing is kept between calls but caches of the
    knowledge base's state)."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        options: RetrievalOptions | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.options = options or RetrievalOptions()
        self.candidates = CandidateSearch(store, embedder, self.options.mode)
        self.focus = DocumentFocus(store, today)  # today: what "last year's report" counts from
        self.reranker = SentenceRerank(embedder, weight=self.options.rerank_weight)
        self._profile: tuple[str, Profile] | None = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Build now what the first question would otherwise wait for (the keyword index in memory, the kept
        vectors, the document cards, the profile): seconds for a large knowledge base."""
        self.store.keyword_search([])
        self.candidates.kept.catch_up()
        self.focus.names()
        self.profile()

    def retrieve(
        self,
        text: str,
        *,
        top_k: int,
        min_score: float = -1.0,
        max_chars: int = 100_000,
        doc_ids: Sequence[str] | None = None,
        depth: int | None = None,
    ) -> RetrievalResult:
        """The passages for a question: `hits` ranked (the best `depth`, at least `top_k`), and `selected`, the
        ones a chat turn gives the model (from the best `top_k`: evidence gate, `min_score`, `max_chars`).
        `doc_ids` limits the search to those documents (None: every document)."""
        started = time.perf_counter()
        if not text.strip() or self.store.chunk_count() == 0:
            empty = self.store.chunk_count() == 0
            return RetrievalResult(text, [], [], [], seconds=time.perf_counter() - started, knowledge_base_empty=empty)
        stages: list[StageReport] = []
        wanted = max(top_k, depth or 0)
        clock = time.perf_counter()

        def report(stage: str, ranking: Ranking, note: str = "") -> None:
            nonlocal clock
            now = time.perf_counter()
            stages.append(StageReport(stage, now - clock, tuple(ranking[:wanted]), note))
            clock = now

        profile = self.profile()
        query = self.candidates.query(text, profile.expand(text), self.options.sentences)
        breadth = max(wanted, CANDIDATES)
        candidates = self.candidates.search(query, breadth, doc_ids)
        order = fuse(candidates.dense, candidates.keyword, self.options.fusion)
        report("candidates", order, f"{len(candidates.dense)} by meaning, {len(candidates.keyword)} by words")

        focus = Focus()
        if doc_ids is None and self.options.focus and self.options.doc_weight > 0:
            focus = self.focus.focus(
                text,
                order,
                by_time=self.options.by_time,
                by_content=self.options.by_content,
                sharpness=self.options.focus_sharpness,
            )
            if focus.searched:  # their own best passages join the candidates, whatever the siblings score
                candidates.extend(self.candidates.search(query, breadth, list(focus.searched)))
                order = fuse(candidates.dense, candidates.keyword, self.options.fusion)
            if focus.weights:
                weight = self.options.doc_weight
                order = _raised(order, {cid: weight * focus.weights.get(doc_of(cid), 0.0) for cid, _ in order})
        report("focus", order, focus.note)
        if focus.weights and self.options.within and self.options.mode != "dense":
            order, inside = self._within(order, query, focus, breadth)
            if inside:
                names = self.focus.names()
                report("within", order, "ranked within " + ", ".join(names.get(d, d) for d in inside))
        if focus.weights and self.options.opening and profile.opening(text):
            order, opening = _opening_first(order, focus)
            report(
                "opening", order, f"{profile.name} profile: the opening of {self.focus.names().get(opening, opening)}"
            )
        in_focus = {d: min(1.0, w) for d, w in focus.weights.items()}

        if query.expansion.prefer and self.options.prefer_weight > 0:
            order = self._prefer(order, query, profile, in_focus, breadth)
            report("prefer", order, f"{profile.name} profile: {', '.join(sorted(query.expansion.prefer))} preferred")

        if self.options.rerank == "sentences" and self.options.mode != "keyword" and self.options.rerank_weight > 0:
            reranked = order[: self.reranker.depth]
            texts = {cid: chunk.text for cid, chunk in self.store.passages([cid for cid, _ in reranked]).items()}
            order = self.reranker.rerank(order, query, texts)
            report("rerank", order, f"the best {len(texts)} judged by their sentence closest to the question")

        hits = self.passages(order[:wanted], query, candidates)
        coverages = self.coverages(query, hits)
        selected = select(hits[:top_k], coverages[:top_k], min_score, max_chars)
        report("select", [(h.chunk.id, h.score) for h in selected], "" if selected else "no evidence: declined")
        return RetrievalResult(text, hits, selected, coverages, stages, time.perf_counter() - started, searched=query)

    def _within(self, order: Ranking, query: Query, focus: Focus, breadth: int) -> tuple[Ranking, list[str]]:
        """The passages of the documents the question is most about, ranked again within each: by meaning, and
        by words weighed partly by their rarity among that document's own passages (the words that say what
        the document is about, which found it, count for little there: what the question asks of it does).
        A document keeps its places in the ranking (so the documents keep their share of the context); which
        of its passages fill them is decided within it. Returns the new order and the documents ranked within."""
        if query.keywords is None:
            return order, []
        leads = sorted((d for d, w in focus.weights.items() if w >= WITHIN_LEAD), key=lambda d: -focus.weights[d])
        scores = dict(order)
        done = []
        for doc in leads[:WITHIN_DOCUMENTS]:
            mine = [cid for cid in scores if doc_of(cid) == doc]
            rare_inside = query.keywords.ranking_within(doc, breadth)
            if not mine or not rare_inside:
                continue
            places = sorted((scores.pop(cid) for cid in mine), reverse=True)
            inside = self.candidates.search(query, breadth, [doc])
            share = within_share(query.keywords.passages_in(doc))
            fused = fuse_within(inside.dense, inside.keyword, rare_inside, self.options.fusion, share)
            if self.options.feedback and (moved := self._feedback(doc, query, fused, breadth)):
                fused = fuse_within(inside.dense, inside.keyword, rare_inside, self.options.fusion, share, moved)
            ranked = [cid for cid, _ in fused]
            found = set(ranked)
            ranked += [cid for cid in mine if cid not in found]
            # Passages beyond the document's places follow its last one, in their order.
            places += [places[-1] - 1e-6 * (i + 1) for i in range(len(ranked) - len(places))]
            scores.update(zip(ranked, places, strict=False))
            done.append(doc)
        return sorted(scores.items(), key=lambda pair: -pair[1]), done

    def _feedback(self, doc: str, query: Query, fused: Ranking, breadth: int) -> Ranking:
        """The document's passages by meaning to the question moved towards its best ones so far (their mean
        vector, FEEDBACK_WEIGHT of it); [] when there is nothing to move towards."""
        best = [cid for cid, _ in fused[:FEEDBACK_PASSAGES]]
        if len(best) < FEEDBACK_PASSAGES or not query.vectors:
            return []
        vectors = self.candidates.kept.vectors(best)  # the document's are kept: it was just searched on its own
        if len(vectors) < len(best):
            return []
        moved = query.vectors[0] + FEEDBACK_WEIGHT * np.mean([vectors[cid] for cid in best], axis=0)
        return self.candidates.nearest_within([moved / np.linalg.norm(moved)], breadth, doc)

    def passages(self, ranking: Ranking, query: Query, candidates: Candidates | None = None) -> list[RetrievedChunk]:
        """The ranked chunks read back, each scored by its cosine similarity to the question (a keyword-only
        candidate gets it from its stored vector); chunks deleted since the search are left out."""
        chunks = self.store.passages([cid for cid, _ in ranking])
        similarity = candidates.similarity if candidates is not None else {}
        unscored = [cid for cid, _ in ranking if cid in chunks and cid not in similarity] if query.vectors else []
        vectors = self.candidates.kept.vectors(unscored)
        if missing := [cid for cid in unscored if cid not in vectors]:
            vectors.update({cid: vector for cid, (_, vector) in self.store.fetch(missing).items()})
        similarity.update({cid: query.similarity(vector) for cid, vector in vectors.items()})
        hits = []
        for cid, _ in ranking:
            if cid in chunks and (cid in similarity or not query.vectors):  # no vectors: keyword search alone
                hits.append(RetrievedChunk(chunks[cid], similarity.get(cid, 0.0)))
        return hits

    def coverages(self, query: Query, hits: Sequence[RetrievedChunk]) -> list[float]:
        """Each passage's share of the question's keyword weight (`Store.keyword_coverage`): from the postings the
        question was scored with when it was, else from the passages' texts."""
        if query.keywords is not None and (shares := query.keywords.coverage([h.chunk.id for h in hits])) is not None:
            return shares
        terms = query.keywords if query.keywords is not None else query_terms(query.text)
        return self.store.keyword_coverage(terms, [h.chunk.indexed_text for h in hits])

    def profile(self) -> Profile:
        """The profile the options name; with "auto", the one for the documents held now."""
        generation = self.store.keyword_generation()
        with self._lock:
            if self._profile is None or self._profile[0] != generation:
                self._profile = (generation, choose_profile(self.options.profile, self.store.document_frequency))
            return self._profile[1]

    def _prefer(
        self, order: Ranking, query: Query, profile: Profile, in_focus: dict[str, float], breadth: int
    ) -> Ranking:
        """The candidates re-ordered with the passages the profile prefers raised: only those of the documents
        in focus when there are some (another company's income statement, another agreement's renewal clause
        is not the one asked about), by the document's focus score; all alike when none stands out."""
        pool = order[: max(breadth, PREFER_CANDIDATES)]
        chunks = self.store.passages([cid for cid, _ in pool])
        weight = self.options.prefer_weight
        boosts = {
            cid: weight * (in_focus.get(doc_of(cid), 0.0) if in_focus else 1.0)
            for cid, _ in pool
            if cid in chunks and profile.preferred(chunks[cid], query.expansion)
        }
        return _raised(pool, boosts)


def _opening_first(order: Ranking, focus: Focus) -> tuple[Ranking, str]:
    """The first OPENING_PASSAGES passages of the document the question is most about, right after the best
    passage (scored between it and the next); returns the order and that document."""
    leader = max(focus.weights, key=lambda d: focus.weights[d])
    opening = [chunk_id(leader, position) for position in range(OPENING_PASSAGES)]
    rest = [(cid, score) for cid, score in order if cid not in opening]
    if not rest:
        return [(cid, 1.0) for cid in opening], leader
    best = rest[0][1]
    step = (best - (rest[1][1] if len(rest) > 1 else best - 1.0)) / (len(opening) + 1)
    placed = [(cid, best - step * (i + 1)) for i, cid in enumerate(opening)]
    return [rest[0], *placed, *rest[1:]], leader


def _raised(order: Ranking, boosts: dict[str, float]) -> Ranking:
    return sorted(((cid, score + boosts.get(cid, 0.0)) for cid, score in order), key=lambda pair: -pair[1])
