"""Command line: python -m rag [--kb NAME] {ingest,docs,delete,check,ask,chat,conversations,prompt,serve,keys,usage,kb,
sources,sync,eval,bench} … (see --help)."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from rag.config import BACKENDS, DEFAULT_CORPUS_DIR, RERANKS, Settings, auth_headers, normalize_host
from rag.conversations import ConversationStore, SavedSource, SelectedDocument
from rag.embeddings import Embedder
from rag.engine import Engine, retrieval_options
from rag.errors import RagError
from rag.exports import conversation_json, conversation_markdown
from rag.formatting import human_size, plural, terminal_safe
from rag.ingest import IngestProgress, IngestResult
from rag.kb import KnowledgeBases
from rag.logs import configure_logging
from rag.profiles import PROFILE_NAMES
from rag.prompts import source_label
from rag.retrieval import FUSIONS, OPTIONAL_STAGES, SEARCH_MODES
from rag.schema import Answer, Chunk, Message, RetrievedChunk
from rag.sqlite import is_corrupt, is_disk_full
from rag.store import DocumentRecord, Store, disk_full, registry_damaged
from rag.turn import Chat, Turn, asks_for_whole_document, prepare

# Saved as the error of an answer stopped with Ctrl-C.
CLI_STOPPED = "it was stopped (Ctrl-C) before the answer finished; what had arrived is kept."


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # The same settings as the app: environment, then what was saved on the settings page; the knowledge
        # base of --kb (or RAG_KB) with its own settings.
        app_settings = Settings.load()
        configure_logging("DEBUG" if args.verbose else app_settings.log_level)
        catalog = KnowledgeBases(app_settings)
        if getattr(args, "catalog", False):
            catalog_result: int = args.run(catalog, args)
            return catalog_result
        settings = catalog.settings_for(args.kb).with_overrides(
            backend=getattr(args, "backend", None), model=getattr(args, "model", None)
        )
        engine = Engine(settings)
        result: int = args.run(engine, args)
        return result
    except RagError as exc:
        print(terminal_safe(f"error: {exc}"), file=sys.stderr)
        return 1
    except sqlite3.DatabaseError as exc:  # damage inside the registry that opening it did not show
        if not (is_corrupt(exc) or is_disk_full(exc)):
            raise
        where = Settings.from_env().data_dir
        said = str(disk_full(where)) if is_disk_full(exc) else registry_damaged(where, exc)
        print(terminal_safe(f"error: {said}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Chat with your documents, locally.")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what happens (fallbacks, retries, recoveries) to stderr"
    )
    parser.add_argument("--kb", metavar="NAME", help=KB_HELP)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

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

    for name, run, text in (
        ("ask", cmd_ask, "answer a question from the knowledge base (streamed), with sources"),
        ("prompt", cmd_prompt, "print the exact prompt that would be sent, without calling the model"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("question")
        p.add_argument("--backend", choices=BACKENDS, help="default: RAG_BACKEND or auto")
        p.add_argument(
            "--model",
            help="the model (default: RAG_MODEL or llama2) as Ollama or the OpenAI-compatible server names it; "
            "a .gguf path for embedded",
        )
        p.add_argument("--history", type=Path, metavar="FILE.json", help='JSON list of {"role","content"}')
        p.add_argument(
            "--doc",
            action="append",
            default=[],
            metavar="NAME",
            help="search only this document (a name or an id prefix from `python -m rag docs`); repeatable",
        )
        p.set_defaults(run=run)
        if name == "ask":
            p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming")
            p.add_argument(
                "--whole-document",
                action=argparse.BooleanOptionalAction,
                help="read every part of the --doc documents in order and combine what each says (summaries, "
                "'list every …', 'how many …'); says first how many model calls and about how long. Saved with "
                "the conversation: `--conversation ID` goes on as it was left unless told otherwise",
            )
            p.add_argument(
                "--conversation",
                metavar="ID",
                help="continue this saved conversation (an id or its start, from `conversations list`) and save "
                "the turn; `new` starts one",
            )

    chat = sub.add_parser(
        "chat", help="a conversation in the terminal, saved like the app's (one question per line; /quit ends)"
    )
    chat.add_argument("--conversation", metavar="ID", help="continue this saved conversation")
    chat.add_argument("--backend", choices=BACKENDS, help="default: RAG_BACKEND or auto")
    chat.add_argument("--model", help="the model (default: RAG_MODEL or llama2)")
    chat.add_argument(
        "--doc", action="append", default=[], metavar="NAME", help="search only this document; repeatable, saved"
    )
    chat.add_argument(
        "--whole-document",
        action=argparse.BooleanOptionalAction,
        help="read the chosen documents whole for every question (as the app's switch; saved). Not given: a "
        "continued conversation reads them as it was left, a new one searches them",
    )
    chat.set_defaults(run=cmd_chat)

    show = sub.add_parser(
        "show", help="a source where it stands: its text with the passage marked (--png: the highlighted page)"
    )
    show.add_argument(
        "source_id", metavar="SOURCE_ID", help="as `ask` prints it after each source, e.g. 3fa2c1d0:00012"
    )
    show.add_argument("--question", help="also mark the line of the passage that best answers this question")
    show.add_argument(
        "--png", type=Path, metavar="FILE", help="write the page with the passage highlighted (PDFs, scans)"
    )
    show.add_argument("--page", type=int, help="with --png: this page of the document instead (a neighbour)")
    show.set_defaults(run=cmd_show)

    conversations = sub.add_parser("conversations", help="list, show, export or delete saved conversations")
    conv_sub = conversations.add_subparsers(required=True, metavar="ACTION")
    conv_list = conv_sub.add_parser("list", help="the most recent conversations first")
    conv_list.set_defaults(run=cmd_conversations_list)
    conv_show = conv_sub.add_parser("show", help="print a conversation (Markdown, with its sources)")
    conv_show.add_argument("id", metavar="ID")
    conv_show.set_defaults(run=cmd_conversations_show)
    conv_export = conv_sub.add_parser("export", help="print a conversation as Markdown or JSON")
    conv_export.add_argument("id", metavar="ID")
    conv_export.add_argument("--format", choices=("markdown", "json"), default="markdown")
    conv_export.set_defaults(run=cmd_conversations_export)
    conv_delete = conv_sub.add_parser("delete", help="delete a conversation and its messages")
    conv_delete.add_argument("id", metavar="ID")
    conv_delete.set_defaults(run=cmd_conversations_delete)
    serve = sub.add_parser(
        "serve", help="the HTTP API: OpenAI-compatible chat with sources, documents, search (see /docs once it runs)"
    )
    serve.add_argument("--host", help="address to listen on (default RAG_API_HOST or 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, help="port (default RAG_API_PORT or 8502)")
    serve.set_defaults(run=cmd_serve)

    keys = sub.add_parser("keys", help="create, list or revoke the HTTP API's keys")
    keys_sub = keys.add_subparsers(required=True, metavar="ACTION")
    keys_create = keys_sub.add_parser("create", help="a new key, printed once (only its hash is kept)")
    keys_create.add_argument("name", metavar="NAME", help="who or what uses it, e.g. editor")
    keys_create.set_defaults(run=cmd_keys_create)
    keys_list = keys_sub.add_parser("list", help="the keys: name, first characters, created, last used, revoked")
    keys_list.set_defaults(run=cmd_keys_list)
    keys_revoke = keys_sub.add_parser("revoke", help="revoke a key (by name, or its first characters)")
    keys_revoke.add_argument("name", metavar="NAME")
    keys_revoke.set_defaults(run=cmd_keys_revoke)

    usage = sub.add_parser("usage", help="questions, tokens, speed, declines, errors, feedback and cost over time")
    usage.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first day (default: 30 days ago)")
    usage.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last day (default: today)")
    usage.add_argument("--by", choices=("day", "week"), default="day", help="per day (default) or per week")
    usage.add_argument("--csv", action="store_true", help="print the table per day or week as CSV")
    usage.add_argument("--answers-csv", action="store_true", help="print every answered turn as CSV")
    usage.set_defaults(run=cmd_usage)

    _add_kb_commands(sub)
    _add_source_commands(sub)

    evaluate = sub.add_parser("eval", help="score retrieval on questions with gold answers (fresh or kept KB)")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--docs", type=Path, metavar="DIR", help="documents to ingest (with --qa)")
    source.add_argument(
        "--suite", type=Path, metavar="SUITE.json", help="every domain of a suite, ours beside the tutorial"
    )
    evaluate.add_argument("--qa", type=Path, metavar="FILE.jsonl", help="question, answers, doc (with --docs)")
    evaluate.add_argument("--domain", action="append", default=[], help="with --suite: only this domain (repeatable)")
    evaluate.add_argument(
        "--cache", type=Path, metavar="DIR", help="keep the knowledge bases here between runs (re-used when unchanged)"
    )
    evaluate.add_argument("--stages", action="store_true", help="also the answer-in-context rate after each stage")
    evaluate.add_argument("--no-tutorial", action="store_true", help="with --suite: skip the tutorial pipeline")
    evaluate.add_argument(
        "--no-declines", action="store_true", help="with --docs: skip the decline rates (two more knowledge bases)"
    )
    evaluate.add_argument("--limit", type=int, help="sample this many questions")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--answer", action="store_true", help="also answer every question with the active backend")
    evaluate.add_argument("--backend", choices=BACKENDS, help="with --answer: default RAG_BACKEND or auto")
    evaluate.add_argument("--model", help="with --answer: the Ollama model")
    evaluate.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="retrieval to score (default hybrid)")
    evaluate.add_argument("--fusion", choices=FUSIONS, default="convex", help="how hybrid fuses (default convex)")
    evaluate.add_argument("--profile", choices=PROFILE_NAMES, help="override the domain profile setting")
    evaluate.add_argument("--rerank", choices=RERANKS, help="override the reranking setting")
    evaluate.add_argument(
        "--without",
        action="append",
        default=[],
        choices=OPTIONAL_STAGES,
        help="turn a stage of retrieval off, to measure what it adds (repeatable)",
    )
    evaluate.add_argument("--top-k", type=int, help="override the top-k setting")
    evaluate.add_argument("--context-chars", type=int, help="override the context size setting (characters)")
    evaluate.add_argument("--chunk-size", type=int, help="override the chunk size setting (characters)")
    evaluate.add_argument("--chunk-overlap", type=int, help="override the chunk overlap setting (characters)")
    evaluate.add_argument("--min-score", type=float, help="override the relevance threshold")
    evaluate.add_argument(
        "--pipeline",
        choices=("ours", "tutorial"),
        default="ours",
        help="tutorial: score the usual LangChain pipeline (pypdf, 1000/200 chunks, dense top-4) on the same files",
    )
    evaluate.set_defaults(run=cmd_eval)

    bench = sub.add_parser("bench", help="measure ingestion throughput and retrieval latency on this machine")
    bench.add_argument(
        "--docs",
        type=Path,
        default=DEFAULT_CORPUS_DIR,
        metavar="DIR",
        help="documents to ingest (default: docs_corpus/; use a larger folder for stable figures)",
    )
    bench.add_argument("--sizes", default="1000,10000,100000", help="knowledge-base sizes for retrieval, in chunks")
    bench.add_argument("--queries", type=int, default=100, help="queries per size (default 100)")
    bench.add_argument(
        "--repeat", type=int, default=2, help="ingestion runs of each pipeline; the best time counts (default 2)"
    )
    bench.add_argument(
        "--chroma-url",
        metavar="URL",
        help="also measure retrieval with the vectors on this Chroma server (`chroma run`), next to embedded",
    )
    bench.add_argument(
        "--no-tutorial", action="store_true", help="skip the tutorial pipeline's ingestion (halves the time)"
    )
    bench.add_argument(
        "--real",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="time retrieval on real documents instead (repeatable), with the questions of --qa or --suite",
    )
    bench.add_argument("--qa", type=Path, metavar="FILE.jsonl", help="with --real: the questions to time")
    bench.add_argument(
        "--suite", type=Path, metavar="SUITE.json", help="time retrieval on every document and question of a suite"
    )
    bench.add_argument("--cache", type=Path, metavar="DIR", help="with --real/--suite: keep the knowledge base here")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(run=cmd_bench)
    _kb_option_everywhere(parser)
    return parser


KB_HELP = "the knowledge base to use (default: RAG_KB, else 'default'); `python -m rag kb list` shows them"


def _kb_option_everywhere(parser: argparse.ArgumentParser) -> None:
    """--kb after any command too (`python -m rag ask --kb NAME …`); SUPPRESS: a command without it keeps the
    one given before the command."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if not any("--kb" in a.option_strings for a in child._actions):
                    child.add_argument("--kb", metavar="NAME", default=argparse.SUPPRESS, help=KB_HELP)
                _kb_option_everywhere(child)


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
    _seed(engine)
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


def cmd_show(engine: Engine, args: argparse.Namespace) -> int:
    from rag.answer_line import answer_lines, keyword_coverage
    from rag.source_view import PageView, SourceRef, text_view_terminal

    chunk = _find_source(engine, args.source_id)
    ref = SourceRef.of_chunk(chunk)
    line = ""
    if args.question:
        [best] = answer_lines(
            args.question, [chunk.text], engine.embedder, keyword_coverage(engine.store, args.question)
        )
        line = best.text if best is not None else ""
    view = engine.sources.text(ref, line)
    where = [view.name] + ([f"page {view.page}"] if view.page is not None else []) + [" › ".join(view.heading_path)]
    print(terminal_safe(" · ".join(part for part in where if part)))
    if view.note:
        print(f"# {terminal_safe(view.note)}", file=sys.stderr)
    print(text_view_terminal(view, ansi=sys.stdout.isatty()))
    if line:
        print(f"\nThe line that answers: {terminal_safe(line)}")
    if args.png is not None:
        page = engine.sources.open(ref, line=line, page=args.page)
        if not isinstance(page, PageView):
            raise RagError(f"{chunk.source} has no page to draw: --png is for PDFs and scans (kept files). {page.note}")
        try:
            args.png.write_bytes(page.png)
        except OSError as exc:
            raise RagError(f"Cannot write {args.png} ({exc.strerror or exc}): choose a writable path.") from exc
        marked = "the passage highlighted" if page.passage_boxes else "no passage marked on it"
        print(
            f"# wrote page {page.page} of {page.pages} ({page.width}x{page.height} px, {marked}) to {args.png}",
            file=sys.stderr,
        )
    return 0


def _find_source(engine: Engine, source_id: str) -> Chunk:
    """The chunk a source id names: "<document id or its start>:<position>"."""
    doc_part, _, position = source_id.strip().rpartition(":")
    doc = engine.store.find(doc_part) if doc_part and position.isdigit() else None
    found = engine.store.fetch([f"{doc.doc_id}:{int(position):05d}"]) if doc is not None else {}
    if not found:
        raise RagError(
            f"No source {source_id!r}: give it as `ask` prints it after a source (document id, a colon, the "
            "chunk's number, e.g. 3fa2c1d0:00012); the document may have been deleted or replaced since."
        )
    [(chunk, _vector)] = found.values()
    return chunk


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


def cmd_prompt(engine: Engine, args: argparse.Namespace) -> int:
    _seed(engine)
    docs = _chosen_documents(engine, args.doc)
    if docs is None:
        return 1
    choice = engine.chosen
    history = _history(args.history)
    prepared = prepare(engine, args.question, history, _doc_ids(docs), call_model=False)
    plan = prepared.plan
    if history:
        print(
            "# no model was asked: the question is searched as it is (the app would rewrite a follow-up "
            "first) and older turns that do not fit are left out, not summarized",
            file=sys.stderr,
        )
    print(f"# backend: {choice.backend.name}, model: {choice.backend.model} — {choice.reason}", file=sys.stderr)
    if docs:
        print(f"# searching only: {', '.join(d.name for d in docs)}", file=sys.stderr)
    print(
        f"# {plan.prompt_tokens} of {plan.budget} prompt tokens ({choice.backend.context_window}-token window "
        f"minus {engine.settings.max_answer_tokens} reserved for the answer); {len(plan.sources)} sources; "
        f"{plan.history_used} history messages kept, {plan.history_dropped} dropped. The runtime adds the "
        "BOS token itself.",
        file=sys.stderr,
    )
    spent = ", ".join(f"{part} {tokens}" for part, tokens in plan.spent.items())
    print(f"# budget: {spent}, reserved for the answer {engine.settings.max_answer_tokens}", file=sys.stderr)
    if prepared.search_query != args.question:
        print(f"# searched for: {prepared.search_query}", file=sys.stderr)
    if prepared.summary_update:
        print(
            f"# earlier in this conversation ({prepared.summary_update.folded_messages} messages summarized): "
            f"{prepared.summary_update.summary}",
            file=sys.stderr,
        )
    sys.stdout.write(prepared.prompt)
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    return 0


def cmd_ask(engine: Engine, args: argparse.Namespace) -> int:
    """One turn, saved like the app's: in a new conversation (holding --history, if given), or one more turn of
    --conversation ID."""
    _seed(engine)
    docs = _chosen_documents(engine, args.doc)
    if docs is None:
        return 1
    chat = _chat(engine)
    conversation_id = None
    if args.conversation is not None:
        if args.history is not None:
            raise RagError("--history and --conversation cannot be used together: a saved conversation has its own.")
        conversation_id = None if args.conversation == "new" else chat.conversations.resolve(args.conversation)
    earlier = _history(args.history)
    turn = chat.ask(
        args.question,
        conversation_id,
        _selected(docs),
        stopped=CLI_STOPPED,
        earlier=earlier,
        whole_document=args.whole_document,  # None: as the conversation was left (a new one: off)
    )
    if args.whole_document is not None:
        chat.set_whole_document(turn.conversation_id, args.whole_document)  # kept for its next questions
    choice = engine.chosen
    if choice.fallback or not args.json:
        print(f"# {choice.reason}", file=sys.stderr)
    if turn.whole_document:
        print(f"# reading the whole document: {turn.make_plan().describe()}", file=sys.stderr)
    elif turn.documents and asks_for_whole_document(args.question):
        print(
            "# this asks about a whole document: add --whole-document to read every part of it (top passages "
            "cannot list every item or summarize it all)",
            file=sys.stderr,
        )
    if docs and not args.json:
        print(f"# searching only: {', '.join(d.name for d in docs)}", file=sys.stderr)
    if args.conversation is not None:
        print(f"# conversation {turn.conversation_id}", file=sys.stderr)
    if not args.json:
        return _run_turn(turn)
    with turn:
        for _ in turn:
            pass
    message = turn.saved
    assert message is not None
    if args.conversation is not None:  # one more turn of a saved conversation: the answer as it was saved
        print(json.dumps({"conversation": turn.conversation_id, **asdict(message)}, ensure_ascii=False, indent=2))
        return 0 if turn.error is None else 1
    if turn.error is not None:
        print(f"error: {turn.error}", file=sys.stderr)
        return 1
    answer = turn.answer
    assert answer is not None
    searched = [d.name for d in turn.documents] or [d.name for d in engine.store.documents()]
    print(
        json.dumps(
            {
                "answer": answer.text,
                "sources": [
                    {"source": s.chunk.source, "page": s.chunk.page, "score": s.score, "text": s.chunk.text}
                    for s in answer.sources
                ]
                if not turn.whole_document
                else [asdict(s) for s in message.sources or []],  # the parts read, each with its note
                "usage": {
                    "prompt_tokens": answer.usage.prompt_tokens,
                    "completion_tokens": answer.usage.completion_tokens,
                    "seconds": answer.usage.seconds,
                },
                "backend": answer.backend,
                "model": answer.model,
                "searched_documents": searched,  # the --doc documents, else every document
                "conversation": turn.conversation_id,  # saved: `conversations show ID`, `ask --conversation ID`
            },
            ensure_ascii=False,
            indent=2,
        )
    )
    return 0


def _print_sources(sources: Sequence[RetrievedChunk], saved: Sequence[SavedSource] = ()) -> None:
    """Each source with its score, its id for `python -m rag show`, and its line that answers (when saved)."""
    if not sources:
        print("Sources: none matched in the knowledge base.")
        return
    print("Sources:")
    lines = {s.text: s for s in saved}
    for i, s in enumerate(sources, 1):
        kept = lines.get(s.chunk.text)
        if kept is not None and kept.line:
            said = f"“{' '.join(kept.line.split())[:120]}”"
        else:
            said = " ".join(s.chunk.text.split())[:100] + "…"
        print(
            terminal_safe(
                f"  {source_label(i, s)} (score {s.score:.2f}, {s.chunk.doc_id[:8]}:{s.chunk.position:05d}): {said}"
            )
        )


def _print_usage(answer: Answer) -> None:
    u = answer.usage
    if answer.backend == "none":
        print("[no model asked: nothing in the knowledge base is relevant]", file=sys.stderr)
    else:
        print(
            f"[{answer.backend} {answer.model}: {u.prompt_tokens} prompt tokens, {u.completion_tokens} answer "
            f"tokens, {u.seconds}s]",
            file=sys.stderr,
        )


def _chat(engine: Engine) -> Chat:
    return Chat(engine, "cli")


def _selected(docs: Sequence[DocumentRecord]) -> list[SelectedDocument] | None:
    """--doc given: the conversation's new choice; not given: None (the conversation keeps its own)."""
    return [SelectedDocument(d.doc_id, d.name) for d in docs] or None


def _run_turn(turn: Turn) -> int:
    """Stream one saved turn to stdout, then its sources; 1 when the answer failed (saved with the error)."""
    shown = None
    with turn:
        for piece in turn:
            if turn.progress is not None and turn.progress is not shown:  # whole documents: "part 12 of 40"
                shown = turn.progress
                print(f"# {shown.describe()}", file=sys.stderr)
            sys.stdout.write(piece)
            sys.stdout.flush()
    if turn.error is not None:
        if turn.text:
            print("\n")
            print(f"error: the answer was interrupted: {turn.error}", file=sys.stderr)
        else:
            print(f"error: {turn.error}", file=sys.stderr)
        return 1
    print("\n")
    assert turn.answer is not None
    if turn.whole_document:
        saved = turn.saved.sources if turn.saved is not None else None
        print(f"Read: {', '.join(dict.fromkeys(_part_label(s) for s in saved or []))}")  # each place once
    else:
        _print_sources(turn.answer.sources, turn.saved.sources or [] if turn.saved is not None else [])
    _print_usage(turn.answer)
    return 0


def _part_label(source: SavedSource) -> str:
    if source.page is None:
        return source.source
    pages = f"pages {source.page}–{source.last_page}" if source.last_page not in (None, source.page) else ""
    return f"{source.source} {pages or f'page {source.page}'}"


def cmd_chat(engine: Engine, args: argparse.Namespace) -> int:
    """Questions from stdin, one per line, answered and saved in one conversation; /quit (or EOF) ends."""
    _seed(engine)
    docs = _chosen_documents(engine, args.doc)
    if docs is None:
        return 1
    chat = _chat(engine)
    conversation_id = chat.conversations.resolve(args.conversation) if args.conversation else None
    documents = _selected(docs)
    interactive = sys.stdin.isatty()
    print(f"# {engine.chosen.reason}", file=sys.stderr)
    whole = args.whole_document  # None: as the conversation was left (a new one: off)
    if conversation_id is not None:
        earlier = chat.conversations.get(conversation_id)
        print(
            f"# continuing {earlier.title or 'an untitled conversation'} ({len(earlier.messages)} messages)",
            file=sys.stderr,
        )
        chosen = documents or earlier.doc_filter
        if chosen and (earlier.whole_document if whole is None else whole):
            names = ", ".join(d.name for d in chosen)
            print(f"# reading the chosen documents whole: {names} (--no-whole-document searches them)", file=sys.stderr)
    if interactive:
        print("# one question per line; /quit or Ctrl-D ends; the conversation is saved", file=sys.stderr)
    failed = 0
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not interactive and not line:
            break  # end of input
        question = line.strip()
        if question in ("/quit", "/exit"):
            break
        if not question:
            continue
        turn = chat.ask(question, conversation_id, documents, stopped=CLI_STOPPED, whole_document=whole)
        if whole is not None:
            chat.set_whole_document(turn.conversation_id, whole)  # --whole-document or not: saved, as --doc is
        if conversation_id is None:
            print(f"# conversation {turn.conversation_id}", file=sys.stderr)
        # Later turns keep the saved choices: the documents, and whether they are read whole.
        conversation_id, documents, whole = turn.conversation_id, None, None
        if not interactive:
            print(f"you> {question}")
        if turn.whole_document:
            print(f"# reading the whole document: {turn.make_plan().describe()}", file=sys.stderr)
        failed += _run_turn(turn)
    if conversation_id is not None:
        print(f"# saved: `python -m rag conversations show {conversation_id[:8]}`", file=sys.stderr)
    return 1 if failed else 0


def _conversations(engine: Engine) -> ConversationStore:
    return engine.conversations


def cmd_conversations_list(engine: Engine, args: argparse.Namespace) -> int:
    infos = _conversations(engine).list()
    if not infos:
        print("No saved conversations yet: start one with `python -m rag chat` or in the app.")
        return 0
    # MODE: "whole" for a conversation that reads its chosen documents whole (the app's book icon), else "search".
    print(f"{'ID':<10} {'MESSAGES':>8}  {'LAST MESSAGE':<26} {'MODE':<6} TITLE")
    for info in infos:
        mode = "whole" if info.whole_document else "search"
        print(f"{info.id[:8]:<10} {info.messages:>8}  {info.updated_at:<26} {mode:<6} {info.title or '(untitled)'}")
    return 0


def cmd_conversations_show(engine: Engine, args: argparse.Namespace) -> int:
    store = _conversations(engine)
    sys.stdout.write(conversation_markdown(store.get(store.resolve(args.id)), engine.settings.kb))
    return 0


def cmd_conversations_export(engine: Engine, args: argparse.Namespace) -> int:
    store = _conversations(engine)
    conversation = store.get(store.resolve(args.id))
    base = engine.settings.kb
    if args.format == "json":
        text = conversation_json(conversation, base) + "\n"
    else:
        text = conversation_markdown(conversation, base)
    sys.stdout.write(text)
    return 0


def cmd_conversations_delete(engine: Engine, args: argparse.Namespace) -> int:
    store = _conversations(engine)
    conversation_id = store.resolve(args.id)
    title = store.get(conversation_id).title
    store.delete(conversation_id)
    print(f"Deleted conversation {conversation_id[:8]} ({title or 'untitled'}).")
    return 0


def _chosen_documents(engine: Engine, names: Sequence[str]) -> list[DocumentRecord] | None:
    """The documents named by --doc (each once, in order); None after saying which name is unknown."""
    docs: list[DocumentRecord] = []
    for name in names:
        doc = engine.store.find(name)
        if doc is None:
            print(f"No document named {name!r}: see `python -m rag docs` for names and ids.", file=sys.stderr)
            return None
        if doc.doc_id not in {d.doc_id for d in docs}:
            docs.append(doc)
    return docs


def _doc_ids(docs: Sequence[DocumentRecord]) -> list[str] | None:
    return [d.doc_id for d in docs] or None  # None: search every document


def cmd_serve(engine: Engine, args: argparse.Namespace) -> int:
    """The HTTP API in this process until Ctrl-C; answers follow the settings as saved (read per request)."""
    from rag.api import Engines, create_app, serve
    from rag.api_keys import ApiKeys

    _seed(engine)
    settings = engine.settings
    host, port = args.host or settings.api_host, args.port or settings.api_port
    keys = ApiKeys.in_data_dir(settings.data_dir)
    app = create_app(Engines(Settings.load, seed=engine), keys, settings)
    print(f"# HTTP API on http://{host}:{port}/v1 — what it offers: http://{host}:{port}/docs", file=sys.stderr)
    print(f"# answering with {engine.chosen.reason}", file=sys.stderr)
    if not any(k.active for k in keys.list()):
        print("# no API key yet: create one with `python -m rag keys create NAME`", file=sys.stderr)
    if settings.api_loopback_without_key:
        print("# requests from this machine need no key (RAG_API_LOOPBACK_WITHOUT_KEY)", file=sys.stderr)
    serve(app, host, port)
    return 0


def cmd_keys_create(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    record, secret = ApiKeys.in_data_dir(engine.settings.data_dir).create(args.name)
    print(f"# key {record.name!r} created; it is shown this once (only its hash is kept):", file=sys.stderr)
    print(secret)
    return 0


def cmd_keys_list(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    listed = ApiKeys.in_data_dir(engine.settings.data_dir).list()
    if not listed:
        print("No API keys yet: create one with `python -m rag keys create NAME`.")
        return 0
    print(f"{'NAME':<24} {'KEY':<16} {'CREATED':<26} {'LAST USED':<26} REVOKED")
    for k in listed:
        print(f"{k.name[:24]:<24} {k.shown:<16} {k.created_at:<26} {k.last_used_at or '-':<26} {k.revoked_at or '-'}")
    return 0


def cmd_keys_revoke(engine: Engine, args: argparse.Namespace) -> int:
    from rag.api_keys import ApiKeys

    record = ApiKeys.in_data_dir(engine.settings.data_dir).revoke(args.name)
    print(f"Revoked {record.name} ({record.shown}): requests with it are refused from now on.")
    return 0


def cmd_usage(engine: Engine, args: argparse.Namespace) -> int:
    from rag.usage import format_report, usage_of, usage_report

    end = args.end or date.today()
    start = args.start or end - timedelta(days=29)
    try:
        report = usage_report(usage_of(engine), start, end, args.by, engine.settings.prices)
    except ValueError as exc:
        raise RagError(f"--from {start} --to {end}: {exc}.") from exc
    if args.answers_csv:
        sys.stdout.write(report.turns_csv())
    elif args.csv:
        sys.stdout.write(report.periods_csv())
    else:
        print(format_report(report))
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD, e.g. 2026-12-01") from None


def cmd_eval(engine: Engine, args: argparse.Namespace) -> int:
    from rag.retrieval import without
    from rag.tools.evaluation import evaluate, evaluate_suite, evaluate_tutorial, format_suite, load_questions

    settings = engine.settings.with_overrides(
        top_k=args.top_k,
        context_chars=args.context_chars,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        min_score=args.min_score,
        profile=args.profile,
        rerank=args.rerank,
    )
    options = replace(retrieval_options(settings), mode=args.mode, fusion=args.fusion)
    options = without(options, args.without)
    if args.suite is not None:
        with _measurement_requirements("eval --suite"):
            suite = evaluate_suite(
                args.suite,
                settings,
                engine.embedder,
                options,
                cache=args.cache,
                tutorial=not args.no_tutorial,
                stages=args.stages,
                only=args.domain,
                progress=lambda name: print(f"# {name}", file=sys.stderr),
            )
        print(suite.to_json() if args.json else "\n".join(format_suite(suite)))
        return 0
    if args.qa is None:
        raise RagError("--docs needs --qa FILE.jsonl (the questions with their gold answers).")
    questions = load_questions(args.qa, args.limit, args.seed)
    backend = None
    if args.answer:
        backend = engine.chosen.backend
        print(f"# {engine.chosen.reason}", file=sys.stderr)
    with _measurement_requirements("eval --pipeline tutorial"):
        if args.pipeline == "tutorial":
            report = evaluate_tutorial(args.docs, questions, engine.embedder, cache=args.cache)
        else:
            report = evaluate(
                args.docs,
                questions,
                settings,
                engine.embedder,
                options,
                backend,
                cache=args.cache,
                stages=args.stages,
                declines=not args.no_declines,
            )
    if args.json:
        print(report.to_json())
        return 0
    if report.pipeline == "tutorial":
        print(
            f"{report.questions} questions, the LangChain tutorial pipeline: {report.chunks} chunks "
            f"({report.chunk_size}/{report.chunk_overlap} chars), dense top-{report.top_k}, "
            f"ingest {report.ingest_seconds}s"
        )
        _print_context_figures(report)
        return 0
    print(
        f"{report.questions} questions, {report.chunks} chunks ({report.chunk_size}/{report.chunk_overlap} chars), "
        f"{report.mode} ({report.fusion}) top-{report.top_k} within {report.context_chars} chars, "
        f"threshold {report.min_score}, "
        f"ingest {report.ingest_seconds}s"
    )
    _print_context_figures(report)
    print("hit@" + "  hit@".join(f"{k} {v:.3f}" for k, v in report.hit_at.items()) + f"  MRR {report.mrr:.3f}")
    if report.stages:
        print("after each stage   " + "  ".join(f"{stage} {share:.3f}" for stage, share in report.stages.items()))
    for split, figures in report.by_split.items():
        print(
            f"{split} half            answer in context {figures.answer_in_context:.3f} ({figures.questions} questions)"
        )
    if report.correct_declines is not None and report.false_declines is not None:
        print(
            f"declines            {report.correct_declines:.1%} correct (asked of the half without the document), "
            f"{report.false_declines:.1%} false (asked of the half with it), {report.decline_questions} questions"
        )
    if report.answers is not None:
        a = report.answers
        print(
            f"answers ({a.backend} {a.model}): {a.answer_contains_gold:.3f} contain a gold answer, "
            f"{a.mean_seconds:.1f} s each"
        )
        for sample in a.samples:
            print(f"  Q: {sample['question']}\n     gold: {sample['gold']}\n     answer: {sample['answer'][:200]}")
    return 0


def _print_context_figures(report: Any) -> None:
    if report.evidence_in_context is not None:
        print(
            f"evidence in context {report.evidence_in_context:.3f}  ({report.evidence_questions} questions with "
            "evidence pages: a passage from one of them is in the prompt)"
        )
    print(
        f"answer in context   {report.answer_in_context:.3f}  ({report.answer_questions} questions with gold "
        f"answers; mean context {report.mean_context_chars:.0f} chars, ~{report.mean_context_tokens:.0f} tokens)"
    )
    print(f"document hit@1      {report.doc_hit_at_1:.3f}  hit@4 {report.doc_hit_at_4:.3f}")
    print(f"retrieval latency   p50 {report.latency_p50_ms:.1f} ms, p95 {report.latency_p95_ms:.1f} ms")


def cmd_bench(engine: Engine, args: argparse.Namespace) -> int:
    from rag.tools.bench import format_report, run_bench

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise RagError(f"--sizes {args.sizes!r}: give chunk counts separated by commas, e.g. 1000,10000.") from exc
    s = engine.settings
    if args.real or args.suite:
        return _bench_real(engine, args, sizes)
    with _measurement_requirements("bench"):
        report = run_bench(
            args.docs,
            engine.embedder,
            s.chunk_size,
            s.chunk_overlap,
            s.top_k,
            sizes,
            args.queries,
            repeat=args.repeat,
            progress=lambda message: print(f"# {message}", file=sys.stderr, flush=True),
            chroma_url=normalize_host(args.chroma_url).rstrip("/") if args.chroma_url else None,
            tutorial=not args.no_tutorial,
        )
    print(report.to_json() if args.json else format_report(report))
    return 0


def _bench_real(engine: Engine, args: argparse.Namespace, sizes: list[int]) -> int:
    """`bench --real DIR… --qa FILE` or `bench --suite SUITE.json`: real documents, real questions."""
    import random

    from rag.tools.evaluation import load_questions, load_suite
    from rag.tools.realbench import bench_real_retrieval, format_real

    folders = list(args.real)
    question_files = [args.qa] if args.qa else []
    if args.suite:
        domains = load_suite(args.suite)
        folders += [d.docs for d in domains]
        question_files += [d.qa for d in domains]
    if not question_files:
        raise RagError("bench --real needs questions to time: add --qa FILE.jsonl (or use --suite).")
    questions = [q.question for path in question_files for q in load_questions(path)]
    random.Random(0).shuffle(questions)
    figures = bench_real_retrieval(
        folders,
        questions[: args.queries],
        engine.embedder,
        engine.settings,
        sizes or [0],
        cache=args.cache,
        options=retrieval_options(engine.settings),
        progress=lambda message: print(f"# {message}", file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(format_real(figures))
    return 0


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
    from rag.sync import SourceStore

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

    from rag.sync import SourceStore, Syncer, SyncProgress, watch, watched_paths

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


# What `bench` and `eval --pipeline tutorial` measure against (the usual tutorial's parts): development
# requirements (requirements-dev.txt), not the app's.
MEASUREMENT_ONLY = ("langchain_chroma", "pypdf")


@contextmanager
def _measurement_requirements(command: str) -> Iterator[None]:
    """A measurement-only package missing (a runtime-only install): say how to install it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name not in MEASUREMENT_ONLY:
            raise
        raise RagError(
            f"`python -m rag {command}` compares with the usual tutorial pipeline, whose {exc.name} is a development "
            "requirement: install them with `.venv/bin/pip install -r requirements-dev.txt` (`make setup` does)."
        ) from exc


def _seed(engine: Engine) -> None:
    results = engine.ensure_default_corpus()
    if results:
        print(
            f"# first start: indexed the default knowledge base ({len(results)} documents from "
            f"{engine.settings.corpus_dir})",
            file=sys.stderr,
        )


def _history(path: Path | None) -> list[Message]:
    if path is None:
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [Message(m["role"], str(m["content"])) for m in raw if m["role"] in ("user", "assistant")]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(
            f'--history {path}: expected a JSON list of {{"role": "user"|"assistant", "content": …}} ({exc}).'
        ) from exc


if __name__ == "__main__":
    sys.exit(main())
