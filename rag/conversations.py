"""Saved conversations: messages, their sources and usage, the running summary and settings, in SQLite.

One file, `conversations.sqlite3` in the data directory (`ConversationStore.in_data_dir`). Every write is
one `BEGIN IMMEDIATE` transaction (rag/sqlite.py), so a message's `seq` is computed and inserted under the
database write lock: two browser tabs (threads) or two app processes appending at once never collide or lose a message.
WAL lets readers proceed while a writer works; busy_timeout makes a writer wait its turn instead of failing.

Columns added after the first release (`conversations.doc_filter`, `conversations.whole_document`,
`messages.searched_only`, `messages.channel`, `messages.feedback`, `messages.feedback_comment`) are nullable and
added by numbered migrations when an older database is opened (rag/sqlite.py), so existing conversations are kept.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, get_args

from rag.errors import RagError
from rag.schema import Message, RetrievedChunk, Usage
from rag.sqlite import (
    Migration,
    add_column,
    execute_all,
    now_iso,
    open_migrated,
    read_transaction,
    write_transaction,
)

if TYPE_CHECKING:
    from rag.registry import DocumentRecord

DB_NAME = "conversations.sqlite3"
TITLE_MAX_CHARS = 60

MessageRole = Literal["user", "assistant"]
# Where a turn was asked: the chat page, the command line (`rag ask`, `rag chat`), the HTTP API (`rag serve`).
Channel = Literal["app", "cli", "api"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)
# A person's verdict on an answer (thumbs up or down); None: none given.
Feedback = Literal["up", "down"]
FEEDBACK: tuple[Feedback, ...] = get_args(Feedback)

_CONVERSATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    summarized_through INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated_at);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    sources TEXT,
    usage TEXT,
    standalone_query TEXT,
    prompt TEXT,
    budget TEXT,
    error TEXT,
    UNIQUE (conversation_id, seq)
)
"""
# Numbered, applied once each on open and recorded in the database (rag/sqlite.py). Databases made before
# migrations were recorded already hold some of these steps, so every step checks before it changes.
MIGRATIONS = (
    Migration("001_conversations_and_messages", lambda db: execute_all(db, _CONVERSATIONS_TABLE)),
    # JSON [{"doc_id", "name"}]; NULL: search every document
    Migration("002_conversation_doc_filter", lambda db: add_column(db, "conversations", "doc_filter", "TEXT")),
    # JSON [name, …]; NULL: every document was searched
    Migration("003_message_searched_only", lambda db: add_column(db, "messages", "searched_only", "TEXT")),
    # "app" | "cli" | "api"; NULL: saved before channels were recorded
    Migration("004_message_channel", lambda db: add_column(db, "messages", "channel", "TEXT")),
    # on answers: "up" | "down" | NULL (no verdict), and the person's words
    Migration("005_message_feedback", lambda db: _add_feedback_columns(db)),
    # 1: its questions read the chosen documents whole; 0 or NULL (saved before it was kept): they search them
    Migration(
        "006_conversation_whole_document", lambda db: add_column(db, "conversations", "whole_document", "INTEGER")
    ),
)


def _add_feedback_columns(db: sqlite3.Connection) -> None:
    add_column(db, "messages", "feedback", "TEXT")
    add_column(db, "messages", "feedback_comment", "TEXT")


_MESSAGE_COLUMNS = (
    "seq, role, content, created_at, sources, usage, standalone_query, prompt, budget, error, searched_only, "
    "channel, feedback, feedback_comment"
)
_MESSAGE_PLACEHOLDERS = ", ".join("?" * len(_MESSAGE_COLUMNS.split(",")))


class ConversationError(RagError):
    """The conversation history could not be read or written, or was given a value it cannot keep."""


class ConversationNotFound(ConversationError):
    """No conversation has this id (deleted, possibly in another tab)."""

    def __init__(self, conversation_id: str) -> None:
        super().__init__(
            f"Conversation {conversation_id} was not found: it may have been deleted in another tab; "
            "start a new conversation."
        )
        self.conversation_id = conversation_id


@dataclass(frozen=True)
class SavedSource:
    """A passage an answer cited, as it was when the answer was given (the document may change later).

    Sources saved before these were kept have no document id, position, ranking score or line (opened by name).
    """

    source: str
    page: int | None
    score: float  # cosine similarity with the question
    text: str
    doc_id: str = ""
    position: int | None = None  # of the chunk in its document
    rank_score: float | None = None  # the score that ranked it (meaning and keywords fused, with boosts)
    ranked_by: str = ""  # what that score is, in words ("meaning and keywords fused")
    line: str = ""  # the line of the passage that best answers the question
    note: str = ""  # whole-document answers: what the model noted reading this part
    last_page: int | None = None  # whole-document answers: a part's last page

    @classmethod
    def of(cls, source: RetrievedChunk | SavedSource | Mapping[str, Any]) -> SavedSource:
        if isinstance(source, SavedSource):
            return source
        if isinstance(source, RetrievedChunk):
            chunk = source.chunk
            return cls(chunk.source, chunk.page, source.score, chunk.text, chunk.doc_id, chunk.position)
        return _known_fields(cls, source)

    @property
    def source_id(self) -> str:
        """As `python -m rag show` takes it ("" for a source saved before ids were kept)."""
        return f"{self.doc_id}:{self.position:05d}" if self.doc_id and self.position is not None else ""


@dataclass(frozen=True)
class SavedUsage:
    """Which model answered and what it cost; None where the backend did not report a figure."""

    backend: str = ""  # "none": nothing relevant was found, so no model was asked
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float | None = None  # wall time, request to last piece
    time_to_first_token: float | None = None
    prompt_seconds: float | None = None
    generation_seconds: float | None = None
    tokens_per_second: float | None = None
    retries: int | None = None  # requests tried again after a transient failure; None: saved before it was counted

    @classmethod
    def of(cls, usage: SavedUsage | Usage | Mapping[str, Any]) -> SavedUsage:
        if isinstance(usage, SavedUsage):
            return usage
        if isinstance(usage, Usage):
            return cls(**asdict(usage), tokens_per_second=usage.tokens_per_second)
        return _known_fields(cls, usage)


@dataclass(frozen=True)
class PromptBudget:
    """How the model's context window was spent on one answer, in tokens."""

    system: int = 0
    summary: int = 0
    context: int = 0
    history: int = 0
    question: int = 0
    prompt: int = 0  # the whole prompt
    reserved: int = 0  # kept free for the answer
    window: int = 0
    history_dropped: int = 0  # older messages left out (messages, not tokens)

    PARTS = ("system", "summary", "context", "history", "question")  # what the prompt is made of

    @classmethod
    def of(cls, budget: PromptBudget | Mapping[str, Any]) -> PromptBudget:
        return budget if isinstance(budget, PromptBudget) else _known_fields(cls, budget)


@dataclass(frozen=True)
class StoredMessage:
    seq: int  # 1-based order within the conversation
    role: MessageRole
    content: str
    created_at: str  # ISO 8601 UTC, seconds
    sources: list[SavedSource] | None = None  # for answers: what they cite as [1], [2], …
    usage: SavedUsage | None = None
    standalone_query: str | None = None  # what retrieval searched for, when a follow-up was rewritten
    prompt: str | None = None  # the exact prompt sent (for the prompt inspector)
    budget: PromptBudget | None = None  # how the window was spent
    error: str | None = None  # set when the answer failed part-way
    searched_only: list[str] | None = None  # names of the documents searched, when the question was limited
    channel: Channel | None = None  # where it was asked; None: saved before channels were recorded
    feedback: Feedback | None = None  # on answers: the person's thumbs up or down, None when not given
    feedback_comment: str | None = None  # what they wrote with it

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> StoredMessage:
        """A message from its exported JSON (rag/exports.py), records typed again."""
        sources, usage, budget = raw.get("sources"), raw.get("usage"), raw.get("budget")
        return _known_fields(
            cls,
            {
                **raw,
                "sources": None if sources is None else [SavedSource.of(s) for s in sources],
                "usage": None if usage is None else SavedUsage.of(usage),
                "budget": None if budget is None else PromptBudget.of(budget),
            },
        )


@dataclass(frozen=True)
class SelectedDocument:
    """A document a conversation is limited to. The name is kept so that a document deleted since can
    still be named, and a newer version of it (same name, new id) followed."""

    doc_id: str
    name: str


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    title: str
    created_at: str
    updated_at: str
    messages: int
    whole_document: bool = False  # its questions read the chosen documents whole (see Conversation)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created_at: str
    updated_at: str
    summary: str  # running summary of older turns ("" when none)
    summarized_through: int  # seq of the last message folded into the summary (0: none)
    settings: dict[str, Any]  # the settings it ran with (JSON-able)
    messages: list[StoredMessage] = field(default_factory=list)
    doc_filter: list[SelectedDocument] = field(default_factory=list)  # empty: search every document
    # "Read the chosen documents whole": its questions read every part of doc_filter's documents instead of
    # searching them (rag/whole_document.py). Kept with the conversation; it applies only with documents chosen.
    whole_document: bool = False

    def history(self, after: int = 0) -> list[Message]:
        """Completed turns as alternating user/assistant messages, oldest first.

        A failed answer (``error`` set) is dropped together with the question it answered; a question with
        no answer yet (the one being answered now, or one orphaned by a crash) is left out, as is an answer
        with no question. ``after`` keeps only messages with a larger seq, e.g. ``summarized_through``.
        """
        turns: list[Message] = []
        question: StoredMessage | None = None
        for message in self.messages:
            if message.seq <= after:
                continue
            if message.role == "user":
                question = message  # an earlier unanswered question is replaced
            elif question is not None:
                if message.error is None:
                    turns += [Message("user", question.content), Message("assistant", message.content)]
                question = None
        return turns


class ConversationStore:
    """Conversations in one SQLite file, safe to share between threads (e.g. via ``st.cache_resource``).

    One connection guarded by a lock rather than one per thread: Streamlit runs every script rerun in a new
    thread, so per-thread connections would be opened (and left to the garbage collector) on every click,
    while each operation here takes well under a millisecond, so serialising them costs nothing noticeable.
    Other processes and other ``ConversationStore`` instances are coordinated by SQLite itself (WAL,
    BEGIN IMMEDIATE, busy_timeout).
    """

    def __init__(self, path: Path) -> None:
        """``path`` is the database file; see ``in_data_dir`` for the app's usual location."""
        self.path = Path(path)
        try:
            self._db = open_migrated(self.path, MIGRATIONS)
        except (OSError, sqlite3.Error) as exc:
            raise ConversationError(
                f"Cannot open the saved conversations in {self.path} ({exc}): check that the folder is "
                "writable, or set RAG_DATA_DIR to another folder."
            ) from exc
        self._lock = threading.RLock()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ConversationStore:
        return cls(Path(data_dir) / DB_NAME)

    # -- conversations ------------------------------------------------------------------------------

    def create(
        self,
        settings: dict[str, Any] | None = None,
        title: str = "",
        doc_filter: Sequence[SelectedDocument] = (),
        whole_document: bool = False,
    ) -> str:
        """A new empty conversation; returns its id (uuid4 hex). ``doc_filter``: see ``set_doc_filter``;
        ``whole_document``: see ``set_whole_document``."""
        conversation_id = uuid.uuid4().hex
        now = now_iso()
        settings_json, filter_json = _settings_json(settings or {}), _filter_json(doc_filter)
        with self._write():
            self._db.execute(
                "INSERT INTO conversations(id, title, created_at, updated_at, settings, doc_filter, whole_document)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, _collapse(title), now, now, settings_json, filter_json, _flag(whole_document)),
            )
        return conversation_id

    def list(self, limit: int = 200) -> list[ConversationInfo]:
        """The most recently active conversations first (ties: the most recently created first)."""
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        with self._lock:
            rows = self._db.execute(
                "SELECT c.id, c.title, c.created_at, c.updated_at,"
                " (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id),"
                " COALESCE(c.whole_document, 0)"
                " FROM conversations c ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            ConversationInfo(cid, title, created_at, updated_at, messages, whole_document=bool(whole))
            for cid, title, created_at, updated_at, messages, whole in rows
        ]

    def resolve(self, id_or_prefix: str) -> str:
        """The id of the one conversation whose id starts with ``id_or_prefix`` (as `conversations list`
        shows them, shortened)."""
        prefix = id_or_prefix.strip().lower()
        if not prefix:
            raise ConversationNotFound(id_or_prefix)
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM conversations WHERE substr(id, 1, ?) = ? LIMIT 2", (len(prefix), prefix)
            ).fetchall()
        if not rows:
            raise ConversationNotFound(id_or_prefix)
        if len(rows) > 1:
            raise ConversationError(
                f"More than one conversation starts with {id_or_prefix!r}: give more of its id "
                "(see `python -m rag conversations list`)."
            )
        return str(rows[0][0])

    def get(self, conversation_id: str) -> Conversation:
        with self._read():
            row = self._db.execute(
                "SELECT id, title, created_at, updated_at, summary, summarized_through, settings, doc_filter,"
                " COALESCE(whole_document, 0) FROM conversations WHERE id = ?",
                (conversation_id,),
            ).fetchone()
            if row is None:
                raise ConversationNotFound(conversation_id)
            rows = self._db.execute(
                f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq",
                (conversation_id,),
            ).fetchall()
        cid, title, created_at, updated_at, summary, summarized_through, settings, doc_filter, whole_document = row
        return Conversation(
            id=cid,
            title=title,
            created_at=created_at,
            updated_at=updated_at,
            summary=summary,
            summarized_through=summarized_through,
            settings=json.loads(settings),
            messages=[_message(r) for r in rows],
            doc_filter=[SelectedDocument(d["doc_id"], d["name"]) for d in json.loads(doc_filter or "[]")],
            whole_document=bool(whole_document),
        )

    def rename(self, conversation_id: str, title: str) -> None:
        clean = _collapse(title)
        if not clean:
            raise ConversationError("A conversation title cannot be empty: type at least one character.")
        with self._write():
            self._update(conversation_id, "UPDATE conversations SET title = ? WHERE id = ?", (clean, conversation_id))

    def delete(self, conversation_id: str) -> None:
        """Remove the conversation and all its messages. Deleting one that is already gone does nothing."""
        with self._write():
            # The foreign key cascades too; deleting the messages explicitly keeps this right even for a
            # connection that forgot PRAGMA foreign_keys.
            self._db.execute("DELETE FROM messages WHERE conversation_id = ?", (conversation_id,))
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    def set_summary(self, conversation_id: str, summary: str, summarized_through: int) -> None:
        """Replace the running summary; ``summarized_through`` is the seq of the last message it covers."""
        with self._write():
            if self._db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                raise ConversationNotFound(conversation_id)
            last = self._last_seq(conversation_id)
            if not 0 <= summarized_through <= last:
                raise ValueError(f"summarized_through must be between 0 and {last}, got {summarized_through}")
            self._update(
                conversation_id,
                "UPDATE conversations SET summary = ?, summarized_through = ? WHERE id = ?",
                (summary, summarized_through, conversation_id),
            )

    def update_settings(self, conversation_id: str, settings: dict[str, Any]) -> None:
        data = _settings_json(settings)
        with self._write():
            self._update(conversation_id, "UPDATE conversations SET settings = ? WHERE id = ?", (data, conversation_id))

    def set_doc_filter(self, conversation_id: str, documents: Sequence[SelectedDocument]) -> None:
        """Limit the conversation's questions to these documents (an empty sequence: search every document).

        Does not mark the conversation active: choosing documents is not a message.
        """
        data = _filter_json(documents)
        with self._write():
            self._update(
                conversation_id, "UPDATE conversations SET doc_filter = ? WHERE id = ?", (data, conversation_id)
            )

    def set_whole_document(self, conversation_id: str, on: bool) -> None:
        """Switch "Read the chosen documents whole" on or off for the conversation's questions (kept with it, so a
        reload, another tab or `rag chat --conversation ID` goes on the same way). Not activity, like the filter."""
        if not isinstance(on, bool):
            raise TypeError(f"whole_document must be True or False, got {on!r}")
        with self._write():
            self._update(
                conversation_id,
                "UPDATE conversations SET whole_document = ? WHERE id = ?",
                (_flag(on), conversation_id),
            )

    # -- messages -----------------------------------------------------------------------------------

    def add_message(
        self,
        conversation_id: str,
        role: MessageRole,
        content: str,
        *,
        sources: Sequence[RetrievedChunk | SavedSource | Mapping[str, Any]] | None = None,
        usage: SavedUsage | Usage | Mapping[str, Any] | None = None,
        standalone_query: str | None = None,
        prompt: str | None = None,
        budget: PromptBudget | Mapping[str, Any] | None = None,
        error: str | None = None,
        searched_only: Sequence[str] | None = None,
        channel: Channel | None = None,
    ) -> StoredMessage:
        """Append a message (next seq) and mark the conversation active.

        ``sources``, ``usage`` and ``budget`` may be given as the engine's values (RetrievedChunk, Usage), as
        the stored records, or as dicts (unknown keys are ignored).
        ``searched_only`` names the documents the question was limited to (None: it searched all of them).
        ``channel`` says where it was asked (app, cli, api).
        The first question of an untitled conversation becomes its title.
        """
        if role not in get_args(MessageRole):
            raise ValueError(f"role must be 'user' or 'assistant', got {role!r}")
        if channel is not None and channel not in CHANNELS:
            raise ValueError(f"channel must be one of {', '.join(CHANNELS)} or None, got {channel!r}")
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}")
        parts: dict[str, Any] = {
            "sources": None if sources is None else [SavedSource.of(s) for s in sources],
            "usage": None if usage is None else SavedUsage.of(usage),
            "standalone_query": standalone_query,
            "prompt": prompt,
            "budget": None if budget is None else PromptBudget.of(budget),
            "error": error,
            "searched_only": None if searched_only is None else [str(name) for name in searched_only],
            "channel": channel,
        }
        with self._write():
            row = self._db.execute("SELECT title FROM conversations WHERE id = ?", (conversation_id,)).fetchone()
            if row is None:
                raise ConversationNotFound(conversation_id)
            message = StoredMessage(self._last_seq(conversation_id) + 1, role, content, now_iso(), **parts)
            self._db.execute(
                f"INSERT INTO messages(conversation_id, {_MESSAGE_COLUMNS}) VALUES (?, {_MESSAGE_PLACEHOLDERS})",
                (
                    conversation_id,
                    message.seq,
                    role,
                    content,
                    message.created_at,
                    _json_or_none(None if message.sources is None else [asdict(s) for s in message.sources]),
                    _json_or_none(None if message.usage is None else asdict(message.usage)),
                    standalone_query,
                    prompt,
                    _json_or_none(None if message.budget is None else asdict(message.budget)),
                    error,
                    _json_or_none(message.searched_only),
                    channel,
                    None,  # feedback: given later, on the answer (set_feedback)
                    None,
                ),
            )
            title = row[0] or (title_from(content) if role == "user" else "")
            self._db.execute(
                "UPDATE conversations SET updated_at = ?, title = ? WHERE id = ?",
                (message.created_at, title, conversation_id),
            )
        return message

    def set_feedback(
        self, conversation_id: str, seq: int, feedback: Feedback | None, comment: str | None = None
    ) -> None:
        """Record a person's verdict on an answer (``feedback`` None clears it, and its comment)."""
        if feedback is not None and feedback not in FEEDBACK:
            raise ConversationError(f"Feedback must be 'up', 'down' or none, not {feedback!r}.")
        text = (comment or "").strip() or None
        with self._write():
            changed = self._db.execute(
                "UPDATE messages SET feedback = ?, feedback_comment = ?"
                " WHERE conversation_id = ? AND seq = ? AND role = 'assistant'",
                (feedback, text if feedback is not None else None, conversation_id, seq),
            ).rowcount
            if changed == 0:
                if self._db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None:
                    raise ConversationNotFound(conversation_id)
                raise ConversationError(
                    f"Conversation {conversation_id} has no answer number {seq}: feedback is given on answers."
                )

    def answers(self) -> Iterator[tuple[str, StoredMessage]]:
        """Every answer a turn produced — with a usage record or an error —, oldest first, with its conversation's
        id: what usage over time counts (messages a client sent along as history have neither)."""
        with self._read():
            rows = self._db.execute(
                f"SELECT conversation_id, {_MESSAGE_COLUMNS} FROM messages WHERE role = 'assistant'"
                " AND (usage IS NOT NULL OR error IS NOT NULL) ORDER BY created_at, id"
            ).fetchall()
        for conversation_id, *row in rows:
            yield conversation_id, _message(tuple(row))

    # -- export -------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals ----------------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction, holding the database write lock from the start (no lost updates)."""
        with self._lock:
            try:
                with write_transaction(self._db):
                    yield
            except sqlite3.OperationalError as exc:  # "database is locked" past the busy timeout, disk full, …
                raise ConversationError(
                    f"Cannot save to {self.path} ({exc}): another program may be holding the file; try again."
                ) from exc

    @contextmanager
    def _read(self) -> Iterator[None]:
        with self._lock, read_transaction(self._db):
            yield

    def _last_seq(self, conversation_id: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE conversation_id = ?", (conversation_id,)
        ).fetchone()
        return int(row[0])

    def _update(self, conversation_id: str, sql: str, params: tuple[Any, ...]) -> None:
        if self._db.execute(sql, params).rowcount == 0:
            raise ConversationNotFound(conversation_id)


def title_from(question: str) -> str:
    """A conversation title from its first question: whitespace collapsed, at most TITLE_MAX_CHARS."""
    text = _collapse(question)
    if len(text) <= TITLE_MAX_CHARS:
        return text
    return text[: TITLE_MAX_CHARS - 1].rstrip() + "…"


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _settings_json(settings: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(settings), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"settings must be JSON-serialisable (str, number, bool, None, list, dict): {exc}") from exc


def resolve_doc_filter(
    selected: Sequence[SelectedDocument], documents: Sequence[DocumentRecord]
) -> tuple[list[SelectedDocument], list[SelectedDocument]]:
    """(kept, gone): the selection as it stands in the knowledge base now.

    A document still there is kept; one replaced by a newer version (same name, new id) follows it; one
    deleted since is gone, so the caller can say so rather than silently search everything else.
    """
    by_id = {d.doc_id: d for d in documents}
    by_name = {d.name: d for d in documents}
    kept: list[SelectedDocument] = []
    gone: list[SelectedDocument] = []
    for s in selected:
        now = by_id.get(s.doc_id) or by_name.get(s.name)
        if now is None:
            gone.append(s)
        elif now.doc_id not in {k.doc_id for k in kept}:
            kept.append(SelectedDocument(now.doc_id, now.name))
    return kept, gone


def _filter_json(documents: Sequence[SelectedDocument]) -> str | None:
    for d in documents:
        if not isinstance(d, SelectedDocument):
            raise TypeError(f"doc_filter takes SelectedDocument values, got {type(d).__name__}")
    return json.dumps([asdict(d) for d in documents], ensure_ascii=False) if documents else None


def _flag(on: bool) -> int:
    return 1 if on else 0


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


_Record = TypeVar("_Record")


def _known_fields(cls: type[_Record], raw: Mapping[str, Any]) -> _Record:
    """A stored record from its JSON: keys it does not know (from another version) are left out."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in raw.items() if k in names})


def _message(row: tuple[Any, ...]) -> StoredMessage:
    (
        seq, role, content, created_at, sources, usage, standalone_query, prompt, budget, error, searched_only,
        channel, feedback, feedback_comment,
    ) = row  # fmt: skip
    return StoredMessage(
        seq=seq,
        role=role,
        content=content,
        created_at=created_at,
        sources=None if sources is None else [SavedSource.of(s) for s in json.loads(sources)],
        usage=None if usage is None else SavedUsage.of(json.loads(usage)),
        standalone_query=standalone_query,
        prompt=prompt,
        budget=None if budget is None else PromptBudget.of(json.loads(budget)),
        error=error,
        searched_only=None if searched_only is None else json.loads(searched_only),
        channel=channel,
        feedback=feedback,
        feedback_comment=feedback_comment,
    )
