"""Files → the knowledge base: load, chunk, embed, store; idempotent by content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.chunking import chunk_document
from rag.embeddings import Embedder
from rag.errors import LoaderError, RagError
from rag.formatting import plural
from rag.loaders import is_supported, load_bytes
from rag.store import DocumentRecord, Store, now_iso

Status = Literal["added", "replaced", "unchanged", "duplicate", "failed"]


@dataclass(frozen=True)
class IngestResult:
    name: str
    status: Status
    chunks: int = 0
    message: str = ""
    doc_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        detail = {
            "added": f"{plural(self.chunks, 'chunk')} added",
            "replaced": f"changed: old version replaced, {plural(self.chunks, 'chunk')} added",
            "unchanged": "unchanged, skipped",
            "duplicate": self.message,
            "failed": self.message,
        }[self.status]
        if self.message and self.status in ("added", "replaced"):
            detail += f" (note: {self.message})"
        return detail


@dataclass(frozen=True)
class IngestProgress:
    name: str
    file_index: int  # 0-based
    file_count: int
    chunks_done: int
    chunks_total: int


ProgressCallback = Callable[[IngestProgress], None]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the supported files inside folders (recursively, hidden ones skipped)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and is_supported(p.name)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            found.append(path)
    return found


class Ingestor:
    def __init__(
        self, store: Store, embedder: Embedder, chunk_size: int, chunk_overlap: int, batch_size: int = 64
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size

    def ingest_paths(self, paths: Sequence[Path], on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        files = collect_files(paths)
        results = []
        for index, path in enumerate(files):
            try:
                data = path.read_bytes()
            except OSError as exc:
                results.append(IngestResult(path.name, "failed", message=f"{path}: cannot be read ({exc.strerror})."))
                continue
            results.append(self.ingest_one(data, path.name, index, len(files), on_progress))
        return results

    def ingest_uploads(
        self, uploads: Sequence[tuple[str, bytes]], on_progress: ProgressCallback | None = None
    ) -> list[IngestResult]:
        return [
            self.ingest_one(data, name, index, len(uploads), on_progress) for index, (name, data) in enumerate(uploads)
        ]

    def ingest_one(
        self,
        data: bytes,
        name: str,
        index: int = 0,
        count: int = 1,
        on_progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """One file, all or nothing: a failure leaves the knowledge base as it was."""
        digest = content_hash(data)
        same_name = self.store.find(name)
        if same_name is not None and same_name.content_hash == digest:
            return IngestResult(name, "unchanged", same_name.chunks, doc_id=same_name.doc_id)
        twin = self.store.find_by_hash(digest)
        if twin is not None:
            return IngestResult(
                name,
                "duplicate",
                twin.chunks,
                f"same content as {twin.name!r}, already indexed: skipped",
                twin.doc_id,
            )
        try:
            doc = load_bytes(data, name)
        except LoaderError as exc:
            return IngestResult(name, "failed", message=str(exc))
        doc_id = digest[:16]
        chunks = chunk_document(doc, doc_id, self.chunk_size, self.chunk_overlap)
        if not chunks:
            return IngestResult(name, "failed", message=f"{name}: no text left after splitting; nothing to index.")
        record = DocumentRecord(doc_id, name, doc.kind, digest, doc.pages, len(chunks), len(data), now_iso())

        def report(done: int) -> None:
            if on_progress:
                on_progress(IngestProgress(name, index, count, done, len(chunks)))

        report(0)
        self.store.begin_document(record)
        try:
            for start in range(0, len(chunks), self.batch_size):
                batch = chunks[start : start + self.batch_size]
                self.store.add_chunks(batch, self.embedder.embed_documents([c.text for c in batch]))
                report(start + len(batch))
            self.store.commit_document(doc_id, replaces=same_name.doc_id if same_name else None)
        except BaseException as exc:
            self.store.abort_document(doc_id)
            if isinstance(exc, RagError):
                return IngestResult(name, "failed", message=f"{name}: {exc}")
            raise
        status: Status = "replaced" if same_name else "added"
        return IngestResult(name, status, len(chunks), "; ".join(doc.warnings), doc_id)
