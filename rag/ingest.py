"""Files → the knowledge base: load, chunk, embed, store; idempotent by content hash."""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from rag.chunking import chunk_document
from rag.config import (
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MAX_PAGES,
    DEFAULT_MAX_UPLOAD_FILES,
    DEFAULT_MAX_UPLOAD_MB,
    DEFAULT_PARSE_MEMORY_MB,
    DEFAULT_PARSE_SECONDS,
    Settings,
)
from rag.disk_space import disk_full
from rag.embeddings import Embedder
from rag.errors import DiskFull, LoaderError, RagError
from rag.formatting import clean_name, human_size, plural
from rag.kb import IndexVersions, stamp_versions
from rag.loaders import is_supported, load_bytes
from rag.loaders.common import ReadLimits
from rag.originals import Originals
from rag.parsing import PARSE_WORKERS, Loader, ParseBudget, ParserPool
from rag.registry import DocumentRecord
from rag.schema import Chunk, LoadedDocument
from rag.sqlite import now_iso
from rag.store import Store

logger = logging.getLogger(__name__)

PARSE_AHEAD = 16  # files read and parsed ahead of those being embedded (bounds memory)
# A wave waiting for more files is embedded after this long without a file becoming ready: the model works on
# what is there while a slow file is read (up to its RAG_PARSE_SECONDS) instead of waiting for it.
WAVE_PATIENCE = 1.0
# Files are embedded together in waves of up to this many chunks: batches sorted by length across files
# waste less on padding and half-empty batches (file by file, the same chunks took 10-40 % longer here).
WAVE_CHUNKS = 1024
# The first wave goes as soon as it has this many chunks and the next file is not parsed yet, so the
# model starts early instead of waiting for the parsing of 1,024 chunks.
FIRST_WAVE_CHUNKS = 64
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
    """Chunks embedded and stored so far for the files being indexed together (one, or a few small ones)."""

    name: str  # of the first file, "and N more files" when several
    file_index: int  # 0-based position of the first of them in the batch
    last_file_index: int  # of the last of them (files between may have been skipped as unchanged)
    file_count: int
    chunks_done: int
    chunks_total: int
    # While a scanned file's pages are read by OCR (before its chunks exist): pages done and to do.
    ocr_pages_done: int = 0
    ocr_pages_total: int = 0

    @property
    def fraction(self) -> float:
        """Of these files' chunks (of the pages to read, during OCR)."""
        if self.ocr_pages_total:
            return self.ocr_pages_done / self.ocr_pages_total
        return self.chunks_done / self.chunks_total if self.chunks_total else 1.0

    @property
    def detail(self) -> str:
        """ "scan.pdf — OCR: page 3 of 12" or "report.pdf — 40/120 chunks"."""
        if self.ocr_pages_total:
            return f"{self.name} — reading scanned pages (OCR): page {self.ocr_pages_done} of {self.ocr_pages_total}"
        return f"{self.name} — {self.chunks_done}/{self.chunks_total} chunks"

    @property
    def overall(self) -> float:
        """Of the whole batch of files."""
        return (self.file_index + self.fraction * (self.last_file_index - self.file_index + 1)) / self.file_count

    @property
    def files(self) -> str:
        if self.last_file_index == self.file_index:
            return f"File {self.file_index + 1} of {self.file_count}"
        return f"Files {self.file_index + 1}–{self.last_file_index + 1} of {self.file_count}"


ProgressCallback = Callable[[IngestProgress], None]


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SkippedFile:
    """A file inside a folder that is not ingested, and why (said to the person, never silent)."""

    path: Path
    reason: str


def scan_paths(paths: Iterable[Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Files as given, and the supported files inside folders (recursively; hidden ones left out); the
    other files of the folders with the reason: an unsupported type, or a link leading out of the folder
    (a folder ingest never reads what lies outside the folder it was given)."""
    found: list[Path] = []
    skipped: list[SkippedFile] = []
    for path in paths:
        if not path.is_dir():
            found.append(path)
            continue
        root = path.resolve()
        for p in sorted(path.rglob("*")):
            if any(part.startswith(".") for part in p.relative_to(path).parts):
                continue
            outside = not p.resolve().is_relative_to(root)
            if p.is_dir():
                if outside:
                    skipped.append(SkippedFile(p, "a link to a folder outside the folder: not followed"))
                continue
            if outside:
                skipped.append(SkippedFile(p, "a link to a file outside the folder: not followed"))
            elif not p.is_file():
                continue
            elif not is_supported(p.name):
                skipped.append(SkippedFile(p, f"unsupported type '{p.suffix or '(none)'}'"))
            else:
                found.append(p)
    return found, skipped


def collect_files(paths: Iterable[Path]) -> list[Path]:
    """The files `scan_paths` would ingest."""
    return scan_paths(paths)[0]


@dataclass(frozen=True)
class _Prepared:
    """A file read, hashed and (unless its content is already indexed) parsed and chunked."""

    name: str
    data: bytes
    digest: str
    doc: LoadedDocument | None = None
    chunks: tuple[Chunk, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class _Admitted:
    """A document that will be indexed: what the registry will say of it and its chunks."""

    index: int  # position in the batch
    record: DocumentRecord
    chunks: tuple[Chunk, ...]
    replaces: str | None  # doc_id of the version with the same name
    note: str


Reader = Callable[[], bytes]  # raises OSError when the file cannot be read


@dataclass(eq=False)
class _Reading:
    """A file of the batch being read and parsed in a thread; its digest is known as soon as it is read."""

    index: int  # position in the batch
    name: str
    digest: str | None = None  # None until read ("" when it could not be)
    future: Future[_Prepared] | None = None
    waiting_since: float = 0.0  # when the ingestion began to wait for it, first in line (time.monotonic)

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()

    def result(self) -> _Prepared:
        assert self.future is not None
        return self.future.result()

    def may_be_like(self, other: _Reading) -> bool:
        """Could this file (earlier, not yet parsed) turn out to have `other`'s name or content?"""
        return self.name == other.name or self.digest is None or (bool(self.digest) and self.digest == other.digest)


class UploadLimitError(RagError):
    """An upload has more files or bytes than the limits allow."""


@dataclass(frozen=True)
class IngestLimits:
    """What one file and one upload may cost (README, "Limits"; settings RAG_MAX_PAGES, RAG_MAX_CHUNKS,
    RAG_MAX_UPLOAD_FILES, RAG_MAX_UPLOAD_MB). A file over a limit fails with a message and the other files of
    its batch still go in; the upload limits apply to uploads, not to folders ingested from the command line
    (read file by file, whatever their number)."""

    max_pages: int = DEFAULT_MAX_PAGES
    max_chunks: int = DEFAULT_MAX_CHUNKS
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    parse_seconds: float = DEFAULT_PARSE_SECONDS  # reading one file (a scan read by OCR: one page)
    parse_memory_mb: int = DEFAULT_PARSE_MEMORY_MB

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(
            settings.max_pages_per_file,
            settings.max_chunks_per_file,
            settings.max_upload_files,
            settings.max_upload_mb * 1024 * 1024,
            settings.parse_seconds,
            settings.parse_memory_mb,
        )

    @property
    def parse_budget(self) -> ParseBudget:
        return ParseBudget(self.parse_seconds, self.parse_memory_mb)

    def read_limits(self, chunk_size: int) -> ReadLimits:
        return ReadLimits(self.max_pages, self.max_chunks, chunk_size)

    def check_upload(self, sizes: Sequence[int]) -> None:
        """Refuse an upload of too many files or bytes before any of it is read."""
        if len(sizes) > self.max_upload_files:
            raise UploadLimitError(
                f"This upload has {len(sizes):,} files, over the limit of {self.max_upload_files:,}: add them in "
                f"batches of up to {self.max_upload_files:,} (or raise RAG_MAX_UPLOAD_FILES)."
            )
        if sum(sizes) > self.max_upload_bytes:
            raise UploadLimitError(
                f"This upload is {human_size(sum(sizes))}, over the limit of {human_size(self.max_upload_bytes)}: "
                "add the files in smaller batches (or raise RAG_MAX_UPLOAD_MB)."
            )


class Ingestor:
    """Files → the knowledge base. The next files are read by worker processes (rag/parsing.py: each file under a
    time and memory budget) while the current ones are embedded; files are embedded together in waves, in
    batches sorted by token count so that little is spent on padding, and each file is committed on its own."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        chunk_size: int,
        chunk_overlap: int,
        batch_size: int = 64,
        limits: IngestLimits | None = None,
        load: Loader = load_bytes,
        originals: Originals | None = None,
    ) -> None:
        """`load` is what the workers call to read a file (a module-level function: they import it by name)."""
        self.store = store
        self.embedder = embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.batch_size = batch_size  # chunks stored (and progress reported) at a time
        self.limits = limits or IngestLimits()
        self.load = load
        self.originals = originals  # the files kept to show sources where they stand (rag/originals.py)

    def ingest_paths(self, paths: Sequence[Path], on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        files = collect_files(paths)
        return self._ingest([(clean_name(path.name), path.read_bytes) for path in files], on_progress)

    def ingest_sources(
        self, sources: Sequence[tuple[str, Reader]], on_progress: ProgressCallback | None = None
    ) -> list[IngestResult]:
        """Files by name, each with a reader of its bytes (called a few files ahead of the embedding): a folder
        source's files (rag/sync.py), web pages. No upload limits: the person chose these files."""
        return self._ingest(sources, on_progress)

    def ingest_uploads(
        self, uploads: Sequence[tuple[str, bytes | Reader]], on_progress: ProgressCallback | None = None
    ) -> list[IngestResult]:
        """Uploaded files, each as its bytes or a reader of them: readers are called one file at a time
        (a few ahead of the embedding), so a large upload is never in memory all at once.

        Over the upload limits: too many files is refused before anything is read; bytes are counted as
        files are read (a reader's size is known only then), and the files read past the limit fail."""
        self.limits.check_upload([len(data) if isinstance(data, bytes) else 0 for _, data in uploads])
        total = 0

        def counted(name: str, read: Reader) -> Reader:
            def reader() -> bytes:
                nonlocal total
                data = read()
                total += len(data)
                if total > self.limits.max_upload_bytes:
                    raise UploadLimitError(
                        f"{name}: not added: with it the upload passes the limit of "
                        f"{human_size(self.limits.max_upload_bytes)}; add it in another batch (or raise "
                        "RAG_MAX_UPLOAD_MB)."
                    )
                return data

            return reader

        sources = [
            (clean_name(name), counted(clean_name(name), _constant(data) if isinstance(data, bytes) else data))
            for name, data in uploads
        ]
        return self._ingest(sources, on_progress)

    def _ingest(
        self, sources: Sequence[tuple[str, Reader]], on_progress: ProgressCallback | None
    ) -> list[IngestResult]:
        known = self.store.content_hashes()
        ocr_pages: queue.SimpleQueue[tuple[int, str, int, int]] = queue.SimpleQueue()  # from the parsing threads
        results: dict[int, IngestResult] = {}
        wave: list[_Admitted] = []
        waves = 0

        def index_wave() -> None:
            nonlocal waves
            indexed = self._index(wave, len(sources), on_progress)
            results.update(indexed)
            self._settle_originals(wave, indexed)
            wave.clear()
            waves += 1

        with (
            ParserPool(self.limits.parse_budget, self.load) as pool,
            ThreadPoolExecutor(max_workers=PARSE_WORKERS, thread_name_prefix="rag-parse") as parser,
        ):
            ahead: list[_Reading] = []  # files being read and parsed, in the batch's order
            pending = enumerate(sources)

            def read_ahead() -> None:
                while len(ahead) < PARSE_AHEAD and (source := next(pending, None)) is not None:
                    reading = _Reading(source[0], source[1][0])
                    reading.future = parser.submit(self._prepare, reading, source[1][1], known, pool, ocr_pages)
                    ahead.append(reading)

            read_ahead()
            while ahead:
                reading = self._next_ready(ahead, ocr_pages, len(sources), on_progress, bool(wave))
                if reading is None:  # nothing ready for a while (a slow file): embed what is there meanwhile
                    index_wave()
                    continue
                ahead.remove(reading)
                read_ahead()
                prepared = reading.result()
                if any(w.record.name == prepared.name or w.record.content_hash == prepared.digest for w in wave):
                    index_wave()  # the same name or content again: decided once the first is in
                admitted = self._admit(prepared, reading.index, pool)
                if isinstance(admitted, IngestResult):
                    results[reading.index] = admitted
                    continue
                wave.append(admitted)
                size = sum(len(w.chunks) for w in wave)
                parser_behind = not any(r.done for r in ahead)
                if size >= WAVE_CHUNKS or (waves == 0 and size >= FIRST_WAVE_CHUNKS and parser_behind):
                    index_wave()
            if wave:
                index_wave()
        return [results[i] for i in range(len(sources))]

    @staticmethod
    def _next_ready(
        ahead: Sequence[_Reading],
        ocr_pages: queue.SimpleQueue[tuple[int, str, int, int]],
        count: int,
        on_progress: ProgressCallback | None,
        wave_waiting: bool,
    ) -> _Reading | None:
        """The next file to decide, reporting the OCR progress of the parsing threads meanwhile (Streamlit can only
        draw from the thread that runs the page); None when none is ready within WAVE_PATIENCE and files already
        read are waiting in the wave (they are embedded meanwhile).

        Files are taken in the batch's order, except that a file slower than WAVE_PATIENCE does not hold up those
        behind it: a later one that is ready goes first, unless an earlier one not yet read may have its name or
        content (of two such files the first is added, the second replaces it or is a duplicate, as in order)."""
        head = ahead[0]
        while True:
            while not ocr_pages.empty():
                index, name, done, total = ocr_pages.get()
                if on_progress:
                    on_progress(IngestProgress(name, index, index, count, 0, 0, done, total))
            if head.done:
                return head
            now = time.monotonic()
            head.waiting_since = head.waiting_since or now
            if now - head.waiting_since >= WAVE_PATIENCE:
                unresolved: list[_Reading] = []
                for reading in ahead:
                    if reading.done and not any(r.may_be_like(reading) for r in unresolved):
                        return reading
                    unresolved.append(reading)
                if wave_waiting and now - head.waiting_since >= WAVE_PATIENCE + 0.2:  # embed what is there
                    return None
            running = [r.future for r in ahead if r.future is not None and not r.done]  # the head's, at least
            futures_wait(running, timeout=0.2, return_when=FIRST_COMPLETED)

    def _prepare(
        self,
        reading: _Reading,
        read: Reader,
        known: frozenset[str],
        pool: ParserPool,
        ocr_pages: queue.SimpleQueue[tuple[int, str, int, int]] | None = None,
    ) -> _Prepared:
        """Pure work, no store access (it runs in a parsing thread): read, hash, and parse unless known."""
        name = reading.name
        try:
            data = read()
        except OSError as exc:
            reading.digest = ""
            return _Prepared(name, b"", "", error=f"{name}: cannot be read ({exc.strerror or exc}).")
        except UploadLimitError as exc:
            reading.digest = ""
            return _Prepared(name, b"", "", error=str(exc))
        digest = reading.digest = content_hash(data)
        if digest in known or digest[:16] in known:  # unchanged or a duplicate: no parsing needed
            return _Prepared(name, data, digest)

        def on_ocr_page(done: int, total: int) -> None:
            if ocr_pages is not None:
                ocr_pages.put((reading.index, name, done, total))

        return self._parse(name, data, digest, pool, on_ocr_page)

    def _parse(
        self,
        name: str,
        data: bytes,
        digest: str,
        pool: ParserPool,
        on_ocr_page: Callable[[int, int], None] | None = None,
    ) -> _Prepared:
        try:
            doc = pool.parse(data, name, self.limits.read_limits(self.chunk_size), on_ocr_page)
        except LoaderError as exc:
            logger.info("%s not indexed: %s", name, exc)
            return _Prepared(name, data, digest, error=str(exc))
        chunks = chunk_document(doc, digest[:16], self.chunk_size, self.chunk_overlap)
        if len(chunks) > self.limits.max_chunks:  # before anything is stored: nothing of it half-indexed
            return _Prepared(
                name,
                data,
                digest,
                error=(
                    f"{name} makes {len(chunks):,} chunks, over the limit of {self.limits.max_chunks:,} a file "
                    f"(embedding them would take ~{len(chunks) // 1000 + 1} minutes on a CPU): split it into "
                    "smaller files, or raise RAG_MAX_CHUNKS."
                ),
            )
        return _Prepared(name, data, digest, doc, tuple(chunks))

    def _admit(self, prepared: _Prepared, index: int, pool: ParserPool) -> IngestResult | _Admitted:
        """The file's outcome when it needs no indexing (failed, unchanged, duplicate), else what to index."""
        name, digest = prepared.name, prepared.digest
        if prepared.error:
            return IngestResult(name, "failed", message=prepared.error)
        same_name = self.store.find(name)
        known = self._already_indexed(name, digest, same_name)
        if known is not None:
            if self.originals is not None and known.doc_id is not None:  # indexed before files were kept
                self.originals.keep(known.doc_id, name, prepared.data)
            return known
        if prepared.doc is None:  # known when parsing started, deleted since
            prepared = self._parse(name, prepared.data, digest, pool)
            if prepared.error:
                return IngestResult(name, "failed", message=prepared.error)
        doc = prepared.doc
        assert doc is not None
        if not prepared.chunks:
            return IngestResult(name, "failed", message=f"{name}: no text left after splitting; nothing to index.")
        doc_id = digest[:16]
        record = DocumentRecord(
            doc_id,
            name,
            doc.kind,
            digest,
            doc.pages,
            len(prepared.chunks),
            len(prepared.data),
            now_iso(),
            title=doc.title,
        )
        replaces = same_name.doc_id if same_name else None
        if self.originals is not None:  # kept before indexing; removed again if the indexing fails
            self.originals.keep(doc_id, name, prepared.data)
        return _Admitted(index, record, prepared.chunks, replaces, "; ".join(doc.warnings))

    def _settle_originals(self, wave: Sequence[_Admitted], results: dict[int, IngestResult]) -> None:
        """The kept files after a wave: a replaced version's goes, a document that failed keeps none."""
        if self.originals is None:
            return
        for w in wave:
            result = results.get(w.index)
            if result is not None and result.status in ("added", "replaced") and w.replaces:
                self.originals.discard(w.replaces)
            elif (result is None or not result.ok) and self.store.find(w.record.doc_id) is None:
                self.originals.discard(w.record.doc_id)

    def _already_indexed(self, name: str, digest: str, same_name: DocumentRecord | None) -> IngestResult | None:
        """ "unchanged" or "duplicate" when this content is in the knowledge base already, else None."""
        if same_name is not None and same_name.content_hash in (digest, digest[:16]):  # [:16]: registered by a repair
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
        return None

    def _index(
        self, wave: Sequence[_Admitted], count: int, on_progress: ProgressCallback | None
    ) -> dict[int, IngestResult]:
        """Embed and store the documents of a wave, holding the knowledge base's write lock (one writer at a
        time, across processes and sessions) from the first begin to the last commit. Admission is decided
        again under the lock: another process or session may have added the same content, or a file of the
        same name, since `_admit` looked; the same content ingested twice at once ends as one document and one
        "duplicate"."""
        results: dict[int, IngestResult] = {}
        try:
            with self.store.writing():
                admitted: list[_Admitted] = []
                for w in wave:
                    same_name = self.store.find(w.record.name)
                    known = self._already_indexed(w.record.name, w.record.content_hash, same_name)
                    if known is not None:
                        results[w.index] = known
                    else:
                        admitted.append(replace(w, replaces=same_name.doc_id if same_name else None))
                if admitted:
                    needed = sum(_bytes_needed(w.chunks) for w in admitted)
                    self.store.check_room(needed)
                    # An empty knowledge base is built by this chunker and model (rag/kb.py compares them later).
                    stamp_versions(
                        self.store, IndexVersions.current(self.embedder.name, self.chunk_size, self.chunk_overlap)
                    )
                    results.update(self._store_wave(admitted, count, on_progress, needed))
        except RagError as exc:  # the lock was not had in time (the wave's own failures are results already)
            for w in wave:
                results.setdefault(w.index, IngestResult(w.record.name, "failed", message=f"{w.record.name}: {exc}"))
        return results

    def _store_wave(
        self, wave: Sequence[_Admitted], count: int, on_progress: ProgressCallback | None, needed: int = 0
    ) -> dict[int, IngestResult]:
        """Embed and store the documents of a wave; each one all or nothing: a failure leaves the knowledge
        base as it was for every document not yet committed."""
        chunks = [c for w in wave for c in w.chunks]
        first, last = min(wave, key=lambda w: w.index), max(wave, key=lambda w: w.index)  # a slow file may go later
        label = first.record.name if len(wave) == 1 else f"{first.record.name} and {plural(len(wave) - 1, 'more file')}"

        def report(done: int) -> None:
            if on_progress:
                on_progress(IngestProgress(label, first.index, last.index, count, done, len(chunks)))

        report(0)
        results: dict[int, IngestResult] = {}
        try:
            for w in wave:
                self.store.begin_document(w.record)
            # The embedder runs the longest texts first (a batch of one length wastes nothing on padding);
            # its batches are stored a few at a time.
            waiting: list[int] = []
            vectors: list[np.ndarray] = []
            stored = 0
            for indices, batch in self.embedder.embed_batches([c.indexed_text for c in chunks]):
                waiting.extend(indices)
                vectors.append(batch)
                if len(waiting) >= self.batch_size or len(waiting) + stored == len(chunks):
                    self.store.add_chunks([chunks[i] for i in waiting], np.concatenate(vectors))
                    stored += len(waiting)
                    waiting, vectors = [], []
                    report(stored)
            for w in wave:
                self.store.commit_document(w.record.doc_id, replaces=w.replaces)
                status: Status = "replaced" if w.replaces else "added"
                results[w.index] = IngestResult(w.record.name, status, len(w.chunks), w.note, w.record.doc_id)
        except BaseException as exc:
            for w in wave:
                if w.index not in results:
                    logger.info("%s: ingest aborted (%s), its partial chunks removed", w.record.name, exc)
                    try:
                        self.store.abort_document(w.record.doc_id)
                    except Exception as cleanup:  # e.g. the disk is full: as after a crash, the row stays hidden
                        logger.warning("%s: left for the next start to remove (%s)", w.record.name, cleanup)
            if not isinstance(exc, RagError):
                raise
            said = disk_full(self.store.data_dir, needed) if isinstance(exc, DiskFull) else exc  # with what it needs
            for w in wave:
                results.setdefault(w.index, IngestResult(w.record.name, "failed", message=f"{w.record.name}: {said}"))
        return results


# What storing a chunk takes on disk, measured on 1,440 chunks of ~400 characters: ~6 KB in Chroma (its SQLite with
# the vector, metadata and its own text index, and the HNSW files) and ~0.6 KB in the registry; text counts again
# for each copy of it (Chroma's, its index's, the keyword index's).
CHUNK_BYTES = 8 * 1024
TEXT_COPIES = 4


def _bytes_needed(chunks: Sequence[Chunk]) -> int:
    return sum(CHUNK_BYTES + TEXT_COPIES * len(c.indexed_text.encode("utf-8")) for c in chunks)


def _constant(data: bytes) -> Reader:
    return lambda: data
