"""The command line's knowledge-base commands: kb (list, create, rename, delete, export, import, versions, reindex;
their handlers take the catalog rather than an engine), and a knowledge base's sources and their sync."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.engine import Engine
from rag.errors import RagError
from rag.formatting import plural
from rag.kb import KnowledgeBases


def add_commands(sub: Any) -> None:
    """The kb, sources and sync commands."""
    _add_kb_commands(sub)
    _add_source_commands(sub)


def _add_kb_commands(sub: Any) -> None:
    kb = sub.add_parser("kb", help="knowledge bases: list, create, rename, delete, export, import, versions, reindex")
    kb_sub = kb.add_subparsers(required=True, metavar="ACTION")
    p = kb_sub.add_parser("list", help="the knowledge bases of the data folder, with their size")
    p.set_defaults(run=cmd_kb_list, catalog=True)
    p = kb_sub.add_parser("create", help="a new, empty knowledge base")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=cmd_kb_create, catalog=True)
    p = kb_sub.add_parser("rename", help="give a knowledge base another name")
    p.add_argument("name", metavar="NAME")
    p.add_argument("new_name", metavar="NEW_NAME")
    p.set_defaults(run=cmd_kb_rename, catalog=True)
    p = kb_sub.add_parser("delete", help="delete a knowledge base: its documents, vectors, conversations, sources")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(run=cmd_kb_delete, catalog=True)
    p = kb_sub.add_parser("export", help="write a knowledge base to one archive file (nothing to embed again)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--no-conversations", action="store_true", help="leave the saved conversations out")
    p.set_defaults(run=cmd_kb_export, catalog=True)
    p = kb_sub.add_parser("import", help="restore a knowledge base from an archive (checked first)")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--as", dest="as_name", metavar="NAME", help="its name here (default: the name it was exported as)")
    p.add_argument("--no-conversations", action="store_true", help="leave the saved conversations out")
    p.set_defaults(run=cmd_kb_import, catalog=True)
    p = kb_sub.add_parser("versions", help="what built a knowledge base's index, against this version of the app")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.set_defaults(run=cmd_kb_versions, catalog=True)
    p = kb_sub.add_parser("reindex", help="index a knowledge base again in place (the old index serves meanwhile)")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.set_defaults(run=cmd_kb_reindex, catalog=True)


def _add_source_commands(sub: Any) -> None:
    sources = sub.add_parser("sources", help="the folders, files and web pages a knowledge base is synced with")
    src_sub = sources.add_subparsers(required=True, metavar="ACTION")
    p = src_sub.add_parser("list", help="the sources and their last sync")
    p.set_defaults(run=cmd_sources_list)
    p = src_sub.add_parser("add", help="a folder (kept in sync), or a list of files")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--label", help="its documents are named LABEL/path (default: the folder's name)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only these files (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="not these files (repeatable)")
    p.set_defaults(run=cmd_sources_add)
    p = src_sub.add_parser("add-url", help="a web page, or with --max-pages the pages under its address")
    p.add_argument("url", metavar="URL")
    p.add_argument("--max-pages", type=int, default=1, help="read up to this many pages under the address")
    p.set_defaults(run=cmd_sources_add_url)
    p = src_sub.add_parser("remove", help="remove a source and its documents")
    p.add_argument("source", metavar="LABEL_OR_NUMBER")
    p.set_defaults(run=cmd_sources_remove)
    p = src_sub.add_parser("history", help="the last syncs and what they did")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(run=cmd_sources_history)
    sync = sub.add_parser("sync", help="bring the knowledge base to its sources' state (new, changed, removed files)")
    sync.add_argument("--source", action="append", default=[], metavar="LABEL", help="only this source (repeatable)")
    sync.add_argument("--watch", action="store_true", help="then watch the folders and sync after changes settle")
    sync.add_argument("--all", action="store_true", help="every knowledge base with sources (with --watch too)")
    sync.set_defaults(run=cmd_sync)


# -- knowledge bases ------------------------------------------------------------------------------------------


def _current_kb(catalog: KnowledgeBases, args: argparse.Namespace) -> str:
    return str(getattr(args, "kb", None) or catalog.settings.kb)


def cmd_kb_list(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.kb import check_versions, open_store

    current = catalog.get(_current_kb(catalog, args)).kb_id
    model = Embedder().name  # its name only: the model is not loaded
    print(f"  {'NAME':<32} {'DOCUMENTS':>9} {'CHUNKS':>8}  INDEX")
    for kb in catalog.list():
        settings = catalog.settings_for(kb.name)
        store = open_store(settings)
        try:
            check = check_versions(store, settings, model)
            state = "empty" if not check.documents else ("outdated: `kb versions`" if check.outdated else "up to date")
            mark = "*" if kb.kb_id == current else " "
            print(f"{mark} {kb.name[:32]:<32} {check.documents:>9} {store.chunk_count():>8}  {state}")
        finally:
            store.close()
    print("* the knowledge base commands use (--kb NAME or RAG_KB to choose another)")
    return 0


def cmd_kb_create(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    kb = catalog.create(args.name)
    print(f"Created the knowledge base {kb.name!r} ({kb.folder}). Use it with --kb {_shell_word(kb.name)}, e.g. "
          f"`python -m rag --kb {_shell_word(kb.name)} ingest FILES` or `… sources add FOLDER`.")  # fmt: skip
    return 0


def cmd_kb_rename(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    old = catalog.get(args.name).name
    kb = catalog.rename(args.name, args.new_name)
    print(f"Renamed the knowledge base {old!r} to {kb.name!r}.")
    return 0


def cmd_kb_delete(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.kb import open_store

    kb = catalog.get(args.name)
    if kb.is_default:
        catalog.delete(kb.name)  # refused with the reason
    settings = catalog.settings_for(kb.name)
    store = open_store(settings)
    documents = len(store.documents())
    store.close()
    conversations = len(ConversationStore.in_data_dir(settings.kb_dir).list())
    what = f"{plural(documents, 'document')} and {plural(conversations, 'conversation')}"
    if not args.yes:
        if not sys.stdin.isatty():
            raise RagError(f"Deleting {kb.name!r} removes its {what}: add --yes to confirm.")
        answer = input(f"Delete the knowledge base {kb.name!r} with its {what}? Type its name to confirm: ")
        if answer.strip() != kb.name:
            print("Not deleted.")
            return 1
    catalog.delete(kb.name)
    print(f"Deleted the knowledge base {kb.name!r} with its {what}.")
    return 0


def cmd_kb_export(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.archive import export_kb
    from rag.kb import open_store

    settings = catalog.settings_for(args.name)
    store = open_store(settings)
    try:
        summary = export_kb(
            settings, store, args.file, conversations=not args.no_conversations, on_progress=_archive_progress()
        )
    finally:
        store.close()
    print(f"Exported {summary.describe()}.")
    return 0


def cmd_kb_import(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.archive import import_kb

    summary = import_kb(
        catalog, args.file, args.as_name, conversations=not args.no_conversations, on_progress=_archive_progress()
    )
    print(f"Imported {summary.describe()}: nothing was embedded again. Use it with --kb {_shell_word(summary.name)}.")
    return 0


def cmd_kb_versions(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.kb import check_versions, open_store

    name = args.name or _current_kb(catalog, args)
    settings = catalog.settings_for(name)
    store = open_store(settings)
    try:
        check = check_versions(store, settings, Embedder().name)
    finally:
        store.close()
    if check.recorded is not None:
        r = check.recorded
        print(f"built with: chunker version {r.chunker}, {r.embedding_model}, chunks of {r.chunk_size} characters "
              f"({r.chunk_overlap} overlap)")  # fmt: skip
    c = check.current
    print(f"this app:   chunker version {c.chunker}, {c.embedding_model}, chunks of {c.chunk_size} characters "
          f"({c.chunk_overlap} overlap)")  # fmt: skip
    print(f"{settings.kb}: {check.describe()}")
    return 1 if check.outdated else 0


def cmd_kb_reindex(catalog: KnowledgeBases, args: argparse.Namespace) -> int:
    from rag.reindex import ReindexProgress, reindex

    settings = catalog.settings_for(args.name or _current_kb(catalog, args))
    print(f"# re-indexing {settings.kb!r}: it keeps answering from its old index until the new one is complete; "
          "stopped, it goes on from where it was the next time", file=sys.stderr)  # fmt: skip

    def progress(p: ReindexProgress) -> None:
        print(f"# {p.describe()}", file=sys.stderr, flush=True)

    report = reindex(settings, Embedder(batch_size=settings.embedding_batch_size), progress)
    print(f"{settings.kb}: {report.summary()}")
    return 1 if report.failed else 0


def _archive_progress() -> Any:
    from rag.archive import ArchiveProgress

    def show(p: ArchiveProgress) -> None:
        if p.done % 50 == 0 or p.done == p.total:
            print(f"# {p.stage} {p.done}/{p.total} {p.detail}", file=sys.stderr, flush=True)

    return show


def _shell_word(name: str) -> str:
    import shlex

    return shlex.quote(name)


# -- sources and sync -------------------------------------------------------------------------------------------


def _sources(engine: Engine) -> Any:
    from rag.sources import SourceStore

    return SourceStore(engine.settings.kb_dir)


def cmd_sources_list(engine: Engine, args: argparse.Namespace) -> int:
    sources = _sources(engine)
    found = sources.sources()
    if not found:
        print(f"{engine.settings.kb!r} has no sources: add a folder with `python -m rag sources add FOLDER` or a web "
              "page with `python -m rag sources add-url URL`.")  # fmt: skip
        return 0
    for source in found:
        print(f"{source.source_id:>3}  {source.label}: {source.describe()}")
    last = sources.history(1)
    if last:
        print(f"last sync ({last[0].started_at}, {last[0].status}): {last[0].summary}")
    return 0


def cmd_sources_add(engine: Engine, args: argparse.Namespace) -> int:
    sources = _sources(engine)
    paths: list[Path] = args.paths
    if len(paths) == 1 and paths[0].is_dir():
        source = sources.add_folder(paths[0], args.label, args.include, args.exclude)
    else:
        if args.include or args.exclude:
            raise RagError("--include and --exclude choose files in a folder: give one folder with them.")
        source = sources.add_files(paths, args.label)
    print(f"Added to {engine.settings.kb!r}: {source.describe()}. Index it with `python -m rag sync`.")
    return 0


def cmd_sources_add_url(engine: Engine, args: argparse.Namespace) -> int:
    source = _sources(engine).add_web(args.url, args.max_pages)
    print(f"Added to {engine.settings.kb!r}: {source.describe()}. Fetch it with `python -m rag sync`.")
    return 0


def cmd_sources_remove(engine: Engine, args: argparse.Namespace) -> int:
    from rag.sync import Syncer

    sources = _sources(engine)
    try:
        source, removed = Syncer(engine.settings, engine.store, engine.ingestor, sources).remove_source(args.source)
    finally:
        sources.close()
    print(f"Removed the source {source.label} and its {plural(removed, 'document')}.")
    return 0


def cmd_sources_history(engine: Engine, args: argparse.Namespace) -> int:
    runs = _sources(engine).history(args.limit)
    if not runs:
        print("No sync yet: `python -m rag sync`.")
    for run in runs:
        print(f"{run.started_at}  {run.status:<11} {run.summary}")
    return 0


def cmd_sync(engine: Engine, args: argparse.Namespace) -> int:
    import threading

    from rag.sources import SourceStore
    from rag.sync import Syncer, SyncProgress, watch, watched_paths

    catalog = KnowledgeBases(Settings.load())
    names = [kb.name for kb in catalog.list()] if args.all else [engine.settings.kb]
    engines = {engine.settings.kb: engine}

    def engine_of(name: str) -> Engine:
        if name not in engines:
            engines[name] = Engine(catalog.settings_for(name), embedder=engine.embedder)
        return engines[name]

    def progress(p: SyncProgress) -> None:
        if (
            p.stage in ("waiting", "scanning", "fetching")
            or (p.total and (p.done % 500 == 0 or p.done == p.total))
            or (p.ingest is not None and p.ingest.chunks_done == 0)
        ):
            print(f"# {p.describe()}", file=sys.stderr, flush=True)

    def sync_kb(name: str, kinds: tuple[Any, ...] = ("folder", "files", "web")) -> int:
        e = engine_of(name)
        sources = SourceStore(e.settings.kb_dir)
        try:
            only = [sources.get(label) for label in args.source] if args.source else None
            if not (only if only is not None else sources.sources()):
                if not args.all:
                    print(f"{name!r} has no sources: add one with `python -m rag sources add FOLDER`.")
                return 0
            report = Syncer(e.settings, e.store, e.ingestor, sources).sync(only, progress, kinds=kinds)
        finally:
            sources.close()
        for line in report.lines:
            if line.outcome in ("failed", "skipped"):
                print(f"{line.describe()}", file=sys.stderr)
        print(f"{name}: {report.summary()}", flush=True)
        return 1 if report.failures else 0

    failed = sum(sync_kb(name) for name in names)
    if not args.watch:
        return 1 if failed else 0

    def folders() -> dict[str, list[Path]]:
        watched = {}
        for name in names:
            sources = SourceStore(engine_of(name).settings.kb_dir)
            try:
                chosen = [s for s in sources.sources() if not args.source or s.label in args.source]
                watched[name] = watched_paths(chosen)
            finally:
                sources.close()
        return watched

    print(f"# watching the folders of {', '.join(map(repr, names))}: a sync follows each change once it has "
          "settled; Ctrl-C stops", file=sys.stderr, flush=True)  # fmt: skip
    stop = threading.Event()
    try:
        watch(folders, lambda name: sync_kb(name, ("folder", "files")), stop)
    except KeyboardInterrupt:
        stop.set()
    return 0
