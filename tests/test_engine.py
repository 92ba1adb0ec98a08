"""The engine's parts on real parts: the shipped docs_corpus, the real embedding model, Chroma on disk, the real
built-in LLM; and the auto backend choice against a fake Ollama at the wire. A chat turn: tests/test_turn.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaBackend
from rag.config import DEFAULT_CORPUS_DIR, Settings
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine, choose_backend
from rag.turn import prepare
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
    assert check.selected and check.selected == prepare(corpus_engine, question, call_model=False).plan.sources
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
