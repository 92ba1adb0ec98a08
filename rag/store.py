"""The knowledge base: a Chroma collection of chunk vectors, a SQLite registry of documents, and a
keyword index (rag/keyword_index.py: SQLite FTS5, BM25) in the same database as the registry. The store owns
the registry (rag/registry.py: its schema, migrations and records), its transactions and the write lock; the
keyword index writes its rows inside them.

A document is visible only once its registry row is `ready`. Rows still `indexing` (a crash mid-ingest)
or `deleting` (a crash mid-delete or mid-replace) are cleaned up when the store is next opened, so a
document is either fully indexed or absent.

Several processes (the app, the CLI) and threads may use one data directory. Writers take turns, each write span
under the data directory's write lock (rag/write_lock.py); readers never take it. Each row being indexed or
deleted records its writer, so recovery removes only what a writer that is gone left behind, and a writer whose
row was removed meanwhile fails instead of storing chunks of nothing. A write that fails for lack of space says so
(rag/disk_space.py).

The vectors are reached only through rag/chroma_client.py's VectorCollection, which owns Chroma: where it is
(embedded or a server), which registry owns the collection, and how several processes share an embedded one
(one client at a time, a fresh client after another's write, failed reads retried). Its counter of writes
(`vectors_version`) is kept here, in the registry's `meta` table, where every process sees it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from rag import keyword_index
from rag.chroma_client import CHROMA_MAX_BATCH, VectorCollection
from rag.chunking import doc_of
from rag.disk_space import check_room, disk_full, full_disk_said, no_room
from rag.errors import DamagedKnowledgeBase, DiskFull, StoreError
from rag.keyword_index import NO_PAGE, KeywordIndex, KeywordQuery
from rag.registry import (
    MIGRATIONS,
    REGISTRY_FILE,
    DocumentRecord,
    record_from_row,
    refuse_a_new_registry_beside_its_lost_one,
    registry_damaged,
)
from rag.schema import Chunk, RetrievedChunk
from rag.sqlite import connect, is_corrupt, is_disk_full, is_truncated, migrate, write_transaction
from rag.write_lock import WriteLock, abandoned

logger = logging.getLogger(__name__)

COLLECTION = "chunks"
CHROMA_DIR = "chroma"
VECTORS_VERSION_KEY = "vectors_version"  # in `meta`: bumped before every write to Chroma, by any client


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
        self._chroma = (collection, chroma_headers)
        self._vectors_opened: VectorCollection | None = None
        self._vectors_guard = threading.Lock()
        # Set when the disk is full: the registry is then only read, and every write says why it cannot be done.
        self.read_only: DiskFull | None = None
        registry = data_dir / REGISTRY_FILE
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            if not (registry.exists() and registry.stat().st_size > 0):
                refuse_a_new_registry_beside_its_lost_one(
                    data_dir, data_dir / CHROMA_DIR, collection, chroma_url, chroma_headers
                )
            self._db = connect(registry)
            self._open_registry()
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc) or is_truncated(registry):
                raise DamagedKnowledgeBase(registry_damaged(data_dir, exc), "registry damaged") from exc
            if not (is_disk_full(exc) or no_room(data_dir)):
                raise StoreError(
                    f"Cannot open the knowledge base in {data_dir} ({exc}): check that the folder is writable, "
                    "or set RAG_DATA_DIR to another folder."
                ) from exc
            # SQLite could not make its shared-memory file: read the registry as it is on disk, write nothing.
            logger.info("The disk holding %s is full: the knowledge base is opened read-only", data_dir)
            self.read_only = disk_full(data_dir)
            self._db = connect(registry, read_only=True)
            self._registry_id = str(self._db.execute("SELECT value FROM meta WHERE key = 'registry_id'").fetchone()[0])
            self.keyword_table_was_missing = not keyword_index.table_exists(self._db)
        except OSError as exc:
            raise StoreError(
                f"Cannot open the knowledge base in {data_dir} ({exc}): check that the folder is writable, "
                "or set RAG_DATA_DIR to another folder."
            ) from exc
        self._lock = threading.RLock()
        self._write_lock = WriteLock(data_dir)
        self._keywords = KeywordIndex(self._db)
        if chroma_url:  # a server that is down, or not ours, is said at once
            self._open_vectors()
        self.recover()
        self._backfill_keyword_index()

    def _open_registry(self) -> None:
        migrate(self._db, MIGRATIONS)
        # The id the collection records as its owner (a second data directory on the same collection is refused).
        self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('registry_id', ?)", (uuid.uuid4().hex,))
        self._registry_id = str(self._db.execute("SELECT value FROM meta WHERE key = 'registry_id'").fetchone()[0])
        self.keyword_table_was_missing = not keyword_index.table_exists(self._db)
        if self.keyword_table_was_missing:  # dropped: made again, empty, so that nothing fails for want of it
            logger.info("The keyword index of %s was missing: made again, empty (`rag check`)", self.data_dir)
            keyword_index.create_table(self._db)

    # -- the vectors, opened on first use (listing documents needs only the registry) ------------------

    @property
    def _vectors(self) -> VectorCollection:
        return self._vectors_opened or self._open_vectors()

    def _open_vectors(self) -> VectorCollection:
        with self._vectors_guard:
            if self._vectors_opened is None:
                collection, headers = self._chroma
                self._vectors_opened = VectorCollection(
                    self.data_dir,
                    self._registry_id,
                    collection,
                    self.chroma_url,
                    headers,
                    version=self._vectors_version,
                    bump_version=self._bump_vectors_version,
                )
            return self._vectors_opened

    @property
    def registry_id(self) -> str:
        return self._registry_id

    # -- registry reads -------------------------------------------------------------------------

    def documents(self) -> list[DocumentRecord]:
        rows = self._db.execute(
            "SELECT * FROM documents WHERE status = 'ready' ORDER BY ingested_at DESC, name"
        ).fetchall()
        return [record_from_row(row) for row in rows]

    def find(self, name_or_id: str) -> DocumentRecord | None:
        """By exact name, then by id or a unique id prefix (as printed by `docs`)."""
        row = self._db.execute("SELECT * FROM documents WHERE status = 'ready' AND name = ?", (name_or_id,)).fetchone()
        if row is None and len(name_or_id) >= 4:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE status = 'ready' AND doc_id LIKE ?", (name_or_id + "%",)
            ).fetchall()
            row = rows[0] if len(rows) == 1 else None
        return record_from_row(row) if row else None

    def find_by_hash(self, content_hash: str) -> DocumentRecord | None:
        """The ready document of this content; a document registered again by `rag check --repair` is known by its
        hash's first 16 characters (its id), all that its chunks say of it."""
        row = self._db.execute(
            "SELECT * FROM documents WHERE status = 'ready' AND content_hash IN (?, ?)",
            (content_hash, content_hash[:16]),
        ).fetchone()
        return record_from_row(row) if row else None

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

    def meta(self) -> dict[str, str]:
        """Every key of the registry's `meta` table (what a copy of the knowledge base carries over)."""
        return {str(k): str(v) for k, v in self._db.execute("SELECT key, value FROM meta")}

    # -- consistency (rag/check.py) ---------------------------------------------------------------

    def all_documents(self) -> list[DocumentRecord]:
        """Every registry row, whatever its status (ready, indexing, deleting)."""
        return [record_from_row(row) for row in self._db.execute("SELECT * FROM documents ORDER BY name, doc_id")]

    def vector_counts(self) -> dict[str, int]:
        """doc_id → vectors stored in Chroma under it, read page by page (ids and metadata only)."""
        counts: dict[str, int] = {}
        offset = 0
        while True:
            page = self._vectors.read(partial(_page, offset=offset))
            for meta in page["metadatas"] or []:
                doc_id = str((meta or {}).get("doc_id", ""))
                counts[doc_id] = counts.get(doc_id, 0) + 1
            if len(page["ids"]) < CHROMA_MAX_BATCH:
                return counts
            offset += len(page["ids"])

    def vector_positions(self) -> dict[str, list[int]]:
        """doc_id → the positions of the chunks stored in Chroma under it (ids and metadata only, page by page)."""
        positions: dict[str, list[int]] = {}
        offset = 0
        while True:
            page = self._vectors.read(partial(_page, offset=offset))
            for meta in page["metadatas"] or []:
                meta = meta or {}
                positions.setdefault(str(meta.get("doc_id", "")), []).append(int(meta.get("position", -1)))
            if len(page["ids"]) < CHROMA_MAX_BATCH:
                return positions
            offset += len(page["ids"])

    def keyword_counts(self) -> dict[str, int]:
        """doc_id → rows of the keyword index under it."""
        return self._keywords.counts()

    def registry_problem(self) -> str | None:
        """What SQLite finds wrong in the registry's file (None: nothing). Reads every page: seconds for a large one."""
        try:
            rows = [str(row[0]) for row in self._db.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return None if rows == ["ok"] else "; ".join(rows[:3])

    # -- repairs (rag/check.py), each under the write lock ---------------------------------------------

    def chunk_source(self, doc_id: str) -> str:
        """The file name Chroma's metadata gives a document's chunks ("" when it holds none)."""
        result = self._vectors.read(lambda c: c.get(where={"doc_id": doc_id}, limit=1, include=["metadatas"]))
        metas = result["metadatas"] or []
        return str((metas[0] or {}).get("source", "")) if metas else ""

    def keyword_chunks(self, doc_id: str) -> list[Chunk]:
        """A document's chunks as its keyword rows hold them (to embed them again when its vectors are lost)."""
        return self._keywords.chunks_of(doc_id)

    def restore_vectors(self, doc_id: str, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        """A ready document's vectors again, in place of what is left of them (its registry row stays as it is)."""
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            self._vectors.write(lambda c: c.delete(where={"doc_id": doc_id}))
            for start in range(0, len(chunks), CHROMA_MAX_BATCH):
                self._vectors.write(
                    _adding(chunks[start : start + CHROMA_MAX_BATCH], embeddings[start : start + CHROMA_MAX_BATCH])
                )

    def restore_keyword_rows(self, doc_id: str, chunks: Sequence[Chunk]) -> None:
        """A document's keyword rows again, from its chunks as Chroma holds them."""
        with self.writing(), self._lock, full_disk_said(self.data_dir), self._transaction():
            self._keywords.delete(doc_id)
            self._keywords.insert(chunks)
            self._keywords.bump_generation()

    def register_recovered(self, record: DocumentRecord, chunks: Sequence[Chunk]) -> None:
        """A ready registry row and keyword rows for vectors whose registry row was lost, in one transaction."""
        with self.writing(), self._lock, full_disk_said(self.data_dir), self._transaction():
            self._db.execute(
                "INSERT INTO documents(doc_id, name, kind, content_hash, pages, chunks, chunks_stored, size_bytes,"
                " ingested_at, status, title) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'ready', ?)",
                (
                    record.doc_id,
                    record.name,
                    record.kind,
                    record.content_hash,
                    record.pages,
                    record.chunks,
                    record.chunks,
                    record.size_bytes,
                    record.ingested_at,
                    record.title,
                ),
            )
            self._keywords.delete(record.doc_id)
            self._keywords.insert(chunks)
            self._keywords.bump_generation()

    def abandoned_documents(self) -> set[str]:
        """The rows not `ready` that no live writer owns (left by a crash): safe to purge."""
        rows = self._db.execute("SELECT doc_id, writer FROM documents WHERE status != 'ready'").fetchall()
        if not rows:
            return set()
        lock_free = self._write_lock.is_held() or self._write_lock.is_free()
        return {str(doc_id) for doc_id, writer in rows if abandoned(writer, lock_free)}

    def remove_traces(self, doc_id: str) -> None:
        """Every vector, keyword row and registry row under this id (`rag check --repair`)."""
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            self._purge(doc_id)

    def check_room(self, needed: int) -> None:
        """Raise DiskFull, before anything is written, when the data directory's disk lacks `needed` bytes and a
        reserve (rag/disk_space.py); a Chroma server's disk is its own."""
        check_room(self.data_dir, needed, remote=bool(self.chroma_url))

    # -- writes: begin → add chunks (any number of batches) → commit ------------------------------

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """One write span at a time on this knowledge base, across processes and threads (re-entrant in a
        thread). Every write method takes it; the ingestor holds it around a whole wave (begin → commit)."""
        if self.read_only is not None:
            raise self.read_only
        with self._write_lock.held(timeout):
            yield

    def begin_document(self, record: DocumentRecord) -> None:
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            row = self._db.execute("SELECT status, writer FROM documents WHERE doc_id = ?", (record.doc_id,)).fetchone()
            if row is not None:
                status, writer = row
                if status == "ready":
                    raise StoreError(f"{record.name}: this content is already in the knowledge base; nothing added.")
                if not abandoned(writer, lock_free=True):  # we hold the lock: only our own rows are live
                    raise StoreError(
                        f"{record.name}: this content is being {'indexed' if status == 'indexing' else 'deleted'} "
                        "by another session of this app; nothing added: try again when that is done."
                    )
                logger.warning("Removing %s left %r by a writer that is gone (%s)", record.doc_id, status, writer)
                self._purge(record.doc_id)
            self._db.execute(
                "INSERT INTO documents(doc_id, name, kind, content_hash, pages, chunks, size_bytes, ingested_at,"
                " status, title, writer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'indexing', ?, ?)",
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
                    self._write_lock.writer,
                ),
            )

    def add_chunks(self, chunks: Sequence[Chunk], embeddings: np.ndarray) -> None:
        if len(chunks) != len(embeddings):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        by_doc: dict[str, int] = {}
        for c in chunks:
            by_doc[c.doc_id] = by_doc.get(c.doc_id, 0) + 1
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            for doc_id in by_doc:  # under the lock nobody else can take the row away between this and the add
                self._check_own(doc_id, "store its chunks")
            for start in range(0, len(chunks), CHROMA_MAX_BATCH):
                self._vectors.write(
                    _adding(chunks[start : start + CHROMA_MAX_BATCH], embeddings[start : start + CHROMA_MAX_BATCH])
                )
            with self._transaction():
                self._keywords.insert(chunks)
                for doc_id, n in by_doc.items():
                    self._db.execute(
                        "UPDATE documents SET chunks_stored = chunks_stored + ? WHERE doc_id = ?", (n, doc_id)
                    )

    def commit_document(self, doc_id: str, replaces: str | None = None) -> None:
        """Make the document visible, and retire the version it replaces, in one transaction."""
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            with self._transaction():
                self._check_own(doc_id, "make it visible")
                self._db.execute(
                    "UPDATE documents SET status = 'ready', chunks = chunks_stored, writer = NULL WHERE doc_id = ?",
                    (doc_id,),
                )
                self._keywords.bump_generation()
                if replaces:
                    self._db.execute(
                        "UPDATE documents SET status = 'deleting', writer = ? WHERE doc_id = ? AND status = 'ready'",
                        (self._write_lock.writer, replaces),
                    )
            if replaces:
                self._purge(replaces)

    def rename_document(self, doc_id: str, name: str, rewrite: Callable[[Chunk], Chunk]) -> None:
        """A ready document under another name with its vectors kept (nothing is embedded again): its chunks'
        source and header as `rewrite` makes them, in Chroma and in the keyword index, and its registry row.
        Chroma is written first: should a crash come between, the registry still says the old name and doing
        the rename again finishes it (`rewrite` must leave a chunk already rewritten as it is)."""
        with self.writing(), self._lock:
            row = self._db.execute("SELECT status FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None or row[0] != "ready":
                raise StoreError(
                    f"Document {doc_id} cannot be renamed to {name}: it is no longer in the knowledge base."
                )
            chunks = [rewrite(c) for c in self.chunks_of(doc_id)]
            for start in range(0, len(chunks), CHROMA_MAX_BATCH):
                self._vectors.write(_updating(chunks[start : start + CHROMA_MAX_BATCH]))
            with self._transaction():
                self._keywords.delete(doc_id)
                self._keywords.insert(chunks)
                self._db.execute("UPDATE documents SET name = ? WHERE doc_id = ?", (name, doc_id))
                self._keywords.bump_generation()

    def abort_document(self, doc_id: str) -> None:
        """Remove what this writer stored of a document it will not commit; never another writer's document
        (the same content committed by another session meanwhile stays)."""
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            row = self._db.execute("SELECT status, writer FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is not None and row[0] == "indexing" and row[1] == self._write_lock.writer:
                self._purge(doc_id)

    def delete_document(self, doc_id: str) -> None:
        """Delete a ready document (nothing happens if it is gone already, deleted by another session)."""
        with self.writing(), self._lock, full_disk_said(self.data_dir):
            marked = self._db.execute(
                "UPDATE documents SET status = 'deleting', writer = ? WHERE doc_id = ? AND status = 'ready'",
                (self._write_lock.writer, doc_id),
            ).rowcount
            if marked:
                self._purge(doc_id)

    def recover(self) -> list[str]:
        """Remove every trace of documents left half-indexed or half-deleted by a writer that is gone (a crash).

        Never waits: when another writer holds the lock, its rows are its own and the next open recovers."""
        if self.read_only is not None:
            return []
        with self._write_lock.held_if_free() as held:
            if not held:
                logger.debug("Recovery skipped: another writer is busy on %s", self.data_dir)
                return []
            with self._lock:
                stale = sorted(self.abandoned_documents())
                removed = []
                for doc_id in stale:
                    logger.warning("Recovering %s: removing what a writer that is gone left of it", doc_id)
                    try:
                        self._purge(doc_id)
                    except Exception as exc:  # e.g. a full disk: the row stays invisible, a later open removes it
                        logger.warning("Could not remove what %s left (%s): hidden till a later start", doc_id, exc)
                        continue
                    removed.append(doc_id)
                return removed

    def _check_own(self, doc_id: str, doing: str) -> None:
        """The document's row must still be this writer's `indexing` row, or nothing more is written for it."""
        row = self._db.execute("SELECT status, writer FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is not None and row[0] == "indexing" and row[1] == self._write_lock.writer:
            return
        if row is None:
            why = "its registry row is gone (removed by a recovery or `python -m rag check --repair`)"
        elif row[0] != "indexing":
            why = f"its registry row is now {row[0]!r}"
        else:
            why = f"another writer ({row[1]}) is indexing it"
        raise StoreError(
            f"Document {doc_id} cannot {doing}: {why}. Nothing more was stored for it; add the file again."
        )

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
            extra = 0
        else:
            # Chunks of documents that are not ready (being indexed or deleted, or strays of no document) are
            # filtered out afterwards: a `$nin` filter makes Chroma scan every vector (0.4 s at 100,000
            # chunks), and such chunks are rare and short-lived.
            where = None
            row = self._db.execute(
                "SELECT COALESCE(SUM(chunks_stored), 0) FROM documents WHERE status != 'ready'"
            ).fetchone()
            extra = int(row[0])
        n_results = k + extra
        while True:
            result = self._vectors.read(partial(_nearest, embedding=embedding, n_results=n_results, where=where))
            ids = result["ids"][0]
            dists = (result["distances"] or [[]])[0]
            pairs = [(cid, round(1.0 - float(dist), 4)) for cid, dist in zip(ids, dists, strict=True)]
            # Read after the search: a document deleted meanwhile is left out.
            ready = {str(r[0]) for r in self._db.execute("SELECT doc_id FROM documents WHERE status = 'ready'")}
            kept = [(cid, score) for cid, score in pairs if doc_of(cid) in ready]
            if len(kept) >= k or len(pairs) < n_results:  # enough, or nothing more to find
                return kept[:k]
            n_results *= 2  # strays the registry does not count took places: look further

    def vectors_of(self, doc_id: str) -> tuple[list[str], np.ndarray]:
        """A ready document's chunk ids and their stored vectors, one row each (none when it is not ready).
        A metadata lookup, not a nearest-neighbour search: cheaper than a filtered search in a large collection."""
        result = self._vectors.read(lambda c: c.get(where={"doc_id": doc_id}, include=["embeddings"]))
        vectors = result["embeddings"]
        if vectors is None or len(result["ids"]) == 0 or not self._ready_among({doc_id}):
            return [], np.zeros((0, 0), dtype=np.float32)
        return [str(cid) for cid in result["ids"]], np.asarray(vectors, dtype=np.float32)

    def vectors_by_document(self) -> dict[str, tuple[list[str], np.ndarray]]:
        """Every ready document's chunk ids and stored vectors, read in one pass over the collection (page by
        page, ids and vectors only). A document written or deleted during the pass may come back partly: compare
        with its record's chunk count, and read such a one again with `vectors_of`."""
        ids: dict[str, list[str]] = {}
        rows: dict[str, list[np.ndarray]] = {}
        offset = 0
        while True:
            page = self._vectors.read(partial(_vector_page, offset=offset))
            vectors = page["embeddings"] if page["embeddings"] is not None else []
            for cid, vector in zip(page["ids"], vectors, strict=True):
                doc_id = str(cid).rpartition(":")[0]  # chunk ids are "<doc_id>:<position>"
                ids.setdefault(doc_id, []).append(str(cid))
                rows.setdefault(doc_id, []).append(np.asarray(vector, dtype=np.float32))
            if len(page["ids"]) < CHROMA_MAX_BATCH:
                break
            offset += len(page["ids"])
        ready = {record.doc_id for record in self.documents()}  # read after the pass: deleted meanwhile, left out
        return {d: (ids[d], np.stack(rows[d])) for d in ids if d in ready}

    def fetch(self, chunk_ids: Sequence[str]) -> dict[str, tuple[Chunk, np.ndarray]]:
        """The given chunks of ready documents with their stored vectors (ids no longer stored, or of a document
        no longer ready, are left out). An id asked twice is read once (Chroma refuses repeated ids)."""
        unique = list(dict.fromkeys(chunk_ids))
        if not unique:
            return {}
        result = self._vectors.read(lambda c: c.get(ids=unique, include=["documents", "metadatas", "embeddings"]))
        docs = result["documents"] or []
        metas = result["metadatas"] or []
        vectors = result["embeddings"]
        if vectors is None:
            return {}
        fetched = {
            cid: (_chunk(cid, text, meta), np.asarray(vector, dtype=np.float32))
            for cid, text, meta, vector in zip(result["ids"], docs, metas, vectors, strict=True)
        }
        # Read after Chroma: a document that a delete or replace began on meanwhile is left out.
        ready = self._ready_among({chunk.doc_id for chunk, _ in fetched.values()})
        return {cid: pair for cid, pair in fetched.items() if pair[0].doc_id in ready}

    def passages(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The given chunks of ready documents, without their vectors, as `fetch` gives them: read from their
        keyword rows (the same text and header, looked up by rowid in SQLite), where Chroma's `get` by ids
        took 1.5-2 ms of a question's 20 (rows a damaged registry lost are read from Chroma). Ids no longer stored,
        or of a document no longer ready, are left out."""
        with self._lock:
            found = self._keywords.passages(chunk_ids)
        # Checked after reading, as `fetch` does: a document that a delete or replace began on meanwhile is left out.
        ready = self._ready_among({chunk.doc_id for chunk in found.values()})
        found = {cid: chunk for cid, chunk in found.items() if chunk.doc_id in ready}
        # A ready document's rows lost from a damaged registry (until `rag check --repair`): read from Chroma.
        if missing := [cid for cid in dict.fromkeys(chunk_ids) if cid not in found]:
            found.update({cid: chunk for cid, (chunk, _) in self.fetch(missing).items()})
        return found

    def _ready_among(self, doc_ids: set[str]) -> set[str]:
        if not doc_ids:
            return set()
        ids = sorted(doc_ids)
        rows = self._db.execute(
            f"SELECT doc_id FROM documents WHERE status = 'ready' AND doc_id IN ({', '.join('?' * len(ids))})", ids
        )
        return {str(row[0]) for row in rows}

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
        return self.keyword_search(terms).ranking(k, doc_ids)

    def keyword_search(self, terms: Sequence[str]) -> KeywordQuery:
        """The terms scored against the ready documents as they are now, once: rank the result with
        `.ranking(k, doc_ids)` as often as needed, and pass it to `keyword_coverage`."""
        with self._lock:
            return self._keywords.query(terms)

    def keyword_coverage(self, terms: Sequence[str] | KeywordQuery, texts: Sequence[str]) -> list[float]:
        """How much of the query each text covers, terms weighted by their rarity here (see KeywordIndex)."""
        with self._lock:
            query = terms if isinstance(terms, KeywordQuery) else self._keywords.query(terms)
            return self._keywords.coverage(query, texts)

    def document_frequency(self, phrases: Sequence[str]) -> dict[str, int]:
        """phrase → how many ready documents' texts hold it."""
        with self._lock:
            return self._keywords.document_frequency(phrases)

    def keyword_generation(self) -> str:
        """Changes whenever the set of ready documents does, in any process."""
        return self._keywords.generation()

    def keyword_rows(self, doc_id: str) -> list[tuple[str, str, str, str, int, int]]:
        """A document's rows in the keyword index: (text, chunk id, doc id, source, page, position)."""
        return self._keywords.rows(doc_id)

    def keyword_row_count(self) -> int:
        """Rows in the keyword index, including any not yet committed (for tests and diagnostics)."""
        return self._keywords.row_count()

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        result = self._vectors.read(lambda c: c.get(where={"doc_id": doc_id}, include=["documents", "metadatas"]))
        chunks = [
            _chunk(cid, text, meta)
            for cid, text, meta in zip(result["ids"], result["documents"] or [], result["metadatas"] or [], strict=True)
        ]
        return sorted(chunks, key=lambda c: c.position)

    def chunks_with_vectors(self, doc_id: str) -> list[tuple[Chunk, np.ndarray]]:
        """A document's chunks in order, each with its stored vector (an export, a copy into a new index)."""
        result = self._vectors.read(
            lambda c: c.get(where={"doc_id": doc_id}, include=["documents", "metadatas", "embeddings"])
        )
        vectors = result["embeddings"] if result["embeddings"] is not None else []
        pairs = [
            (_chunk(cid, text, meta), np.asarray(vector, dtype=np.float32))
            for cid, text, meta, vector in zip(
                result["ids"], result["documents"] or [], result["metadatas"] or [], vectors, strict=True
            )
        ]
        return sorted(pairs, key=lambda pair: pair[0].position)

    def vector_count(self) -> int:
        """Vectors in Chroma, including any not yet committed (for tests and diagnostics)."""
        return int(self._vectors.read(lambda c: c.count()))

    # -- internals ------------------------------------------------------------------------------------

    def _purge(self, doc_id: str) -> None:
        # Vectors and keyword rows first, the registry row last: if a crash interrupts, the row is still
        # there (not ready) and the next open finishes the job.
        self._vectors.write(lambda c: c.delete(where={"doc_id": doc_id}))
        with self._transaction():
            self._keywords.delete(doc_id)
            self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            self._keywords.bump_generation()

    def _backfill_keyword_index(self) -> None:
        """Knowledge bases made before the keyword index (or its current version) get one built from their
        stored chunks."""
        if self._keywords.is_current() or self.read_only is not None:
            return
        with self.writing(), self._lock, self._transaction():
            self._keywords.rebuild(self.chunks_of(record.doc_id) for record in self.documents())

    # -- the counter of writes to Chroma (see VectorCollection) ---------------------------------------

    def _vectors_version(self) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (VECTORS_VERSION_KEY,)).fetchone()
        return str(row[0]) if row else "0"

    def _bump_vectors_version(self) -> str:
        rows = self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value",
            (VECTORS_VERSION_KEY,),
        ).fetchall()  # to the end: the statement, and its write, is done
        return str(rows[0][0])

    def _transaction(self) -> AbstractContextManager[None]:
        return write_transaction(self._db)

    def close(self) -> None:
        self._write_lock.close()  # whatever it left half-done is abandoned now
        if self._vectors_opened is not None:
            self._vectors_opened.close()
        self._db.close()


# What the store asks of its collection, through VectorCollection.read and .write (functions, not lambdas, where
# a loop makes them: its values are bound when the operation is made).


def _page(collection: Any, offset: int) -> Any:
    return collection.get(include=["metadatas"], limit=CHROMA_MAX_BATCH, offset=offset)


def _vector_page(collection: Any, offset: int) -> Any:
    return collection.get(include=["embeddings"], limit=CHROMA_MAX_BATCH, offset=offset)


def _nearest(collection: Any, embedding: np.ndarray, n_results: int, where: dict[str, Any] | None) -> Any:
    return collection.query(
        query_embeddings=np.asarray([embedding], dtype=np.float32),
        n_results=n_results,
        where=where,
        include=["distances"],
    )


def _adding(chunks: Sequence[Chunk], embeddings: np.ndarray) -> Callable[[Any], object]:
    return lambda collection: collection.add(
        ids=[c.id for c in chunks],
        embeddings=embeddings,
        documents=[c.text for c in chunks],
        metadatas=[_metadata(c) for c in chunks],
    )


def _updating(chunks: Sequence[Chunk]) -> Callable[[Any], object]:
    return lambda collection: collection.update(ids=[c.id for c in chunks], metadatas=[_metadata(c) for c in chunks])


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
