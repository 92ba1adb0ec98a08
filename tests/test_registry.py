"""The registry of documents: its schema and numbered migrations, its rows as records, and what is said when it
is damaged or lost beside the vectors that were its folder's."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from rag.errors import DamagedKnowledgeBase
from rag.registry import (
    MIGRATIONS,
    REGISTRY_FILE,
    DocumentRecord,
    new_registry,
    record_from_row,
    refuse_a_new_registry_beside_its_lost_one,
    registry_damaged,
)
from rag.sqlite import applied_migrations, connect, migrate
from rag.store import CHROMA_DIR, COLLECTION, Store

# A knowledge base made by the version before numbered migrations (commit d8538cc): one Markdown file.
FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb-d8538cc"


def columns_of(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_a_new_registry_has_every_table_and_owns_the_collection_named(tmp_path: Path) -> None:
    new_registry(tmp_path, "the-id")
    db = connect(tmp_path / REGISTRY_FILE)
    assert applied_migrations(db) == [m.name for m in MIGRATIONS]
    assert db.execute("SELECT value FROM meta WHERE key = 'registry_id'").fetchone() == ("the-id",)
    assert columns_of(db, "documents")[-2:] == ["title", "writer"]
    assert db.execute("SELECT COUNT(*) FROM documents").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM chunk_text").fetchone() == (0,)  # the keyword index's table
    db.close()


def test_a_registry_from_before_migrations_is_adopted_with_its_rows_kept(tmp_path: Path) -> None:
    shutil.copy(FIXTURE_KB / REGISTRY_FILE, tmp_path / REGISTRY_FILE)
    db = connect(tmp_path / REGISTRY_FILE)
    tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"documents", "meta", "chunk_text"} <= tables and "_migrations" not in tables  # every step, unrecorded
    migrate(db, MIGRATIONS)
    assert applied_migrations(db) == [m.name for m in MIGRATIONS]
    [record] = [record_from_row(row) for row in db.execute("SELECT * FROM documents")]
    assert (record.name, record.chunks, record.status, record.title) == ("harbour.md", 1, "ready", "Harbour notes")
    assert migrate(db, MIGRATIONS) == []  # a second open finds every step done
    db.close()


def test_a_row_comes_back_as_its_record_without_its_writer(tmp_path: Path) -> None:
    new_registry(tmp_path, "the-id")
    db = connect(tmp_path / REGISTRY_FILE)
    db.execute(
        "INSERT INTO documents(doc_id, name, kind, content_hash, pages, chunks, chunks_stored, size_bytes,"
        " ingested_at, status, title, writer) VALUES ('d1', 'a.pdf', 'pdf', 'hash', 3, 7, 7, 900, 'now', 'indexing',"
        " 'A title', 'host:1:token')"
    )
    [row] = db.execute("SELECT * FROM documents").fetchall()
    assert record_from_row(row) == DocumentRecord("d1", "a.pdf", "pdf", "hash", 3, 7, 900, "now", "indexing", "A title")
    db.close()


def test_a_damaged_registry_is_said_with_how_to_repair_it(tmp_path: Path) -> None:
    said = registry_damaged(tmp_path, sqlite3.DatabaseError("file is not a database"))
    assert said == (
        f"The registry of the knowledge base in {tmp_path} (registry.sqlite3) is damaged (file is not a database): "
        "run `python -m rag check --repair`, which keeps a copy of the damaged file beside it and rebuilds the "
        "registry and the keyword index from the chunks Chroma holds."
    )


def test_a_new_registry_is_refused_only_beside_the_vectors_of_the_one_it_lost(tmp_path: Path) -> None:
    data_dir = tmp_path / "kb"
    refuse_a_new_registry_beside_its_lost_one(data_dir, data_dir / CHROMA_DIR, COLLECTION, "", None)  # nothing yet
    store = Store(data_dir)
    assert store.vector_count() == 0  # the collection is made, and claimed for this folder's registry
    store.close()
    (data_dir / REGISTRY_FILE).unlink()
    with pytest.raises(DamagedKnowledgeBase) as refused:
        refuse_a_new_registry_beside_its_lost_one(data_dir, data_dir / CHROMA_DIR, COLLECTION, "", None)
    assert refused.value.kind == "registry missing"
    assert str(refused.value).startswith(
        f"The registry of the knowledge base in {data_dir} (registry.sqlite3) is missing or empty, but the vectors "
        f"in {data_dir / CHROMA_DIR} are this folder's: run `python -m rag check --repair`"
    )
    moved = tmp_path / "moved"  # the same vectors in another folder: not its own, nothing refused
    shutil.copytree(data_dir, moved)
    refuse_a_new_registry_beside_its_lost_one(moved, moved / CHROMA_DIR, COLLECTION, "", None)
