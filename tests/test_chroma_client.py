"""VectorCollection with Chroma embedded: a client that missed another's write reopens, and a read Chroma fails
is retried on a fresh client, then given up with a message. Real Chroma in a temporary data directory; the
counter of writes the store keeps in its registry is a shared value here."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rag import chroma_client
from rag.chroma_client import VectorCollection
from rag.errors import StoreError


class Counter:
    """The counter of writes every client of one folder shares (the store's `vectors_version`)."""

    def __init__(self) -> None:
        self.value = 0

    def version(self) -> str:
        return str(self.value)

    def bump(self) -> str:
        self.value += 1
        return str(self.value)


def vectors(data_dir: Path, counter: Counter) -> VectorCollection:
    return VectorCollection(data_dir, "registry-1", "chunks", version=counter.version, bump_version=counter.bump)


def add_one(collection: VectorCollection, chunk_id: str) -> None:
    collection.write(lambda c: c.add(ids=[chunk_id], embeddings=[[1.0, 0.0, 0.0]], metadatas=[{"doc_id": "aaaa"}]))


def nearest(collection: VectorCollection) -> list[str]:
    result = collection.read(
        lambda c: c.query(query_embeddings=[[1.0, 0.0, 0.0]], n_results=1, where={"doc_id": "aaaa"}, include=[])
    )
    return list(result["ids"][0])


def test_a_client_reopens_after_another_one_wrote(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    counter = Counter()
    mine, theirs = vectors(tmp_path, counter), vectors(tmp_path, counter)
    before = mine.collection
    add_one(theirs, "aaaa:00000")
    assert counter.value == 1  # announced before the write
    caplog.set_level(logging.INFO, logger="rag.chroma_client")
    assert nearest(mine) == ["aaaa:00000"]
    assert mine.collection is not before
    assert any("changed by another client: reopening Chroma" in r.getMessage() for r in caplog.records)
    reopened = mine.collection
    assert nearest(mine) == ["aaaa:00000"] and mine.collection is reopened  # nothing new written: kept


def test_a_chroma_read_that_fails_is_retried_on_a_fresh_client(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chromadb.errors

    collection = vectors(tmp_path, Counter())
    add_one(collection, "aaaa:00000")
    stale = collection.collection

    def failing_query(**kwargs: object) -> None:
        raise chromadb.errors.InternalError("Error executing plan: Internal error: Error finding id")

    monkeypatch.setattr(stale, "query", failing_query)
    caplog.set_level(logging.WARNING, logger="rag.chroma_client")
    assert nearest(collection) == ["aaaa:00000"]
    assert collection.collection is not stale
    assert any("Chroma read failed" in r.getMessage() and "retrying" in r.getMessage() for r in caplog.records)


def test_a_read_that_keeps_failing_is_given_up_with_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import chromadb.errors

    collection = vectors(tmp_path, Counter())
    monkeypatch.setattr(chroma_client, "READ_RETRY_WAIT", 0.0)
    calls = []

    def failing(c: object) -> None:
        calls.append(c)
        raise chromadb.errors.InternalError("Error finding id")

    with pytest.raises(StoreError, match=r"could not be read .*6 times on a freshly opened client.*rag check"):
        collection.read(failing)
    assert len(calls) == chroma_client.READ_RETRIES + 1 and len({id(c) for c in calls}) == len(calls)


def test_a_bad_request_is_not_retried(tmp_path: Path) -> None:
    collection = vectors(tmp_path, Counter())
    calls = []

    def bad(c: object) -> None:
        calls.append(c)
        raise ValueError("not Chroma's own failure")

    with pytest.raises(ValueError, match="not Chroma's own failure"):
        collection.read(bad)
    assert len(calls) == 1


def test_searches_explore_enough_neighbours_also_in_collections_made_before(tmp_path: Path) -> None:
    import chromadb

    old = chromadb.PersistentClient(path=str(tmp_path / "old" / "chroma"))
    old.get_or_create_collection("chunks", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    made = old.get_collection("chunks").configuration.get("hnsw") or {}
    assert made.get("ef_search", 0) < chroma_client.SEARCH_EF  # Chroma's default, 100
    for data_dir in (tmp_path / "new", tmp_path / "old"):
        collection = vectors(data_dir, Counter())
        add_one(collection, "aaaa:00000")
        hnsw = collection.read(lambda c: c.configuration["hnsw"])
        assert hnsw["ef_search"] == chroma_client.SEARCH_EF and hnsw["space"] == "cosine"
