"""A chat turn end to end on real parts: the shipped corpus in Chroma on disk, the real embedding model, the
real built-in LLM, conversations in SQLite; Ollama faked at the wire where its protocol or a failing backend
is needed; a scripted backend where only the wiring of follow-ups and summaries is under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from rag.backends.base import GenerationOptions, TokenStream
from rag.backends.embedded import EmbeddedBackend
from rag.config import Settings
from rag.conversations import SelectedDocument
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine, choose_backend
from rag.prompts import render_llama2
from rag.retrieval import RetrievalResult
from rag.schema import Message, Usage
from rag.turn import STOPPED, Chat, prepare, stream_answer
from rag.whole_document import WholeDocumentError
from tests import fake_ollama
from tests.fake_ollama import ANSWER_PIECES, FakeOllama, PausedPieces

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, embedded_llm: EmbeddedBackend) -> Engine:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kb"), backend="embedded")
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(embedded_llm, "test: built-in model"))
    results = engine.ensure_default_corpus()
    assert results and all(r.ok for r in results)
    return engine


@pytest.fixture
def service(engine: Engine) -> Chat:
    return Chat(engine, "cli")


@pytest.fixture
def brief(engine: Engine) -> Engine:
    """The same knowledge base and model, with answers cut at a few tokens: for what does not need a whole one."""
    settings = engine.settings.with_overrides(max_answer_tokens=16)
    return Engine(
        settings, store=engine.store, embedder=engine.embedder, chosen=engine.chosen, conversations=engine.conversations
    )


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
    engine: Engine, service: Chat, monkeypatch: pytest.MonkeyPatch
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
    engine: Engine, service: Chat, monkeypatch: pytest.MonkeyPatch
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
def test_a_reader_who_stops_early_gets_the_question_and_the_partial_answer_saved(service: Chat) -> None:
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
        service = Chat(ollama_engine, "app")
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
def test_an_answer_stopped_while_the_model_is_silent_is_saved_at_once_from_another_thread(
    engine: Engine, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's case: a click ends the page's run, but the thread reading the answer learns of it only at the
    model's next piece; the run the click started saves the answer as it stands, and nothing more is saved."""
    model = PausedPieces(["Llama 2 ", "uses a "], ["4096-token ", "context [1]."])
    monkeypatch.setattr(fake_ollama, "ANSWER_PIECES", model)
    with FakeOllama(models=["llama2:latest"]) as server:
        settings = Settings(data_dir=engine.settings.data_dir, backend="ollama", ollama_host=server.host)
        ollama_engine = Engine(settings, store=engine.store, embedder=embedder, chosen=choose_backend(settings))
        service = Chat(ollama_engine, "app")
        turn = service.ask("What context length does Llama 2 use?")
        first_pieces = threading.Event()

        def read() -> None:
            with turn:
                for _piece in turn:
                    if turn.text == "Llama 2 uses a ":
                        first_pieces.set()

        reader = threading.Thread(target=read)
        reader.start()
        assert first_pieces.wait(120)
        assert turn.save_stopped()  # while the model sends nothing
        question, answer = service.conversations.get(turn.conversation_id).messages
        assert question.content == "What context length does Llama 2 use?"
        assert answer.content == "Llama 2 uses a" and answer.error == STOPPED
        assert answer.sources and answer.sources[0].source == "llama-2-overview.md"
        model.go_on.set()
        reader.join(120)
    assert not reader.is_alive()
    messages = service.conversations.get(turn.conversation_id).messages
    assert [(m.role, m.content) for m in messages] == [
        ("user", "What context length does Llama 2 use?"),
        ("assistant", "Llama 2 uses a"),  # what arrived after the save is not saved again
    ]


@pytest.mark.slow
def test_a_turn_run_in_its_own_thread_hands_its_pieces_over_and_ends_stopped_when_the_reader_goes(
    engine: Engine, embedder: Embedder
) -> None:
    """The terminal's and the HTTP API's way of reading a turn: pieces handed over in order, then the end; a
    reader that stops taking them ends the turn, what arrived saved as stopped."""
    with FakeOllama(models=["llama2:latest"]) as server:
        settings = Settings(data_dir=engine.settings.data_dir, backend="ollama", ollama_host=server.host)
        ollama_engine = Engine(settings, store=engine.store, embedder=embedder, chosen=choose_backend(settings))
        service = Chat(ollama_engine, "api")
        ends: list[BaseException | None] = []

        def read(take: int) -> tuple[list[str], str]:
            taken: list[str] = []

            def hand_over(piece: str) -> bool:
                if len(taken) == take:
                    return False
                taken.append(piece)
                return True

            turn = service.ask("What context length does Llama 2 use?")
            turn.run_in_thread(hand_over, ends.append, name="answer").join(60)
            assert turn.saved is not None
            return taken, turn.conversation_id

        whole, whole_id = read(take=99)
        assert whole == ANSWER_PIECES
        answer = service.conversations.get(whole_id).messages[-1]
        assert answer.content == "Llama 2 uses a 4096-token context [1]." and answer.error is None

        part, part_id = read(take=2)
        assert part == ANSWER_PIECES[:2]
        answer = service.conversations.get(part_id).messages[-1]
        # the piece that arrived when the reader had gone is kept: what the model said, not more
        assert answer.content == "Llama 2 uses a 4096-token" and answer.error == STOPPED
    assert ends == [None, None]  # each turn's end told once, with nothing failed


@pytest.mark.slow
def test_a_stopped_answer_ends_the_built_in_models_work_while_it_reads_the_prompt(service: Chat) -> None:
    """The click's save also stops the model: the built-in one gives up reading the prompt (seconds here, minutes
    for a 7B model on a CPU), so the reading thread ends with no word and the next question need not wait for it.
    Before, the model read the whole prompt and wrote its whole answer, which nobody would see."""
    turn = service.ask("What context length does Llama 2 use, and how was it trained?")
    reader = threading.Thread(target=lambda: [None for _ in turn])
    reader.start()
    while turn.prepared is None and reader.is_alive():  # retrieval done: the model starts reading the prompt
        reader.join(0.01)
    assert turn.save_stopped()
    reader.join(120)
    assert not reader.is_alive()
    assert turn.text == ""
    messages = service.conversations.get(turn.conversation_id).messages
    assert [(m.role, m.error) for m in messages] == [("user", None), ("assistant", STOPPED)]
    with service.ask("What context length does Llama 2 use?", conversation_id=turn.conversation_id) as next_turn:
        assert "".join(next_turn).strip()


@pytest.mark.slow
def test_a_stopped_answer_ends_ollamas_work_while_it_reads_the_prompt(engine: Engine, embedder: Embedder) -> None:
    """The same with Ollama, which sends nothing while it reads the prompt: the click's save shuts the connection, so
    Ollama sees its client gone (and stops), and the thread reading the answer ends at once instead of waiting for
    a first word nobody will see."""
    with FakeOllama(models=["llama2:latest"]) as server:
        server.mode = "reading-prompt"
        settings = Settings(data_dir=engine.settings.data_dir, backend="ollama", ollama_host=server.host)
        ollama_engine = Engine(settings, store=engine.store, embedder=embedder, chosen=choose_backend(settings))
        service = Chat(ollama_engine, "app")
        turn = service.ask("What context length does Llama 2 use?")
        reader = threading.Thread(target=lambda: [None for _ in turn])
        reader.start()
        try:
            assert server.reading.wait(120)
            assert turn.save_stopped()
            reader.join(120)
            assert not reader.is_alive()
            assert server.client_gone.wait(60)
        finally:
            server.go_on.set()
            reader.join(120)
    messages = service.conversations.get(turn.conversation_id).messages
    assert [(m.role, m.content, m.error) for m in messages] == [
        ("user", "What context length does Llama 2 use?", None),
        ("assistant", "", STOPPED),
    ]


def test_a_turn_stopped_before_it_starts_saves_its_question_and_a_stopped_answer_without_the_model(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    """A stop that comes before the turn has saved its question (Ctrl-C at once in the terminal): nothing to save
    yet, but the turn, when it runs, saves the question and an empty stopped answer without calling the model.
    Before, such a stop was lost and the model answered in full."""
    model = ScriptedModel(["Ottawa [1]."])
    chat = Chat(scripted_engine(canada_engine_parts, embedder, model), "cli")
    turn = chat.ask("What is the capital of Canada?", stopped=STOPPED)
    assert not turn.save_stopped()
    assert [m.role for m in chat.conversations.get(turn.conversation_id).messages] == []
    with turn:
        assert list(turn) == []
    messages = chat.conversations.get(turn.conversation_id).messages
    assert [(m.role, m.content, m.error) for m in messages] == [
        ("user", "What is the capital of Canada?", None),
        ("assistant", "", STOPPED),
    ]
    assert model.calls == []


@pytest.mark.slow
def test_the_documents_chosen_are_saved_with_the_conversation_and_searched_alone(
    engine: Engine, service: Chat, monkeypatch: pytest.MonkeyPatch
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


@pytest.mark.slow
def test_each_saved_message_says_where_it_was_asked(brief: Engine) -> None:
    for channel in ("app", "cli", "api"):
        with Chat(brief, channel).ask("What context length does Llama 2 use?") as turn:
            list(turn)
        messages = brief.conversations.get(turn.conversation_id).messages
        assert [(m.role, m.channel) for m in messages] == [("user", channel), ("assistant", channel)]


@pytest.mark.slow
def test_an_answer_s_sources_are_saved_checkable_in_the_order_the_model_read_them(brief: Engine) -> None:
    """Each saved source has the score that ranked it (saying which score it is) and its line that answers,
    a line of its own passage; the order is the prompt's [1], [2], …"""
    with Chat(brief, "cli").ask("What context length does Llama 2 use?") as turn:
        list(turn)
    assert turn.saved is not None and turn.prepared is not None
    sources = turn.saved.sources or []
    assert [s.text for s in sources] == [r.chunk.text for r in turn.prepared.sources]
    assert sources and all(s.rank_score is not None and s.ranked_by for s in sources)
    ranks = [s.rank_score or 0.0 for s in sources]
    assert ranks == sorted(ranks, reverse=True)
    assert all(s.line and s.line in s.text for s in sources)
    assert "context length of 4,096" in sources[0].line


@pytest.mark.slow
def test_earlier_messages_start_a_conversation_and_the_question_follows_them(brief: Engine) -> None:
    """A client that keeps its own history (`rag ask --history`, an API request) starts a saved conversation
    holding it; the question is asked after it, as the next turn of that conversation."""
    earlier = [
        Message("system", "Be brief."),  # a client's instructions: not a message of the conversation
        Message("user", "What is Llama 2?"),
        Message("assistant", "A family of open language models [1]."),
    ]
    with Chat(brief, "api").ask("What context length does it use?", earlier=earlier) as turn:
        list(turn)
    saved = brief.conversations.get(turn.conversation_id)
    assert [(m.role, m.content) for m in saved.messages[:3]] == [
        ("user", "What is Llama 2?"),
        ("assistant", "A family of open language models [1]."),
        ("user", "What context length does it use?"),
    ]
    assert saved.title == "What is Llama 2?"
    assert turn.prepared is not None and "A family of open language models [1]." in turn.prepared.prompt
    assert "Be brief." not in turn.prepared.prompt
    with pytest.raises(ValueError, match="new conversation"):
        Chat(brief, "api").ask("Again?", turn.conversation_id, earlier=earlier)


# -- the steps before the answer, one by one -------------------------------------------------------------


@pytest.mark.slow
def test_an_answer_streams_citing_the_right_document(engine: Engine) -> None:
    stream = stream_answer(engine, prepare(engine, "What context length does Llama 2 use?"))
    assert stream.sources[0].chunk.source == "llama-2-overview.md"
    assert "4,096" in stream.sources[0].chunk.text
    pieces = list(stream)
    assert len(pieces) > 3, "the answer should arrive in many streamed pieces"
    answer = stream.answer
    assert answer is not None and answer.text
    assert answer.backend == "embedded" and answer.model == "SmolLM2-135M-Instruct"
    assert answer.usage.prompt_tokens and answer.usage.completion_tokens
    assert answer.usage.prompt_tokens <= engine.chosen.backend.context_window - 512


@pytest.mark.slow
def test_the_prompt_puts_numbered_sources_in_the_system_block(engine: Engine) -> None:
    history = [Message("user", "Hi"), Message("assistant", "Hello! Ask me about your documents.")]
    prepared = prepare(engine, "Which Llama 2 model uses grouped-query attention?", history)
    system = prepared.plan.messages[0]
    assert system.role == "system" and "[1] Llama 2: an overview · llama-2-overview.md · " in system.content
    assert prepared.prompt.startswith("<|im_start|>system\n")  # SmolLM2's own template, system role honoured
    assert "grouped-query attention" in system.content.lower()
    assert prepared.prompt.endswith(
        "Which Llama 2 model uses grouped-query attention?<|im_end|>\n<|im_start|>assistant\n"
    )


class ScriptedModel:
    """A deterministic LLM backend for the wiring: Llama 2 format, word-count tokens, scripted replies."""

    name = "fake"
    model = "scripted"

    def __init__(self, replies: list[str], window: int = 4096) -> None:
        self.replies = replies
        self.calls: list[list[Message]] = []
        self._window = window

    @property
    def context_window(self) -> int:
        return self._window

    def render(self, messages: Sequence[Message]) -> str:
        return render_llama2(messages)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages).split())

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        self.calls.append(list(messages))
        reply = self.replies.pop(0) if self.replies else "ok"
        return TokenStream(iter([reply]), lambda: Usage(prompt_tokens=self.count_tokens(messages)))


@pytest.fixture(scope="module")
def canada_engine_parts(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, Path]:
    corpus = tmp_path_factory.mktemp("canada")
    (corpus / "canada.md").write_text(
        "# Canada\n\nOttawa is the capital of Canada. It lies on the Ottawa River and has about one million people."
    )
    (corpus / "peru.md").write_text("# Peru\n\nLima is the capital of Peru, on the Pacific coast.")
    return corpus, tmp_path_factory.mktemp("canada-data")


def scripted_engine(parts: tuple[Path, Path], embedder: Embedder, model: ScriptedModel, **settings: object) -> Engine:
    corpus, data = parts
    engine = Engine(
        Settings(data_dir=data, corpus_dir=corpus, max_answer_tokens=64, **settings),  # type: ignore[arg-type]
        embedder=embedder,
        chosen=ChosenBackend(model, "test"),
    )
    engine.ensure_default_corpus()
    return engine


CANADA = [Message("user", "What is the capital of Canada?"), Message("assistant", "Ottawa is the capital [1].")]


def test_a_follow_up_is_rewritten_for_retrieval_and_the_question_kept(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    model = ScriptedModel(["Ottawa capital of Canada population"])
    engine = scripted_engine(canada_engine_parts, embedder, model)
    prepared = prepare(engine, "Tell me more about it", CANADA)
    assert prepared.search_query == "Ottawa capital of Canada population"
    assert len(model.calls) == 1 and "Tell me more about it" in model.calls[0][-1].content
    assert prepared.sources[0].chunk.source == "canada.md"
    assert prepared.plan.messages[-1] == Message("user", "Tell me more about it")  # asked as the user asked


def test_a_standalone_question_costs_no_extra_model_call(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    model = ScriptedModel([])
    engine = scripted_engine(canada_engine_parts, embedder, model)
    prepared = prepare(engine, "What is the capital of Peru?", CANADA)
    assert model.calls == [] and prepared.search_query == "What is the capital of Peru?"


def long_history(turns: int, words: int = 120) -> list[Message]:
    filler = " ".join(["detail"] * words)
    history = [Message("user", "Hi, I am Dana and my badge number is 4417."), Message("assistant", "Hello Dana.")]
    for i in range(turns):
        history += [
            Message("user", f"Question {i} about Canada? {filler}"),
            Message("assistant", f"Answer {i}. {filler}"),
        ]
    return history


def test_older_turns_are_folded_into_a_summary_that_the_prompt_keeps(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    model = ScriptedModel(["Dana (badge 4417) asked many questions about Canada."], window=1200)
    engine = scripted_engine(canada_engine_parts, embedder, model)
    history = long_history(12)
    prepared = prepare(engine, "What is the capital of Canada?", history)
    update = prepared.summary_update
    assert update is not None and update.summary.startswith("Dana (badge 4417)")
    assert 2 <= update.folded_messages < len(history) and update.folded_messages % 2 == 0
    system = prepared.plan.messages[0].content
    assert "Earlier in this conversation (summary):\nDana (badge 4417)" in system
    assert prepared.plan.prompt_tokens <= 1200 - 64
    summarize_call = model.calls[-1]
    assert "badge number is 4417" in summarize_call[-1].content  # the oldest turns went to the summarizer


def test_drop_oldest_forgets_without_calling_the_model(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    model = ScriptedModel([], window=1200)
    engine = scripted_engine(canada_engine_parts, embedder, model, history_strategy="drop")
    prepared = prepare(engine, "What is the capital of Canada?", long_history(12))
    assert prepared.summary_update is None and prepared.plan.history_dropped > 0
    assert model.calls == []  # a standalone question and no summary: the model is not asked before answering
    assert "4417" not in prepared.prompt


@pytest.mark.slow
def test_a_fact_planted_early_survives_many_turns_with_the_real_model(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    corpus, data = canada_engine_parts
    llm = EmbeddedBackend(context_window=1024)
    engine = Engine(
        Settings(data_dir=data, corpus_dir=corpus, context_window=1024, max_answer_tokens=128),
        embedder=embedder,
        chosen=ChosenBackend(llm, "test"),
    )
    history: list[Message] = []
    summary = ""
    questions = ["Hi, I am Dana and my badge number is 4417. What is the capital of Canada?"] + [
        f"What river is Ottawa on? Please answer in detail, question number {i}." for i in range(1, 9)
    ]
    largest = 0
    for question in questions:
        prepared = prepare(engine, question, history, summary=summary)
        if prepared.summary_update is not None:
            summary = prepared.summary_update.summary
            history = history[prepared.summary_update.folded_messages :]
        largest = max(largest, prepared.plan.prompt_tokens)
        assert prepared.plan.prompt_tokens <= 1024 - 128
        history += [Message("user", question), Message("assistant", "Ottawa lies on the Ottawa River. " * 12)]
    assert summary, "the conversation outgrew the window, so older turns were summarized"
    assert "4417" in prepared.prompt  # in the summary or verbatim, nine turns later
    assert largest > 600  # the window was really used


def test_the_prompt_sent_is_the_prompt_planned_byte_for_byte(tmp_path: Path, embedder: Embedder) -> None:
    """Rendered once: what the inspector shows (PreparedTurn.prompt) is what reaches Ollama's raw endpoint,
    and what the saved turn keeps."""
    notes = tmp_path / "notes.md"
    notes.write_text("# Lighthouse\n\nThe north lighthouse was first lit in 1871 by Ada Finch.\n")
    with FakeOllama(models=["llama2:latest"]) as server:
        settings = Settings(data_dir=tmp_path / "kb", backend="ollama", ollama_host=server.host)
        engine = Engine(settings, embedder=embedder)
        assert [r.status for r in engine.ingest([notes])] == ["added"]
        history = [Message("user", "Hello"), Message("assistant", "Hi! Ask me about your notes.")]
        with Chat(engine, "cli").ask("Who first lit the north lighthouse?", earlier=history) as turn:
            assert "".join(turn)
    body = [body for path, body in server.requests if path == "/api/generate"][-1]  # the answer's request
    assert turn.prepared is not None and turn.saved is not None
    assert body["raw"] is True and body["prompt"] == turn.prepared.prompt == turn.saved.prompt
    assert body["prompt"] == render_llama2(turn.prepared.plan.messages).removeprefix("<s>")


def test_a_whole_document_turn_reads_every_part_saves_them_and_keeps_what_was_read_when_stopped(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    ottawa, lima = "- Ottawa is the capital of Canada.", "- Lima is the capital of Peru."
    model = ScriptedModel(["Hello.", ottawa, lima, "Ottawa, Lima."])
    model.model = "scripted-whole"  # its own speed figures: the first plan measures them with one short call
    engine = scripted_engine(canada_engine_parts, embedder, model)
    documents = [SelectedDocument(d.doc_id, d.name) for d in engine.documents()]
    with Chat(engine, "cli").ask("List every capital.", documents=documents, whole_document=True) as turn:
        whole = turn.make_plan()
        assert (whole.map_calls, whole.reduce_calls) == (2, 1)  # said before the turn starts
        steps = [turn.progress.describe() for _ in turn if turn.progress is not None]
    assert steps[0].startswith("part 1 of 2") and any(s.startswith("part 2 of 2") for s in steps)
    saved = turn.saved
    assert saved is not None and saved.error is None and saved.content == "Ottawa, Lima."
    assert [s.source for s in saved.sources or []] == [d.name for d in documents]  # the parts read, in order
    assert [s.note for s in saved.sources or []] == [
        "- Ottawa is the capital of Canada.",
        "- Lima is the capital of Peru.",
    ]
    assert saved.searched_only == [d.name for d in documents]

    model.replies = [ottawa, "never read"]
    with Chat(engine, "cli").ask("List every capital.", documents=documents, whole_document=True) as stopped:
        for _ in stopped:
            if stopped.progress is not None and stopped.progress.done == 1:
                break  # Stop, a click elsewhere, Ctrl-C
    kept = stopped.saved
    assert kept is not None and kept.error == STOPPED
    assert kept.content.startswith("Stopped after part 1 of 2") and "Ottawa is the capital of Canada." in kept.content
    assert len(kept.sources or []) == 1


class PausingModel(ScriptedModel):
    """A scripted model that goes silent at its `pause_at`-th call (counted from 1) until `go_on` is set."""

    def __init__(self, replies: list[str], pause_at: int) -> None:
        super().__init__(replies)
        self.pause_at = pause_at
        self.paused, self.go_on = threading.Event(), threading.Event()

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        if len(self.calls) + 1 == self.pause_at:
            self.paused.set()
            self.go_on.wait(120)
        return super().stream(messages, options, rendered)


def test_a_whole_document_turn_saved_from_another_thread_keeps_the_parts_read_so_far(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    ottawa, lima = "- Ottawa is the capital of Canada.", "- Lima is the capital of Peru."
    model = PausingModel(["Hello.", ottawa, lima, "Ottawa, Lima."], pause_at=3)  # silent while reading part 2
    model.model = "scripted-whole-paused"
    engine = scripted_engine(canada_engine_parts, embedder, model)
    documents = [SelectedDocument(d.doc_id, d.name) for d in engine.documents()]
    turn = Chat(engine, "app").ask("List every capital.", documents=documents, whole_document=True)
    turn.make_plan()

    def read() -> None:
        with turn:
            for _ in turn:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert model.paused.wait(120)
        assert turn.save_stopped()  # a click while the model reads part 2
    finally:
        model.go_on.set()
        reader.join(120)
    messages = engine.conversations.get(turn.conversation_id).messages
    assert [m.role for m in messages] == ["user", "assistant"]  # the turn's own end saved nothing more
    # The stop ends the run: the part under way is the last call (no combining call after it).
    assert len(model.calls) == 3 and "Lima" in model.calls[-1][-1].content
    kept = messages[1]
    assert kept.error == STOPPED
    assert kept.content.startswith("Stopped after part 1 of 2") and "Ottawa is the capital of Canada." in kept.content
    assert [s.note for s in kept.sources or []] == [ottawa]


def test_a_whole_document_turn_needs_chosen_documents(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    engine = scripted_engine(canada_engine_parts, embedder, ScriptedModel([]))
    before = len(engine.conversations.list(limit=1000))
    with pytest.raises(WholeDocumentError, match="Choose the documents to read whole"):
        Chat(engine, "cli").ask("Summarize everything.", whole_document=True)
    assert len(engine.conversations.list(limit=1000)) == before  # no empty conversation left behind


def test_a_conversation_keeps_reading_its_documents_whole_until_switched_off(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    """The switch is the conversation's: a new conversation made by a whole-document question keeps it, a turn
    that says nothing follows it, a turn that says otherwise is that turn alone."""
    engine = scripted_engine(canada_engine_parts, embedder, ScriptedModel([]))
    chat = Chat(engine, "app")
    canada = [SelectedDocument(d.doc_id, d.name) for d in engine.documents() if d.name == "canada.md"]
    with chat.ask("Summarize Canada.", documents=canada, whole_document=True) as first:
        pass  # made and saved before it runs
    cid = first.conversation_id
    assert engine.conversations.get(cid).whole_document is True

    def reads_whole(**given: object) -> bool:
        with chat.ask("And the river?", cid, **given) as turn:  # type: ignore[arg-type]
            return turn.whole_document

    assert reads_whole() is True  # as saved: a reload, another tab, `rag chat --conversation ID`
    assert reads_whole(whole_document=False) is False  # this turn searches ...
    assert engine.conversations.get(cid).whole_document is True  # ... the conversation still reads whole
    chat.set_whole_document(cid, False)
    assert reads_whole() is False
    assert chat.conversations.get(cid).messages == []  # turns never iterated save nothing

    chat.set_whole_document(cid, True)
    engine.conversations.set_doc_filter(cid, [])  # no documents chosen any more: the switch cannot apply
    assert reads_whole() is False
    with chat.ask("Summarize.", documents=canada) as searched:  # a new conversation searches by default
        assert searched.whole_document is False
    assert engine.conversations.get(searched.conversation_id).whole_document is False
