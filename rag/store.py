"""The knowledge base: a Chroma collection of chunk vectors, a SQLite registry of documents, and a
keyword index (SQLite FTS5, BM25) in the same database as the registry.

A document is visible only once its registry row is `ready`. Rows still `indexing` (a crash mid-ingest)
or `deleting` (a crash mid-delete or mid-replace) are cleaned up when the store is next opened, so a
document is either fully indexed or absent.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.bm25 import GENERATION_KEY, KeywordIndex
from rag.chroma_client import open_collection
from rag.errors import StoreError
from rag.schema import Chunk, RetrievedChunk

COLLECTION = "chunks"
CHROMA_MAX_BATCH = 5000  # Chroma rejects adds above ~5,461 records
NO_PAGE = -1  # Chroma metadata cannot hold None

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- The keyword (BM25) index. It lives in the registry's database, so a document's registry status also
-- governs its keyword rows: both are visible only once the document is `ready`, and purged together.
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_text USING fts5(
    text, chunk_id UNINDEXED, doc_id UNINDEXED, source UNINDEXED, page UNINDEXED, position UNINDEXED,
    tokenize = 'porter unicode61 remove_diacritics 2'
);
"""
# 2: rows hold the chunk header with the text (document title, file, heading, page); rebuilt on open.
KEYWORD_INDEX_VERSION = "2"


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


class Store:
    def __init__(
        self,
        data_dir: Path,
        chroma_url: str = "",
        chroma_headers: dict[str, str] | None = None,
        collection: str = COLLECTION,
    ) -> None:
        """Chroma embedded in `data_dir`, or the Chroma server at `chroma_url`: see rag/chroma_client.py."""
        self.data_dir = data_dir
        self.chroma_url = chroma_url
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(data_dir / "registry.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(_SCHEMA)
            _add_title_column(self._db)
            # The id the collection records as its owner (a second data directory on the same collection is refused).
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('registry_id', ?)", (uuid.uuid4().hex,))
            registry_id = str(self._db.execute("SELECT value FROM meta WHERE key = 'registry_id'").fetchone()[0])
            self._collection = open_collection(data_dir, registry_id, collection, chroma_url, chroma_headers)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(
                f"Cannot open the knowledge base in {data_dir} ({exc}): check that the folder is writable, "
                "or set RAG_DATA_DIR to another folder."
            ) from exc
        self._lock = threading.RLock()
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, '0')", (GENERATION_KEY,))
        self._keywords = KeywordIndex(self._db)
        self.recover()
        self._backfill_keyword_index()

    # -- registry reads -------------------------------------------------------------------------

    def documents(self) -> list[DocumentRecord]:
        rows = self._db.execute(
            "SELECT * FROM documents WHERE status = 'ready' ORDER BY ingested_at DESC, name"
        ).fetchall()
        return [self._record(row) for row in rows]

    def find(self, name_or_id: str) -> DocumentRecord | None:
        """By exact name, then by id or a unique id prefix (as printed by `docs`)."""
        row = self._db.execute("SELECT * FROM documents WHERE status = 'ready' AND name = ?", (name_or_id,)).fetchone()
        if row is None and len(name_or_id) >= 4:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE status = 'ready' AND doc_id LIKE ?", (name_or_id + "%",)
            ).fetchall()
            row = rows[0] if len(rows) == 1 else None
        return self._record(row) if row else None

    def find_by_hash(self, content_hash: str) -> DocumentRecord | None:
        row = self._db.execute(
            "SELECT * FROM documents WHERE status = 'ready' AND content_hash = ?", (content_hash,)
        ).fetchone()
        return self._record(row) if row else None

    def content_hashes(self) -> frozenset[str]:
        """The content hashes of the ready documents."""
        return frozenset(r[0] for r in self._db.execute("SELECT content_hash FROM documents WHERE status = 'ready'"))

    def chunk_count(self) -> int:
        row = self._db.execute("SELECT COALESCE(SUM(chunks), 0) FROM documents WHERE status = 'ready'").fetchone()
        return int(row[0])

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- consistency (rag/check.py) ---------------------------------------------------------------

    def all_documents(self) -> list[DocumentRecord]:
        """Every registry row, whatever its status (ready, indexing, deleting)."""
        return [self._record(row) for row in self._db.execute("SELECT * FROM documents ORDER BY name, doc_id")]

    def vector_counts(self) -> dict[str, int]:
        """doc_id → vectors stored in Chroma under it, read page by page (ids and metadata only)."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = self._collection.get(include=["metadatas"], limit=CHROMA_MAX_BATCH, offset=offset)
            for meta in page["metadatas"] or []:
                doc_id = str((meta or {}).get("doc_id", ""))
                counts[doc_id] = counts.get(doc_id, 0) + 1
            if len(page["ids"]) < CHROMA_MAX_BATCH:
                return counts
            offset += len(page["ids"])

    def keyword_counts(self) -> dict[str, int]:
        """doc_id → rows of the keyword index under it."""
        return {str(d): int(n) for d, n in self._db.execute("SELECT doc_id, COUNT(*) FROM chunk_text GROUP BY doc_id")}

    def abandoned_documents(self) -> set[str]:
        """The rows not `ready` that no live writer owns (left by a crash): safe to purge."""
        return {str(r[0]) for r in self._db.execute("SELECT doc_id FROM documents WHERE status != 'ready'")}

    def remove_traces(self, doc_id: str) -> None:
        """Every vector, keyword row and registry row under this id (`rag check --repair`)."""
        with self._lock:
            self._purge(doc_id)

    # -- writes: begin → add chunks (any number of batches) → commit ------------------------------

    def begin_document(self, record: DocumentRecord) -> None:
        with self._lock:
            self._db.execute("DELETE FROM documents WHERE doc_id = ? AND status != 'ready'", (record.doc_id,))
            self._db.execute(
                "INSERT INTO documents(doc_id, name, kind, content_hash, pages, chunks, size_bytes, ingested_at,"
                " status, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'indexing', ?)",
                (
                    record.doc_id,
                    record.name,
                    record.kind,
                    record.content_hash,
                    record.pages,
                    record.chunks,
                    record.size_bytes,
                    record.ingested_at,
                    record.title,
                ),
            )

    def add_chunks(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        with self._lock:
            for start in range(0, len(chunks), CHROMA_MAX_BATCH):
                batch = chunks[start : start + CHROMA_MAX_BATCH]
                self._collection.add(
                    ids=[c.id for c in batch],
                    embeddings=embeddings[start : start + CHROMA_MAX_BATCH],
                    documents=[c.text for c in batch],
                    metadatas=[_metadata(c) for c in batch],
                )
            by_doc: dict[str, int] = {}
            for c in chunks:
                by_doc[c.doc_id] = by_doc.get(c.doc_id, 0) + 1
            with self._transaction():
                self._insert_keyword_rows(chunks)
                for doc_id, n in by_doc.items():
                    self._db.execute(
                        "UPDATE documents SET chunks_stored = chunks_stored + ? WHERE doc_id = ?", (n, doc_id)
                    )

    def commit_document(self, doc_id: str, replaces: str | None = None) -> None:
        """Make the document visible, and retire the version it replaces, in one transaction."""
        with self._lock:
            with self._transaction():
                self._db.execute(
                    "UPDATE documents SET status = 'ready', chunks = chunks_stored WHERE doc_id = ?", (doc_id,)
                )
                self._bump_keyword_generation()
                if replaces:
                    self._db.execute("UPDATE documents SET status = 'deleting' WHERE doc_id = ?", (replaces,))
            if replaces:
                self._purge(replaces)

    def abort_document(self, doc_id: str) -> None:
        with self._lock:
            self._purge(doc_id)

    def delete_document(self, doc_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE documents SET status = 'deleting' WHERE doc_id = ?", (doc_id,))
            self._purge(doc_id)

    def recover(self) -> list[str]:
        """Remove every trace of documents left half-indexed or half-deleted by a crash."""
        with self._lock:
            stale = [r[0] for r in self._db.execute("SELECT doc_id FROM documents WHERE status != 'ready'")]
            for doc_id in stale:
                self._purge(doc_id)
            return stale

    # -- reads of chunks ----------------------------------------------------------------------------

    def query(self, embedding: np.ndarray, k: int, doc_ids: Sequence[str] | None = None) -> list[RetrievedChunk]:
        """The k nearest chunks of ready documents, best first, scored by cosine similarity."""
        nearest = self.nearest(embedding, k, doc_ids)
        fetched = self.fetch([cid for cid, _ in nearest])
        return [RetrievedChunk(fetched[cid][0], score) for cid, score in nearest if cid in fetched]

    def nearest(self, embedding: np.ndarray, k: int, doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the k nearest chunks of ready documents, best first.

        Only ids and distances: fetching 50 candidates' texts would cost more than the search itself.
        """
        if doc_ids is not None:
            ready = {r.doc_id for r in self.documents()}
            wanted = [d for d in doc_ids if d in ready]
            if not wanted:
                return []
            where: dict[str, Any] | None = {"doc_id": wanted[0]} if len(wanted) == 1 else {"doc_id": {"$in": wanted}}
            hidden: set[str] = set()
            extra = 0
        else:
            # Documents being indexed or deleted are filtered out afterwards: a `$nin` filter makes Chroma
            # scan every vector (0.4 s at 100,000 chunks), and such documents are rare and short-lived.
            where = None
            rows = self._db.execute("SELECT doc_id, chunks_stored FROM documents WHERE status != 'ready'").fetchall()
            hidden = {doc_id for doc_id, _ in rows}
            extra = sum(n for _, n in rows)
        result = self._collection.query(
            query_embeddings=np.asarray([embedding], dtype=np.float32),
            n_results=k + extra,
            where=where,
            include=["distances"],
        )
        ids = result["ids"][0]
        dists = (result["distances"] or [[]])[0]
        pairs = [(cid, round(1.0 - float(dist), 4)) for cid, dist in zip(ids, dists, strict=True)]
        if hidden:  # chunk ids are "<doc_id>:<position>"
            pairs = [(cid, score) for cid, score in pairs if cid.rpartition(":")[0] not in hidden]
        return pairs[:k]

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """The given chunks with their stored vectors (ids no longer stored are left out)."""
        if not chunk_ids:
            return {}
        result = self._collection.get(ids=list(chunk_ids), include=["documents", "metadatas", "embeddings"])
        docs = result["documents"] or []
        metas = result["metadatas"] or []
        vectors = result["embeddings"]
        if vectors is None:
            return {}
        return {
            cid: (_chunk(cid, text, meta), np.asarray(vector, dtype=np.float32))
            for cid, text, meta, vector in zip(result["ids"], docs, metas, vectors, strict=True)
        }

    def keyword_query(self, terms: Sequence[str], k: int, doc_ids: Sequence[str] | None = None) -> list[RetrievedChunk]:
        """The k chunks of ready documents that best match any of the terms (BM25), best first.

        The score is BM25 (higher is better), as FTS5 computes it; it is comparable within one query only.
        """
        ranked = self.keyword_ranking(terms, k, doc_ids)
        fetched = self.fetch([cid for cid, _ in ranked])
        return [RetrievedChunk(fetched[cid][0], score) for cid, score in ranked if cid in fetched]

    def keyword_ranking(
        self, terms: Sequence[str], k: int, doc_ids: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the k best keyword matches, best first, without reading their texts."""
        if not terms or k <= 0 or (doc_ids is not None and not doc_ids):
            return []
        with self._lock:
            return self._keywords.search(terms, k, doc_ids)

    def keyword_coverage(self, terms: Sequence[str], texts: Sequence[str]) -> list[float]:
        """How much of the query each text covers, terms weighted by their rarity here (see KeywordIndex)."""
        with self._lock:
            return self._keywords.coverage(terms, texts)

    def keyword_row_count(self) -> int:
        """Rows in the keyword index, including any not yet committed (for tests and diagnostics)."""
        return int(self._db.execute("SELECT COUNT(*) FROM chunk_text").fetchone()[0])

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        result = self._collection.get(where={"doc_id": doc_id}, include=["documents", "metadatas"])
        chunks = [
            _chunk(cid, text, meta)
            for cid, text, meta in zip(result["ids"], result["documents"] or [], result["metadatas"] or [], strict=True)
        ]
        return sorted(chunks, key=lambda c: c.position)

    def vector_count(self) -> int:
        """Vectors in Chroma, including any not yet committed (for tests and diagnostics)."""
        return int(self._collection.count())

    # -- internals ------------------------------------------------------------------------------------

    def _purge(self, doc_id: str) -> None:
        # Vectors and keyword rows first, the registry row last: if a crash interrupts, the row is still
        # there (not ready) and the next open finishes the job.
        self._collection.delete(where={"doc_id": doc_id})
        with self._transaction():
            self._db.execute("DELETE FROM chunk_text WHERE doc_id = ?", (doc_id,))
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            self._bump_keyword_generation()

    def _bump_keyword_generation(self) -> None:
        """Tell every process's in-memory keyword index that the set of ready documents changed."""
        self._db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ?", (GENERATION_KEY,))

    def _insert_keyword_rows(self, chunks: Sequence[Chunk]) -> None:
        self._db.executemany(
            "INSERT INTO chunk_text(text, chunk_id, doc_id, source, page, position) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (c.indexed_text, c.id, c.doc_id, c.source, NO_PAGE if c.page is None else c.page, c.position)
                for c in chunks
            ],
        )

    def _backfill_keyword_index(self) -> None:
        """Knowledge bases made before the keyword index existed get one built from their stored chunks."""
        if self.get_meta("keyword_index") == KEYWORD_INDEX_VERSION:
            return
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM chunk_text")
            for record in self.documents():
                self._insert_keyword_rows(self.chunks_of(record.doc_id))
            self.set_meta("keyword_index", KEYWORD_INDEX_VERSION)
            self._bump_keyword_generation()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    @staticmethod
    def _record(row: tuple[Any, ...]) -> DocumentRecord:
        doc_id, name, kind, content_hash, pages, chunks, _stored, size_bytes, ingested_at, status, title = row
        return DocumentRecord(doc_id, name, kind, content_hash, pages, chunks, size_bytes, ingested_at, status, title)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _add_title_column(db: sqlite3.Connection) -> None:
    """Registries made before documents had titles get the column (empty for their documents)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
    if "title" not in columns:
        db.execute("ALTER TABLE documents ADD COLUMN title TEXT NOT NULL DEFAULT ''")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _metadata(chunk: Chunk) -> dict[str, str | int]:
    return {
        "doc_id": chunk.doc_id,
        "source": chunk.source,
        "page": NO_PAGE if chunk.page is None else chunk.page,
        "position": chunk.position,
        "header": chunk.header,
    }


def _chunk(chunk_id: str, text: str | None, meta: Any) -> Chunk:
    page = int(meta["page"])
    return Chunk(
        id=chunk_id,
        doc_id=str(meta["doc_id"]),
        text=text or "",
        source=str(meta["source"]),
        page=None if page == NO_PAGE else page,
        position=int(meta["position"]),
        header=str(meta.get("header", "")),
    )
