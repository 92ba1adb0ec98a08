"""The conversation service: one chat turn end to end, saved. The chat page and the CLI both use it.

``ChatService.ask`` starts a conversation (or continues one) and returns a ``Turn``. Iterating the turn
saves the question, rewrites a follow-up so it stands alone, retrieves once, plans the prompt (folding
older messages into the running summary when they no longer fit), and streams the answer. However the
turn ends, the answer is saved with its sources, usage, prompt, budget and error, and so is the new
summary. It may end at the last piece, on a backend failure, or when the reader stops: a click in the
app, Ctrl-C in the terminal. A partial answer is kept with the reason it stopped.

Use a turn as a context manager, so that a reader who stops early still gets the turn saved:

    with service.ask("What changed in Q3?", conversation_id) as turn:
        for piece in turn:
            show(piece)
    turn.saved  # the assistant's StoredMessage
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict
from types import TracebackType

from rag.chat import AnswerStream, PreparedTurn
from rag.conversations import (
    Conversation,
    ConversationStore,
    PromptBudget,
    SavedUsage,
    SelectedDocument,
    StoredMessage,
    resolve_doc_filter,
)
from rag.engine import Engine
from rag.errors import RagError
from rag.schema import Answer

logger = logging.getLogger(__name__)

# Saved as the error of an answer its reader stopped (a click or a reload in the app, Ctrl-C in a terminal).
STOPPED = "it stopped before the answer finished; what had arrived is kept above."


class ChatService:
    """Conversations on one engine: start them, continue them, one saved turn at a time."""

    def __init__(self, engine: Engine, conversations: ConversationStore) -> None:
        self.engine = engine
        self.conversations = conversations

    def start(self, documents: Sequence[SelectedDocument] = ()) -> str:
        """A new empty conversation with the current settings, limited to ``documents`` (empty: all)."""
        return self.conversations.create(settings=self.engine.settings.editable(), doc_filter=documents)

    def ask(
        self,
        question: str,
        conversation_id: str | None = None,
        documents: Sequence[SelectedDocument] | None = None,
        stopped: str = STOPPED,
    ) -> Turn:
        """A turn of the conversation (a new one when ``conversation_id`` is None); nothing runs until it is
        iterated. ``documents``: the documents to search, saved as the conversation's choice; None keeps
        the conversation's own. A chosen document deleted since is left out. ``stopped`` is the error saved
        when the reader stops early (the app words it for a page, the CLI for a terminal)."""
        if conversation_id is None:
            conversation_id = self.start(documents or ())
        conversation = self.conversations.get(conversation_id)
        if documents is not None and list(documents) != conversation.doc_filter:
            self.conversations.set_doc_filter(conversation_id, documents)
            conversation = self.conversations.get(conversation_id)
        kept: list[SelectedDocument] = []
        if conversation.doc_filter:  # the document list is read only when there is a choice to check
            kept, _gone = resolve_doc_filter(conversation.doc_filter, self.engine.documents())
        return Turn(self.engine, self.conversations, conversation, question, kept, stopped)


class Turn:
    """One question and its answer. Iterate for the answer's text as it streams; afterwards ``saved`` is
    the assistant's message as stored, ``text`` what arrived, ``error`` why it stopped early (else None)."""

    def __init__(
        self,
        engine: Engine,
        conversations: ConversationStore,
        conversation: Conversation,
        question: str,
        documents: Sequence[SelectedDocument],
        stopped: str,
    ) -> None:
        self.conversation_id = conversation.id
        self.question = question
        self.documents = list(documents)
        self.text = ""
        self.error: str | None = None
        self.prepared: PreparedTurn | None = None
        self.answer: Answer | None = None
        self.saved: StoredMessage | None = None
        self._engine = engine
        self._conversations = conversations
        self._conversation = conversation
        self._stopped = stopped
        self._pieces = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def __enter__(self) -> Turn:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the answer (the model stops generating) and save what arrived; nothing if it never started."""
        self._pieces.close()

    def _run(self) -> Generator[str, None, None]:
        conversation = self._conversation
        history = conversation.history(after=conversation.summarized_through)
        self._conversations.add_message(conversation.id, "user", self.question)
        stream: AnswerStream | None = None
        pieces: Iterator[str] | None = None
        try:
            doc_ids = [d.doc_id for d in self.documents] or None  # None: every document
            stream = self._engine.ask(self.question, history, doc_ids=doc_ids, summary=conversation.summary)
            self.prepared = stream.prepared
            pieces = iter(stream)
            for piece in pieces:
                self.text += piece
                yield piece
            self.answer = stream.answer
        except RagError as exc:  # a message of ours that says what to do: shown with the partial answer
            logger.info("answer failed: %s", exc)
            self.error = str(exc)
        except Exception as exc:  # a bug or a library error without a message of ours: keep the turn anyway
            logger.exception("answer failed unexpectedly")
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
            self.saved = self._save()

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
            sources=prepared.sources if prepared is not None else None,
            usage=usage,
            standalone_query=prepared.search_query if prepared is not None else None,
            prompt=prepared.prompt if budget is not None and prepared is not None else None,
            budget=budget,
            error=self.error,
            searched_only=[d.name for d in self.documents] or None,
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
