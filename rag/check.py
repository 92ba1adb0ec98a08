"""Do the registry, Chroma and the keyword index agree? (`python -m rag check [--repair]`, and the app on start.)

A knowledge base is consistent when every `ready` document has exactly its `chunks` vectors in Chroma and
its `chunks` rows in the keyword index, and nothing else is stored anywhere: no vectors or keyword rows
under an id the registry does not list as ready (unless a live writer is indexing it right now), and no
row left `indexing` or `deleting` by a writer that is gone. Repairing removes the strays and the broken
documents; a broken document must then be ingested again (its file is not in the knowledge base).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rag.formatting import plural
from rag.store import Store

logger = logging.getLogger(__name__)

ProblemKind = Literal["broken document", "orphan vectors", "orphan keyword rows", "abandoned row"]


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    doc_id: str
    name: str  # the document's file name, "" when the registry does not know the id
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

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (
            f"{plural(self.documents, 'document')}, {plural(self.chunks, 'chunk')}; Chroma holds "
            f"{plural(self.vectors, 'vector')}, the keyword index {plural(self.keyword_rows, 'row')}"
        )


@dataclass(frozen=True)
class Repair:
    removed: tuple[Problem, ...]  # what was removed, one entry per problem
    reingest: tuple[str, ...]  # names of the broken documents that were removed: to be ingested again
    after: CheckReport


# How long a check waits for a writer's span to end (an ingest wave takes up to about a minute).
CHECK_WAIT = 120.0


def check(store: Store, wait: float = CHECK_WAIT) -> CheckReport:
    """Compare the three; writes nothing. It holds the write lock while it reads, so that no write is seen half
    done (a document committed between reading the registry and Chroma would look like orphan vectors); a
    StoreError says so when a writer keeps it longer than `wait` seconds."""
    with store.writing(timeout=wait):
        return _compare(store)


def _compare(store: Store) -> CheckReport:
    records = store.all_documents()
    ready = {r.doc_id: r for r in records if r.status == "ready"}
    in_progress = {r.doc_id: r for r in records if r.status != "ready"}
    abandoned = store.abandoned_documents()
    vectors = store.vector_counts()
    keywords = store.keyword_counts()
    problems: list[Problem] = []
    for doc_id, r in ready.items():
        v, k = vectors.get(doc_id, 0), keywords.get(doc_id, 0)
        if v != r.chunks or k != r.chunks:
            problems.append(
                Problem(
                    "broken document",
                    doc_id,
                    r.name,
                    f"the registry says {plural(r.chunks, 'chunk')}, Chroma holds {plural(v, 'vector')}, "
                    f"the keyword index {plural(k, 'row')}",
                )
            )
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
    for doc_id in sorted(set(vectors) - known):
        problems.append(
            Problem("orphan vectors", doc_id, "", f"{plural(vectors[doc_id], 'vector')} of no registered document")
        )
    for doc_id in sorted(set(keywords) - known):
        problems.append(
            Problem("orphan keyword rows", doc_id, "", f"{plural(keywords[doc_id], 'row')} of no registered document")
        )
    return CheckReport(
        len(ready),
        sum(r.chunks for r in ready.values()),
        sum(vectors.values()),
        sum(keywords.values()),
        tuple(problems),
    )


def repair(store: Store) -> Repair:
    """Remove what `check` finds (again, under the write lock): orphans, abandoned rows, and broken documents
    (to be ingested again)."""
    with store.writing():  # decided and done in one span: what was found is still so
        report = _compare(store)
        removed: list[Problem] = []
        reingest: list[str] = []
        for problem in report.problems:
            store.remove_traces(problem.doc_id)
            logger.warning("rag check --repair removed %s", problem.describe())
            removed.append(problem)
            if problem.kind == "broken document":
                reingest.append(problem.name)
        return Repair(tuple(removed), tuple(reingest), _compare(store))


def describe(report: CheckReport, where: str) -> list[str]:
    """The lines `python -m rag check` prints."""
    lines = [f"Knowledge base in {where}: {report.summary()}."]
    if report.ok:
        lines.append("The registry, Chroma and the keyword index agree.")
        return lines
    lines.append(f"{plural(len(report.problems), 'problem')}:")
    lines.extend(f"  {p.describe()}" for p in report.problems)
    lines.append("Run `python -m rag check --repair` to remove them (broken documents must then be ingested again).")
    return lines


def describe_repair(result: Repair) -> list[str]:
    lines = [f"Removed {p.describe()}" for p in result.removed]
    if result.reingest:
        lines.append("Ingest these files again: " + ", ".join(_names(result.reingest)) + ".")
    if result.after.ok:
        lines.append(f"The knowledge base is consistent now: {result.after.summary()}.")
    else:
        lines.append(f"Still {plural(len(result.after.problems), 'problem')} (a writer may be busy: run it again):")
        lines.extend(f"  {p.describe()}" for p in result.after.problems)
    return lines


def _names(names: Sequence[str]) -> list[str]:
    return sorted(set(names))
