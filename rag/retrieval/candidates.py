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

from rag.chunking import doc_of
from rag.embeddings import Embedder
from rag.keyword_index import KeywordQuery, query_terms
from rag.profiles import NO_EXPANSION, Expansion
from rag.retrieval.fusion import merged
from rag.store import Store

SearchMode = Literal["hybrid", "dense", "keyword"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "keyword")
CANDIDATES = 50  # each ranking's depth before fusion
# Every stored vector is kept in memory while the knowledge base has at most this many chunks (230 MB of
# 384-dimensional vectors): a search within some documents is then a product of matrices, not a filtered query
# to Chroma (0.1-0.2 s at 100,000 chunks) nor a first read of their vectors (10-20 ms). Beyond, only the
# documents searched on their own lately are kept, up to MAX_KEPT_VECTORS rows, and a search within at most
# MAX_DOCUMENTS_IN_MEMORY documents uses them.
MAX_VECTORS_IN_MEMORY = 150_000
# A search of the whole knowledge base reads the kept vectors up to this many chunks (3 ms); beyond, Chroma's
# approximate index is faster (6-8 ms, where the exact product takes 10-30 ms at 100,000).
EXACT_SEARCH_ROWS = 30_000
MAX_KEPT_VECTORS = 10_000
MAX_DOCUMENTS_IN_MEMORY = 3
# After a change, this many new documents or fewer are read one by one; more, in one pass over the collection.
FEW_NEW_DOCUMENTS = 8
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


class KeptVectors:
    """The stored vectors kept in memory: every ready document's while the knowledge base has at most
    MAX_VECTORS_IN_MEMORY chunks (read in one pass the first time, then only the documents added since), else
    those of the documents searched on their own lately, up to MAX_KEPT_VECTORS rows, least recently used out.
    A change to the documents, in any process, is seen by the keyword generation: the deleted ones' rows go."""

    def __init__(self, store: Store, limit: int = MAX_VECTORS_IN_MEMORY) -> None:
        self.store = store
        self.limit = limit
        self._kept: OrderedDict[str, tuple[list[str], np.ndarray]] = OrderedDict()
        self._whole: tuple[list[str], np.ndarray] | None = None  # every ready document's, stacked; None beyond limit
        self._row_of: dict[str, int] | None = None  # chunk id → its row in `_whole`, built when first asked
        self._generation: str | None = None
        self._lock = threading.Lock()

    @property
    def holds_all(self) -> bool:
        """Whether every ready document's vectors are kept (the knowledge base is within the limit), caught up."""
        with self._lock:
            self._refresh()
            return self._whole is not None

    def catch_up(self) -> None:
        """Read now the vectors of the documents added since last time (`Retriever.warm`)."""
        with self._lock:
            self._refresh()

    def nearest(self, vectors: Sequence[np.ndarray], depth: int) -> list[tuple[str, float]] | None:
        """The `depth` chunks nearest to any of the vectors, each scored by its best cosine, exactly; None when the
        knowledge base is too large for that (search Chroma's index instead)."""
        with self._lock:
            self._refresh()
            whole = self._whole
        if whole is None or len(whole[0]) > EXACT_SEARCH_ROWS:
            return None
        return _best(*whole, vectors, depth)

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """The kept vectors of these chunks: every one while all are kept, else those of the documents searched
        on their own lately (those not kept are left out: read them from the store)."""
        with self._lock:
            self._refresh()
            if self._whole is None:
                kept: dict[str, np.ndarray] = {}
                for doc_id in {doc_of(cid) for cid in chunk_ids} & self._kept.keys():
                    ids, matrix = self._kept[doc_id]
                    kept.update(zip(ids, matrix, strict=True))
                return {cid: kept[cid] for cid in chunk_ids if cid in kept}
            if self._row_of is None:
                self._row_of = {cid: row for row, cid in enumerate(self._whole[0])}
            row_of, matrix = self._row_of, self._whole[1]
        return {cid: matrix[row_of[cid]] for cid in chunk_ids if cid in row_of}

    def of(self, doc_id: str) -> tuple[list[str], np.ndarray]:
        """A ready document's chunk ids and vectors (none when it is not ready)."""
        with self._lock:
            self._refresh()
            generation = self._generation
            if doc_id in self._kept:
                self._kept.move_to_end(doc_id)
                return self._kept[doc_id]
            if self._whole is not None:  # every ready document is kept: this one is not ready
                return [], _NO_VECTORS
        ids, vectors = self.store.vectors_of(doc_id)
        with self._lock:
            if generation == self._generation and ids:
                self._kept[doc_id] = (ids, vectors)
                self._trim()
        return ids, vectors

    def _trim(self) -> None:
        """Least recently used documents out, past MAX_KEPT_VECTORS rows (the last one stays, whatever its size)."""
        rows = sum(len(kept) for kept, _ in self._kept.values())
        while rows > MAX_KEPT_VECTORS and len(self._kept) > 1:
            rows -= len(self._kept.popitem(last=False)[1][0])

    def _refresh(self) -> None:
        """Catch up with the ready documents, if they changed since last time (called holding the lock)."""
        generation = self.store.keyword_generation()
        if generation == self._generation:
            return
        ready = {record.doc_id: record.chunks for record in self.store.documents()}
        for gone in [doc_id for doc_id in self._kept if doc_id not in ready]:
            del self._kept[gone]
        self._generation = generation
        self._whole = None
        self._row_of = None
        if sum(ready.values()) > self.limit:
            self._trim()
            return
        missing = [doc_id for doc_id in ready if doc_id not in self._kept]
        read = self.store.vectors_by_document() if len(missing) > FEW_NEW_DOCUMENTS else {}
        for doc_id in missing:
            ids, vectors = read.get(doc_id, ([], _NO_VECTORS))
            if len(ids) != ready[doc_id]:  # not in the pass, or written during it: read on its own
                ids, vectors = self.store.vectors_of(doc_id)
            if ids:
                self._kept[doc_id] = (ids, vectors)
        # One matrix for all, each document's rows a view of it (no second copy).
        blocks = list(self._kept.items())
        ids = [cid for _, (kept, _) in blocks for cid in kept]
        matrix = np.concatenate([vectors for _, (_, vectors) in blocks]) if blocks else _NO_VECTORS
        start = 0
        for doc_id, (kept, _) in blocks:
            self._kept[doc_id] = (kept, matrix[start : start + len(kept)])
            start += len(kept)
        self._whole = (ids, matrix)


_NO_VECTORS = np.zeros((0, 0), dtype=np.float32)


def _best(ids: Sequence[str], matrix: np.ndarray, vectors: Sequence[np.ndarray], depth: int) -> list[tuple[str, float]]:
    """The `depth` rows of `matrix` nearest to any of the vectors (cosines: all are normalised), best first.

    In torch, not numpy: numpy's BLAS threads keep spinning after a product and, on a 2-core machine, slowed
    the next query embedding (torch's own threads) two- to eight-fold; torch's product shares its thread pool."""
    if not ids or depth <= 0:
        return []
    import torch  # loaded already: the embedding model runs on it

    with torch.inference_mode():
        similarity = (torch.from_numpy(matrix) @ torch.from_numpy(np.stack(vectors).T)).amax(dim=1)
        scores, rows = torch.topk(similarity, min(depth, len(ids)))
    return [(ids[i], round(s, 4)) for i, s in zip(rows.tolist(), scores.tolist(), strict=True)]


class CandidateSearch:
    def __init__(self, store: Store, embedder: Embedder, mode: SearchMode = "hybrid") -> None:
        if mode not in SEARCH_MODES:
            raise ValueError(f"Unknown search mode {mode!r}: use one of {', '.join(SEARCH_MODES)}.")
        self.store = store
        self.embedder = embedder
        self.mode = mode
        self.kept = KeptVectors(store)

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

    def nearest_within(self, vectors: Sequence[np.ndarray], depth: int, doc_id: str) -> list[tuple[str, float]]:
        """One document's `depth` passages nearest to any of the vectors (a question moved towards its best
        passages, `Retriever._within`), from its kept vectors."""
        return self._dense_within(vectors, depth, [doc_id])

    def _dense(
        self, vectors: Sequence[np.ndarray], depth: int, doc_ids: Sequence[str] | None
    ) -> list[tuple[str, float]]:
        """Nearest chunks to any of the vectors, each scored by its best cosine: from the kept vectors when they
        are all kept or the search is within a few documents, else from Chroma's index."""
        if doc_ids is None:
            kept = self.kept.nearest(vectors, depth)
            if kept is not None:
                return kept
        elif 0 < len(doc_ids) <= MAX_DOCUMENTS_IN_MEMORY or self.kept.holds_all:
            return self._dense_within(vectors, depth, doc_ids)
        best: dict[str, float] = {}
        for vector in vectors:
            for cid, score in self.store.nearest(vector, depth, doc_ids):
                best[cid] = max(best.get(cid, -1.0), score)
        return sorted(best.items(), key=lambda pair: -pair[1])[:depth]

    def _dense_within(
        self, vectors: Sequence[np.ndarray], depth: int, doc_ids: Sequence[str]
    ) -> list[tuple[str, float]]:
        """As `_dense` within some documents, from their kept vectors: exact, as Chroma's filtered search."""
        blocks = [self.kept.of(doc_id) for doc_id in dict.fromkeys(doc_ids)]
        blocks = [(ids, matrix) for ids, matrix in blocks if ids]
        if not blocks:
            return []
        if len(blocks) == 1:
            return _best(*blocks[0], vectors, depth)
        ids = [cid for kept, _ in blocks for cid in kept]
        return _best(ids, np.concatenate([matrix for _, matrix in blocks]), vectors, depth)
