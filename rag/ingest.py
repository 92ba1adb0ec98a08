"""Files → the knowledge base: load, chunk, embed, store; idempotent by content hash."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.chunking import chunk_document
from rag.embeddings import Embedder
from rag.errors import LoaderError, RagError
from rag.formatting import plural
from rag.loaders import is_supported, load_bytes
from rag.schema import Chunk, LoadedDocument
from rag.store import DocumentRecord, Store, now_iso

PARSE_AHEAD = 2  # files parsed ahead of the one being embedded (bounds memory)
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


@dataclass(frozen=True)
class _Prepared:
    """A file read, hashed and (unless its content is already indexed) parsed and chunked."""

    name: str
    data: bytes
    digest: str
    doc: LoadedDocument | None = None
    chunks: tuple[Chunk, ...] = ()
    error: str = ""


Reader = Callable[[], bytes]  # raises OSError when the file cannot be read


class Ingestor:
    """Files → the knowledge base. Parsing runs one file ahead, in a thread, while the current file is
    embedded (the model's work releases the GIL), and each document is embedded in length-sorted batches so
    that little is spent on padding."""

    def __init__(
        self, store: Store, embedder: Embedder, chunk_size: int, chunk_overlap: int, batch_size: int = 64
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size  # chunks stored (and progress reported) at a time

    def ingest_paths(self, paths: Sequence[Path], on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        files = collect_files(paths)
        return self._ingest([(path.name, path.read_bytes) for path in files], on_progress)

    def ingest_uploads(
        self, uploads: Sequence[tuple[str, bytes]], on_progress: ProgressCallback | None = None
    ) -> list[IngestResult]:
        return self._ingest([(name, _constant(data)) for name, data in uploads], on_progress)

    def _ingest(
        self, sources: Sequence[tuple[str, Reader]], on_progress: ProgressCallback | None
    ) -> list[IngestResult]:
        known = self.store.content_hashes()
        results: list[IngestResult] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rag-parse") as parser:
            ahead: deque[Future[_Prepared]] = deque()
            pending = iter(sources)
            for index in range(len(sources)):
                while len(ahead) < PARSE_AHEAD:  # parse the next files while this one is embedded
                    source = next(pending, None)
                    if source is None:
                        break
                    ahead.append(parser.submit(self._prepare, source[0], source[1], known))
                prepared = ahead.popleft().result()
                results.append(self._store(prepared, index, len(sources), on_progress))
        return results

    def _prepare(self, name: str, read: Reader, known: frozenset[str]) -> _Prepared:
        """Pure work, no store access (it runs in the parsing thread)."""
        try:
            data = read()
        except OSError as exc:
            return _Prepared(name, b"", "", error=f"{name}: cannot be read ({exc.strerror or exc}).")
        digest = content_hash(data)
        if digest in known:  # unchanged or a duplicate: decided against the store, no parsing needed
            return _Prepared(name, data, digest)
        return self._parse(name, data, digest)

    def _parse(self, name: str, data: bytes, digest: str) -> _Prepared:
        try:
            doc = load_bytes(data, name)
        except LoaderError as exc:
            return _Prepared(name, data, digest, error=str(exc))
        chunks = chunk_document(doc, digest[:16], self.chunk_size, self.chunk_overlap)
        return _Prepared(name, data, digest, doc, tuple(chunks))

    def _store(self, prepared: _Prepared, index: int, count: int, on_progress: ProgressCallback | None) -> IngestResult:
        """One file, all or nothing: a failure leaves the knowledge base as it was."""
        name, digest = prepared.name, prepared.digest
        if prepared.error:
            return IngestResult(name, "failed", message=prepared.error)
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
        if prepared.doc is None:  # known when parsing started, deleted since
            prepared = self._parse(name, prepared.data, digest)
            if prepared.error:
                return IngestResult(name, "failed", message=prepared.error)
        doc, chunks = prepared.doc, list(prepared.chunks)
        assert doc is not None
        if not chunks:
            return IngestResult(name, "failed", message=f"{name}: no text left after splitting; nothing to index.")
        doc_id = digest[:16]
        record = DocumentRecord(doc_id, name, doc.kind, digest, doc.pages, len(chunks), len(prepared.data), now_iso())

        def report(done: int) -> None:
            if on_progress:
                on_progress(IngestProgress(name, index, count, done, len(chunks)))

        report(0)
        self.store.begin_document(record)
        try:
            # Longest first, so each batch holds texts of about one length (padding is wasted work).
            by_length = sorted(chunks, key=lambda c: -len(c.text))
            for start in range(0, len(by_length), self.batch_size):
                batch = by_length[start : start + self.batch_size]
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


def _constant(data: bytes) -> Reader:
    return lambda: data
