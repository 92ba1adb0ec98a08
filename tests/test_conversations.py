"""Saved conversations on a real SQLite file: CRUD, titles, history, export, concurrency, restarts."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from rag.conversations import (
    DB_NAME,
    MIGRATIONS,
    Conversation,
    ConversationError,
    ConversationNotFound,
    ConversationStore,
    PromptBudget,
    SavedSource,
    SavedUsage,
    SelectedDocument,
    StoredMessage,
    resolve_doc_filter,
    title_from,
)
from rag.errors import RagError
from rag.exports import conversation_json, conversation_markdown
from rag.schema import Chunk, Message, RetrievedChunk, Usage
from rag.sqlite import applied_migrations

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / DB_NAME


@pytest.fixture
def store(db_path: Path):
    s = ConversationStore(db_path)
    yield s
    s.close()


def rows(db_path: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db_path) as db:
        return db.execute(sql, params).fetchall()


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out


# -- create / list / get / rename / delete ------------------------------------------------------------


def test_create_and_get_an_empty_conversation(store: ConversationStore) -> None:
    cid = store.create(settings={"top_k": 4, "model": "smollm"})
    assert len(cid) == 32 and int(cid, 16) >= 0
    c = store.get(cid)
    assert (c.id, c.title, c.summary, c.summarized_through, c.messages) == (cid, "", "", 0, [])
    assert c.settings == {"top_k": 4, "model": "smollm"}
    assert c.created_at == c.updated_at and c.created_at.endswith("+00:00")


def test_in_data_dir_uses_the_conversations_file(tmp_path: Path) -> None:
    s = ConversationStore.in_data_dir(tmp_path / "kb")
    s.create()
    s.close()
    assert (tmp_path / "kb" / "conversations.sqlite3").exists()


def test_list_is_newest_first_and_counts_messages(store: ConversationStore, db_path: Path) -> None:
    a = store.create(title="first")
    b = store.create(title="second")
    c = store.create(title="third")
    # Same-second timestamps: the most recently created wins the tie.
    assert [i.id for i in store.list()] == [c, b, a]
    # Activity moves a conversation to the top (timestamps made distinct directly, to stay fast).
    store.add_message(a, "user", "hello?")
    with sqlite3.connect(db_path) as db:
        db.execute("UPDATE conversations SET updated_at = '2999-01-01T00:00:00+00:00' WHERE id = ?", (a,))
    infos = store.list()
    assert [i.id for i in infos] == [a, c, b]
    assert [i.messages for i in infos] == [1, 0, 0]
    assert [i.title for i in infos] == ["first", "third", "second"]
    assert [i.id for i in store.list(limit=2)] == [a, c]


def test_rename(store: ConversationStore) -> None:
    cid = store.create()
    store.rename(cid, "  Budget   questions \n")
    assert store.get(cid).title == "Budget questions"
    with pytest.raises(ConversationError, match="cannot be empty"):
        store.rename(cid, "   ")
    assert isinstance(ConversationError("x"), RagError)
    assert store.get(cid).title == "Budget questions"


def test_delete_removes_the_conversation_and_every_message(store: ConversationStore, db_path: Path) -> None:
    keep = store.create()
    gone = store.create()
    for cid in (keep, gone):
        store.add_message(cid, "user", "q")
        store.add_message(cid, "assistant", "a", sources=[{"source": "x.pdf", "page": 1, "score": 0.5, "text": "t"}])
    store.delete(gone)
    assert rows(db_path, "SELECT COUNT(*) FROM conversations WHERE id = ?", gone) == [(0,)]
    assert rows(db_path, "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", gone) == [(0,)]
    assert rows(db_path, "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", keep) == [(2,)]
    assert [i.id for i in store.list()] == [keep]
    with pytest.raises(ConversationNotFound):
        store.get(gone)
    store.delete(gone)  # already gone (e.g. deleted in another tab): nothing to do


def test_unknown_id_says_how_to_fix(store: ConversationStore) -> None:
    fix = "it may have been deleted in another tab; start a new conversation"
    calls = [
        lambda: store.get("nope"),
        lambda: store.add_message("nope", "user", "hi"),
        lambda: store.rename("nope", "title"),
        lambda: store.set_summary("nope", "s", 3),
        lambda: store.update_settings("nope", {}),
        lambda: conversation_markdown(store.get("nope")),
        lambda: conversation_json(store.get("nope")),
    ]
    for call in calls:
        with pytest.raises(ConversationNotFound, match=fix) as info:
            call()
        assert isinstance(info.value, RagError)
        assert info.value.conversation_id == "nope"
    assert store.list() == []  # nothing half-written


# -- messages, titles, history ------------------------------------------------------------------------


def test_messages_round_trip_with_all_fields(store: ConversationStore) -> None:
    cid = store.create()
    q = store.add_message(cid, "user", "What about page 3?")
    chunk = Chunk("d:00001", "d", "Revenue grew 12%.", "report.pdf", 3, 1)
    a = store.add_message(
        cid,
        "assistant",
        "It grew 12% [1].",
        sources=[RetrievedChunk(chunk, 0.7234)],
        usage=Usage(prompt_tokens=900, completion_tokens=12, seconds=1.5),
        standalone_query="report page 3 revenue",
        prompt="<s>[INST] … [/INST]",
        budget=PromptBudget(system=120, context=600, question=20, prompt=740, reserved=512, window=2048),
    )
    assert (q.seq, a.seq) == (1, 2)
    assert a.sources == [SavedSource("report.pdf", 3, 0.7234, "Revenue grew 12%.", doc_id="d", position=1)]
    assert a.usage is not None and a.usage.prompt_tokens == 900 and a.usage.time_to_first_token is None
    assert a.usage.tokens_per_second == pytest.approx(12 / 1.5)
    assert a.budget is not None and (a.budget.prompt, a.budget.window) == (740, 2048)
    c = store.get(cid)
    assert c.messages == [q, a]
    assert c.updated_at == a.created_at
    assert c.messages[0] == StoredMessage(1, "user", "What about page 3?", q.created_at)


def test_bad_arguments_fail_fast(store: ConversationStore) -> None:
    cid = store.create()
    with pytest.raises(ValueError, match="role"):
        store.add_message(cid, "system", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="JSON"):
        store.update_settings(cid, {"path": Path("x")})
    with pytest.raises(ValueError, match="summarized_through"):
        store.set_summary(cid, "s", 1)  # no message 1 yet
    assert store.get(cid).messages == []


def test_title_comes_from_the_first_question(store: ConversationStore) -> None:
    cid = store.create()
    store.add_message(cid, "assistant", "Hello! Ask me about your documents.")
    assert store.get(cid).title == ""
    long_question = "What   does the\n\nannual report say about " + "revenue growth " * 10
    store.add_message(cid, "user", long_question)
    store.add_message(cid, "user", "A later question")
    title = store.get(cid).title
    assert title == title_from(long_question)
    assert len(title) == 60 and title.endswith("…")
    assert title.startswith("What does the annual report say about revenue growth")
    assert title_from("  short \t question ") == "short question"
    named = store.create(title="Mine")
    store.add_message(named, "user", "question")
    assert store.get(named).title == "Mine"


def conversation(*messages: tuple[str, str, str | None]) -> Conversation:
    stored = [StoredMessage(i, role, text, "t", error=err) for i, (role, text, err) in enumerate(messages, 1)]  # type: ignore[arg-type]
    return Conversation("id", "", "t", "t", "", 0, {}, stored)


def test_history_skips_failed_answers_and_their_questions() -> None:
    c = conversation(
        ("user", "q1", None),
        ("assistant", "a1", None),
        ("user", "q2", None),
        ("assistant", "half an answ", "The model server stopped"),
        ("user", "q3", None),
        ("user", "q4", None),  # q3 never got an answer (crash): dropped
        ("assistant", "a4", None),
        ("user", "q5", None),  # being answered now: not history yet
    )
    assert c.history() == [
        Message("user", "q1"),
        Message("assistant", "a1"),
        Message("user", "q4"),
        Message("assistant", "a4"),
    ]
    assert c.history(after=2) == [Message("user", "q4"), Message("assistant", "a4")]
    assert conversation(("assistant", "greeting", None)).history() == []


def test_history_from_the_store_alternates(store: ConversationStore) -> None:
    cid = store.create()
    for i in range(3):
        store.add_message(cid, "user", f"q{i}")
        store.add_message(cid, "assistant", f"a{i}", error="timeout" if i == 1 else None)
    roles = [m.role for m in store.get(cid).history()]
    assert roles == ["user", "assistant"] * 2


def test_summary_and_settings_round_trip(store: ConversationStore) -> None:
    cid = store.create(settings={"top_k": 4})
    for i in range(4):
        store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"m{i}")
    store.set_summary(cid, "The user asked about — café revenue.", 2)
    store.update_settings(cid, {"top_k": 6, "temperature": 0.2, "docs": ["a.pdf"], "nested": {"x": None}})
    c = store.get(cid)
    assert (c.summary, c.summarized_through) == ("The user asked about — café revenue.", 2)
    assert c.settings == {"top_k": 6, "temperature": 0.2, "docs": ["a.pdf"], "nested": {"x": None}}
    assert c.history(after=c.summarized_through) == [Message("user", "m2"), Message("assistant", "m3")]


# -- the records an export is made from (tests/test_exports.py) ---------------------------------------


def filled(store: ConversationStore) -> str:
    cid = store.create(settings={"top_k": 2})
    store.add_message(cid, "user", "What grew?")
    store.add_message(
        cid,
        "assistant",
        "Revenue grew [1].",
        sources=[
            {"source": "file.pdf", "page": 3, "score": 0.7213, "text": "Revenue grew 12%."},
            {"source": "notes.md", "page": None, "score": 0.5, "text": "Also costs."},
        ],
        usage={"prompt_tokens": 10, "completion_tokens": 5},
    )
    store.add_message(cid, "user", "And then?")
    store.add_message(cid, "assistant", "Sorr", error="The answer stream broke")
    store.set_summary(cid, "They discussed revenue.", 2)
    return cid


# -- concurrency and persistence ------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_two_threads_appending_at_once_lose_nothing(db_path: Path, shared: bool) -> None:
    main = ConversationStore(db_path)
    cid = main.create()
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def append(tag: str) -> None:
        s = main if shared else ConversationStore(db_path)
        try:
            start.wait()
            for i in range(100):
                s.add_message(cid, "user", f"{tag}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            if not shared:
                s.close()

    threads = [threading.Thread(target=append, args=(tag,)) for tag in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    messages = main.get(cid).messages
    assert [m.seq for m in messages] == list(range(1, 201))
    contents = [m.content for m in messages]
    for tag in ("a", "b"):
        mine = [c for c in contents if c.startswith(f"{tag}-")]
        assert mine == [f"{tag}-{i}" for i in range(100)]  # each writer's messages, in its order
    main.close()


APPEND_50 = """
    import sys, time
    from pathlib import Path
    from rag.conversations import ConversationStore

    db, cid, tag, go = sys.argv[1:]
    store = ConversationStore(Path(db))
    deadline = time.monotonic() + 20
    while not Path(go).exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(50):
        store.add_message(cid, "user" if i % 2 == 0 else "assistant", f"{tag}-{i}")
    store.close()
"""


def test_two_processes_appending_at_once_lose_nothing(store: ConversationStore, db_path: Path, tmp_path: Path) -> None:
    cid = store.create()
    go = tmp_path / "go"
    procs = [run_python(APPEND_50, str(db_path), cid, tag, str(go)) for tag in ("p", "q")]
    go.touch()  # both start writing at the same moment
    for proc in procs:
        finish(proc)
    messages = store.get(cid).messages
    assert [m.seq for m in messages] == list(range(1, 101))
    assert sorted(m.content for m in messages) == sorted(f"{t}-{i}" for t in "pq" for i in range(50))
    assert rows(db_path, "SELECT COUNT(*) FROM messages WHERE conversation_id = ?", cid) == [(100,)]


WRITE_AND_EXIT = """
    import sys
    from pathlib import Path
    from rag.conversations import ConversationStore

    store = ConversationStore(Path(sys.argv[1]))
    cid = store.create(settings={"model": "smollm", "top_k": 3})
    store.add_message(cid, "user", "What is in the report?")
    store.add_message(cid, "assistant", "Revenue figures [1].",
                      sources=[{"source": "report.pdf", "page": 2, "score": 0.81, "text": "Revenue..."}],
                      usage={"prompt_tokens": 321, "completion_tokens": 9})
    store.set_summary(cid, "Asked about the report.", 2)
    print(cid)
"""


def test_conversations_survive_a_restart(db_path: Path) -> None:
    cid = finish(run_python(WRITE_AND_EXIT, str(db_path))).strip()  # the process exits without close()
    reopened = ConversationStore(db_path)
    [info] = reopened.list()
    assert (info.id, info.title, info.messages) == (cid, "What is in the report?", 2)
    c = reopened.get(cid)
    assert c.settings == {"model": "smollm", "top_k": 3}
    assert (c.summary, c.summarized_through) == ("Asked about the report.", 2)
    assert c.messages[1].sources == [SavedSource("report.pdf", 2, 0.81, "Revenue...")]
    assert c.messages[1].usage == SavedUsage(prompt_tokens=321, completion_tokens=9)
    # continue it, then export
    reopened.add_message(cid, "user", "And costs?")
    reopened.add_message(cid, "assistant", "Not covered.")
    assert [m.seq for m in reopened.get(cid).messages] == [1, 2, 3, 4]
    assert len(reopened.get(cid).history()) == 4
    assert "[1] report.pdf, page 2 (score 0.81)" in conversation_markdown(reopened.get(cid))
    assert len(json.loads(conversation_json(reopened.get(cid)))["messages"]) == 4
    reopened.close()


# -- documents a conversation is limited to ----------------------------------------------------------------


def test_the_document_filter_is_saved_and_read_back(store: ConversationStore, db_path: Path) -> None:
    a, b = SelectedDocument("a1b2c3d4e5f60718", "a.pdf"), SelectedDocument("ffee000011112222", "b — notes.md")
    fresh = store.create()
    assert store.get(fresh).doc_filter == []  # a new conversation searches every document
    cid = store.create(doc_filter=[a])  # chosen before the first question
    assert store.get(cid).doc_filter == [a]
    before = store.get(cid).updated_at
    store.set_doc_filter(cid, [a, b])
    assert store.get(cid).doc_filter == [a, b]
    assert store.get(cid).updated_at == before  # choosing documents is not activity
    assert rows(db_path, "SELECT doc_filter FROM conversations WHERE id = ?", cid)[0][0].startswith('[{"doc_id"')
    store.set_doc_filter(cid, [])
    assert store.get(cid).doc_filter == []
    assert rows(db_path, "SELECT doc_filter FROM conversations WHERE id = ?", cid) == [(None,)]
    with pytest.raises(ConversationNotFound):
        store.set_doc_filter("nope", [a])
    with pytest.raises(TypeError, match="SelectedDocument"):
        store.set_doc_filter(cid, ["a1b2c3d4e5f60718"])  # type: ignore[list-item]


def test_reading_the_chosen_documents_whole_is_kept_with_the_conversation(
    store: ConversationStore, db_path: Path
) -> None:
    a = SelectedDocument("a1b2c3d4e5f60718", "a.pdf")
    assert store.get(store.create(doc_filter=[a])).whole_document is False  # a new conversation searches
    cid = store.create(doc_filter=[a], whole_document=True)  # made by a whole-document question
    assert store.get(cid).whole_document is True
    assert [i.whole_document for i in store.list() if i.id == cid] == [True]  # the sidebar marks it
    before = store.get(cid).updated_at
    store.set_whole_document(cid, False)
    assert store.get(cid).whole_document is False and store.get(cid).updated_at == before  # not activity
    store.set_whole_document(cid, True)
    store.close()
    again = ConversationStore(db_path)  # a reload, another tab, another process: the same switch
    try:
        reopened = again.get(cid)
        assert (reopened.whole_document, reopened.doc_filter) == (True, [a])
        exported = json.loads(conversation_json(reopened))
        assert (exported["whole_document"], exported["doc_filter"]) == (True, [{"doc_id": a.doc_id, "name": "a.pdf"}])
        assert "*Reads these documents whole:* a.pdf" in conversation_markdown(reopened)
        again.set_whole_document(cid, False)
        assert "*Searches only:* a.pdf" in conversation_markdown(again.get(cid))
        assert rows(db_path, "SELECT whole_document FROM conversations WHERE id = ?", cid) == [(0,)]
        with pytest.raises(ConversationNotFound):
            again.set_whole_document("nope", True)
        with pytest.raises(TypeError, match="True or False"):
            again.set_whole_document(cid, "yes")  # type: ignore[arg-type]
    finally:
        again.close()


def test_a_database_from_before_the_whole_document_switch_reads_it_as_off(db_path: Path) -> None:
    from rag.sqlite import open_migrated

    before = [m for m in MIGRATIONS if m.name != "006_conversation_whole_document"]
    assert len(before) == len(MIGRATIONS) - 1
    db = open_migrated(db_path, before)  # the database as the version before the switch left it
    db.execute(
        "INSERT INTO conversations(id, title, created_at, updated_at, doc_filter) VALUES (?, ?, ?, ?, ?)",
        (
            "c1",
            "Old one",
            "2026-12-01T10:00:00+00:00",
            "2026-12-01T10:00:00+00:00",
            '[{"doc_id": "d1", "name": "r.pdf"}]',
        ),
    )
    db.commit()
    db.close()
    store = ConversationStore(db_path)
    try:
        old = store.get("c1")
        assert (old.doc_filter, old.whole_document) == ([SelectedDocument("d1", "r.pdf")], False)
        assert [i.whole_document for i in store.list()] == [False]
        assert rows(db_path, "SELECT whole_document FROM conversations") == [(None,)]  # nothing written for it
        assert applied_migrations(store._db) == [m.name for m in MIGRATIONS]
        store.set_whole_document("c1", True)
        assert store.get("c1").whole_document is True
    finally:
        store.close()


def test_an_answer_keeps_the_documents_it_searched(store: ConversationStore) -> None:
    cid = store.create()
    store.add_message(cid, "user", "When?")
    limited = store.add_message(cid, "assistant", "Friday [1].", searched_only=["a.pdf", "b.md"])
    everything = store.add_message(cid, "assistant", "Tuesday [1].")
    assert [m.searched_only for m in store.get(cid).messages] == [None, ["a.pdf", "b.md"], None]
    assert limited.searched_only == ["a.pdf", "b.md"] and everything.searched_only is None
    assert "*Searched only:* a.pdf, b.md" in conversation_markdown(store.get(cid))
    assert json.loads(conversation_json(store.get(cid)))["messages"][1]["searched_only"] == ["a.pdf", "b.md"]


def test_each_message_keeps_where_it_was_asked_and_an_answer_its_feedback(store: ConversationStore) -> None:
    cid = store.create()
    store.add_message(cid, "user", "Where is the offsite?", channel="api")
    answer = store.add_message(cid, "assistant", "In Lisbon [1].", channel="api")
    assert [m.channel for m in store.get(cid).messages] == ["api", "api"]
    assert (answer.feedback, answer.feedback_comment) == (None, None)

    store.set_feedback(cid, answer.seq, "down", "  It cited the wrong page. ")
    saved = store.get(cid).messages[1]
    assert (saved.feedback, saved.feedback_comment) == ("down", "It cited the wrong page.")
    assert json.loads(conversation_json(store.get(cid)))["messages"][1]["feedback"] == "down"
    store.set_feedback(cid, answer.seq, "up")
    assert (store.get(cid).messages[1].feedback, store.get(cid).messages[1].feedback_comment) == ("up", None)
    store.set_feedback(cid, answer.seq, None)  # taken back
    assert store.get(cid).messages[1].feedback is None

    with pytest.raises(ConversationError, match="feedback is given on answers"):
        store.set_feedback(cid, 1, "up")  # the question
    with pytest.raises(ConversationError, match="'up', 'down' or none"):
        store.set_feedback(cid, answer.seq, "meh")  # type: ignore[arg-type]
    with pytest.raises(ConversationNotFound):
        store.set_feedback("no-such-conversation", 2, "up")
    with pytest.raises(ValueError, match="channel"):
        store.add_message(cid, "user", "x", channel="email")  # type: ignore[arg-type]
    assert len(store.get(cid).messages) == 2


def test_resolving_a_selection_keeps_follows_and_drops() -> None:
    from rag.registry import DocumentRecord

    def record(doc_id: str, name: str) -> DocumentRecord:
        return DocumentRecord(doc_id, name, "text", doc_id, None, 1, 10, "2026-11-29T00:00:00+00:00")

    documents = [record("new-b", "b.md"), record("c", "c.md")]
    selected = [SelectedDocument("c", "c.md"), SelectedDocument("old-b", "b.md"), SelectedDocument("a", "a.pdf")]
    kept, gone = resolve_doc_filter(selected, documents)
    assert kept == [SelectedDocument("c", "c.md"), SelectedDocument("new-b", "b.md")]  # b.md: its newer version
    assert gone == [SelectedDocument("a", "a.pdf")]  # deleted: named, so the page can say so
    assert resolve_doc_filter([], documents) == ([], [])


# The conversations schema as the version before document filters created it.
OLD_SCHEMA = """
CREATE TABLE conversations (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    summarized_through INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX conversations_updated ON conversations(updated_at);
CREATE TABLE messages (
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
);
INSERT INTO conversations VALUES ('c1', 'Old one', '2026-10-01T10:00:00+00:00', '2026-10-01T10:01:00+00:00',
    'We talked.', 0, '{"top_k": 4}');
INSERT INTO messages(conversation_id, seq, role, content, created_at, sources) VALUES
    ('c1', 1, 'user', 'What grew?', '2026-10-01T10:00:00+00:00', NULL),
    ('c1', 2, 'assistant', 'Revenue [1].', '2026-10-01T10:01:00+00:00',
     '[{"source": "r.pdf", "page": 1, "score": 0.8, "text": "Revenue grew."}]');
"""


def test_a_database_from_before_document_filters_is_upgraded_in_place(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.executescript(OLD_SCHEMA)
    store = ConversationStore(db_path)
    old = store.get("c1")
    assert (old.title, old.summary, old.settings, old.doc_filter) == ("Old one", "We talked.", {"top_k": 4}, [])
    assert [(m.role, m.content, m.searched_only) for m in old.messages] == [
        ("user", "What grew?", None),
        ("assistant", "Revenue [1].", None),
    ]
    assert old.messages[1].sources == [SavedSource("r.pdf", 1, 0.8, "Revenue grew.")]
    store.set_doc_filter("c1", [SelectedDocument("d1", "r.pdf")])
    store.add_message("c1", "assistant", "Limited.", searched_only=["r.pdf"])
    store.close()
    again = ConversationStore(db_path)  # opening an upgraded database changes nothing
    c = again.get("c1")
    assert c.doc_filter == [SelectedDocument("d1", "r.pdf")]
    assert [m.searched_only for m in c.messages] == [None, None, ["r.pdf"]]
    assert [info.id for info in again.list()] == ["c1"]
    again.close()
    columns = {r[1] for r in rows(db_path, "PRAGMA table_info(conversations)")}
    assert "doc_filter" in columns


def test_two_stores_opening_an_old_database_at_once_both_work(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with sqlite3.connect(db_path) as db:
        db.executescript(OLD_SCHEMA)
    start = threading.Barrier(4)
    opened: list[ConversationStore] = []
    failures: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            opened.append(ConversationStore(db_path))
        except BaseException as exc:  # collected: a thread's exception would otherwise be lost
            failures.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert all(s.get("c1").title == "Old one" for s in opened)
    for s in opened:
        s.close()


def test_conversations_saved_before_migrations_open_with_everything_kept(tmp_path: Path) -> None:
    """conversations.sqlite3 of tests/fixtures/kb-d8538cc was written by the version before numbered
    migrations: a question, a cited answer with usage and budget, a summary."""
    path = tmp_path / DB_NAME
    shutil.copy(Path(__file__).parent / "fixtures" / "kb-d8538cc" / DB_NAME, path)
    store = ConversationStore(path)
    [info] = store.list()
    saved = store.get(info.id)
    assert (saved.title, saved.settings) == ("Who lit the lantern?", {"top_k": 4})
    assert saved.summary == "The user asked about the lantern."
    question, answer = saved.messages
    assert (question.role, question.content) == ("user", "Who lit the lantern?")
    assert answer.content == "Ada Finch lit it in 1871 [1]." and answer.searched_only == ["harbour.md"]
    assert answer.sources is not None and answer.sources[0].source == "harbour.md"
    assert "The lantern at the north harbour" in answer.sources[0].text
    assert answer.usage is not None
    assert (answer.usage.backend, answer.usage.model) == ("embedded", "SmolLM2-135M-Instruct")
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (120, 9)
    assert answer.usage.tokens_per_second == pytest.approx(9 / 1.1)
    assert answer.budget == PromptBudget(60, 0, 40, 0, 20, prompt=120, reserved=512, window=2048, history_dropped=0)
    assert answer.prompt == "<s>[INST] ..."
    assert (answer.channel, answer.feedback) == (None, None)  # saved before either was recorded
    assert saved.whole_document is False  # saved before the switch was kept: off
    assert applied_migrations(store._db) == [m.name for m in MIGRATIONS]
    store.add_message(info.id, "user", "And when?")  # still writable after the upgrade
    assert [m.seq for m in store.get(info.id).messages] == [1, 2, 3]
    store.close()
