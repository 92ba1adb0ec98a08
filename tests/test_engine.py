"""End to end on real parts: the shipped docs_corpus, the real embedding model, Chroma on disk, the real
built-in LLM; and the auto backend choice against a fake Ollama at the wire."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from rag.backends.base import GenerationOptions, TokenStream
from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaBackend
from rag.config import DEFAULT_CORPUS_DIR, Settings
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine, choose_backend
from rag.prompts import render_llama2
from rag.schema import Message, Usage
from tests.fake_ollama import FakeOllama
from tests.servers import free_port


@pytest.fixture(scope="module")
def corpus_engine(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, embedded_llm: EmbeddedBackend
) -> Engine:
    settings = Settings(data_dir=tmp_path_factory.mktemp("kb"), backend="embedded")
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(embedded_llm, "test: built-in model"))
    results = engine.ensure_default_corpus()
    assert results and all(r.status == "added" for r in results), [r.describe() for r in results]
    return engine


@pytest.mark.slow
def test_first_start_indexes_the_default_corpus_once(corpus_engine: Engine) -> None:
    names = {d.name for d in corpus_engine.store.documents()}
    shipped = {p.name for p in DEFAULT_CORPUS_DIR.iterdir() if p.is_file()}
    assert names == shipped
    assert any(n.endswith(".pdf") for n in names) and any(n.endswith(".md") for n in names)
    assert corpus_engine.ensure_default_corpus() == []


@pytest.mark.slow
def test_ask_streams_an_answer_citing_the_right_document(corpus_engine: Engine) -> None:
    stream = corpus_engine.ask("What context length does Llama 2 use?")
    assert stream.sources[0].chunk.source == "llama-2-overview.md"
    assert "4,096" in stream.sources[0].chunk.text
    pieces = list(stream)
    assert len(pieces) > 3, "the answer should arrive in many streamed pieces"
    answer = stream.answer
    assert answer is not None and answer.text
    assert answer.backend == "embedded" and answer.model == "SmolLM2-135M-Instruct"
    assert answer.usage.prompt_tokens and answer.usage.completion_tokens
    assert answer.usage.prompt_tokens <= corpus_engine.chosen.backend.context_window - 512


@pytest.mark.slow
def test_the_prompt_puts_numbered_sources_in_the_system_block(corpus_engine: Engine) -> None:
    history = [Message("user", "Hi"), Message("assistant", "Hello! Ask me about your documents.")]
    prepared = corpus_engine.prepare("Which Llama 2 model uses grouped-query attention?", history)
    system = prepared.plan.messages[0]
    assert system.role == "system" and "[1] Llama 2: an overview · llama-2-overview.md · " in system.content
    assert prepared.prompt.startswith("<|im_start|>system\n")  # SmolLM2's own template, system role honoured
    assert "grouped-query attention" in system.content.lower()
    assert prepared.prompt.endswith(
        "Which Llama 2 model uses grouped-query attention?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_retrieval_can_be_limited_to_one_document(corpus_engine: Engine) -> None:
    pdf = corpus_engine.store.find("llama-2-hardware-guide.pdf")
    assert pdf is not None
    hits = corpus_engine.retriever.retrieve("context length", top_k=5, doc_ids=[pdf.doc_id]).hits
    assert hits and {h.chunk.source for h in hits} == {"llama-2-hardware-guide.pdf"}
    assert all(h.chunk.page in (1, 2, 3) for h in hits)


@pytest.mark.slow
def test_the_retrieval_check_shows_what_a_chat_turn_would_give_the_model(corpus_engine: Engine) -> None:
    question = "What context length does Llama 2 use?"
    check = corpus_engine.check_retrieval(question)
    assert len(check.hits) == corpus_engine.settings.top_k
    assert check.selected and check.selected == corpus_engine.prepare(question, call_model=False).plan.sources
    assert sum(len(h.chunk.text) for h in check.selected) <= corpus_engine.settings.context_chars
    assert corpus_engine.check_retrieval("Who won the Super Bowl in 2016?").selected == []  # declined


def test_deleting_everything_does_not_bring_the_corpus_back(tmp_path: Path, embedder: Embedder) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "one.md").write_text("# One\n\nThe only document.")
    engine = Engine(Settings(data_dir=tmp_path / "kb", corpus_dir=corpus), embedder=embedder)
    assert [r.status for r in engine.ensure_default_corpus()] == ["added"]
    engine.store.delete_document(engine.store.documents()[0].doc_id)
    assert engine.ensure_default_corpus() == []
    assert engine.store.documents() == []


def test_auto_uses_ollama_when_it_has_the_model() -> None:
    with FakeOllama(models=["llama2:latest"]) as server:
        choice = choose_backend(Settings(ollama_host=server.host))
    assert isinstance(choice.backend, OllamaBackend) and not choice.fallback
    assert choice.backend.raw_llama2 and choice.backend.model == "llama2"


def test_auto_falls_back_to_the_built_in_model_when_ollama_lacks_the_model() -> None:
    with FakeOllama(models=["mistral:latest"]) as server:
        choice = choose_backend(Settings(ollama_host=server.host))
    assert isinstance(choice.backend, EmbeddedBackend) and choice.fallback
    assert "has no model 'llama2'" in choice.reason and "ollama pull llama2" in choice.reason


def test_auto_falls_back_and_says_why_when_ollama_is_not_running() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    choice = choose_backend(Settings(ollama_host=host))
    assert isinstance(choice.backend, EmbeddedBackend) and choice.fallback
    assert f"Ollama is not reachable at {host}" in choice.reason
    assert "built-in SmolLM2-135M-Instruct" in choice.reason and "ollama pull llama2" in choice.reason


def test_explicit_choices_are_honoured(tmp_path: Path) -> None:
    assert isinstance(choose_backend(Settings(backend="ollama")).backend, OllamaBackend)
    assert isinstance(choose_backend(Settings(backend="embedded")).backend, EmbeddedBackend)
    gguf = tmp_path / "llama-2-7b-chat.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    chosen = choose_backend(Settings(backend="embedded", model=str(gguf))).backend
    assert isinstance(chosen, EmbeddedBackend) and chosen.model_path == gguf


# -- conversation memory: follow-ups and the running summary ------------------------------------------


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
    prepared = engine.prepare("Tell me more about it", CANADA)
    assert prepared.search_query == "Ottawa capital of Canada population"
    assert len(model.calls) == 1 and "Tell me more about it" in model.calls[0][-1].content
    assert prepared.sources[0].chunk.source == "canada.md"
    assert prepared.plan.messages[-1] == Message("user", "Tell me more about it")  # asked as the user asked


def test_a_standalone_question_costs_no_extra_model_call(
    canada_engine_parts: tuple[Path, Path], embedder: Embedder
) -> None:
    model = ScriptedModel([])
    engine = scripted_engine(canada_engine_parts, embedder, model)
    prepared = engine.prepare("What is the capital of Peru?", CANADA)
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
    prepared = engine.prepare("What is the capital of Canada?", history)
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
    prepared = engine.prepare("What is the capital of Canada?", long_history(12))
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
        prepared = engine.prepare(question, history, summary=summary)
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
    """Rendered once: what the inspector shows (PreparedTurn.prompt) is what reaches Ollama's raw endpoint."""
    notes = tmp_path / "notes.md"
    notes.write_text("# Lighthouse\n\nThe north lighthouse was first lit in 1871 by Ada Finch.\n")
    with FakeOllama(models=["llama2:latest"]) as server:
        settings = Settings(data_dir=tmp_path / "kb", backend="ollama", ollama_host=server.host)
        engine = Engine(settings, embedder=embedder)
        assert [r.status for r in engine.ingest([notes])] == ["added"]
        history = [Message("user", "Hello"), Message("assistant", "Hi! Ask me about your notes.")]
        stream = engine.ask("Who first lit the north lighthouse?", history)
        assert stream.collect().text
    body = [body for path, body in server.requests if path == "/api/generate"][-1]  # the answer's request
    assert body["raw"] is True and body["prompt"] == stream.prepared.prompt
    assert body["prompt"] == render_llama2(stream.prepared.plan.messages).removeprefix("<s>")
