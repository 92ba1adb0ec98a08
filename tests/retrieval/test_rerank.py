"""Reranking by each passage's sentence closest to the question, with the real encoder and a real store."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.retrieval import Query, RetrievalOptions, Retriever
from rag.retrieval.rerank import MIN_SENTENCE_CHARS, SentenceRerank, sentences
from rag.store import Store

# The answer is one sentence of a long log entry about other things; an equipment note shares the question's
# words (lifeboat, emergency, beacon) and wins on them, but none of its sentences says what colour anything is.
LOG = (
    "Deck log, week 11. The crew painted the forward railings and replaced two mooring lines. "
    "Fresh water tanks were flushed and refilled at the berth. The galley oven thermostat was replaced. "
    "A fire drill was held on Tuesday with all hands present. The radar scanner was cleaned and the chart "
    "table tidied. The emergency beacon on the port lifeboat is painted bright orange. "
    "Lifejackets in the aft locker were counted and found complete."
)
EQUIPMENT = (
    "Lifeboat equipment. Each lifeboat carries flares, a first aid kit, water rations, a sea anchor and an "
    "emergency position-indicating radio beacon. Emergency equipment is tested monthly and listed in the "
    "muster plan."
)
OTHERS = {
    "engine-room.txt": "Engine room checks. The main engine oil was changed and the fuel filters were replaced. "
    "The bilge pumps were tested and the alarms worked.",
    "safety-drill.txt": "Safety drills. A man overboard drill was held in calm weather. The rescue boat was "
    "launched in four minutes and recovered the dummy.",
    "hull-survey.txt": "Hull survey. Divers inspected the hull below the waterline and found light fouling on the "
    "propeller. The anodes were replaced.",
}
QUESTION = "What colour is the emergency beacon on the lifeboat?"
# The stage alone (no document focus), its weight raised so that the best sentence can decide on five passages.
RERANK = RetrievalOptions(focus=False, rerank="sentences", rerank_weight=2.0)


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> Store:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in {"deck-log.txt": LOG, "lifeboat-equipment.txt": EQUIPMENT, **OTHERS}.items():
        (docs / name).write_text(text)
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 1000, 0).ingest_paths([docs])
    return store


def first_source(store: Store, embedder: Embedder, options: RetrievalOptions) -> str:
    result = Retriever(store, embedder, options).retrieve(QUESTION, top_k=2)
    return result.hits[0].chunk.source


def test_the_passage_holding_the_answer_comes_first_once_its_sentences_are_read(
    store: Store, embedder: Embedder
) -> None:
    assert first_source(store, embedder, RetrievalOptions(focus=False)) == "lifeboat-equipment.txt"
    assert first_source(store, embedder, RERANK) == "deck-log.txt"


def test_the_rerank_stage_is_reported_with_what_it_did(store: Store, embedder: Embedder) -> None:
    result = Retriever(store, embedder, RERANK).retrieve(QUESTION, top_k=2)
    rerank = next(s for s in result.stages if s.stage == "rerank")
    assert rerank.ranking[0][0] == result.hits[0].chunk.id
    assert "sentence closest to the question" in rerank.note
    off = Retriever(store, embedder).retrieve(QUESTION, top_k=2)  # off by default
    assert "rerank" not in [s.stage for s in off.stages]


def test_sentence_vectors_are_kept_between_questions(store: Store, embedder: Embedder) -> None:
    class CountingEmbedder(Embedder):
        def __init__(self, inner: Embedder) -> None:
            super().__init__()
            self._model = inner.model  # the loaded model, shared
            self.texts = 0

        def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
            self.texts += len(texts)
            return super().embed_documents(texts)

    counting = CountingEmbedder(embedder)
    retriever = Retriever(store, counting, RERANK)
    retriever.retrieve(QUESTION, top_k=2)
    after_first = counting.texts
    retriever.retrieve(QUESTION, top_k=2)
    assert counting.texts - after_first == 1  # only the question: every sentence was embedded before


def test_sentences_are_pieces_a_person_reads_on_their_own() -> None:
    text = (
        "Revenue rose by four percent in the year. Costs fell.\nTotal assets | 1,200 | 1,100\n"
        "Net income | 300 | 250\np. 4"
    )
    pieces = sentences(text)
    assert pieces == [
        "Revenue rose by four percent in the year.",
        "Total assets | 1,200 | 1,100",
        "Net income | 300 | 250",
    ]
    assert all(len(p) >= MIN_SENTENCE_CHARS for p in pieces)
    assert sentences("Short.") == ["Short."]  # nothing long enough: the passage is its own sentence


def test_a_ranking_of_one_passage_is_left_as_it_is(embedder: Embedder) -> None:
    reranker = SentenceRerank(embedder)
    query = Query(QUESTION, (embedder.embed_query(QUESTION),), None)
    assert reranker.rerank([("a:0", 0.9)], query, {"a:0": LOG}) == [("a:0", 0.9)]
