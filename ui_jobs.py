"""The Documents page's long actions, each in a thread of its own: adding files, re-indexing, syncing the sources,
exporting and importing a knowledge base.

A click anywhere stops the page's run (Streamlit raises inside it at its next call); an action run by the page
would stop with it, half done. A job goes on until it is done or `stop` is called; whichever run of the page comes
next shows how far it got (`progress`), then its `result`, or that it `stopped`, or its `error`. Nothing here calls
Streamlit: the page reads these fields.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from rag.archive import ArchiveProgress, ArchiveSummary, export_kb, import_kb
from rag.config import Settings
from rag.embeddings import Embedder
from rag.engine import Engine
from rag.errors import Stopped
from rag.formatting import plural
from rag.ingest import IngestProgress, IngestResult, Reader
from rag.kb import KnowledgeBases
from rag.reindex import ReindexProgress, ReindexReport, reindex
from rag.sources import SyncReport
from rag.store import Store
from rag.sync import SyncProgress, sync_sources

P = TypeVar("P")  # what the work reports as it goes
R = TypeVar("R")  # what it returns


class Job(Generic[P, R]):
    """One action in a thread of its own. Its work reports through `report`, which ends it (raising `Stopped`,
    not a RagError: those are one file's failure and the work goes on) once `stop` was called; each action cleans
    up after itself when that happens. A subclass sets its own fields first and calls this constructor last: it
    starts the thread."""

    def __init__(self, kb: str, work: Callable[[Callable[[P], None]], R], name: str) -> None:
        self.kb = kb  # the knowledge base it works on, whichever the page shows next
        self.progress: P | None = None
        self.result: R | None = None
        self.error: Exception | None = None
        self.stopped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(work,), name=name, daemon=True)
        self._thread.start()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """Asked to stop (it may still be running: it stops at its next report)."""
        return self._stop.is_set()

    def wait(self, seconds: float | None = None) -> None:
        self._thread.join(seconds)

    def describe(self) -> str:
        """What it does, and in which knowledge base (plain text: "Re-indexing the knowledge base 'default'")."""
        raise NotImplementedError

    def stop(self) -> None:
        """End the work at its next progress report."""
        self._stop.set()

    def report(self, progress: P) -> None:
        if self._stop.is_set():
            raise Stopped
        self.progress = progress

    def _run(self, work: Callable[[Callable[[P], None]], R]) -> None:
        try:
            self.result = work(self.report)
        except Stopped:
            self.stopped = True
        except Exception as exc:  # shown by the page
            self.error = exc


class UploadJob(Job[IngestProgress, list[IngestResult]]):
    """Files going into the knowledge base. Stopped, the file being embedded is taken out again and the files after
    it are not added; `added` names those that went in before the stop."""

    def __init__(self, engine: Engine, uploads: Sequence[tuple[str, Reader]]) -> None:
        self.names = [name for name, _ in uploads]
        self.added: list[str] = []
        self._engine, self._uploads = engine, uploads
        super().__init__(engine.settings.kb, self._ingest, "upload")

    def describe(self) -> str:
        return f"Adding {plural(len(self.names), 'file')} to the knowledge base {self.kb!r}"

    @property
    def results(self) -> list[IngestResult]:
        """One a file once done (none after a stop or an error: the files reported as indexed before it stay)."""
        return self.result or []

    def _ingest(self, report: Callable[[IngestProgress], None]) -> list[IngestResult]:
        engine = self._engine
        before = {d.name: d.doc_id for d in engine.documents()}
        try:
            return engine.ingest_uploads(self._uploads, report)
        except Stopped:
            after = {d.name: d.doc_id for d in engine.documents()}
            self.added = [name for name in self.names if name in after and after[name] != before.get(name)]
            raise


class ReindexJob(Job[ReindexProgress, ReindexReport]):
    """The knowledge base's index built again beside the old one (rag/reindex.py). Stopped, the old index keeps
    answering and the next re-index goes on from where this one stopped."""

    def __init__(self, settings: Settings, embedder: Embedder) -> None:
        super().__init__(settings.kb, lambda report: reindex(settings, embedder, report), "reindex")
        self.settings = settings  # which knowledge base: its old index is let go of when done

    def describe(self) -> str:
        return f"Re-indexing the knowledge base {self.kb!r}"


class SyncJob(Job[SyncProgress, SyncReport]):
    """The knowledge base brought to its sources' state (rag/sync.py). Stopped, between two files or two batches of
    chunks: what went in stays, the file being embedded is taken out again, and the sync history says 'interrupted'."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        super().__init__(engine.settings.kb, self._sync, "sync")

    def describe(self) -> str:
        return f"Syncing the sources of the knowledge base {self.kb!r}"

    def _sync(self, report: Callable[[SyncProgress], None]) -> SyncReport:
        engine = self._engine
        return sync_sources(engine.settings, engine.store, engine.ingestor, report)


@dataclass(frozen=True)
class ExportedArchive:
    summary: ArchiveSummary
    data: bytes  # the archive, for the download button (its file is gone)


class ExportJob(Job[ArchiveProgress, ExportedArchive]):
    """The knowledge base written to an archive in a temporary folder, then read into memory for the download.
    Stopped, nothing is left: neither the archive nor its parts."""

    def __init__(self, settings: Settings, store: Store, conversations: bool) -> None:
        super().__init__(settings.kb, lambda report: self._export(settings, store, conversations, report), "export")

    def describe(self) -> str:
        return f"Preparing the archive of the knowledge base {self.kb!r}"

    def _export(
        self, settings: Settings, store: Store, conversations: bool, report: Callable[[ArchiveProgress], None]
    ) -> ExportedArchive:
        with tempfile.TemporaryDirectory(prefix="kb-download-") as work:
            target = Path(work) / "kb.zip"
            summary = export_kb(settings, store, target, conversations, report)
            if self.stopping:  # asked after its last report (while zipping): no archive handed over either
                raise Stopped
            return ExportedArchive(summary, target.read_bytes())


class ImportJob(Job[ArchiveProgress, ArchiveSummary]):
    """An archive imported as a new knowledge base (rag/archive.py). `kb` is the knowledge base whose page started
    it; `name` is the archive's file name. Stopped, the knowledge base it was making is deleted."""

    def __init__(
        self, kb: str, catalog: KnowledgeBases, name: str, data: bytes, as_name: str | None, conversations: bool
    ) -> None:
        self.name = Path(name).name
        super().__init__(kb, lambda report: self._import(catalog, data, as_name, conversations), "import")

    def describe(self) -> str:
        return f"Importing the archive {self.name}"

    def _import(self, catalog: KnowledgeBases, data: bytes, as_name: str | None, conversations: bool) -> ArchiveSummary:
        with tempfile.TemporaryDirectory(prefix="kb-upload-") as work:
            path = Path(work) / self.name
            path.write_bytes(data)
            return import_kb(catalog, path, as_name, conversations, self._report)

    def _report(self, progress: ArchiveProgress) -> None:
        if progress.stage == "importing" and progress.done == progress.total:
            self.progress = progress  # everything is in: too late to stop (its end is not undone for an existing kb)
        else:
            self.report(progress)
