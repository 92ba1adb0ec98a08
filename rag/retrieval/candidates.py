"""The first stage: candidates for a question, by meaning (dense, Chroma) and by words (BM25), best first.

A question is embedded once (and, when it has several sentences, each sentence too: a long question's one
vector blurs what each sentence asks for); its keyword terms are stemmed and scored once. Both rankings can
then be asked again within some documents (the ones the question is about) without embedding anything again.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from rag.embeddings import Embedder
from rag.keyword_index import KeywordQuery, query_terms
from rag.profiles import NO_EXPANSION, Expansion
from rag.retrieval.fusion import merged
from rag.store import Store

SearchMode = Literal["hybrid", "dense", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "keyword")
CANDIDATES = 50  # each ranking's depth before fusion
# A search within at most this many documents uses their vectors kept in memory (DocumentVectors), up to
# MAX_KEPT_VECTORS rows in all (15 MB of 384-dimensional vectors).
MAX_DOCUMENTS_IN_MEMORY = 3
MAX_KEPT_VECTORS = 10_000
# A question of several sentences is also searched sentence by sentence (up to this many, of at least
# this many words each), each passage keeping its best similarity.
MAX_QUERY_SENTENCES = 4
MIN_SENTENCE_WORDS = 3
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True, eq=False)
class Query:
    """A question as every stage searches it: its text, its vectors, its keyword terms scored once."""

    text: str
    vectors: tuple[np.ndarray, ...]
    keywords: KeywordQuery | None  # None when keyword search is off (dense mode)
    expansion: Expansion = NO_EXPANSION

    def similarity(self, vector: np.ndarray) -> float:
        """A passage's cosine similarity to the question: the best over its vectors."""
        return round(max(float(vector @ v) for v in self.vectors), 4) if self.vectors else 0.0


@dataclass
class Candidates:
    """Dense and keyword rankings of one question: (chunk id, score) best first."""

    dense: list[tuple[str, float]] = field(default_factory=list)  # cosine similarity
    keyword: list[tuple[str, float]] = field(default_factory=list)  # BM25

    def extend(self, more: Candidates) -> None:
        self.dense = merged(self.dense, more.dense)
        self.keyword = merged(self.keyword, more.keyword)

    @property
    def similarity(self) -> dict[str, float]:
        return dict(self.dense)


class DocumentVectors:
    """The stored vectors of the documents searched on their own lately (the ones questions are about), kept
    up to MAX_KEPT_VECTORS rows, least recently used first out, and dropped when the documents change: a
    search within one document is then a product of matrices, not a filtered search of the whole collection
    (which Chroma runs in 0.1-0.2 s at 100,000 chunks)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._kept: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._generation = ""
        self._lock = threading.Lock()

    def of(self, doc_id: str) -> tuple[list[str], np.ndarray]:
        generation = self.store.keyword_generation()
        with self._lock:
            if generation != self._generation:
                self._kept.clear()
                self._generation = generation
            if doc_id in self._kept:
                self._kept.move_to_end(doc_id)
                return self._kept[doc_id]
        ids, vectors = self.store.vectors_of(doc_id)
        with self._lock:
            if generation == self._generation:
                self._kept[doc_id] = (ids, vectors)
                while sum(len(kept) for kept, _ in self._kept.values()) > MAX_KEPT_VECTORS and len(self._kept) > 1:
                    self._kept.popitem(last=False)
        return ids, vectors


class CandidateSearch:
    def __init__(self, store: Store, embedder: Embedder, mode: SearchMode = "hybrid") -> None:
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.documents = DocumentVectors(store)

    def query(self, text: str, expansion: Expansion = NO_EXPANSION, sentences: bool = True) -> Query:
        """The question embedded (with its sentences, and with its expansion's words) and its terms scored."""
        texts = [text]
        if sentences:
            parts = [s for s in _SENTENCE_END.split(text.strip()) if len(s.split()) >= MIN_SENTENCE_WORDS]
            if len(parts) >= 2:
                texts += parts[:MAX_QUERY_SENTENCES]
        if expansion.terms:
            texts.append(f"{text} {expansion.terms}")
        vectors = tuple(self.embedder.embed_documents(texts)) if self.mode != "keyword" else ()
        keywords = None
        if self.mode != "dense":
            terms = query_terms(text)
            terms += [term for term in query_terms(expansion.terms) if term not in terms]
            keywords = self.store.keyword_search(terms)
        return Query(text, vectors, keywords, expansion)

    def search(self, query: Query, depth: int = CANDIDATES, doc_ids: Sequence[str] | None = None) -> Candidates:
        """The `depth` best of each ranking, within `doc_ids` when given (None: every document)."""
        dense = self._dense(query.vectors, depth, doc_ids) if query.vectors else []
        keyword = query.keywords.ranking(depth, doc_ids) if query.keywords is not None else []
        return Candidates(dense, keyword)

    def _dense(
        self, vectors: Sequence[np.ndarray], depth: int, doc_ids: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """Nearest chunks to any of the vectors, each scored by its best cosine."""
        if doc_ids is not None and 0 < len(doc_ids) <= MAX_DOCUMENTS_IN_MEMORY:
            return self._dense_within(vectors, depth, doc_ids)
        best: dict[str, float] = {}
        for vector in vectors:
            for cid, score in self.store.nearest(vector, depth, doc_ids):
                best[cid] = max(best.get(cid, -1.0), score)
        return sorted(best.items(), key=lambda pair: -pair[1])[:depth]

    def _dense_within(
        self, vectors: Sequence[np.ndarray], depth: int, doc_ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        """As `_dense` within a few documents, from their kept vectors: exact, as Chroma's filtered search."""
        ranking: list[tuple[str, float]] = []
        for doc_id in doc_ids:
            ids, matrix = self.documents.of(doc_id)
            if not ids:
                continue
            similarity = (matrix @ np.stack(vectors).T).max(axis=1)
            ranking += [(cid, round(float(score), 4)) for cid, score in zip(ids, similarity, strict=True)]
        return sorted(ranking, key=lambda pair: -pair[1])[:depth]
