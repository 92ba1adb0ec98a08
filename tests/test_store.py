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


def add(store: Store, embedder: Embedder, doc_id: str, name: str, texts: list[str], commit: bool = True,
        replaces: str | None = None, page: int | None = None) -> None:
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
