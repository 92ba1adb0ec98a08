"""The registry of a knowledge base's documents: an SQLite database (`registry.sqlite3`) with a row per document
and its status (`indexing`, `ready`, `deleting`), a `meta` table, and the keyword index's table
(rag/keyword_index.py). Its schema and numbered migrations, its rows as typed records, and what is said when the
file is damaged or lost. rag/store.py reads and writes it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag import keyword_index
from rag.chroma_client import collection_owner, this_place
from rag.errors import DamagedKnowledgeBase
from rag.sqlite import Migration, add_column, connect, execute_all, migrate

REGISTRY_FILE = "registry.sqlite3"

_TABLES = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    pages INTEGER,
    chunks INTEGER NOT NULL DEFAULT 0,
    chunks_stored INTEGER NOT NULL DEFAULT 0,
    size_bytes INTEGER NOT NULL,
    ingested_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('indexing', 'ready', 'deleting'))
);
CREATE INDEX IF NOT EXISTS documents_name ON documents(name);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""


def _create_tables(db: sqlite3.Connection) -> None:
    execute_all(db, _TABLES)
    keyword_index.create_table(db)  # in the registry's database: a document's status governs its keyword rows


# Numbered, applied once each on open and recorded in the database (rag/sqlite.py). Registries made before
# migrations were recorded already hold some of these steps, so every step checks before it changes.
MIGRATIONS = (
    Migration("001_documents_meta_and_keyword_table", _create_tables),
    # From the file's metadata or first page; empty for documents indexed before titles existed.
    Migration("002_document_title", lambda db: add_column(db, "documents", "title", "TEXT NOT NULL DEFAULT ''")),
    # host:pid:token of the process writing the row; NULL: a row no live writer owns (see write_lock.abandoned).
    Migration("003_document_writer", lambda db: add_column(db, "documents", "writer", "TEXT")),
)


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    name: str
    kind: str
    content_hash: str
    pages: int | None
    chunks: int
    size_bytes: int
    ingested_at: str
    status: str = "ready"
    title: str = ""  # from the file's metadata or first page (LoadedDocument.title); "" for older entries


def record_from_row(row: tuple[Any, ...]) -> DocumentRecord:
    """A row of `SELECT * FROM documents` as a record."""
    # `SELECT *`: the columns added later (title, writer) come last; the record leaves out the writer.
    doc_id, name, kind, content_hash, pages, chunks, _stored, size_bytes, ingested_at, status, title = row[:11]
    return DocumentRecord(doc_id, name, kind, content_hash, pages, chunks, size_bytes, ingested_at, status, title)


def new_registry(data_dir: Path, registry_id: str) -> None:
    """An empty registry that owns the collection `registry_id` names (the registry it replaces was lost)."""
    db = connect(data_dir / REGISTRY_FILE)
    try:
        migrate(db, MIGRATIONS)
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('registry_id', ?)", (registry_id,))
    finally:
        db.close()


def refuse_a_new_registry_beside_its_lost_one(
    data_dir: Path, chroma_dir: Path, collection: str, chroma_url: str, headers: dict[str, str] | None
) -> None:
    """A registry about to be made (none, or an empty file) where the vectors (embedded in `chroma_dir`, or on the
    server at `chroma_url`) say this folder had one: it was lost (emptied, deleted), and a new one would disown
    every vector. Say so, before anything is written."""
    if not chroma_url and not (chroma_dir / "chroma.sqlite3").exists():
        return
    owner = collection_owner(data_dir, collection, chroma_url, headers)
    if owner is not None and owner.place == this_place(data_dir):
        raise DamagedKnowledgeBase(
            f"The registry of the knowledge base in {data_dir} ({REGISTRY_FILE}) is missing or empty, but the "
            f"vectors in {chroma_url or chroma_dir} are this folder's: run `python -m rag check --repair` "
            "to rebuild the registry and the keyword index from the chunks Chroma holds (or delete the whole folder "
            "to start empty).",
            "registry missing",
        )


def registry_damaged(data_dir: Path, exc: BaseException) -> str:
    return (
        f"The registry of the knowledge base in {data_dir} ({REGISTRY_FILE}) is damaged ({exc}): run "
        "`python -m rag check --repair`, which keeps a copy of the damaged file beside it and rebuilds the registry "
        "and the keyword index from the chunks Chroma holds."
    )
