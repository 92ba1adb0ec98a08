"""The command line's question commands: ask, prompt, chat, show (a source of an answer where it stands) and the saved
conversations, with the helpers that stream a turn and print its sources."""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rag.cli.common import index_default_corpus
from rag.config import BACKENDS
from rag.conversations import ConversationStore, SavedSource, SelectedDocument, StoredMessage
from rag.engine import Engine
from rag.errors import RagError
from rag.exports import conversation_json, conversation_markdown
from rag.formatting import terminal_safe
from rag.prompts import source_label
from rag.registry import DocumentRecord
from rag.schema import Answer, Chunk, Message, RetrievedChunk
from rag.turn import Chat, Turn, asks_for_whole_document, prepare

# Saved as the error of an answer stopped with Ctrl-C.
CLI_STOPPED = "it was stopped (Ctrl-C) before the answer finished; what had arrived is kept."
# After Ctrl-C, how long to wait for the answer's thread to end (the built-in model stops within milliseconds; a
# server's answer ends at its next piece) before going on without it.
STOP_WAIT_S = 10.0


def add_commands(sub: Any) -> None:
    """The ask, prompt, chat, show and conversations commands."""
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


def cmd_prompt(engine: Engine, args: argparse.Namespace) -> int:
    index_default_corpus(engine)
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
    index_default_corpus(engine)
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
    try:
        _read_turn(turn, lambda piece: None)
    except KeyboardInterrupt:  # what had arrived is saved, marked stopped: a script still gets it, as saved
        if turn.saved is not None:
            _print_saved(turn.conversation_id, turn.saved)
        raise
    message = turn.saved
    assert message is not None
    if args.conversation is not None:  # one more turn of a saved conversation: the answer as it was saved
        _print_saved(turn.conversation_id, message)
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

    def show(piece: str) -> None:
        nonlocal shown
        if turn.progress is not None and turn.progress is not shown:  # whole documents: "part 12 of 40"
            shown = turn.progress
            print(f"# {shown.describe()}", file=sys.stderr)
        sys.stdout.write(piece)
        sys.stdout.flush()

    _read_turn(turn, show)
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


def _print_saved(conversation_id: str, message: StoredMessage) -> None:
    print(json.dumps({"conversation": conversation_id, **asdict(message)}, ensure_ascii=False, indent=2), flush=True)


def _read_turn(turn: Turn, show: Callable[[str], None]) -> None:
    """Run the turn in a thread of its own and show its pieces as they arrive, so that Ctrl-C stops the model at
    once: Python runs a signal handler only between the main thread's calls into C, and the built-in model reads a
    long prompt in calls of seconds (a minute with a 7B model on a CPU). On Ctrl-C the answer is saved as it
    stands, marked stopped, the model stops (`Turn.save_stopped`), and KeyboardInterrupt goes on once the turn's
    thread has ended (or STOP_WAIT_S has passed)."""
    arrived: queue.Queue[tuple[str | None, BaseException | None]] = queue.Queue()
    interrupted = threading.Event()

    def hand_over(piece: str) -> bool:
        if interrupted.is_set():
            return False
        arrived.put((piece, None))
        return True

    reader: threading.Thread | None = None
    try:
        reader = turn.run_in_thread(hand_over, lambda failure: arrived.put((None, failure)), name="answer")
        while True:
            piece, failure = arrived.get()
            if failure is not None:
                raise failure
            if piece is None:
                return
            show(piece)
    except KeyboardInterrupt:
        interrupted.set()
        turn.save_stopped()
        if reader is not None and reader.is_alive():
            reader.join(STOP_WAIT_S)
        raise


def _part_label(source: SavedSource) -> str:
    if source.page is None:
        return source.source
    pages = f"pages {source.page}–{source.last_page}" if source.last_page not in (None, source.page) else ""
    return f"{source.source} {pages or f'page {source.page}'}"


def cmd_chat(engine: Engine, args: argparse.Namespace) -> int:
    """Questions from stdin, one per line, answered and saved in one conversation; /quit (or EOF) ends."""
    index_default_corpus(engine)
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
        try:
            failed += _run_turn(turn)
        except KeyboardInterrupt:  # Ctrl-C during an answer stops it; at the prompt it ends the chat
            then = "ask on, or /quit" if interactive else "going on"
            print(f"\n# stopped: what had arrived is saved; {then}", file=sys.stderr)
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
