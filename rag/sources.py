"""The sources of a knowledge base and their saved state: folders, lists of files, web pages (rag/web.py).

The state of the sources lives in `sources.sqlite3` in the knowledge base's folder: the sources, a cache of
each file's size, time and content hash (so an unchanged file is not read), the web pages' validators, and
the history of syncs with their summaries. The reports of a sync are here too, as its history keeps them;
syncing itself is rag/sync.py's.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag.errors import RagError
from rag.formatting import plural
from rag.loaders import is_supported
from rag.sqlite import Migration, execute_all, now_iso, open_migrated, write_transaction
from rag.web import PageState

SOURCES_DB = "sources.sqlite3"
SourceKind = Literal["folder", "files", "web"]
Outcome = Literal["added", "changed", "renamed", "removed", "unchanged", "duplicate", "failed", "skipped"]
HISTORY_LINES = 200  # lines kept with each sync in the history (the counts are always whole)


class SourceError(RagError):
    """A source cannot be added, found or synced as asked."""


def _create_tables(db: sqlite3.Connection) -> None:
    execute_all(
        db,
        """
        CREATE TABLE IF NOT EXISTS sources (
            source_id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('folder', 'files', 'web')),
            label TEXT NOT NULL,
            location TEXT NOT NULL,
            include TEXT NOT NULL DEFAULT '[]',
            exclude TEXT NOT NULL DEFAULT '[]',
            max_pages INTEGER NOT NULL DEFAULT 1,
            added_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX IF NOT EXISTS sources_label ON sources(label COLLATE NOCASE);
        CREATE TABLE IF NOT EXISTS files (
            source_id INTEGER NOT NULL REFERENCES sources(source_id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            PRIMARY KEY (source_id, path)
        );
        CREATE TABLE IF NOT EXISTS web_pages (
            source_id INTEGER NOT NULL REFERENCES sources(source_id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            etag TEXT NOT NULL DEFAULT '',
            last_modified TEXT NOT NULL DEFAULT '',
            content_hash TEXT NOT NULL,
            fetched_at TEXT NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (source_id, url)
        );
        CREATE TABLE IF NOT EXISTS runs (
            run_id INTEGER PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL CHECK (status IN ('running', 'done', 'interrupted', 'failed')),
            writer TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}',
            lines TEXT NOT NULL DEFAULT '[]',
            summary TEXT NOT NULL DEFAULT ''
        )
        """,
    )


MIGRATIONS = (Migration("001_sources_files_pages_runs", _create_tables),)


# -- sources ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    source_id: int
    kind: SourceKind
    label: str
    location: str  # a folder's path; the files of a list, one a line; a web page's address (or prefix)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_pages: int = 1  # web: pages under the address at most (1: that page alone)
    added_at: str = ""

    @property
    def files(self) -> list[Path]:
        """A list's files."""
        return [Path(line) for line in self.location.splitlines() if line.strip()]

    def owns(self, name: str) -> bool:
        """Is the document of this name this source's?"""
        if self.kind == "web":
            return name == self.location or (self.max_pages > 1 and name.startswith(self.location))
        return name.startswith(self.label + "/")

    def describe(self) -> str:
        if self.kind == "folder":
            patterns = [f"only {', '.join(self.include)}"] if self.include else []
            patterns += [f"not {', '.join(self.exclude)}"] if self.exclude else []
            extra = f" ({'; '.join(patterns)})" if patterns else ""
            return f"folder {self.location}{extra}, as {self.label}/"
        if self.kind == "files":
            return f"{plural(len(self.files), 'file')} ({', '.join(p.name for p in self.files[:3])}…), as {self.label}/"
        pages = f"up to {self.max_pages} pages under " if self.max_pages > 1 else "the page "
        return f"{pages}{self.location}"


class SourceStore:
    """The sources of one knowledge base and their state (sources.sqlite3 in its folder)."""

    def __init__(self, kb_dir: Path) -> None:
        self.kb_dir = kb_dir
        self.db = open_migrated(kb_dir / SOURCES_DB, MIGRATIONS)
        self._lock = threading.RLock()  # one connection shared by threads: one statement sequence at a time

    def close(self) -> None:
        self.db.close()

    def sources(self) -> list[Source]:
        with self._lock:
            rows = self.db.execute("SELECT * FROM sources ORDER BY source_id").fetchall()
        return [_source(row) for row in rows]

    def get(self, label_or_id: str) -> Source:
        for source in self.sources():
            if str(source.source_id) == label_or_id or source.label.casefold() == label_or_id.casefold():
                return source
            if source.kind == "web" and source.location == label_or_id:
                return source
        raise SourceError(
            f"This knowledge base has no source {label_or_id!r}: `python -m rag sources list` shows them (by "
            "number and label)."
        )

    def add_folder(
        self, folder: Path, label: str | None = None, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> Source:
        root = folder.expanduser().resolve()
        if not root.is_dir():
            raise SourceError(f"{folder} is not a folder: give the path of a folder that exists.")
        for other in self.sources():
            if other.kind == "folder":
                there = Path(other.location)
                if root == there or root.is_relative_to(there) or there.is_relative_to(root):
                    raise SourceError(
                        f"{root} overlaps the source {other.label!r} ({other.location}): a file would be two "
                        "documents. Remove that source first, or add a folder beside it."
                    )
        return self._add("folder", label or root.name, str(root), include, exclude)

    def add_files(self, files: Sequence[Path], label: str | None = None) -> Source:
        paths = [p.expanduser().resolve() for p in files]
        if not paths:
            raise SourceError("A list of files needs at least one file.")
        for p in paths:
            if not p.is_file():
                raise SourceError(f"{p} is not a file: give files that exist (or add their folder as a source).")
            if not is_supported(p.name):
                raise SourceError(f"{p.name}: this type of file cannot be read (see the README for the types).")
        names = [p.name for p in paths]
        if len(set(names)) != len(names):
            raise SourceError("Two files of the list have the same name: they would be one document. Add them "
                              "in two lists (two labels), or add their folders.")  # fmt: skip
        return self._add("files", label or paths[0].parent.name or "files", "\n".join(map(str, paths)), (), ())

    def add_web(self, url: str, max_pages: int = 1) -> Source:
        from rag.web import canonical_url

        address = canonical_url(url)
        if not 1 <= max_pages <= 10_000:
            raise SourceError(f"A web source reads between 1 and 10,000 pages, not {max_pages}.")
        for other in self.sources():
            if other.kind == "web" and (
                other.owns(address) or Source(0, "web", "", address, max_pages=max_pages).owns(other.location)
            ):
                raise SourceError(f"{address} overlaps the web source {other.location}: remove that one first.")
        label = address.split("://", 1)[-1]
        return self._add("web", label, address, (), (), max_pages)

    def restore(self, described: dict[str, object]) -> Source:
        """A source as an archive describes it (rag/archive.py), its folder or files not checked: they may not
        exist on this machine, and a sync then says so and keeps the documents."""
        kind = str(described["kind"])
        if kind not in ("folder", "files", "web"):
            raise SourceError(f"Unknown kind of source {kind!r}.")
        include = described.get("include") or ()
        exclude = described.get("exclude") or ()
        assert isinstance(include, list | tuple) and isinstance(exclude, list | tuple)
        return self._add(
            kind,  # type: ignore[arg-type]  # checked above
            str(described["label"]),
            str(described["location"]),
            [str(p) for p in include],
            [str(p) for p in exclude],
            int(str(described.get("max_pages", 1))),
        )

    def remove(self, label_or_id: str) -> Source:
        """The source and its state; its documents are removed from the knowledge base by the caller."""
        source = self.get(label_or_id)
        with self._lock, write_transaction(self.db):
            self.db.execute("DELETE FROM sources WHERE source_id = ?", (source.source_id,))
        return source

    def _add(
        self,
        kind: SourceKind,
        label: str,
        location: str,
        include: Sequence[str],
        exclude: Sequence[str],
        max_pages: int = 1,
    ) -> Source:
        label = _clean_label(label) if kind != "web" else label
        taken = {s.label.casefold() for s in self.sources()}
        base, n = label, 2
        while label.casefold() in taken:
            label, n = f"{base}-{n}", n + 1
        with self._lock, write_transaction(self.db):
            cursor = self.db.execute(
                "INSERT INTO sources(kind, label, location, include, exclude, max_pages, added_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, label, location, json.dumps(list(include)), json.dumps(list(exclude)), max_pages, now_iso()),
            )
        return self.get(str(cursor.lastrowid))

    # -- the cache of files' hashes ----------------------------------------------------------------------

    def cached_files(self, source_id: int) -> dict[str, tuple[int, int, str]]:
        """path → (size, mtime_ns, content hash) as last read."""
        with self._lock:
            rows = self.db.execute(
                "SELECT path, size, mtime_ns, content_hash FROM files WHERE source_id = ?", (source_id,)
            ).fetchall()
        return {str(p): (int(s), int(m), str(h)) for p, s, m, h in rows}

    def cache_files(self, source_id: int, rows: Sequence[tuple[str, int, int, str]]) -> None:
        with self._lock, write_transaction(self.db):
            self.db.executemany(
                "INSERT OR REPLACE INTO files(source_id, path, size, mtime_ns, content_hash) VALUES (?, ?, ?, ?, ?)",
                [(source_id, *row) for row in rows],
            )

    def forget_files(self, source_id: int, paths: Iterable[str]) -> None:
        with self._lock, write_transaction(self.db):
            self.db.executemany("DELETE FROM files WHERE source_id = ? AND path = ?", [(source_id, p) for p in paths])

    # -- web pages ------------------------------------------------------------------------------------------

    def pages(self, source_id: int) -> dict[str, PageState]:
        with self._lock:
            rows = self.db.execute(
                "SELECT url, etag, last_modified, content_hash, fetched_at FROM web_pages WHERE source_id = ?",
                (source_id,),
            ).fetchall()
        return {str(r[0]): PageState(str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4])) for r in rows}

    def page_body(self, url: str) -> bytes | None:
        """The page as last fetched (for a re-index without the network)."""
        with self._lock:
            row = self.db.execute("SELECT body FROM web_pages WHERE url = ?", (url,)).fetchone()
        return zlib.decompress(row[0]) if row else None

    def save_page(self, source_id: int, state: PageState, body: bytes) -> None:
        with self._lock, write_transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO web_pages(source_id, url, etag, last_modified, content_hash, fetched_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (source_id, state.url, state.etag, state.last_modified, state.content_hash, state.fetched_at,
                 zlib.compress(body)),
            )  # fmt: skip

    def forget_pages(self, source_id: int, urls: Iterable[str]) -> None:
        with self._lock, write_transaction(self.db):
            self.db.executemany("DELETE FROM web_pages WHERE source_id = ? AND url = ?", [(source_id, u) for u in urls])

    # -- the history of syncs -----------------------------------------------------------------------------

    def start_run(self) -> tuple[int, str]:
        """A new run (the caller holds the sync lock); returns its id and when an interrupted one had started
        ("" when none was): a run still 'running' under the lock was stopped by a crash."""
        with self._lock, write_transaction(self.db):
            stale = self.db.execute("SELECT started_at FROM runs WHERE status = 'running' ORDER BY run_id").fetchall()
            self.db.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            cursor = self.db.execute(
                "INSERT INTO runs(started_at, status, writer) VALUES (?, 'running', ?)",
                (now_iso(), f"{socket.gethostname()}:{os.getpid()}"),
            )
        return int(cursor.lastrowid or 0), str(stale[-1][0]) if stale else ""

    def finish_run(self, run_id: int, report: SyncReport, status: str = "done") -> None:
        lines = [[line.name, line.outcome, line.message] for line in report.lines[:HISTORY_LINES]]
        with self._lock, write_transaction(self.db):
            self.db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, counts = ?, lines = ?, summary = ? WHERE run_id = ?",
                (now_iso(), status, json.dumps(report.counts), json.dumps(lines), report.summary(), run_id),
            )

    def history(self, limit: int = 20) -> list[SyncRun]:
        with self._lock:
            rows = self.db.execute(
                "SELECT run_id, started_at, finished_at, status, summary, lines FROM runs ORDER BY run_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_run(r) for r in rows]


def _run(row: tuple[object, ...]) -> SyncRun:
    run_id, started, finished, status, summary, lines = row
    recorded = tuple(SyncLine(*line) for line in json.loads(str(lines)))
    return SyncRun(int(str(run_id)), str(started), str(finished or ""), str(status), str(summary), recorded)


def _source(row: tuple[object, ...]) -> Source:
    source_id, kind, label, location, include, exclude, max_pages, added_at = row
    return Source(
        int(str(source_id)),
        kind,  # type: ignore[arg-type]  # the table's CHECK holds it to SourceKind
        str(label),
        str(location),
        tuple(json.loads(str(include))),
        tuple(json.loads(str(exclude))),
        int(str(max_pages)),
        str(added_at),
    )


def _clean_label(label: str) -> str:
    cleaned = "".join("_" if c in "/\\:" or not c.isprintable() else c for c in label).strip().lstrip(".")
    return cleaned or "folder"


# -- reports ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncLine:
    """What happened to one file (or page) that was not simply unchanged."""

    name: str
    outcome: Outcome
    message: str = ""

    def describe(self) -> str:
        return f"{self.name}: {self.outcome}" + (f" ({self.message})" if self.message else "")


_ORDER: tuple[Outcome, ...] = ("added", "changed", "renamed", "removed", "unchanged", "duplicate", "skipped", "failed")


@dataclass
class SyncReport:
    kb: str
    lines: list[SyncLine] = field(default_factory=list)
    unchanged: int = 0
    resumed_from: str = ""  # when an interrupted sync had started, if this one finished its work
    run_id: int = 0
    seconds: float = 0.0
    embedded_chunks: int = 0  # chunks this sync embedded (renamed and unchanged files: none)

    def add(self, name: str, outcome: Outcome, message: str = "") -> None:
        if outcome == "unchanged":
            self.unchanged += 1
        else:
            self.lines.append(SyncLine(name, outcome, message))

    @property
    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(_ORDER, 0)
        for line in self.lines:
            counts[line.outcome] += 1
        counts["unchanged"] += self.unchanged
        return counts

    @property
    def failures(self) -> list[SyncLine]:
        return [line for line in self.lines if line.outcome == "failed"]

    def summary(self) -> str:
        """ "3 added, 1 changed, 2 removed, 120 unchanged, 1 failed: a.pdf: cannot be read (…)"."""
        counts = self.counts
        parts = [f"{n} {outcome}" for outcome, n in counts.items() if n or outcome in ("added", "unchanged")]
        text = ", ".join(parts)
        failures = self.failures
        if failures:
            shown = "; ".join(f"{line.name}: {line.message}" for line in failures[:3])
            more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
            text += f": {shown}{more}"
        if self.resumed_from:
            text += f" (finished the work of the sync started at {self.resumed_from}, which was interrupted)"
        return text


@dataclass(frozen=True)
class SyncRun:
    run_id: int
    started_at: str
    finished_at: str
    status: str
    summary: str
    lines: tuple[SyncLine, ...]
