"""The command line's document commands: ingest, docs, delete and check (with its repair)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.cli.common import index_default_corpus
from rag.config import auth_headers
from rag.engine import Engine
from rag.formatting import human_size, plural, terminal_safe
from rag.ingest import IngestProgress, IngestResult
from rag.store import Store


def add_commands(sub: Any) -> None:
    """The ingest, docs, delete and check commands."""
    ingest = sub.add_parser("ingest", help="add files or folders (recursively) to the knowledge base")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.set_defaults(run=cmd_ingest)

    docs = sub.add_parser("docs", help="list the documents in the knowledge base")
    docs.add_argument("--json", action="store_true", help="print JSON")
    docs.set_defaults(run=cmd_docs)

    delete = sub.add_parser("delete", help="remove a document and all its chunks")
    delete.add_argument("name", metavar="NAME_OR_ID")
    delete.set_defaults(run=cmd_delete)

    check = sub.add_parser(
        "check", help="verify that the registry, Chroma and the keyword index agree (exit 1 when they do not)"
    )
    check.add_argument(
        "--repair", action="store_true", help="remove strays and broken documents (to be ingested again)"
    )
    check.set_defaults(run=cmd_check)


def _progress_bar() -> Any:
    from tqdm import tqdm

    bar = tqdm(total=0, unit="chunk", disable=None, file=sys.stderr, leave=False)

    def update(p: IngestProgress) -> None:
        if p.chunks_done == 0:
            bar.reset(total=p.chunks_total)
            bar.set_description(f"{p.files}: {p.name}"[:60])
        else:
            bar.n = p.chunks_done
            bar.refresh()

    return bar, update


def _print_results(results: Sequence[IngestResult]) -> None:
    for r in results:
        print(terminal_safe(f"{r.name}: {r.describe()}"), file=sys.stdout if r.ok else sys.stderr)


def cmd_ingest(engine: Engine, args: argparse.Namespace) -> int:
    missing = [p for p in args.paths if not p.exists()]
    for p in missing:
        print(terminal_safe(f"{p}: no such file or folder"), file=sys.stderr)
    paths = [p for p in args.paths if p.exists()]
    from rag.ingest import scan_paths

    for skipped in scan_paths(paths)[1]:
        print(terminal_safe(f"{skipped.path}: skipped, {skipped.reason}"), file=sys.stderr)
    bar, update = _progress_bar()
    try:
        results = engine.ingest(paths, update)
    finally:
        bar.close()
    _print_results(results)
    added = sum(r.chunks for r in results if r.status in ("added", "replaced"))
    failed = sum(not r.ok for r in results) + len(missing)
    print(
        f"{len(results)} files: {added} chunks added, {failed} failed. Knowledge base: "
        f"{len(engine.store.documents())} documents, {engine.store.chunk_count()} chunks."
    )
    return 1 if failed else 0


def cmd_docs(engine: Engine, args: argparse.Namespace) -> int:
    index_default_corpus(engine)
    docs = engine.store.documents()
    if args.json:
        print(json.dumps([d.__dict__ for d in docs], indent=2))
        return 0
    if not docs:
        print("The knowledge base is empty: add files with `python -m rag ingest PATH`.")
        return 0
    print(f"{'ID':<10} {'NAME':<36} {'TYPE':<8} {'PAGES':>5} {'CHUNKS':>6} {'SIZE':>9}  INGESTED")
    for d in docs:
        pages = "-" if d.pages is None else str(d.pages)
        print(
            f"{d.doc_id[:8]:<10} {terminal_safe(d.name)[:36]:<36} {d.kind:<8} {pages:>5} {d.chunks:>6} "
            f"{human_size(d.size_bytes):>9}  {d.ingested_at}"
        )
    print(f"{len(docs)} documents, {engine.store.chunk_count()} chunks")
    return 0


def cmd_delete(engine: Engine, args: argparse.Namespace) -> int:
    doc = engine.store.find(args.name)
    if doc is None:
        said = f"No document named {args.name!r}: see `python -m rag docs` for names and ids."
        print(terminal_safe(said), file=sys.stderr)
        return 1
    engine.delete(doc.doc_id)
    print(terminal_safe(f"Deleted {doc.name} ({plural(doc.chunks, 'chunk')})."))
    return 0


def cmd_check(engine: Engine, args: argparse.Namespace) -> int:
    from rag.check import check, describe, describe_repair, repair
    from rag.errors import DamagedKnowledgeBase
    from rag.kb import index_location

    settings = engine.settings
    folder = index_location(settings).folder
    where = settings.chroma_url or str(folder)
    try:
        store = engine.store
        report = check(store, integrity=True)
    except DamagedKnowledgeBase as damage:  # a part of the folder cannot be opened at all
        print(terminal_safe(f"Knowledge base {settings.kb!r} in {folder}: {damage.kind}."))
        print(terminal_safe(str(damage)))
        if not args.repair:
            return 1
        if "store" in engine.__dict__:
            engine.store.close()
        store = _reopened(engine, damage.kind)
        report = check(store, integrity=True)
    for line in describe(report, where):
        print(terminal_safe(line))
    if report.ok or not args.repair:
        return 0 if report.ok else 1
    if report.registry_problem is not None:  # opens, but some of its pages are damaged
        store.close()
        store = _reopened(engine, "registry damaged")
    result = repair(store, lambda: engine.embedder, lambda message: print(f"# {message}", file=sys.stderr, flush=True))
    for line in describe_repair(result):
        print(terminal_safe(line))
    return 0 if result.after.ok else 1


def _reopened(engine: Engine, damage: str) -> Store:
    """The damaged part of the folder kept aside (rag/check.py), then the knowledge base opened again."""
    from rag.check import repair_folder
    from rag.engine import open_store
    from rag.kb import index_location

    s = engine.settings
    location = index_location(s)
    done = repair_folder(location.folder, damage, s.chroma_url, auth_headers(s.chroma_token), location.collection)
    for path in done.kept:
        print(f"Kept the damaged {path.name.split('.damaged-')[0]} as {path}.")
    print(f"Repairing: {done.done}.")
    store = open_store(s)
    engine.__dict__["store"] = store  # the engine's store from now on
    return store
