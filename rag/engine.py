"""The engine's parts, built once from Settings and shared: what the CLI and the pages call."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rag.chat import AnswerStream, PreparedTurn, prepare_turn
from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import BackendError
from rag.ingest import Ingestor, IngestResult, ProgressCallback
from rag.llm import SMOLLM2_NAME, EmbeddedBackend, GenerationOptions, LLMBackend, OllamaBackend
from rag.prompts import DEFAULT_SYSTEM_PROMPT
from rag.retrieval import Retriever
from rag.schema import Message
from rag.store import Store

CORPUS_SEEDED = "default_corpus_seeded"


@dataclass(frozen=True)
class BackendChoice:
    backend: LLMBackend
    reason: str  # shown to the user: which model answers and why
    fallback: bool = False  # True when auto wanted Ollama but fell back to the built-in model


def choose_backend(settings: Settings) -> BackendChoice:
    """`auto`: Ollama when it is reachable and has the model, else the embedded model (saying why)."""
    if settings.backend == "ollama":
        backend = OllamaBackend(settings.ollama_host, settings.model, settings.context_window, settings.request_timeout)
        return BackendChoice(backend, f"Ollama at {settings.ollama_host} with {settings.model}")
    if settings.backend == "embedded":
        embedded = _embedded(settings)
        return BackendChoice(embedded, f"built-in llama.cpp with {embedded.model} (backend set to embedded)")
    ollama = OllamaBackend(settings.ollama_host, settings.model, settings.context_window, timeout=2.0)
    try:
        installed = ollama.installed_models()
    except BackendError:
        problem = f"Ollama is not reachable at {settings.ollama_host}"
        how = f"install Ollama (https://ollama.com), run `ollama serve` and `ollama pull {settings.model}`"
    else:
        if ollama.has_model(installed):
            backend = OllamaBackend(
                settings.ollama_host, settings.model, settings.context_window, settings.request_timeout
            )
            return BackendChoice(backend, f"Ollama at {settings.ollama_host} with {settings.model}")
        problem = f"Ollama at {settings.ollama_host} has no model {settings.model!r}"
        how = f"run `ollama pull {settings.model}`"
    embedded = _embedded(settings)
    tiny = " (a tiny model: expect weak answers)" if embedded.model == SMOLLM2_NAME else ""
    return BackendChoice(
        embedded,
        f"{problem}: answering with the built-in {embedded.model}{tiny}. For Llama 2, {how}.",
        fallback=True,
    )


def _embedded(settings: Settings) -> EmbeddedBackend:
    gguf = settings.gguf_path
    if gguf is None and settings.backend == "embedded" and settings.model.lower().endswith(".gguf"):
        gguf = Path(settings.model).expanduser()
    return EmbeddedBackend(gguf, settings.context_window)


class Engine:
    """Cheap to construct: the store, the embedding model and the LLM load on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        backend: BackendChoice | None = None,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
    ) -> None:
        self.settings = settings
        self.system_prompt = system_prompt
        self._embedder = embedder
        self._backend = backend
        self._backend_lock = threading.Lock()

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.data_dir)

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or Embedder(batch_size=self.settings.embedding_batch_size)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(self.store, self.embedder)

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.store, self.embedder, self.settings.chunk_size, self.settings.chunk_overlap)

    @property
    def backend(self) -> BackendChoice:
        with self._backend_lock:
            if self._backend is None:
                self._backend = choose_backend(self.settings)
            return self._backend

    def ingest(self, paths: Sequence[Path], on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        return self.ingestor.ingest_paths(paths, on_progress)

    def ensure_default_corpus(self, on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        """On first start with an empty knowledge base, index docs_corpus/ (once: deleting it sticks)."""
        if self.store.get_meta(CORPUS_SEEDED) or self.store.documents():
            return []
        corpus = self.settings.corpus_dir
        results = self.ingest([corpus], on_progress) if corpus.is_dir() else []
        if all(r.ok for r in results):
            self.store.set_meta(CORPUS_SEEDED, "1")
        return results

    def prepare(
        self, question: str, history: Sequence[Message] = (), doc_ids: Sequence[str] | None = None
    ) -> PreparedTurn:
        return prepare_turn(
            question,
            history,
            retriever=self.retriever,
            backend=self.backend.backend,
            system_prompt=self.system_prompt,
            top_k=self.settings.top_k,
            max_answer_tokens=self.settings.max_answer_tokens,
            doc_ids=doc_ids,
        )

    def ask(
        self, question: str, history: Sequence[Message] = (), doc_ids: Sequence[str] | None = None
    ) -> AnswerStream:
        prepared = self.prepare(question, history, doc_ids)
        backend = self.backend.backend
        options = GenerationOptions(
            context_window=backend.context_window,
            max_tokens=self.settings.max_answer_tokens,
            temperature=self.settings.temperature,
        )
        return AnswerStream(prepared, backend, options)
