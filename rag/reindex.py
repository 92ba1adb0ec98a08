"""Re-indexing a knowledge base in place, when the chunker, the embedding model or the chunk settings it was built
with differ from the code's and the settings' (rag/kb.py, `check_versions`).

The new index is built beside the old one (generation n+1: `index-<n+1>/` in the knowledge base's folder, and its
own collection on a Chroma server) while the old one keeps answering. Each document is read again from its file
(its folder source, or its web page as last fetched) with the current chunker; a document whose file is not at
hand keeps its chunks (embedded again only when the model changed: that needs the texts alone). Only when every
document is in does one atomic write of `index.json` switch the knowledge base to the new index; the old one is
removed after. Stopped anywhere (kill -9, a power cut), the old index still serves and the next run goes on
where this one stopped: the documents committed to the new index stay there.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from filelock import FileLock, Timeout

from rag.config import Settings, auth_headers
from rag.embeddings import Embedder
from rag.errors import RagError, StoreError
from rag.formatting import plural
from rag.ingest import IngestLimits, Ingestor, IngestProgress
from rag.kb import (
    IndexVersions,
    check_versions,
    current_generation,
    index_location,
    open_store,
    record_versions,
    set_generation,
)
from rag.registry import DocumentRecord
from rag.sources import SourceStore
from rag.store import Store
from rag.sync import original_of

logger = logging.getLogger(__name__)

REINDEX_LOCK = "reindex.lock"
GROUP = 16  # documents read and indexed together (each committed on its own): progress and resumption points
# What the registry's meta table holds about the index itself, not about the knowledge base: not carried over.
_INDEX_KEYS = {"registry_id", "vectors_version", "keyword_generation", "keyword_index"}
_LEGACY_FILES = ("registry.sqlite3", "registry.sqlite3-wal", "registry.sqlite3-shm", "chroma")


class ReindexError(RagError):
    """A re-index cannot run now."""


@dataclass(frozen=True)
class ReindexProgress:
    done: int  # documents in the new index
    total: int
    detail: str = ""
    ingest: IngestProgress | None = None

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def describe(self) -> str:
        inner = f" · {self.ingest.detail}" if self.ingest is not None else ""
        return f"re-indexing: {self.done:,} of {self.total:,} documents{inner}" + (
            f" ({self.detail})" if self.detail else ""
        )


@dataclass
class ReindexReport:
    generation: int = 0  # the index that serves now
    documents: int = 0
    rechunked: int = 0  # read again from their files with the current chunker
    kept: int = 0  # no file at hand: their chunks kept (embedded again if the model changed)
    resumed: bool = False  # a stopped re-index was finished
    without_files: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: why" (their old chunks were kept)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"re-indexed {plural(self.documents, 'document')}: {self.rechunked} read again from their files, "
            f"{self.kept} kept their chunks"
        )
        if self.without_files:
            shown = ", ".join(self.without_files[:5]) + (" …" if len(self.without_files) > 5 else "")
            text += (
                f" (no file at hand for {shown}: add {'them' if len(self.without_files) > 1 else 'it'} again, or "
                "add its folder as a source, to re-chunk)"
            )
        if self.failed:
            text += "; could not be read again, old chunks kept: " + "; ".join(self.failed[:5])
        if self.resumed:
            text += "; finished a re-index that had been stopped"
        return text + f" ({self.seconds:.1f} s)."


ProgressCallback = Callable[[ReindexProgress], None]


def reindex(
    settings: Settings,
    embedder: Embedder,
    on_progress: ProgressCallback | None = None,
    originals: Callable[[DocumentRecord], bytes | None] | None = None,
) -> ReindexReport:
    """Build the knowledge base's index again with the current chunker, model and chunk settings, and switch
    to it once complete. `originals` finds a document's file (default: its source's, rag/sync.py)."""
    progress = on_progress or (lambda _p: None)
    started = time.monotonic()
    kb_dir = settings.kb_dir
    lock = FileLock(kb_dir / REINDEX_LOCK, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ReindexError(
            f"The knowledge base {settings.kb!r} is being re-indexed by another process or session: wait for it."
        ) from None
    sources = SourceStore(kb_dir)
    find = originals or (lambda record: original_of(sources, record))
    try:
        serving = current_generation(kb_dir)
        _remove_old(settings, serving)  # left by a crash between an earlier switch and its clean-up
        target = serving + 1
        report = ReindexReport(generation=target)
        report.resumed = index_location(settings, target).folder.is_dir()
        old = open_store(settings, serving)
        new = open_store(settings, target)
        try:
            versions = IndexVersions.current(embedder.name, settings.chunk_size, settings.chunk_overlap)
            check = check_versions(old, settings, embedder.name)
            record_versions(new, versions)
            for key, value in old.meta().items():
                if key not in _INDEX_KEYS and key not in versions.as_dict():
                    new.set_meta(key, value)
            copier = _Copier(old, new, embedder, settings, find, check.needs_originals, report, progress)
            copier.copy(old.documents())
            with old.writing():  # what changed in the old index meanwhile, then the switch, with writers waiting
                copier.catch_up()
                set_generation(kb_dir, target)
            report.documents = len(new.documents())
        finally:
            old.close()
            new.close()
        _remove_old(settings, target)
        report.seconds = round(time.monotonic() - started, 1)
        return report
    finally:
        sources.close()
        lock.release()


class _Copier:
    """Documents from the old index into the new one: read again from their files, or their chunks copied."""

    def __init__(
        self,
        old: Store,
        new: Store,
        embedder: Embedder,
        settings: Settings,
        find: Callable[[DocumentRecord], bytes | None],
        rechunk: bool,
        report: ReindexReport,
        progress: ProgressCallback,
    ) -> None:
        self.old, self.new, self.embedder = old, new, embedder
        self.find = find
        self.rechunk = rechunk
        self.report = report
        self.progress = progress
        self.new_model = embedder.name != (old.get_meta("embedding_model") or embedder.name)
        self.ingestor = Ingestor(
            new, embedder, settings.chunk_size, settings.chunk_overlap, limits=IngestLimits.from_settings(settings)
        )
        self.total = 0

    def copy(self, documents: Sequence[DocumentRecord]) -> None:
        done = {d.doc_id for d in self.new.documents()}
        todo = [d for d in documents if d.doc_id not in done]
        self.total = len(documents)
        finished = len(documents) - len(todo)
        self.progress(ReindexProgress(finished, self.total))
        for start in range(0, len(todo), GROUP):
            group = todo[start : start + GROUP]
            self._copy_group(group, finished)
            finished += len(group)
            self.progress(ReindexProgress(finished, self.total))

    def catch_up(self) -> None:
        """Under the old index's write lock: documents added, removed or renamed there since the copy began."""
        old_docs = {d.doc_id: d for d in self.old.documents()}
        new_docs = {d.doc_id: d for d in self.new.documents()}
        for doc_id in new_docs.keys() - old_docs.keys():
            self.new.delete_document(doc_id)
        added = [d for doc_id, d in old_docs.items() if doc_id not in new_docs]
        if added:
            self.total += len(added)
            self._copy_group(added, self.total - len(added))
        for doc_id, record in old_docs.items():
            if doc_id in new_docs and new_docs[doc_id].name != record.name:
                self._copy_group([record], 0, replace_existing=True)

    def _copy_group(self, group: Sequence[DocumentRecord], finished: int, replace_existing: bool = False) -> None:
        readable: list[tuple[DocumentRecord, bytes]] = []
        for record in group:
            if replace_existing:
                self.new.delete_document(record.doc_id)
            data = self.find(record) if self.rechunk else None
            if data is None:
                if self.rechunk:
                    self.report.without_files.append(record.name)
                self._copy_chunks(record)
            else:
                readable.append((record, data))
        if not readable:
            return

        def report(p: IngestProgress) -> None:
            self.progress(ReindexProgress(finished, self.total, ingest=p))

        results = self.ingestor.ingest_sources([(r.name, _constant(data)) for r, data in readable], report)
        for (record, _data), result in zip(readable, results, strict=True):
            if result.status in ("added", "replaced", "unchanged"):
                self.report.rechunked += 1
            else:
                self.report.failed.append(f"{record.name}: {result.message or result.status}")
                self._copy_chunks(record)

    def _copy_chunks(self, record: DocumentRecord) -> None:
        """The document's chunks as they are, with their vectors (embedded again if the model changed)."""
        pairs = self.old.chunks_with_vectors(record.doc_id)
        if not pairs:
            return
        chunks = [chunk for chunk, _ in pairs]
        if self.new_model:
            vectors = self.embedder.embed_documents([c.indexed_text for c in chunks])
        else:
            import numpy as np

            vectors = np.stack([vector for _, vector in pairs])
        self.new.begin_document(record)
        try:
            self.new.add_chunks(chunks, vectors)
            self.new.commit_document(record.doc_id)
        except BaseException:
            self.new.abort_document(record.doc_id)
            raise
        self.report.kept += 1


def _constant(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _remove_old(settings: Settings, serving: int) -> None:
    """The indexes older than the one serving (a process that still has one open keeps it until it closes)."""
    kb_dir = settings.kb_dir
    for generation in range(serving):
        location = index_location(settings, generation)
        try:
            if generation == 0:
                for name in _LEGACY_FILES:
                    path = kb_dir / name
                    if path.is_dir():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink(missing_ok=True)
            elif location.folder.is_dir():
                shutil.rmtree(location.folder, ignore_errors=True)
            if settings.chroma_url:
                from rag.chroma_client import drop_collection

                drop_collection(settings.chroma_url, location.collection, auth_headers(settings.chroma_token))
        except (OSError, StoreError, ValueError) as exc:  # gone already, or the server is away: harmless
            logger.debug("Old index %d of %s not removed: %s", generation, kb_dir, exc)
