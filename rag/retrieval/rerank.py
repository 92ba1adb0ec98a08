"""Reranking: a passage is also judged by its sentence closest to the question.

A chunk's one vector averages everything it says; the answer to a question is usually one sentence (or
one table row) of it. Late interaction at the sentence level, with the shipped encoder: the best
candidates are split into sentences and rows, each embedded, and a passage's best sentence similarity is
added to its fused score (both min-max normalised over the candidates reranked). Any language the
encoder reads, any domain; no model beyond the one already loaded. Sentence vectors are kept (by chunk
id and text) so a passage met again costs nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict

import numpy as np

from rag.embeddings import Embedder
from rag.retrieval.candidates import Query

RERANK_DEPTH = 20  # the best candidates reranked (the rest keep their order below them)
# The best sentence's weight beside the fused score (both normalised to 0..1): on long contracts 0.25 gained
# most (0.5 nothing, 1.0 lost); README, "Retrieval across domains".
RERANK_WEIGHT = 0.25
MIN_SENTENCE_CHARS = 20  # shorter pieces (a page number, a lone label) are not sentences of their own
MAX_SENTENCES = 40  # per passage: a passage cut into more pieces keeps the first ones
CACHE_PASSAGES = 5_000
_PIECES = re.compile(r"(?<=[.!?;:])\s+|\n+")

Ranking = list[tuple[str, float]]


def sentences(text: str) -> list[str]:
    """A passage's sentences and table rows (pieces of at least MIN_SENTENCE_CHARS), or the passage itself."""
    pieces = [p.strip() for p in _PIECES.split(text) if len(p.strip()) >= MIN_SENTENCE_CHARS]
    return pieces[:MAX_SENTENCES] or [text]


class SentenceRerank:
    """Safe to share between threads; keeps the sentence vectors of the last CACHE_PASSAGES passages."""

    def __init__(self, embedder: Embedder, depth: int = RERANK_DEPTH, weight: float = RERANK_WEIGHT) -> None:
        self.embedder = embedder
        self.depth = depth
        self.weight = weight
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def rerank(self, order: Ranking, query: Query, texts: dict[str, str]) -> Ranking:
        """`order` with its best `depth` candidates (those whose text is given) re-ordered by fused score +
        weight × best sentence similarity; the others follow in their order."""
        top = [(cid, score) for cid, score in order[: self.depth] if cid in texts]
        if len(top) < 2 or not query.vectors:
            return order
        best = self.best_sentence(query, {cid: texts[cid] for cid, _ in top})
        fused = _normalised(dict(top))
        sentence = _normalised(best)
        reranked = sorted(
            ((cid, fused[cid] + self.weight * sentence[cid]) for cid, _ in top), key=lambda pair: -pair[1]
        )
        floor = reranked[-1][1]  # the others follow, their scores capped so that the list reads best first
        return reranked + [(cid, min(score, floor)) for cid, score in order if cid not in best]

    def best_sentence(self, query: Query, texts: dict[str, str]) -> dict[str, float]:
        """Each passage's best cosine similarity between one of its sentences and one of the question's
        vectors."""
        keys = {cid: _key(cid, text) for cid, text in texts.items()}
        with self._lock:
            missing = [cid for cid in texts if keys[cid] not in self._vectors]
        if missing:
            pieces = [sentences(texts[cid]) for cid in missing]
            flat = [p for ps in pieces for p in ps]
            vectors = self.embedder.embed_documents(flat)
            with self._lock:
                at = 0
                for cid, ps in zip(missing, pieces, strict=True):
                    self._vectors[keys[cid]] = vectors[at : at + len(ps)]
                    at += len(ps)
                while len(self._vectors) > CACHE_PASSAGES:
                    self._vectors.popitem(last=False)
        questions = np.stack(query.vectors)
        with self._lock:
            found = {cid: self._vectors[keys[cid]] for cid in texts}
            for key in keys.values():
                self._vectors.move_to_end(key)
        return {cid: float(np.max(vectors @ questions.T)) for cid, vectors in found.items()}


def _key(chunk_id: str, text: str) -> str:
    return chunk_id + ":" + hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _normalised(scores: dict[str, float]) -> dict[str, float]:
    low, high = min(scores.values()), max(scores.values())
    return {cid: (score - low) / (high - low) if high > low else 1.0 for cid, score in scores.items()}
