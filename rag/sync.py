"""Sources of a knowledge base kept in sync: folders, lists of files, web pages (rag/web.py); folders watched and
synced once their changes settle. The sources themselves and their saved state are in rag/sources.py.

A sync brings the knowledge base to the sources' state by comparison, not by replaying events: it reads what
the sources hold now and what the knowledge base holds, and does the difference. Files new or changed are
indexed through the ingestor (rag/ingest.py: each document all or nothing), files gone are removed, files
renamed or moved are recognised by their content and renamed with their vectors kept (nothing is embedded
again), unchanged files are not read at all when their size and time have not changed. So a sync stopped
anywhere (kill -9, a power cut) loses nothing: what it committed stays, what it had not is done by the next
one, and a second sync with nothing changed does nothing. Two syncs of one knowledge base take turns
(`sync.lock` in its folder): the second waits, then finds the first's work done.

A folder's documents are named `<label>/<path in the folder>` (the label is the folder's name unless given),
so their names never meet those of uploaded files (which have no "/") nor another source's. A file the sync
cannot read now (a permission, a broken link, a file changing while it is read) gets a line saying why and is
left as the knowledge base has it; the next sync tries it again. Files of the same content in two places are
one document (the first path in name order), as an ingest of the folder would have them.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import logging
import os
import stat as stat_module
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from filelock import FileLock, Timeout

from rag.chunking import renamed_header
from rag.config import Settings
from rag.errors import RagError, Stopped
from rag.formatting import clean_name
from rag.ingest import Ingestor, IngestProgress, IngestResult, Reader
from rag.kb import SYNC_LOCK
from rag.loaders import is_supported, kind_of
from rag.registry import DocumentRecord
from rag.schema import Chunk
from rag.sources import Source, SourceError, SourceKind, SourceStore, SyncLine, SyncReport
from rag.store import Store
from rag.web import Fetcher

logger = logging.getLogger(__name__)

HASH_BLOCK = 1 << 20  # files are hashed a megabyte at a time: memory stays flat whatever their size
# A file modified this recently may change again within the same tick of its clock without its size or time
# changing: its hash is not cached, so the next sync reads it again (git's "racy clean" rule).
RACY_SECONDS = 2.0
CACHE_BATCH = 500  # cache rows written per transaction while hashing
WATCH_SETTLE_MS = 1500  # a watched folder is synced once no change has come for this long
WATCH_MAX_WAIT_MS = 30_000  # ... or this long after the first change, however busy the folder
WATCH_RECHECK_MS = 5_000  # how often the watcher looks whether sources were added or removed


# -- reports ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncProgress:
    """Where a sync is: a stage ("waiting", "scanning", "reading", "fetching", "renaming", "removing",
    "indexing"), how far, and during indexing the ingestor's own progress."""

    stage: str
    done: int = 0
    total: int = 0
    detail: str = ""
    ingest: IngestProgress | None = None

    @property
    def fraction(self) -> float:
        if self.ingest is not None:
            return self.ingest.overall
        return self.done / self.total if self.total else 0.0

    def describe(self) -> str:
        if self.ingest is not None:
            return f"indexing: {self.ingest.files} · {self.ingest.detail}"
        count = f" {self.done:,}/{self.total:,}" if self.total else ""
        return f"{self.stage}{count}" + (f": {self.detail}" if self.detail else "")


SyncProgressCallback = Callable[[SyncProgress], None]


# -- reading a folder --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the source's folder, with "/"
    full: Path
    size: int
    mtime_ns: int


def matches(path: str, patterns: Sequence[str]) -> bool:
    """A pattern with a "/" is matched against the path in the folder ("drafts/*", "*/old/*"), one without
    against the file name ("*.md"); `*` also crosses folders."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in p else name, p) for p in patterns)


@dataclass
class FolderScan:
    entries: list[FileEntry] = field(default_factory=list)  # the files to index, in path order
    problems: list[SyncLine] = field(default_factory=list)  # by path in the folder: failed (retried) or skipped
    unlisted: list[str] = field(default_factory=list)  # folders that could not be listed ("": the folder itself)


def scan_folder(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> FolderScan:
    """The supported files under `root` (hidden ones left out), in path order, and a line for each file or
    folder that cannot be taken: a broken link, a link out of the folder, a folder that cannot be listed, a
    type that cannot be read. Only names and sizes are held: a folder of 10,000 files takes a few megabytes."""
    scan = FolderScan()
    real_root = root.resolve()
    seen_dirs = {real_root}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as listing:
                children = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            scan.unlisted.append(prefix.rstrip("/"))
            scan.problems.append(SyncLine(prefix.rstrip("/") or ".", "failed", f"cannot be listed ({_why(exc)})"))
            continue
        for child in children:
            if child.name.startswith("."):
                continue
            rel = prefix + child.name
            try:
                if child.is_symlink():
                    target = Path(child.path).resolve()
                    if not target.exists():
                        scan.problems.append(SyncLine(rel, "failed", f"a broken link (to {os.readlink(child.path)})"))
                        continue
                    if not target.is_relative_to(real_root):
                        scan.problems.append(SyncLine(rel, "skipped", "a link to outside the folder: not followed"))
                        continue
                info = os.stat(child.path)  # follows a link inside the folder
            except OSError as exc:
                scan.problems.append(SyncLine(rel, "failed", f"cannot be read ({_why(exc)})"))
                continue
            if stat_module.S_ISDIR(info.st_mode):
                real = Path(child.path).resolve()
                if real not in seen_dirs:  # a link back up would loop
                    seen_dirs.add(real)
                    stack.append((Path(child.path), rel + "/"))
                continue
            if not stat_module.S_ISREG(info.st_mode):
                continue
            if (include and not matches(rel, include)) or matches(rel, exclude):
                continue
            if not is_supported(child.name):
                suffix = Path(child.name).suffix or "(none)"
                scan.problems.append(SyncLine(rel, "skipped", f"unsupported type '{suffix}'"))
                continue
            scan.entries.append(FileEntry(rel, Path(child.path), info.st_size, info.st_mtime_ns))
    scan.entries.sort(key=lambda e: e.path)
    return scan


def file_hash(path: Path) -> tuple[str, os.stat_result]:
    """The SHA-256 of a file read a block at a time, and its state; OSError when it changed while read."""
    before = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            digest.update(block)
    after = os.stat(path)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        raise OSError(errno.EAGAIN, CHANGED_WHILE_READ)
    return digest.hexdigest(), after


CHANGED_WHILE_READ = "it changed while it was being read; it is read again at the next sync"


def _verified_reader(path: Path, expected: str) -> Reader:
    """The file's bytes for the ingestor, if they are still what the sync hashed (else OSError: read next time)."""

    def read() -> bytes:
        before = os.stat(path)
        data = path.read_bytes()
        after = os.stat(path)
        if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
            raise OSError(errno.EAGAIN, CHANGED_WHILE_READ)
        if hashlib.sha256(data).hexdigest() != expected:
            raise OSError(errno.EAGAIN, "it changed since the sync looked at it; it is read again at the next sync")
        return data

    return read


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


# -- the sync itself ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    """A document a source should have: its name, content and how to read it."""

    name: str
    content_hash: str
    read: Reader


@dataclass
class _Desired:
    """What a source holds now: the documents it should have, in name order; what must be kept as it is (names
    it cannot read now, folders it cannot list); names known to be gone even when the rest is not complete."""

    wanted: list[_Wanted] = field(default_factory=list)
    held: set[str] = field(default_factory=set)
    held_under: set[str] = field(default_factory=set)  # "label/folder/": everything under it is kept
    gone: set[str] = field(default_factory=set)
    complete: bool = True  # False: a missing document may only be unreachable now: remove none but `gone`

    def keeps(self, name: str) -> bool:
        return name in self.held or any(name.startswith(prefix) for prefix in self.held_under)


class Syncer:
    """Syncs the sources of one knowledge base into its store, through its ingestor."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        ingestor: Ingestor,
        sources: SourceStore | None = None,
        web_fetcher: Fetcher | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.ingestor = ingestor
        self.sources = sources or SourceStore(settings.kb_dir)
        self._web = web_fetcher  # rag.web.Fetcher; built on first use with the settings' address policy

    def sync(
        self,
        only: Sequence[Source] | None = None,
        on_progress: SyncProgressCallback | None = None,
        kinds: Sequence[SourceKind] = ("folder", "files", "web"),
        wait: float | None = None,
    ) -> SyncReport:
        """Bring the knowledge base to its sources' state (`only` these sources, of these kinds); one sync of a
        knowledge base at a time: this one waits for another (`wait` seconds at most, None: as long as it takes).
        """
        progress = on_progress or (lambda _p: None)
        report = SyncReport(self.settings.kb)
        started = time.monotonic()
        lock = FileLock(self.settings.kb_dir / SYNC_LOCK, thread_local=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            progress(SyncProgress("waiting", detail="another sync of this knowledge base is running"))
            try:
                lock.acquire(timeout=-1 if wait is None else wait)
            except Timeout:
                raise SourceError(
                    f"Another sync of the knowledge base {self.settings.kb!r} has been running for over {wait:.0f} s: "
                    "try again when it is done."
                ) from None
        try:
            report.run_id, report.resumed_from = self.sources.start_run()
            status = "failed"
            try:
                chosen = only if only is not None else self.sources.sources()
                for source in chosen:
                    if source.kind in kinds:
                        self._sync_source(source, report, progress)
                status = "done"
            except Stopped:  # the person stopped it (from the progress callback): not a failure
                status = "interrupted"
                raise
            finally:
                report.seconds = round(time.monotonic() - started, 3)
                self.sources.finish_run(report.run_id, report, status)
        finally:
            lock.release()
        logger.info("sync of %s: %s", self.settings.kb, report.summary())
        return report

    def remove_source(self, label_or_id: str) -> tuple[Source, int]:
        """Remove a source and its documents from the knowledge base (not while a sync of it runs); returns the
        source and how many documents went with it."""
        with FileLock(self.settings.kb_dir / SYNC_LOCK, thread_local=True):
            source = self.sources.remove(label_or_id)
            owned = [d for d in self.store.documents() if source.owns(d.name)]
            for record in owned:
                self.store.delete_document(record.doc_id)
        return source, len(owned)

    # -- one source --------------------------------------------------------------------------------------

    def _sync_source(self, source: Source, report: SyncReport, progress: SyncProgressCallback) -> None:
        if source.kind == "web":
            desired = self._web_desired(source, report, progress)
        else:
            desired = self._file_desired(source, report, progress)
        self._apply(source, desired, report, progress)

    def _file_desired(self, source: Source, report: SyncReport, progress: SyncProgressCallback) -> _Desired:
        progress(SyncProgress("scanning", detail=source.location if source.kind == "folder" else source.label))
        desired = _Desired()
        if source.kind == "folder":
            root = Path(source.location)
            if not root.is_dir():
                report.add(source.label, "failed", f"the folder {root} is missing: its documents are kept as they are")
                return _Desired(complete=False)
            scan = scan_folder(root, source.include, source.exclude)
        else:
            scan = FolderScan()
            for path in source.files:
                try:
                    info = os.stat(path)
                    scan.entries.append(FileEntry(path.name, path, info.st_size, info.st_mtime_ns))
                except OSError as exc:
                    scan.problems.append(SyncLine(path.name, "failed", f"cannot be read ({_why(exc)})"))
        for line in scan.problems:
            name = clean_name(f"{source.label}/{line.name}")
            report.add(name, line.outcome, line.message)
            if line.outcome == "failed":
                desired.held.add(name)
        for folder in scan.unlisted:
            if not folder:
                desired.complete = False
            desired.held_under.add(f"{source.label}/{folder}/")
        cached = self.sources.cached_files(source.source_id)
        fresh: list[tuple[str, int, int, str]] = []
        now_ns = time.time_ns()
        for i, entry in enumerate(scan.entries):
            name = clean_name(f"{source.label}/{entry.path}")
            known = cached.get(entry.path)
            digest = known[2] if known and known[:2] == (entry.size, entry.mtime_ns) else None
            if digest is None:
                if i % 50 == 0 or i == len(scan.entries) - 1:
                    progress(SyncProgress("reading", i + 1, len(scan.entries), entry.path))
                try:
                    digest, info = file_hash(entry.full)
                except OSError as exc:
                    why = _why(exc)
                    report.add(name, "failed", why if why == CHANGED_WHILE_READ else f"cannot be read ({why})")
                    desired.held.add(name)
                    continue
                if now_ns - info.st_mtime_ns > RACY_SECONDS * 1e9:
                    fresh.append((entry.path, info.st_size, info.st_mtime_ns, digest))
                if len(fresh) >= CACHE_BATCH:
                    self.sources.cache_files(source.source_id, fresh)
                    fresh = []
            desired.wanted.append(_Wanted(name, digest, _verified_reader(entry.full, digest)))
        if fresh:
            self.sources.cache_files(source.source_id, fresh)
        present = {e.path for e in scan.entries}
        self.sources.forget_files(source.source_id, [p for p in cached if p not in present])
        return desired

    def _web_desired(self, source: Source, report: SyncReport, progress: SyncProgressCallback) -> _Desired:
        if self._web is None:
            self._web = Fetcher.from_settings(self.settings)
        known = self.sources.pages(source.source_id)
        crawl = self._web.crawl(
            source.location,
            source.max_pages,
            known,
            lambda n, url: progress(SyncProgress("fetching", n, source.max_pages, url)),
            self.sources.page_body,
        )
        desired = _Desired(complete=crawl.complete, gone=set(crawl.gone))
        for page in crawl.pages:
            if page.error:  # the line names the page already
                report.add(page.url, "failed", page.error.removeprefix(f"{page.url} ").rstrip("."))
                desired.held.add(page.url)
                continue
            if page.body is not None:  # new or changed (an unchanged page comes back without its body)
                self.sources.save_page(source.source_id, page.state, page.body)
            desired.wanted.append(_Wanted(page.url, page.state.content_hash, self._page_reader(page.url)))
        desired.wanted.sort(key=lambda w: w.name)
        reached = {p.url for p in crawl.pages}
        self.sources.forget_pages(
            source.source_id, [u for u in known if u in desired.gone or (crawl.complete and u not in reached)]
        )
        return desired

    def _page_reader(self, url: str) -> Reader:
        def read() -> bytes:
            body = self.sources.page_body(url)
            if body is None:
                raise OSError(errno.ENOENT, "the page was not kept: it is fetched again at the next sync")
            return body

        return read

    def _apply(self, source: Source, desired: _Desired, report: SyncReport, progress: SyncProgressCallback) -> None:
        """Renames, then removals, then new and changed documents (the ingestor replaces a changed one
        atomically: its old version serves until the new one is complete)."""
        documents = self.store.documents()
        owned = [d for d in documents if source.owns(d.name)]
        others = {d.content_hash[:16]: d for d in documents if not source.owns(d.name)}
        by_content = {d.content_hash[:16]: d for d in owned}  # [:16]: a registration repaired from the vectors
        first: dict[str, _Wanted] = {}
        for wanted in desired.wanted:  # in name order: the first path of a content is its document
            if wanted.content_hash in first:
                report.add(wanted.name, "duplicate", f"same content as {first[wanted.content_hash].name}")
            else:
                first[wanted.content_hash] = wanted
        renames: list[tuple[DocumentRecord, str]] = []
        ingests: list[_Wanted] = []
        kept: set[str] = set()  # doc ids that stay, under their name or another
        superseded: list[DocumentRecord] = []
        for digest, wanted in first.items():
            record = by_content.get(digest[:16])
            if record is not None and kind_of(record.name) == kind_of(wanted.name):
                kept.add(record.doc_id)
                if record.name == wanted.name:
                    report.add(wanted.name, "unchanged")
                else:
                    renames.append((record, wanted.name))
            elif record is None and (twin := others.get(digest[:16])) is not None:
                report.add(wanted.name, "duplicate", f"same content as {twin.name}, already in the knowledge base")
            else:  # new, changed, or renamed to another type of file (other chunks: indexed again)
                ingests.append(wanted)
                if record is not None and record.name != wanted.name:
                    superseded.append(record)  # its content is now the first path's, of another type: it goes
        replaced = {w.name for w in ingests}  # the ingestor replaces these names' old versions itself
        removals = [
            d
            for d in owned
            if d.doc_id not in kept
            and not desired.keeps(d.name)
            and (desired.complete or d.name in desired.gone)
            and d.name not in replaced
        ]
        removals += [d for d in superseded if d not in removals]
        for i, (record, name) in enumerate(renames):
            progress(SyncProgress("renaming", i + 1, len(renames), name))
            try:
                self._rename(record, name)
                report.add(name, "renamed", f"was {record.name}")
            except (RagError, ValueError) as exc:
                report.add(name, "failed", f"could not be renamed from {record.name} ({exc})")
        for i, record in enumerate(removals):
            progress(SyncProgress("removing", i + 1, len(removals), record.name))
            self.store.delete_document(record.doc_id)
            report.add(record.name, "removed")
        if ingests:
            self._ingest(ingests, report, progress)

    def _rename(self, record: DocumentRecord, name: str) -> None:
        def rewrite(chunk: Chunk) -> Chunk:
            header = renamed_header(chunk.header, record.title, chunk.source, name) if chunk.header else chunk.header
            return replace(chunk, source=name, header=header)

        self.store.rename_document(record.doc_id, name, rewrite)

    def _ingest(self, ingests: Sequence[_Wanted], report: SyncReport, progress: SyncProgressCallback) -> None:
        existing = {d.name for d in self.store.documents()}
        results: list[IngestResult] = self.ingestor.ingest_sources(
            [(w.name, w.read) for w in ingests], lambda p: progress(SyncProgress("indexing", ingest=p))
        )
        for wanted, result in zip(ingests, results, strict=True):
            if result.status in ("added", "replaced"):
                report.embedded_chunks += result.chunks
                report.add(
                    wanted.name, "changed" if result.status == "replaced" or wanted.name in existing else "added"
                )
            elif result.status == "failed":
                report.add(wanted.name, "failed", _without_name(result.message, wanted.name))
            elif result.status == "duplicate":
                report.add(wanted.name, "duplicate", result.message)
            else:
                report.add(wanted.name, "unchanged")


def sync_sources(
    settings: Settings,
    store: Store,
    ingestor: Ingestor,
    on_progress: SyncProgressCallback | None = None,
    kinds: Sequence[SourceKind] = ("folder", "files", "web"),
) -> SyncReport:
    """Sync every source of the settings' knowledge base into `store`; the list of sources is opened and closed
    here, in the calling thread (SQLite)."""
    sources = SourceStore(settings.kb_dir)
    try:
        return Syncer(settings, store, ingestor, sources).sync(on_progress=on_progress, kinds=kinds)
    finally:
        sources.close()


def _without_name(message: str, name: str) -> str:
    """The ingestor's message without the name the line already shows (nor a closing full stop)."""
    if message.startswith(f"{name}: "):
        message = message[len(name) + 2 :]
    elif message.startswith(f"{name} "):  # "a.pdf could not be read (…)"
        message = message[len(name) + 1 :]
    return message.rstrip(".")


def original_of(sources: SourceStore, record: DocumentRecord) -> bytes | None:
    """A document's file as its source has it now, if its content is still the document's (a re-index reads it
    again with the current chunker); None when no source has it."""
    for source in sources.sources():
        if not source.owns(record.name):
            continue
        if source.kind == "web":
            data = sources.page_body(record.name)
        else:
            inner = record.name[len(source.label) + 1 :]
            path = (
                Path(source.location) / inner
                if source.kind == "folder"
                else next((p for p in source.files if p.name == inner), None)
            )
            try:
                data = path.read_bytes() if path is not None else None
            except OSError:
                data = None
        if data is not None and hashlib.sha256(data).hexdigest()[: len(record.content_hash)] == record.content_hash:
            return data
    return None


# -- watching folders ------------------------------------------------------------------------------------------


def watch(
    folders: Callable[[], dict[str, list[Path]]],
    sync_kb: Callable[[str], object],
    stop: threading.Event,
    settle_ms: int = WATCH_SETTLE_MS,
) -> None:
    """Sync a knowledge base once changes in its folders have settled (no change for `settle_ms`), until `stop`
    is set. `folders()` gives each knowledge base's watched folders and files; it is asked again every few
    seconds, so sources added or removed meanwhile are followed. Changes to hidden files are ignored."""
    import watchfiles

    while not stop.is_set():
        watched = folders()
        roots = sorted({p for paths in watched.values() for p in paths if p.exists()})
        if not roots:
            stop.wait(WATCH_RECHECK_MS / 1000)
            continue
        logger.info("Watching %s", ", ".join(map(str, roots)))
        for changes in watchfiles.watch(
            *roots,
            watch_filter=_visible_change,
            step=settle_ms,
            debounce=WATCH_MAX_WAIT_MS,
            stop_event=stop,
            yield_on_timeout=True,
            rust_timeout=WATCH_RECHECK_MS,
            raise_interrupt=False,
            ignore_permission_denied=True,
        ):
            if changes:
                touched = [Path(p) for _change, p in changes]
                for kb, paths in watched.items():
                    if any(t == p or t.is_relative_to(p) for t in touched for p in paths):
                        try:
                            sync_kb(kb)
                        except Exception:  # a watcher never stops on one failed sync: it says why and goes on
                            logger.exception("The sync of %r after a change failed", kb)
            if stop.is_set() or folders() != watched:
                break


class FolderWatcher:
    """`watch` in a background thread, started and stopped as a setting says (the app's "Keep folder sources in
    sync"): `run_while(True)` starts it unless it runs, `run_while(False)` stops it. It keeps the last report of
    each knowledge base it synced."""

    def __init__(
        self,
        folders: Callable[[], dict[str, list[Path]]],
        sync_kb: Callable[[str], SyncReport],
        settle_ms: int = WATCH_SETTLE_MS,
    ) -> None:
        self.folders = folders
        self.sync_kb = sync_kb
        self.settle_ms = settle_ms
        self.last: dict[str, SyncReport] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run_while(self, on: bool) -> None:
        with self._lock:
            if on and not self.running:
                self._stop = threading.Event()
                self._thread = threading.Thread(
                    target=self._run, args=(self._stop,), name="folder-watcher", daemon=True
                )
                self._thread.start()
            elif not on and self.running:
                self._stop.set()

    def _sync(self, name: str) -> None:
        self.last[name] = self.sync_kb(name)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                watch(self.folders, self._sync, stop, self.settle_ms)
            except Exception:  # e.g. a folder that went away while being watched: say why, watch again
                logger.exception("The folder watcher stopped; it starts again in a few seconds")
                stop.wait(WATCH_RECHECK_MS / 1000)


def _visible_change(_change: object, path: str) -> bool:
    return not any(part.startswith(".") for part in Path(path).parts[1:])


def watched_paths(sources: Iterable[Source]) -> list[Path]:
    paths: list[Path] = []
    for source in sources:
        if source.kind == "folder":
            paths.append(Path(source.location))
        elif source.kind == "files":
            paths.extend(source.files)
    return paths
