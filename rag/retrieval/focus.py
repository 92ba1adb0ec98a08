"""The second stage: the documents a question is about.

A knowledge base often holds several nearly identical documents (one company, four quarters; twenty short
reports of one kind): the same words occur in all of them, and passage search alone picks a sibling as often
as the right one. This stage finds the documents the question points to — by the names it uses
(rag/routing.py: title and file name) — and retrieval then draws candidates from those documents too and
raises their passages.
"""

from __future__ import annotations

import threading

from rag.keyword_index import STOPWORDS
from rag.routing import DocumentCard, DocumentRouter
from rag.store import Store

# A passage of a document the question names gains this much, times the document's score (1.0 for the
# best-named one), on top of its fused score in [0, 1]: enough for it to win over the same words in a
# sibling document, not enough to bury a much better passage elsewhere.
DOC_WEIGHT = 0.3


class DocumentFocus:
    """Which documents a question names, against the knowledge base as it is now (cards rebuilt when the
    set of documents changes, in any process)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._router: tuple[str, DocumentRouter] | None = None
        self._lock = threading.Lock()

    def named(self, question: str) -> dict[str, float]:
        """The documents the question names, with their score relative to the best-named one."""
        return dict(self._current_router().named(question, STOPWORDS))

    def _current_router(self) -> DocumentRouter:
        generation = self.store.keyword_generation()
        with self._lock:
            if self._router is None or self._router[0] != generation:
                cards = [DocumentCard(d.doc_id, f"{d.title} {d.name}") for d in self.store.documents()]
                self._router = (generation, DocumentRouter(cards, self.store.document_frequency))
            return self._router[1]
