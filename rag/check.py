"""Do the registry, Chroma and the keyword index agree? (`python -m rag check [--repair]`, and the app on start.)

A knowledge base is consistent when every `ready` document has exactly its `chunks` vectors in Chroma and
its `chunks` rows in the keyword index, and nothing else is stored anywhere: no vectors or keyword rows
under an id the registry does not list as ready (unless a live writer is indexing it right now), and no
row left `indexing` or `deleting` by a writer that is gone.

Repairing rebuilds what can be rebuilt from what remains, each part from another: keyword rows from the chunks
Chroma holds (text and metadata), vectors by embedding again the texts the keyword rows hold, registry rows from
Chroma's chunks. What cannot be rebuilt is removed, saying so (a document with neither its vectors nor its keyword
rows must be added again), and a file or folder too damaged to open is kept beside it, renamed, never deleted.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from filelock import FileLock, Timeout

from rag.chroma_client import collection_owner
from rag.embeddings import Embedder
from rag.errors import StoreError
from rag.formatting import plural
from rag.loaders import SUPPORTED
from rag.registry import REGISTRY_FILE, DocumentRecord, new_registry
from rag.schema import HEADER_SEPARATOR, Chunk
from rag.sqlite import now_iso
from rag.store import CHROMA_DIR, Store
from rag.write_lock import LOCK_FILE

logger = logging.getLogger(__name__)

ProblemKind = Literal[
    "keyword rows missing",  # vectors complete: the rows are written again from the chunks Chroma holds
    "vectors missing",  # keyword rows complete: the texts are embedded again
    "broken document",  # neither complete: removed, its file must be added again
    "unregistered document",  # a complete set of vectors the registry does not list: registered again
    "orphan vectors",  # an incomplete set the registry does not list: removed
    "orphan keyword rows",  # keyword rows of no document: removed
    "abandoned row",  # left indexing or deleting by a writer that is gone: removed
]
# What `--repair` does for each kind (README, "Repairing a knowledge base").
REPAIRS: dict[ProblemKind, str] = {
    "keyword rows missing": "rebuilt from the chunks Chroma holds",
    "vectors missing": "embedded again from the texts in the registry's keyword index",
    "broken document": "removed: add the file again",
    "unregistered document": "registered again from the chunks and metadata Chroma holds (its size and date are lost)",
    "orphan vectors": "removed (an incomplete set: add the file again if it is missing)",
    "orphan keyword rows": "removed",
    "abandoned row": "removed (a write that was interrupted)",
}


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    doc_id: str
    name: str  # the document's file name, "" when nothing names it
    detail: str

    def describe(self) -> str:
        who = f"{self.name} ({self.doc_id[:8]})" if self.name else self.doc_id or "(no document id)"
        return f"{self.kind}: {who}: {self.detail}"


@dataclass(frozen=True)
class CheckReport:
    documents: int  # ready documents
    chunks: int  # their chunks, as the registry counts them
    vectors: int  # in Chroma, all of them
    keyword_rows: int  # in the keyword index, all of them
    problems: tuple[Problem, ...]
    registry_problem: str | None = None  # what SQLite finds wrong in the registry's file (checked on request)
    keyword_table_was_missing: bool = False  # found dropped when the store was opened (made again, empty)

    @property
    def ok(self) -> bool:
        return not self.problems and self.registry_problem is None

    def summary(self) -> str:
        return (
            f"{plural(self.documents, 'document')}, {plural(self.chunks, 'chunk')}; Chroma holds "
            f"{plural(self.vectors, 'vector')}, the keyword index {plural(self.keyword_rows, 'row')}"
        )


@dataclass(frozen=True)
class Repaired:
    problem: Problem
    done: str  # what was done, in words


@dataclass(frozen=True)
class Repair:
    repaired: tuple[Repaired, ...]
    reingest: tuple[str, ...]  # names of the documents removed: their files must be added again
    after: CheckReport

    @property
    def removed(self) -> tuple[Problem, ...]:
        return tuple(r.problem for r in self.repaired if r.done.startswith("removed"))


# How long a check waits for a writer's span to end (an ingest wave takes up to about a minute).
CHECK_WAIT = 120.0
EMBED_BATCH = 256  # chunks embedded again (and progress reported) at a time
Progress = Callable[[str], None]


def check(store: Store, wait: float = CHECK_WAIT, integrity: bool = False) -> CheckReport:
    """Compare the three; writes nothing. It holds the write lock while it reads, so that no write is seen half
    done (a document committed between reading the registry and Chroma would look like orphan vectors); a
    StoreError says so when a writer keeps it longer than `wait` seconds. `integrity` also reads every page of
    the registry's file (seconds for a large one)."""
    with nullcontext() if store.read_only else store.writing(timeout=wait):  # a full disk: nobody can write
        report = _compare(store)
    if integrity and (problem := store.registry_problem()) is not None:
        return CheckReport(**{**report.__dict__, "registry_problem": problem})
    return report


def _compare(store: Store) -> CheckReport:
    records = store.all_documents()
    ready = {r.doc_id: r for r in records if r.status == "ready"}
    in_progress = {r.doc_id: r for r in records if r.status != "ready"}
    abandoned = store.abandoned_documents()
    positions = store.vector_positions()
    vectors = {doc_id: len(p) for doc_id, p in positions.items()}
    keywords = store.keyword_counts()
    problems: list[Problem] = []
    for doc_id, r in ready.items():
        v, k = vectors.get(doc_id, 0), keywords.get(doc_id, 0)
        if v == r.chunks and k == r.chunks:
            continue
        said = (
            f"the registry says {plural(r.chunks, 'chunk')}, Chroma holds {plural(v, 'vector')}, "
            f"the keyword index {plural(k, 'row')}"
        )
        kind: ProblemKind = (
            "keyword rows missing" if v == r.chunks else "vectors missing" if k == r.chunks else "broken document"
        )
        problems.append(Problem(kind, doc_id, r.name, said))
    for doc_id, r in in_progress.items():
        if doc_id in abandoned:
            problems.append(
                Problem(
                    "abandoned row",
                    doc_id,
                    r.name,
                    f"left {r.status!r} by a writer that is gone ({plural(vectors.get(doc_id, 0), 'vector')}, "
                    f"{plural(keywords.get(doc_id, 0), 'keyword row')})",
                )
            )
    known = set(ready) | set(in_progress)  # strays under an in-progress id are its writer's (or the row's) own
    names = {r.name for r in ready.values()}
    for doc_id in sorted(set(vectors) - known):
        complete = sorted(positions[doc_id]) == list(range(len(positions[doc_id])))
        source = store.chunk_source(doc_id) if complete else ""
        if complete and source and source not in names:
            problems.append(
                Problem(
                    "unregistered document",
                    doc_id,
                    source,
                    f"{plural(vectors[doc_id], 'vector')} in Chroma, a whole document the registry does not list",
                )
            )
        else:
            problems.append(
                Problem("orphan vectors", doc_id, "", f"{plural(vectors[doc_id], 'vector')} of no registered document")
            )
    registering = {p.doc_id for p in problems if p.kind == "unregistered document"}  # its rows are written anew
    for doc_id in sorted(set(keywords) - known - registering):
        problems.append(
            Problem("orphan keyword rows", doc_id, "", f"{plural(keywords[doc_id], 'row')} of no registered document")
        )
    return CheckReport(
        len(ready),
        sum(r.chunks for r in ready.values()),
        sum(vectors.values()),
        sum(keywords.values()),
        tuple(problems),
        keyword_table_was_missing=store.keyword_table_was_missing,
    )


def repair(store: Store, embedder: Callable[[], Embedder] | None = None, progress: Progress | None = None) -> Repair:
    """Rebuild what can be rebuilt from what remains, and remove (saying so) what cannot (see REPAIRS). All under
    the write lock, decided and done in one span: what was found is still so. `embedder` gives the model, loaded
    only when texts must be embedded again."""
    say = progress or (lambda message: None)
    with store.writing():
        report = _compare(store)
        repaired: list[Repaired] = []
        reingest: list[str] = []
        for problem in report.problems:
            done = _repair_one(store, problem, embedder, say)
            logger.info("rag check --repair: %s: %s", problem.describe(), done)
            repaired.append(Repaired(problem, done))
            if problem.kind == "broken document":
                reingest.append(problem.name)
        return Repair(tuple(repaired), tuple(reingest), _compare(store))


def _repair_one(store: Store, problem: Problem, embedder: Callable[[], Embedder] | None, say: Progress) -> str:
    doc_id = problem.doc_id
    if problem.kind == "keyword rows missing":
        store.restore_keyword_rows(doc_id, store.chunks_of(doc_id))
        return REPAIRS[problem.kind]
    if problem.kind == "vectors missing" and embedder is not None:
        chunks = store.keyword_chunks(doc_id)
        store.restore_vectors(doc_id, chunks, _embed(chunks, embedder(), problem.name, say))
        return f"{REPAIRS[problem.kind]} ({plural(len(chunks), 'chunk')})"
    if problem.kind == "unregistered document":
        chunks = store.chunks_of(doc_id)
        store.register_recovered(recovered_record(doc_id, chunks), chunks)
        return REPAIRS[problem.kind]
    store.remove_traces(doc_id)
    return REPAIRS[problem.kind]


def _embed(chunks: Sequence[Chunk], embedder: Embedder, name: str, say: Progress) -> np.ndarray:
    """The chunks' vectors, as ingestion makes them (header and text), a batch at a time with progress."""
    parts = []
    for start in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[start : start + EMBED_BATCH]
        parts.append(embedder.embed_documents([c.indexed_text for c in batch]))
        say(f"embedding {name} again: {min(start + EMBED_BATCH, len(chunks))}/{len(chunks)} chunks")
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def recovered_record(doc_id: str, chunks: Sequence[Chunk]) -> DocumentRecord:
    """What the registry can say again of a document from its chunks: name, type, pages, title (from the chunks'
    header); its content hash is known by its id's 16 characters, its size and date are not."""
    source = chunks[0].source
    parts = chunks[0].header.split(HEADER_SEPARATOR) if chunks[0].header else []
    title = parts[0] if len(parts) > 1 and parts[0] != source and source in parts[1:] else ""
    pages = max((c.page for c in chunks if c.page is not None), default=None)
    kind = SUPPORTED.get(Path(source).suffix.lower(), "text")
    return DocumentRecord(doc_id, source, kind, doc_id, pages, len(chunks), 0, now_iso(), "ready", title)


# -- a folder the store cannot open: put the damaged part aside, so that the store opens and `repair` rebuilds it --


@dataclass(frozen=True)
class FolderRepair:
    kept: tuple[Path, ...]  # the damaged files or folder, renamed beside where they were
    done: str


def repair_folder(
    data_dir: Path, damage: str, chroma_url: str = "", headers: dict[str, str] | None = None, collection: str = "chunks"
) -> FolderRepair:
    """For a registry missing or damaged: keep the damaged file aside and make an empty registry that owns the
    collection again (`repair` then registers every whole document Chroma holds); for vectors Chroma cannot read:
    keep its folder aside (the store opens a new one, `repair` embeds the texts again). Nothing is deleted."""
    lock = FileLock(data_dir / LOCK_FILE, timeout=CHECK_WAIT)
    try:
        lock.acquire()
    except Timeout as exc:
        raise StoreError(
            f"Another process has been writing to {data_dir} for over {CHECK_WAIT:.0f} s: try again when it is done."
        ) from exc
    try:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        if damage in ("registry missing", "registry damaged"):
            owner = collection_owner(data_dir, collection, chroma_url, headers)
            kept = _keep_aside([data_dir / f"{REGISTRY_FILE}{end}" for end in ("", "-wal", "-shm")], stamp)
            new_registry(data_dir, owner.registry_id if owner else uuid.uuid4().hex)
            done = "a new registry was made; the documents are registered again from the chunks Chroma holds"
        elif damage == "vectors unreadable":
            kept = _keep_aside([data_dir / CHROMA_DIR], stamp)
            done = "a new Chroma folder is made; the documents' texts are embedded again from the registry"
        else:
            raise ValueError(f"unknown damage {damage!r}")
    finally:
        lock.release()
    return FolderRepair(tuple(kept), done)


def _keep_aside(paths: Sequence[Path], stamp: str) -> list[Path]:
    """Rename each existing, non-empty path to `<name>.damaged-<stamp>` beside it (an empty file holds nothing)."""
    kept = []
    for path in paths:
        if not path.exists():
            continue
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()
            continue
        target = path.with_name(f"{path.name}.damaged-{stamp}")
        os.replace(path, target)
        kept.append(target)
    return kept


def describe(report: CheckReport, where: str) -> list[str]:
    """The lines `python -m rag check` prints."""
    lines = [f"Knowledge base in {where}: {report.summary()}."]
    if report.ok:
        lines.append("The registry, Chroma and the keyword index agree.")
        return lines
    if report.registry_problem is not None:
        lines.append(f"The registry's file is damaged: {report.registry_problem}.")
    if report.keyword_table_was_missing:
        lines.append("The keyword index had been dropped (it was made again, empty).")
    if report.problems:
        lines.append(f"{plural(len(report.problems), 'problem')}:")
        lines.extend(f"  {p.describe()}" for p in report.problems)
    lines.append("Run `python -m rag check --repair`:")
    kinds = dict.fromkeys(p.kind for p in report.problems)
    if report.registry_problem is not None:
        lines.append("  the damaged registry is kept beside it and made again from the chunks Chroma holds")
    lines.extend(f"  {kind}: {REPAIRS[kind]}" for kind in kinds)
    return lines


def describe_repair(result: Repair) -> list[str]:
    lines = [f"{r.problem.describe()} -> {r.done}" for r in result.repaired]
    if result.reingest:
        lines.append("Add these files again: " + ", ".join(sorted(set(result.reingest))) + ".")
    if result.after.ok:
        lines.append(f"The knowledge base is consistent now: {result.after.summary()}.")
    else:
        lines.append(f"Still {plural(len(result.after.problems), 'problem')} (a writer may be busy: run it again):")
        lines.extend(f"  {p.describe()}" for p in result.after.problems)
    return lines
