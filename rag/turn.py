"""One chat turn, from question to saved answer: the one pipeline of the chat page, the CLI and the HTTP API.

    question ─► rewrite a follow-up so it stands alone (rag/followup.py; only when it leans on earlier turns)
             ─► retrieve once (`retrieve`, the one call into rag/retrieval.py)
             ─► plan the window: system prompt, numbered passages, summary, history, question (rag/prompts.py)
             ─► fold older turns into the running summary when they no longer fit (rag/summary.py), and plan
                again with the same passages
             ─► stream the answer (rag/backends/)
             ─► save the question and the answer with its sources, usage, prompt, budget and channel, and the
                new summary (rag/conversations.py)

``Chat(engine, channel).ask(question, conversation_id)`` returns a ``Turn``; nothing runs until it is iterated.
However the turn ends — at the last piece, on a backend failure, or when its reader stops (a click in the app,
Ctrl-C in a terminal, an HTTP client hanging up) — the answer is saved, a partial one with the reason it
stopped. Use the turn as a context manager, so that a reader who stops early still gets it saved:

    with Chat(engine, "cli").ask("What changed in Q3?", conversation_id) as turn:
        for piece in turn:
            show(piece)
    turn.saved  # the assistant's StoredMessage

``prepare`` is the part before the answer, alone (``python -m rag prompt`` prints its prompt and asks no model);
``stream_answer`` streams a prepared turn without saving it. ``Engine`` (rag/engine.py) builds and holds the
parts a turn uses: settings, store, retriever, backend, saved conversations.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from types import TracebackType

from rag.answer_line import Ranking, checkable_sources, keyword_coverage, ranking_scores
from rag.backends.base import GenerationOptions, LLMBackend, StopSignal, complete_with
from rag.config import Settings
from rag.conversations import (
    Channel,
    Conversation,
    ConversationStore,
    PromptBudget,
    SavedSource,
    SavedUsage,
    SelectedDocument,
    StoredMessage,
    resolve_doc_filter,
)
from rag.engine import Engine
from rag.errors import RagError
from rag.followup import standalone_question
from rag.prompts import PromptPlan, plan_prompt
from rag.schema import Answer, Message, RetrievedChunk, Usage
from rag.speed import METER
from rag.summary import summarize
from rag.whole_document import Note, Plan, Progress, WholeDocumentAnswer, WholeDocumentError, asks_for_whole_document
from rag.whole_document import plan as plan_whole

__all__ = [
    "EMPTY_KNOWLEDGE_BASE",
    "NOTHING_RELEVANT",
    "STOPPED",
    "AnswerStream",
    "Channel",
    "Chat",
    "PreparedTurn",
    "Retrieval",
    "SummaryUpdate",
    "Turn",
    "asks_for_whole_document",
    "prepare",
    "retrieve",
    "stream_answer",
    "whole_document_plan",
]

logger = logging.getLogger(__name__)

EMPTY_KNOWLEDGE_BASE = (
    "Your knowledge base is empty, so there is nothing to answer from. Add documents on the Documents page "
    "(or with `python -m rag ingest PATH`) and ask again."
)
NOTHING_RELEVANT = (
    "I could not find anything about this in your documents. Try rephrasing with words the documents use, "
    "or add a document that covers it."
)
# Saved as the error of an answer its reader stopped; each channel may word it for its readers.
STOPPED = "it stopped before the answer finished; what had arrived is kept above."


# -- the steps before the answer ------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryUpdate:
    """Older turns folded into the running summary while preparing this turn."""

    summary: str
    folded_messages: int  # how many of the oldest history messages the summary now stands for


@dataclass(frozen=True)
class Retrieval:
    """What one search of the knowledge base found for a turn (done once per turn, whatever follows)."""

    query: str  # what was searched for (a follow-up rewritten to stand alone)
    selected: list[RetrievedChunk]  # past the evidence gate, the threshold and the size limit
    seconds: float
    knowledge_base_empty: bool
    ranking: Ranking | None = None  # the score that ranked each passage, and which stage's it is


@dataclass(frozen=True)
class PreparedTurn:
    question: str
    plan: PromptPlan
    prompt: str  # exactly what the backend sends
    retrieval: Retrieval
    summary_update: SummaryUpdate | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.plan.sources

    @property
    def retrieved(self) -> list[RetrievedChunk]:
        """What retrieval selected (evidence, threshold, size), before the token budget."""
        return self.retrieval.selected

    @property
    def search_query(self) -> str:
        return self.retrieval.query

    @property
    def decline(self) -> str | None:
        """The plain reply given instead of calling the model when no source is relevant."""
        if self.retrieval.knowledge_base_empty:
            return EMPTY_KNOWLEDGE_BASE
        return None if self.sources else NOTHING_RELEVANT


def retrieve(engine: Engine, query: str, doc_ids: Sequence[str] | None = None) -> Retrieval:
    """The passages the turn gives the model for `query`, searched once: the turn's one call into retrieval.

    `doc_ids` limits the search to those documents (None: every document).
    """
    settings = engine.settings
    result = engine.retriever.retrieve(
        query,
        top_k=settings.top_k,
        min_score=settings.min_score,
        max_chars=settings.context_chars,
        doc_ids=doc_ids,
    )
    return Retrieval(
        query,
        result.selected,
        result.seconds,
        knowledge_base_empty=result.knowledge_base_empty,
        ranking=ranking_scores(result),
    )


def _plan(
    question: str,
    history: Sequence[Message],
    retrieval: Retrieval,
    backend: LLMBackend,
    settings: Settings,
    summary: str,
) -> PreparedTurn:
    """Fit the system prompt, the passages, the summary, the history and the question into the backend's
    window minus the answer's reserve; render the prompt once (what is shown is what is sent)."""
    plan = plan_prompt(
        system_prompt=settings.system_prompt,
        question=question,
        history=history,
        sources=retrieval.selected,
        count_tokens=backend.count_tokens,
        budget=backend.context_window - settings.max_answer_tokens,
        summary=summary,
    )
    return PreparedTurn(question, plan, backend.render(plan.messages), retrieval)


def prepare(
    engine: Engine,
    question: str,
    history: Sequence[Message] = (),
    doc_ids: Sequence[str] | None = None,
    summary: str = "",
    call_model: bool = True,
) -> PreparedTurn:
    """Everything up to the answer: rewrite a follow-up for retrieval, retrieve (once), fit the window.

    When older turns do not fit and the strategy is "summarize", they are folded into the running summary
    (one model call) and the prompt is planned again with it; `summary_update` says so. With
    `call_model=False` (`python -m rag prompt`) no model is asked: the question is searched as it is and no
    new summary is written.
    """
    settings, backend = engine.settings, engine.chosen.backend
    rewrite = bool(history) and call_model
    query = standalone_question(question, history, complete_with(backend)) if rewrite else question
    retrieval = retrieve(engine, query, doc_ids)
    prepared = _plan(question, history, retrieval, backend, settings, summary)
    dropped = prepared.plan.history_dropped
    if dropped and call_model and settings.history_strategy == "summarize" and not prepared.decline:
        new_summary = summarize(summary, list(history[:dropped]), complete_with(backend, max_tokens=200))
        # The same passages, planned again with the summary standing for the folded turns.
        prepared = _plan(question, history[dropped:], retrieval, backend, settings, new_summary)
        prepared = replace(prepared, summary_update=SummaryUpdate(new_summary, dropped))
    return prepared


# -- the answer -----------------------------------------------------------------------------------------


class AnswerStream:
    """Iterate for the answer's text as it is generated; then `answer` holds the whole of it.

    When no source is relevant the model is not called: the reply says so plainly, with no citation to
    invent. If the backend fails mid-way, `text` keeps what had arrived.
    """

    def __init__(self, prepared: PreparedTurn, backend: LLMBackend, options: GenerationOptions) -> None:
        self.prepared = prepared
        self.backend_name = backend.name
        self.model = backend.model
        # The prompt planned (and shown in the inspector) is the one sent: rendered once.
        self._tokens = None if prepared.decline else backend.stream(prepared.plan.messages, options, prepared.prompt)
        self.text = ""
        self.answer: Answer | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.prepared.sources

    def __iter__(self) -> Iterator[str]:
        pieces: Iterable[str] = self._tokens if self._tokens is not None else [self.prepared.decline or ""]
        for piece in pieces:
            self.text += piece
            yield piece
        usage = self._tokens.usage if self._tokens is not None else None
        self.answer = Answer(
            text=self.text.strip(),
            sources=self.sources,
            usage=usage or Usage(),
            backend=self.backend_name if self._tokens is not None else "none",
            model=self.model if self._tokens is not None else "none",
        )

    def collect(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer


def stream_answer(engine: Engine, prepared: PreparedTurn, stop: StopSignal | None = None) -> AnswerStream:
    """The answer to a prepared turn from the engine's backend, at the settings' length and temperature; `stop`, set
    from another thread, ends the model's work at once (see GenerationOptions)."""
    backend = engine.chosen.backend
    options = GenerationOptions(
        context_window=backend.context_window,
        max_tokens=engine.settings.max_answer_tokens,
        temperature=engine.settings.temperature,
        stop=stop,
    )
    return AnswerStream(prepared, backend, options)


# -- whole documents ------------------------------------------------------------------------------------


def whole_document_plan(engine: Engine, question: str, documents: Sequence[SelectedDocument]) -> Plan:
    """How a whole-document answer to `question` reads `documents`: its parts, model calls and about how long,
    from the measured speed of the active backend (measured with one short call when it has none yet)."""
    backend = engine.chosen.backend
    chosen = [(d.doc_id, d.name, engine.store.chunks_of(d.doc_id)) for d in documents]
    speed = METER.measure(backend)
    return plan_whole(question, chosen, backend, speed, engine.settings.whole_part_tokens)


# -- a saved turn ---------------------------------------------------------------------------------------


def _no_documents() -> WholeDocumentError:
    return WholeDocumentError(
        "Choose the documents to read whole first (Search only these documents, or --doc NAME): reading "
        "every document of the knowledge base for one question would take too long."
    )


class Chat:
    """Conversations on one engine, asked through one channel (app, cli, api): one saved turn at a time."""

    def __init__(self, engine: Engine, channel: Channel) -> None:
        self.engine = engine
        self.channel: Channel = channel

    @property
    def conversations(self) -> ConversationStore:
        return self.engine.conversations

    def start(
        self,
        documents: Sequence[SelectedDocument] = (),
        earlier: Sequence[Message] = (),
        whole_document: bool = False,
    ) -> str:
        """A new conversation with the current settings, limited to ``documents`` (empty: all), reading them
        whole if ``whole_document``. ``earlier``: messages exchanged before it (a client's history,
        `rag ask --history`), saved first as its history."""
        conversation_id = self.conversations.create(
            settings=self.engine.settings.editable(), doc_filter=documents, whole_document=whole_document
        )
        for message in earlier:
            if message.role != "system":
                self.conversations.add_message(conversation_id, message.role, message.content, channel=self.channel)
        return conversation_id

    def ask(
        self,
        question: str,
        conversation_id: str | None = None,
        documents: Sequence[SelectedDocument] | None = None,
        *,
        stopped: str = STOPPED,
        earlier: Sequence[Message] = (),
        whole_document: bool | None = None,
    ) -> Turn:
        """A turn of the conversation (a new one, holding ``earlier``, when ``conversation_id`` is None);
        nothing runs until it is iterated. ``documents``: the documents to search, saved as the
        conversation's choice; None keeps the conversation's own. A chosen document deleted since is left
        out. ``stopped`` is the error saved when the reader stops early.

        ``whole_document``: read every chunk of the chosen documents instead of searching them
        (rag/whole_document.py). None: as the conversation's saved switch says (``set_whole_document``; it
        applies only while the conversation has chosen documents). True or False: this turn only, except that a
        new conversation is saved with it. Asked for explicitly without chosen documents, it is an error."""
        if whole_document and conversation_id is None and not documents:
            raise _no_documents()  # said before a conversation is made for nothing
        if conversation_id is None:
            conversation_id = self.start(documents or (), earlier, whole_document=bool(whole_document))
        elif earlier:
            raise ValueError("earlier messages start a new conversation: a saved one has its own history")
        conversation = self.conversations.get(conversation_id)
        if documents is not None and list(documents) != conversation.doc_filter:
            self.conversations.set_doc_filter(conversation_id, documents)
            conversation = self.conversations.get(conversation_id)
        kept: list[SelectedDocument] = []
        if conversation.doc_filter:  # the document list is read only when there is a choice to check
            kept, _gone = resolve_doc_filter(conversation.doc_filter, self.engine.documents())
        if whole_document and not kept:
            raise _no_documents()
        whole = conversation.whole_document and bool(kept) if whole_document is None else whole_document
        return Turn(self.engine, conversation, question, kept, self.channel, stopped, whole)

    def set_whole_document(self, conversation_id: str, on: bool) -> None:
        """Switch reading the chosen documents whole on or off for the conversation's later questions (saved)."""
        self.conversations.set_whole_document(conversation_id, on)


class Turn:
    """One question and its answer. Iterate for the answer's text as it streams; afterwards ``saved`` is the
    assistant's message as stored, ``text`` what arrived, ``error`` why it stopped early (else None).

    A whole-document turn yields "" at each step of its progress (``progress``: "part 12 of 40"); ``plan``
    says before it starts how many model calls it takes and about how long. Stopped, it saves what the parts
    read so far found.

    The answer is saved once: by the turn's own thread when it ends, or before that by ``save_stopped`` from
    another thread (a reader gone while the model is silent)."""

    def __init__(
        self,
        engine: Engine,
        conversation: Conversation,
        question: str,
        documents: Sequence[SelectedDocument],
        channel: Channel,
        stopped: str,
        whole_document: bool = False,
    ) -> None:
        self.conversation_id = conversation.id
        self.whole_document = whole_document
        self.plan: Plan | None = None  # whole-document turns: set by `make_plan`, or when the turn starts
        self.progress: Progress | None = None  # whole-document turns: the last step done
        self._notes: list[SavedSource] = []
        self.question = question
        self.documents = list(documents)
        self.channel: Channel = channel
        self.text = ""
        self.error: str | None = None
        self.failure: Exception | None = None  # what made it fail (a RagError says what to do), else None
        self.prepared: PreparedTurn | None = None
        self.answer: Answer | None = None
        self.saved: StoredMessage | None = None
        self._engine = engine
        self._conversations = engine.conversations
        self._conversation = conversation
        self._stopped = stopped
        self._save_lock = threading.Lock()  # the turn's thread and `save_stopped` save once between them
        self._asked = False  # the question is saved: an answer saved now comes after it
        self._whole_run: WholeDocumentAnswer | None = None
        self._stop = StopSignal()  # set by `save_stopped`: the model stops at once, even in the middle of a prompt
        self._pieces = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def __enter__(self) -> Turn:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run_in_thread(
        self, hand_over: Callable[[str], bool], at_end: Callable[[BaseException | None], None], name: str
    ) -> threading.Thread:
        """Run the turn to its end in a daemon thread of its own (the model blocks for seconds inside its calls),
        handing each piece to ``hand_over``, then calling ``at_end`` with what made it fail (None when it ended,
        however it ended). ``hand_over`` returns False when nobody reads any more: the turn then ends, what arrived
        saved as stopped. A reader that goes while the model is silent calls ``save_stopped`` as well, which ends
        the model's work at once. The shape shared by a terminal (Ctrl-C) and the HTTP API (a client hanging up)."""

        def run() -> None:
            failure: BaseException | None = None
            try:
                with self:  # leaving it closes the answer: a server stops generating
                    for piece in self:
                        if not hand_over(piece):
                            break
            except BaseException as exc:  # handed to whoever waits, in its own thread
                failure = exc
            finally:
                at_end(failure)

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread

    def make_plan(self) -> Plan:
        """A whole-document turn's plan (calls, parts, about how long), made before it starts."""
        if self.plan is None:
            self.plan = whole_document_plan(self._engine, self.question, self.documents)
        return self.plan

    def close(self) -> None:
        """Stop the answer (the model stops generating) and save what arrived; nothing if it never started."""
        self._pieces.close()

    def save_stopped(self) -> bool:
        """Save the answer as it stands, as stopped, from another thread than the one reading it: for a reader that
        has gone (a click in the app) while the model is silent (reading a long prompt, or one part of a
        whole-document answer), the reading thread learning of it only at the model's next piece. Whoever opens
        the conversation next sees the answer at once; what arrives afterwards is not saved. The model's work then
        ends at once with the built-in model (llama.cpp gives up even in the middle of reading the prompt, so the
        next question does not wait for it); a server's connection is shut. True once the answer is saved (now or
        before); False while the question is not saved yet: the turn then saves itself, stopped, as soon as it has
        saved its question (the model is not called)."""
        self._stop.set()  # first: a turn whose question is not saved yet then saves itself as stopped, at once
        with self._save_lock:
            if self.saved is not None:
                return True
            if not self._asked:
                return False
            self.error = self._stopped
            if (run := self._whole_run) is not None:
                self._take_whole(run)
                if not run.finished:
                    self.text = run.partial()  # what the run itself keeps when stopped: the parts read so far
            self.saved = self._save()
            return True

    def _run(self) -> Generator[str, None, None]:
        conversation = self._conversation
        history = conversation.history(after=conversation.summarized_through)
        self._conversations.add_message(conversation.id, "user", self.question, channel=self.channel)
        self._asked = True
        stream: AnswerStream | None = None
        pieces: Iterator[str] | None = None
        try:
            if self._stop.is_set():  # stopped before its question was saved: the model is not called
                return
            if self.whole_document:
                pieces = self._whole()
                yield from pieces
            else:
                doc_ids = [d.doc_id for d in self.documents] or None  # None: every document
                self.prepared = prepare(self._engine, self.question, history, doc_ids, conversation.summary)
                stream = stream_answer(self._engine, self.prepared, self._stop)
                pieces = iter(stream)
                for piece in pieces:
                    self.text += piece
                    yield piece
                self.answer = stream.answer
        except RagError as exc:  # a message of ours that says what to do: shown with the partial answer
            logger.info("answer failed: %s", exc)
            self.error, self.failure = str(exc), exc
        except Exception as exc:  # a bug or a library error without a message of ours: keep the turn anyway
            logger.exception("answer failed unexpectedly")
            self.failure = exc
            self.error = (
                f"unexpected error ({type(exc).__name__}: {exc}). Ask again; if it keeps happening, the details "
                "are in the log of the app (the terminal that runs it)."
            )
        except BaseException:  # the reader stopped: GeneratorExit (close), Ctrl-C, Streamlit's rerun
            self.error = self._stopped
            raise
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # stop the model generating an answer nobody reads
            with self._save_lock:
                if self.saved is None:  # else `save_stopped` saved it, stopped, from another thread
                    if self._stop.is_set() and self.error is None:  # stopped before its question was saved
                        self.error = self._stopped
                    self.saved = self._save()

    def _whole(self) -> Generator[str, None, None]:
        """Every chunk of the chosen documents read in order (map), the notes combined (reduce)."""
        backend = self._engine.chosen.backend
        run = WholeDocumentAnswer(
            self.make_plan(), backend, temperature=self._engine.settings.temperature, stop=self._stop
        )
        self._whole_run = run
        events = iter(run)
        try:
            for event in events:
                if isinstance(event, Progress):
                    self.progress = event
                    if event.note is not None:
                        self._notes.append(_note_source(event.note))
                    yield ""
                else:
                    self.text += event
                    yield event
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()  # a stopped run keeps the notes read so far as its text
            self._take_whole(run)

    def _take_whole(self, run: WholeDocumentAnswer) -> None:
        """A whole-document run's text and usage so far, as the turn's answer."""
        backend = self._engine.chosen.backend
        self.text = run.text
        usage = Usage(prompt_tokens=run.prompt_tokens, completion_tokens=run.answer_tokens, seconds=run.seconds)
        self.answer = Answer(run.text, [], usage, backend.name, backend.model)

    def _checkable(self, prepared: PreparedTurn) -> list[SavedSource] | list[RetrievedChunk]:
        """The sources as saved: in the order the model read them, each with the score that ranked it and
        its line that answers (the encoder on the passages' lines: no model call). Without them if that fails."""
        if not prepared.sources:
            return []
        engine = self._engine
        # An answer cut short is saved at once, without its lines (the encoder takes a second or two, and the
        # person who stopped it may be reopening the conversation already).
        embedder = engine.embedder if self.error is None else None
        try:
            return checkable_sources(
                prepared.search_query,
                prepared.sources,
                prepared.retrieval.ranking or {},
                embedder,
                keyword_coverage(engine.store, prepared.search_query),
            )
        except Exception:  # the answer is saved whatever happens to its extras
            logger.exception("the lines that answer could not be found; the sources are saved without them")
            return list(prepared.sources)

    def _save(self) -> StoredMessage:
        """The assistant's message (whole or partial) with its records; the summary if older turns were folded."""
        prepared, answer = self.prepared, self.answer
        usage = None
        if answer is not None:
            usage = SavedUsage(
                backend=answer.backend,
                model=answer.model,
                tokens_per_second=answer.usage.tokens_per_second,
                **asdict(answer.usage),
            )
        budget = None
        if prepared is not None and not prepared.decline:
            plan = prepared.plan
            budget = PromptBudget(
                **{part: plan.spent.get(part, 0) for part in PromptBudget.PARTS},
                prompt=plan.prompt_tokens,
                reserved=self._engine.settings.max_answer_tokens,
                window=self._engine.chosen.backend.context_window,
                history_dropped=plan.history_dropped,
            )
        saved = self._conversations.add_message(
            self.conversation_id,
            "assistant",
            self.text.strip(),
            sources=self._notes if self.whole_document else self._checkable(prepared) if prepared is not None else None,
            usage=usage,
            standalone_query=prepared.search_query if prepared is not None else None,
            prompt=prepared.prompt if budget is not None and prepared is not None else None,
            budget=budget,
            error=self.error,
            searched_only=[d.name for d in self.documents] or None,
            channel=self.channel,
        )
        if prepared is not None and prepared.summary_update is not None:
            conversation = self._conversation
            folded = prepared.summary_update.folded_messages
            # The folded messages are the oldest of the history the turn was given: their sequence numbers.
            history = [m for m in conversation.messages if m.seq > conversation.summarized_through]
            through = history[folded - 1].seq if 0 < folded <= len(history) else conversation.summarized_through
            self._conversations.set_summary(conversation.id, prepared.summary_update.summary, through)
            logger.info("conversation %s: messages up to %d folded into the summary", conversation.id, through)
        return saved


def _note_source(note: Note) -> SavedSource:
    """A part read by a whole-document answer, as a source of it: its pages, its text and the model's note."""
    part = note.part
    first = part.chunks[0]
    return SavedSource(
        source=part.name,
        page=part.first_page,
        score=0.0,
        text=part.text,
        doc_id=part.doc_id,
        position=first.position,
        note=note.text if not note.empty else "",
        last_page=part.last_page,
    )
