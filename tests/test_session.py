"""The conversation service end to end on real parts: the shipped corpus in Chroma on disk, the real
embedding model, the real built-in LLM, conversations in SQLite; Ollama faked at the wire where a failing
backend is needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rag.backends.embedded import EmbeddedBackend
from rag.config import Settings
from rag.conversations import ConversationStore, SelectedDocument
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine, choose_backend
from rag.retrieval import RetrievalResult
from rag.session import STOPPED, ChatService
from tests.fake_ollama import ANSWER_PIECES, FakeOllama

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, embedded_llm: EmbeddedBackend) -> Engine:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kb"), backend="embedded")
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(embedded_llm, "test: built-in model"))
    results = engine.ensure_default_corpus()
    assert results and all(r.ok for r in results)
    return engine


@pytest.fixture
def service(engine: Engine) -> ChatService:
    return ChatService(engine, ConversationStore.in_data_dir(engine.settings.data_dir))


def counting_searches(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every query the engine's retriever searches, in order (the real search still runs)."""
    queries: list[str] = []
    real_retrieve: Callable[..., RetrievalResult] = engine.retriever.retrieve

    def retrieve(query: str, **options: Any) -> RetrievalResult:
        queries.append(query)
        return real_retrieve(query, **options)

    monkeypatch.setattr(engine.retriever, "retrieve", retrieve)
    return queries


def exported(data_dir: Path, conversation_id: str) -> dict[str, Any]:
    """The conversation as a new process reads it back (`python -m rag conversations export --format json`)."""
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "rag", "conversations", "export", conversation_id[:8], "--format", "json"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@pytest.mark.slow
def test_a_three_turn_conversation_is_saved_and_reopened_by_a_new_process(
    engine: Engine, service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = [
        "What context length does Llama 2 use?",
        "Which of its models use grouped-query attention?",
        "How were they fine-tuned for chat?",
    ]
    searched = counting_searches(engine, monkeypatch)
    conversation_id = None
    streamed = []
    for question in questions:
        with service.ask(question, conversation_id) as turn:
            pieces = list(turn)
        assert len(pieces) > 1 and turn.error is None
        assert turn.saved is not None and turn.saved.content == "".join(pieces).strip()
        conversation_id = turn.conversation_id
        streamed.append(turn.saved.content)
    assert len(searched) == 3  # one retrieval per turn
    assert conversation_id is not None

    data = exported(engine.settings.data_dir, conversation_id)
    messages = data["messages"]
    assert data["title"] == questions[0]
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    assert [m["content"] for m in messages[::2]] == questions
    assert [m["content"] for m in messages[1::2]] == streamed
    first = messages[1]
    assert first["sources"][0]["source"] == "llama-2-overview.md" and "4,096" in first["sources"][0]["text"]
    for answer in messages[1::2]:
        assert answer["error"] is None and answer["sources"]
        assert (answer["usage"]["backend"], answer["usage"]["model"]) == ("embedded", "SmolLM2-135M-Instruct")
        assert answer["usage"]["prompt_tokens"] > 0 and answer["usage"]["completion_tokens"] > 0
        assert answer["budget"]["window"] == 4096 and answer["budget"]["reserved"] == 512
        assert answer["budget"]["context"] > 0 and answer["budget"]["prompt"] <= 4096 - 512
    assert "llama-2-overview.md" in first["prompt"]  # the exact prompt, its sources in the system block


@pytest.mark.slow
def test_a_turn_that_folds_old_messages_into_the_summary_retrieves_once_and_saves_the_summary(
    engine: Engine, service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = service.conversations
    conversation_id = service.start()
    filler = "The committee discussed the harbour budget, the ferry timetable and the school roof at length. " * 30
    for i in range(6):  # ~6 x 2 x 600 tokens: more history than a 4,096-token window holds with the passages
        store.add_message(conversation_id, "user", f"Question {i}: {filler}")
        store.add_message(conversation_id, "assistant", f"Answer {i}: {filler}")
    searched = counting_searches(engine, monkeypatch)

    with service.ask("What context length does Llama 2 use?", conversation_id) as turn:
        list(turn)

    assert searched == ["What context length does Llama 2 use?"]  # once, though the prompt was planned twice
    assert turn.prepared is not None and turn.prepared.summary_update is not None
    saved = store.get(conversation_id)
    assert saved.summary == turn.prepared.summary_update.summary != ""
    folded = turn.prepared.summary_update.folded_messages
    assert saved.summarized_through == folded  # the oldest `folded` messages: seq 1..folded
    assert saved.messages[-1].role == "assistant" and saved.messages[-1].error is None


@pytest.mark.slow
def test_a_reader_who_stops_early_gets_the_question_and_the_partial_answer_saved(service: ChatService) -> None:
    with service.ask("What context length does Llama 2 use?") as turn:
        for i, _piece in enumerate(turn):
            if i == 1:
                break  # a click elsewhere in the app, Ctrl-C in the terminal
    question, answer = service.conversations.get(turn.conversation_id).messages
    assert question.content == "What context length does Llama 2 use?"
    assert answer.error == STOPPED and answer.content == turn.text.strip() != ""
    assert answer.sources and answer.sources[0].source == "llama-2-overview.md"


@pytest.mark.slow
def test_a_backend_failing_mid_answer_is_saved_with_its_message_and_the_conversation_goes_on(
    engine: Engine, embedder: Embedder
) -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        settings = Settings(data_dir=engine.settings.data_dir, backend="ollama", ollama_host=server.host)
        ollama_engine = Engine(settings, store=engine.store, embedder=embedder, chosen=choose_backend(settings))
        service = ChatService(ollama_engine, ConversationStore.in_data_dir(settings.data_dir))
        server.mode = "break-mid-stream"
        with service.ask("What context length does Llama 2 use?") as turn:
            pieces = list(turn)
        assert pieces == ANSWER_PIECES[:2]
        assert turn.error is not None and "broke during the answer" in turn.error
        server.mode = "ok"
        with service.ask("And its vocabulary size?", turn.conversation_id) as again:
            list(again)
    messages = service.conversations.get(turn.conversation_id).messages
    assert [(m.role, m.content) for m in messages[:2]] == [
        ("user", "What context length does Llama 2 use?"),
        ("assistant", "".join(ANSWER_PIECES[:2]).strip()),
    ]
    assert messages[1].error == turn.error and messages[1].usage is None
    assert messages[3].error is None and messages[3].content == "".join(ANSWER_PIECES).strip()


@pytest.mark.slow
def test_the_documents_chosen_are_saved_with_the_conversation_and_searched_alone(
    engine: Engine, service: ChatService, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = next(d for d in engine.documents() if d.name == "llama-2-overview.md")
    chosen = [SelectedDocument(readme.doc_id, readme.name)]
    with service.ask("What is this document about?", documents=chosen) as turn:
        list(turn)
    conversation = service.conversations.get(turn.conversation_id)
    assert conversation.doc_filter == chosen
    assert conversation.messages[1].searched_only == ["llama-2-overview.md"]
    assert {s.source for s in conversation.messages[1].sources or []} == {"llama-2-overview.md"}
    # A later turn without a choice keeps the conversation's own.
    with service.ask("And what else does it say?", turn.conversation_id) as later:
        list(later)
    assert later.documents == chosen
