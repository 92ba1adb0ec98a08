"""`rag check`: the registry, Chroma and the keyword index agree, or what differs is found and repaired.
A real Store in a temporary data directory; the command line as a real subprocess."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.check import check, describe, repair
from rag.embeddings import Embedder
from rag.store import Store
from tests.test_cli import run
from tests.test_store import add, chunks_for


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder) -> Store:
    store = Store(tmp_path / "kb")
    add(store, embedder, "aaaa", "cats.txt", ["Cats purr when content.", "Cats sleep a lot."])
    add(store, embedder, "bbbb", "rockets.txt", ["Rockets burn fuel to reach orbit."])
    return store


def orphan_vectors(store: Store, doc_id: str, n: int) -> None:
    """Vectors under an id the registry does not know (as a crash between Chroma and SQLite once left)."""
    chunks = chunks_for(doc_id, [f"stray {i}" for i in range(n)], "gone.txt")
    store._collection.add(
        ids=[c.id for c in chunks],
        embeddings=np.ones((n, 384), dtype=np.float32),
        documents=[c.text for c in chunks],
        metadatas=[{"doc_id": doc_id, "source": "gone.txt", "page": -1, "position": c.position} for c in chunks],
    )


def test_a_clean_knowledge_base_passes(kb: Store) -> None:
    report = check(kb)
    assert report.ok
    assert (report.documents, report.chunks, report.vectors, report.keyword_rows) == (2, 3, 3, 3)
    assert "agree" in describe(report, "here")[-1]


def test_orphan_vectors_are_found_and_repaired(kb: Store) -> None:
    orphan_vectors(kb, "zzzz", 2)
    report = check(kb)
    assert [(p.kind, p.doc_id) for p in report.problems] == [("orphan vectors", "zzzz")]
    assert "2 vectors of no registered document" in report.problems[0].describe()
    result = repair(kb, report)
    assert result.after.ok and result.reingest == ()
    assert kb.vector_count() == 3 and {d.name for d in kb.documents()} == {"cats.txt", "rockets.txt"}


def test_orphan_keyword_rows_are_found_and_repaired(kb: Store) -> None:
    kb._insert_keyword_rows(chunks_for("yyyy", ["a keyword row of nothing"], "gone.txt"))
    report = check(kb)
    assert [(p.kind, p.doc_id) for p in report.problems] == [("orphan keyword rows", "yyyy")]
    assert repair(kb).after.ok
    assert kb.keyword_row_count() == 3


def test_a_ready_document_missing_chunks_is_found_and_removed_to_be_ingested_again(kb: Store) -> None:
    kb._collection.delete(ids=["aaaa:00001"])
    report = check(kb)
    assert [(p.kind, p.name) for p in report.problems] == [("broken document", "cats.txt")]
    assert "the registry says 2 chunks, Chroma holds 1 vector, the keyword index 2 rows" in report.problems[0].detail
    result = repair(kb, report)
    assert result.reingest == ("cats.txt",) and result.after.ok
    assert [d.name for d in kb.documents()] == ["rockets.txt"]
    assert kb.vector_count() == 1 and kb.keyword_row_count() == 1


def test_cli_exit_codes(kb: Store) -> None:
    data_dir = kb.data_dir
    orphan_vectors(kb, "zzzz", 1)
    kb.close()
    found = run(["check"], data_dir)
    assert found.returncode == 1, found.stderr
    assert "orphan vectors: zzzz: 1 vector of no registered document" in found.stdout
    assert "python -m rag check --repair" in found.stdout
    repaired = run(["check", "--repair"], data_dir)
    assert repaired.returncode == 0, repaired.stderr
    assert "Removed orphan vectors: zzzz" in repaired.stdout and "consistent now" in repaired.stdout
    clean = run(["check"], data_dir)
    assert clean.returncode == 0 and "agree" in clean.stdout
