"""Query → the most relevant chunks: dense (embedding) search and keyword (BM25) search, fused.

Dense search finds paraphrases; keyword search finds the rare names, numbers and terms that a small
embedding model blurs. The two are fused by a convex combination of their min-max normalised scores,
with equal weights: on squad-dev it put the answer into the prompt more often than reciprocal-rank
fusion at the same context size (README, "Retrieval"), as Bruch et al. (2023) found on other benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from rag.embeddings import Embedder
from rag.glossary import Expansion, expand, is_statement
from rag.keyword_index import STOPWORDS, KeywordQuery, query_terms
from rag.routing import DocumentCard, DocumentRouter
from rag.schema import Chunk, RetrievedChunk
from rag.store import Store

SearchMode = Literal["hybrid", "dense", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "keyword")
Fusion = Literal["convex", "rrf"]
FUSIONS: tuple[Fusion, ...] = ("convex", "rrf")

RRF_K = 60  # the constant of Cormack et al. (2009); rank 1 weighs 1/61, rank 10 weighs 1/70
DENSE_WEIGHT = 0.5  # equal weights: not tuned to any one corpus
CANDIDATES = 50  # each ranking's depth before fusion
# A passage of a document the question names (rag/routing.py) gains this much, times the document's score
# (1.0 for the best-named one), on top of its fused score in [0, 1]: enough for it to win over the same
# words in a sibling document, not enough to bury a much better passage elsewhere.
DOC_WEIGHT = 0.3
# A question naming a financial metric (rag/glossary.py) raises, among the STATEMENT_CANDIDATES best passages,
# those of the statements that print its inputs by this much (times the named document's score when the
# question names documents): a statement's table rarely reads like the question, so it ranks low.
STATEMENT_WEIGHT = 0.5
STATEMENT_CANDIDATES = 100
# A question of several sentences is also searched sentence by sentence (up to this many, of at least
# this many words each), each passage keeping its best similarity.
MAX_QUERY_SENTENCES = 4
MIN_SENTENCE_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
# "Not in your documents": a question is declined when no passage is close in meaning (cosine) AND none
# holds half of its content words' weight (rare words weigh more). Calibrated on squad-dev questions that
# the evaluation does not use: the fewest false declines with at least 75 % correct ones (README).
EVIDENCE_SIMILARITY = 0.40
EVIDENCE_COVERAGE = 0.50


def convex_fusion(rankings: Sequence[Sequence[tuple[str, float]]], weights: Sequence[float]) -> list[tuple[str, float]]:
    """Ids ordered by the weighted sum of their scores, each ranking's scores min-max normalised to [0, 1].

    An id missing from a ranking scores 0 there (it was below that ranking's candidates).
    """
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [score for _, score in ranking]
        low, high = min(scores), max(scores)
        for item, score in ranking:
            normalised = (score - low) / (high - low) if high > low else 1.0
            fused[item] = fused.get(item, 0.0) + weight * normalised
    return sorted(fused.items(), key=lambda pair: -pair[1])


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Ids ordered by the sum of 1/(k + rank) over the rankings that contain them; ties keep first-seen order."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


class Retriever:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        mode: SearchMode = "hybrid",
        fusion: Fusion = "convex",
        doc_weight: float = DOC_WEIGHT,
        statement_weight: float = STATEMENT_WEIGHT,
    ) -> None:
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        if fusion not in FUSIONS:
            raise ValueError(f"Unknown fusion {fusion!r}: use one of {', '.join(FUSIONS)}.")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.fusion = fusion
        self.doc_weight = doc_weight
        self.statement_weight = statement_weight
        self._router: tuple[str, DocumentRouter] | None = None
        # The last question's keyword query, for its evidence check (`has_evidence` right after `search`).
        self._last_keywords: tuple[str, KeywordQuery] | None = None

    def search(self, query: str, k: int, doc_ids: Sequence[str] | None = None) -> list[RetrievedChunk]:
        """The k best chunks, best first (what the model is given is chosen by `select_sources`).

        Each result's score is its cosine similarity to the query (what the user sees as relevance),
        whichever search found it; the order is the fused order.
        """
        if not query.strip() or self.store.chunk_count() == 0:
            return []
        expansion = expand(query)
        vectors = self._query_vectors(query, expansion)
        depth = max(k, CANDIDATES)
        dense = self._dense(vectors, depth, doc_ids) if self.mode != "keyword" else []
        keyword: list[tuple[str, float]] = []
        keywords = None
        if self.mode != "dense":  # the terms stemmed and scored once, for every ranking below and the evidence
            terms = query_terms(query)
            terms += [term for term in query_terms(expansion.line_items) if term not in terms]
            keywords = self.store.keyword_search(terms)
            self._last_keywords = (query, keywords)
            keyword = keywords.ranking(depth, doc_ids)
        named = self.named_documents(query) if doc_ids is None and self.doc_weight > 0 else {}
        if named:  # the named documents' own best passages join the candidates, whatever the siblings score
            wanted = list(named)
            if self.mode != "keyword":
                dense = _merged(dense, self._dense(vectors, depth, wanted))
            if keywords is not None:
                keyword = _merged(keyword, keywords.ranking(depth, wanted))
        if self.fusion == "rrf":
            order = reciprocal_rank_fusion([[cid for cid, _ in dense], [cid for cid, _ in keyword]])
        else:
            order = convex_fusion([dense, keyword], [DENSE_WEIGHT, 1.0 - DENSE_WEIGHT])
        if named:
            boosted = [(cid, score + self.doc_weight * named.get(_doc_of(cid), 0.0)) for cid, score in order]
            order = sorted(boosted, key=lambda pair: -pair[1])
        if expansion.statements and self.statement_weight > 0:
            pool = order[: max(depth, STATEMENT_CANDIDATES)]
            fetched = self.store.fetch([cid for cid, _ in pool])
            order = self._prefer_statements(pool, fetched, expansion, named)
            top = [cid for cid, _ in order[:k]]
        else:
            top = [cid for cid, _ in order[:k]]
            # Texts and vectors only for the few chosen; keyword-only hits get their cosine from their vector.
            fetched = self.store.fetch(top)
        similarity = dict(dense)
        hits = []
        for cid in top:
            if cid not in fetched:  # deleted since the search
                continue
            chunk, vector = fetched[cid]
            score = similarity[cid] if cid in similarity else round(max(float(vector @ v) for v in vectors), 4)
            hits.append(RetrievedChunk(chunk, score))
        return hits

    def _query_vectors(self, query: str, expansion: Expansion) -> list[np.ndarray]:
        """The question's embedding, then, for a question of several sentences ("What was the FY2018
        capex? Use the cash flow statement."), each sentence's: a long question's one vector blurs what
        each sentence asks for. A question naming a financial metric is also embedded with the line items
        that compute it."""
        sentences = [s for s in _SENTENCE_END.split(query.strip()) if len(s.split()) >= MIN_SENTENCE_WORDS]
        texts = [query, *sentences[:MAX_QUERY_SENTENCES]] if len(sentences) >= 2 else [query]
        if expansion:
            texts.append(f"{query} {expansion.line_items}")
        return list(self.embedder.embed_documents(texts))

    def _prefer_statements(
        self,
        order: list[tuple[str, float]],
        fetched: dict[str, tuple[Chunk, np.ndarray]],
        expansion: Expansion,
        named: dict[str, float],
    ) -> list[tuple[str, float]]:
        """The candidates re-ordered with the passages of the statements the metric comes from raised: only
        the named documents' statements when the question names documents (another company's income
        statement is not the one asked about), by the document's score."""
        wanted = expansion.statements
        raised = []
        for cid, score in order:
            if cid in fetched and is_statement(fetched[cid][0].header, wanted):
                score += self.statement_weight * (named.get(_doc_of(cid), 0.0) if named else 1.0)
            raised.append((cid, score))
        return sorted(raised, key=lambda pair: -pair[1])

    def _dense(
        self, vectors: Sequence[np.ndarray], depth: int, doc_ids: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """Nearest chunks to any of the vectors, each scored by its best cosine."""
        best: dict[str, float] = {}
        for vector in vectors:
            for cid, score in self.store.nearest(vector, depth, doc_ids):
                best[cid] = max(best.get(cid, -1.0), score)
        return sorted(best.items(), key=lambda pair: -pair[1])[:depth]

    def named_documents(self, query: str) -> dict[str, float]:
        """The documents the question names, with their score relative to the best-named one."""
        generation = self.store.keyword_generation()
        if self._router is None or self._router[0] != generation:
            cards = [DocumentCard(d.doc_id, f"{d.title} {d.name}") for d in self.store.documents()]
            self._router = (generation, DocumentRouter(cards, self.store.document_frequency))
        return dict(self._router[1].named(query, STOPWORDS))

    def has_evidence(self, query: str, hits: Sequence[RetrievedChunk]) -> bool:
        """Whether the passages are relevant enough to answer from, rather than say "not in your documents"."""
        return has_evidence(hits, self._coverages(query, hits))

    def select(
        self, query: str, hits: Sequence[RetrievedChunk], min_score: float, max_chars: int
    ) -> list[RetrievedChunk]:
        """What the model is given: nothing when the evidence is weak (the app then says so), else
        `select_sources`."""
        coverages = self._coverages(query, hits)
        return select_sources(hits, min_score, max_chars, coverages) if has_evidence(hits, coverages) else []

    def _coverages(self, query: str, hits: Sequence[RetrievedChunk]) -> list[float]:
        """Each passage's share of the question's keyword weight (`Store.keyword_coverage`)."""
        last = self._last_keywords
        keywords = last[1] if last is not None and last[0] == query else query_terms(query)
        return self.store.keyword_coverage(keywords, [h.chunk.indexed_text for h in hits])


def _merged(ranking: list[tuple[str, float]], more: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Two rankings of the same query (same scores for the same id) as one, best first."""
    scores = dict(ranking)
    scores.update(more)
    return sorted(scores.items(), key=lambda pair: -pair[1])


def _doc_of(chunk_id: str) -> str:
    return chunk_id.rpartition(":")[0]  # chunk ids are "<doc_id>:<position>"


def has_evidence(hits: Sequence[RetrievedChunk], coverages: Sequence[float]) -> bool:
    """Whether any passage is relevant enough that the question is not declined."""
    return any(
        h.score >= EVIDENCE_SIMILARITY or share >= EVIDENCE_COVERAGE for h, share in zip(hits, coverages, strict=True)
    )


def select_sources(
    hits: Sequence[RetrievedChunk], min_score: float, max_chars: int, coverages: Sequence[float] | None = None
) -> list[RetrievedChunk]:
    """The best passages, in order, skipping any that would exceed `max_chars` (the first is always kept).

    A passage must score at least `min_score` (cosine) or, given `coverages`, hold at least
    EVIDENCE_COVERAGE of the question's keyword weight: a passage that keyword search found for its rare
    words (a code, a name) is evidence even when the embedding model sees little likeness.
    """
    shares = coverages if coverages is not None else [0.0] * len(hits)
    chosen: list[RetrievedChunk] = []
    used = 0
    for hit, share in zip(hits, shares, strict=True):
        if hit.score < min_score and share < EVIDENCE_COVERAGE:
            continue
        if chosen and used + len(hit.chunk.text) > max_chars:
            continue
        chosen.append(hit)
        used += len(hit.chunk.text)
    return chosen
