"""Query → the most relevant chunks, with scores. (Hybrid keyword + dense fusion comes here later.)"""

from __future__ import annotations

from collections.abc import Sequence

from rag.embeddings import Embedder
from rag.schema import RetrievedChunk
from rag.store import Store


class Retriever:
    def __init__(self, store: Store, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    def search(
        self, query: str, k: int, doc_ids: Sequence[str] | None = None, min_score: float = -1.0
    ) -> list[RetrievedChunk]:
        """The k best chunks scoring at least `min_score`, best first."""
        if not query.strip() or self.store.chunk_count() == 0:
            return []
        hits = self.store.query(self.embedder.embed_query(query), k, doc_ids)
        return [h for h in hits if h.score >= min_score]
