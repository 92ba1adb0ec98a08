"""The registry + Chroma on disk: visibility, replace, delete, crash recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.embeddings import Embedder
from rag.schema import Chunk
from rag.store import DocumentRecord, Store, now_iso


def record(doc_id: str, name: str, chunks: int) -> DocumentRecord:
    return DocumentRecord(doc_id, name, "text", doc_id * 4, None, chunks, 100, now_iso())


def chunks_for(doc_id: str, texts: list[str], source: str, page: int | None = None) -> list[Chunk]:
    return [Chunk(f"{doc_id}:{i:05d}", doc_id, t, source, page, i) for i, t in enumerate(texts)]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "kb")


def add(
    store: Store,
    embedder: Embedder,
    doc_id: str,
    name: str,
    texts: list[str],
    commit: bool = True,
    replaces: str | None = None,
    page: int | None = None,
) -> None:
    chunks = chunks_for(doc_id, texts, name, page)
    store.begin_document(record(doc_id, name, len(chunks)))
    store.add_chunks(chunks, embedder.embed_documents(texts))
    if commit:
        store.commit_document(doc_id, replaces=replaces)


def test_committed_documents_are_listed_and_searchable(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "cats.txt", ["Cats purr when content.", "Cats sleep a lot."], page=2)
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    assert {d.name for d in store.documents()} == {"cats.txt", "rockets.txt"}
    assert store.chunk_count() == 3

    hits = store.query(embedder.embed_query("why do cats purr"), k=2)
    assert hits[0].chunk.text == "Cats purr when content."
    assert hits[0].chunk.source == "cats.txt" and hits[0].chunk.page == 2
    assert hits[0].score > hits[1].score
    assert -1.0 <= hits[-1].score <= 1.0

    only_rockets = store.query(embedder.embed_query("cats"), k=5, doc_ids=["bbbb"])
    assert [h.chunk.source for h in only_rockets] == ["rockets.txt"]


def test_uncommitted_chunks_are_invisible(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "half.txt", ["A document still being indexed."], commit=False)
    assert store.documents() == []
    assert store.query(embedder.embed_query("document being indexed"), k=3) == []


def test_replace_swaps_versions_and_delete_removes_every_chunk(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "old0", "notes.txt", ["The meeting is on Monday.", "Bring the slides."])
    add(store, embedder, "new0", "notes.txt", ["The meeting moved to Friday."], replaces="old0")
    assert [(d.doc_id, d.chunks) for d in store.documents()] == [("new0", 1)]
    assert store.vector_count() == 1
    assert store.chunks_of("old0") == []

    store.delete_document("new0")
    assert store.documents() == [] and store.vector_count() == 0
    assert store.query(embedder.embed_query("meeting"), k=3) == []


def test_reopening_recovers_from_a_crash_mid_ingest(tmp_path: Path, embedder: Embedder) -> None:
    first = Store(tmp_path / "kb")
    add(first, embedder, "good", "good.txt", ["Complete document."])
    add(first, embedder, "half", "half.txt", ["Only part", "of this was stored"], commit=False)
    assert first.vector_count() == 3
    first.close()

    reopened = Store(tmp_path / "kb")
    assert [d.name for d in reopened.documents()] == ["good.txt"]
    assert reopened.vector_count() == 1  # the half-indexed chunks are gone


def test_find_by_name_id_prefix_and_hash(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "abcdef123456", "report.pdf", ["text"])
    assert store.find("report.pdf") is not None
    found = store.find("abcd")
    assert found is not None and found.name == "report.pdf"
    assert store.find("abc") is None  # too short to be an id
    assert store.find_by_hash("abcdef123456" * 4) is not None
    assert store.find("missing.pdf") is None


def test_chunks_of_returns_a_document_in_order(store: Store, embedder: Embedder) -> None:
    texts = [f"Paragraph {i}." for i in range(12)]
    add(store, embedder, "doc1", "long.md", texts)
    assert [c.text for c in store.chunks_of("doc1")] == texts


def test_meta_values_persist(tmp_path: Path) -> None:
    Store(tmp_path / "kb").set_meta("seeded", "1")
    assert Store(tmp_path / "kb").get_meta("seeded") == "1"


def test_mismatched_batches_are_refused(store: Store) -> None:
    with pytest.raises(ValueError):
        store.add_chunks(chunks_for("x", ["a", "b"], "x.txt"), np.zeros((1, 384), dtype=np.float32))


# -- the keyword index -----------------------------------------------------------------------------------


def test_keyword_search_finds_rare_terms_in_ready_documents_only(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "parts.txt", ["Replace the XJ-220 gasket yearly.", "Oil the hinges."], page=4)
    add(store, embedder, "bbbb", "draft.txt", ["The XJ-220 gasket draft."], commit=False)
    hits = store.keyword_query(["xj", "220", "gasket"], k=5)
    assert [h.chunk.text for h in hits] == ["Replace the XJ-220 gasket yearly."]
    assert hits[0].chunk.source == "parts.txt" and hits[0].chunk.page == 4 and hits[0].score >= 0
    assert store.keyword_query(["gaskets"], k=5)[0].chunk.doc_id == "aaaa"  # stemmed: gaskets ~ gasket
    assert store.keyword_query(["gasket"], k=5, doc_ids=["bbbb"]) == []
    assert store.keyword_query([], k=5) == []


def test_keyword_terms_are_never_read_as_query_syntax(store: Store, embedder: Embedder) -> None:
    add(store, embedder, "aaaa", "ops.txt", ["NEAR the AND gate, OR not."])
    for terms in (['"'], ["near("], ["and", "or", "not"], ["*"], ["col:umn"]):
        store.keyword_query(terms, k=3)  # no exception for any of these
    assert store.keyword_query(["gate"], k=3)[0].chunk.doc_id == "aaaa"


def test_replace_delete_and_crash_keep_the_keyword_index_in_step(tmp_path: Path, embedder: Embedder) -> None:
    store = Store(tmp_path / "kb")
    add(store, embedder, "old0", "notes.txt", ["The meeting is on Monday."])
    add(store, embedder, "new0", "notes.txt", ["The meeting moved to Friday."], replaces="old0")
    assert [h.chunk.text for h in store.keyword_query(["meeting"], k=5)] == ["The meeting moved to Friday."]
    assert store.keyword_row_count() == 1
    add(store, embedder, "half", "half.txt", ["A meeting half stored"], commit=False)
    assert store.keyword_row_count() == 2
    store.close()

    reopened = Store(tmp_path / "kb")
    assert reopened.keyword_row_count() == 1 and reopened.vector_count() == 1
    reopened.delete_document("new0")
    assert reopened.keyword_row_count() == 0 and reopened.keyword_query(["meeting"], k=5) == []


def test_a_knowledge_base_from_before_the_keyword_index_gets_one(tmp_path: Path, embedder: Embedder) -> None:
    store = Store(tmp_path / "kb")
    add(store, embedder, "aaaa", "old.txt", ["Saffron is the dried stigma of a crocus."])
    store._db.execute("DELETE FROM chunk_text")  # as an older version left it: vectors, no keyword rows
    store.set_meta("keyword_index", "0")
    store.close()
    assert Store(tmp_path / "kb").keyword_query(["saffron"], k=3)[0].chunk.source == "old.txt"
