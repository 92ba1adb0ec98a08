"""The engine's parts, built once from Settings and shared: the store, the embedder, the retriever, the
chosen backend and the saved conversations, plus the knowledge base's operations (ingest, list, delete).

The pages and the CLI import `Engine` and the values they render from here (documents, chunks, ingest
results and progress); a chat turn runs in rag/turn.py on an engine's parts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from rag import kb
from rag.backends.base import LLMBackend
from rag.backends.embedded import SMOLLM2_NAME, EmbeddedBackend
from rag.backends.ollama import OllamaBackend, OllamaStatus, PullProgress, model_installed, probe_ollama
from rag.backends.openai import OpenAIBackend
from rag.config import Settings, auth_headers
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.ingest import IngestLimits, Ingestor, IngestProgress, IngestResult, ProgressCallback, Reader
from rag.loaders import SUPPORTED
from rag.originals import Originals
from rag.registry import DocumentRecord
from rag.retrieval import RetrievalOptions, RetrievalResult, Retriever
from rag.schema import Chunk, RetrievedChunk
from rag.source_view import SourceViewer
from rag.store import Store

__all__ = [
    "BUILT_IN_MODEL",
    "ChosenBackend",
    "Chunk",
    "DocumentRecord",
    "Engine",
    "IngestProgress",
    "IngestResult",
    "OllamaStatus",
    "PullProgress",
    "Reader",
    "RetrievalResult",
    "RetrievedChunk",
    "choose_backend",
    "knowledge_base_engines",
    "knowledge_bases",
    "model_installed",
    "pull_model",
]

BUILT_IN_MODEL = SMOLLM2_NAME  # what answers when no other model is set up

logger = logging.getLogger(__name__)

CORPUS_SEEDED = "default_corpus_seeded"
DEFAULT_KNOWLEDGE_BASE = "default"


def knowledge_bases(settings: Settings) -> list[str]:
    """The names of the knowledge bases (each its own documents, vectors and conversations), the first the
    default: the HTTP API's models, the Usage page's groups."""
    return [k.name for k in kb.KnowledgeBases(settings).list()]


def knowledge_base_engines(engine: Engine) -> dict[str, Engine]:
    """Each knowledge base's engine (`engine` itself for its own), sharing its encoder and model; the others
    open their store and conversations when first used."""
    bases = kb.KnowledgeBases(engine.settings)
    own = engine.settings.kb_dir
    return {
        k.name: engine
        if k.folder == own
        else Engine(bases.settings_for(k.name), embedder=engine.embedder, chosen=engine.chosen)
        for k in bases.list()
    }


@dataclass(frozen=True)
class ChosenBackend:
    backend: LLMBackend
    reason: str  # shown to the user: which model answers and why
    fallback: bool = False  # True when auto wanted Ollama but fell back to the built-in model


def choose_backend(
    settings: Settings,
    status: OllamaStatus | None = None,
    make_embedded: Callable[[Settings], EmbeddedBackend] | None = None,
) -> ChosenBackend:
    """`auto`: Ollama when it is reachable and has the model, else the embedded model (saying why).

    An explicit backend (ollama, embedded, openai) is used as it is: when it fails, the question fails with
    its message, never silently answered by another model.

    `status` is a recent probe of Ollama (the app caches it); `make_embedded` builds (or reuses) the
    llama.cpp model.
    """
    make_embedded = make_embedded or embedded_backend
    if settings.backend == "ollama":
        return ChosenBackend(_ollama(settings), f"Ollama at {settings.ollama_host} with {settings.model}")
    if settings.backend == "openai":
        return ChosenBackend(openai_backend(settings), f"{settings.openai_base_url} with {settings.model}")
    if settings.backend == "embedded":
        embedded = make_embedded(settings)
        return ChosenBackend(embedded, f"built-in llama.cpp with {embedded.model} (backend set to embedded)")
    status = status or probe_ollama(settings.ollama_host, headers=auth_headers(settings.ollama_token))
    if not status.reachable:
        problem = f"Ollama is not reachable at {settings.ollama_host}"
        how = f"install Ollama (https://ollama.com), run `ollama serve` and `ollama pull {settings.model}`"
    elif model_installed(settings.model, status.models):
        return ChosenBackend(_ollama(settings), f"Ollama at {settings.ollama_host} with {settings.model}")
    else:
        problem = f"Ollama at {settings.ollama_host} has no model {settings.model!r}"
        how = f"run `ollama pull {settings.model}`"
    logger.info("%s: falling back to the built-in model", problem)
    embedded = make_embedded(settings)
    tiny = " (a tiny model: expect weak answers)" if embedded.model == SMOLLM2_NAME else ""
    return ChosenBackend(
        embedded,
        f"{problem}: answering with the built-in {embedded.model}{tiny}. For Llama 2, {how}.",
        fallback=True,
    )


def _ollama(settings: Settings) -> OllamaBackend:
    return OllamaBackend(
        settings.ollama_host,
        settings.model,
        settings.context_window,
        settings.request_timeout,
        headers=auth_headers(settings.ollama_token),
    )


def openai_backend(settings: Settings) -> OpenAIBackend:
    return OpenAIBackend(
        settings.openai_base_url,
        settings.model,
        settings.context_window,
        api_key=settings.openai_api_key or None,
        timeout=settings.request_timeout,
    )


def pull_model(settings: Settings, name: str) -> Iterator[PullProgress]:
    """`ollama pull NAME` on the Ollama of the settings, as progress updates (the Settings page's button)."""
    return OllamaBackend(settings.ollama_host, name, headers=auth_headers(settings.ollama_token)).pull()


def retrieval_options(settings: Settings) -> RetrievalOptions:
    """How retrieval runs, from the settings."""
    return RetrievalOptions(profile=settings.profile, rerank=settings.rerank)


def open_store(settings: Settings) -> Store:
    """The knowledge base of the settings: its registry in its folder, its vectors there or on a Chroma server."""
    return kb.open_store(settings)


def embedded_gguf(settings: Settings) -> Path | None:
    """The GGUF to run in-process: RAG_GGUF_PATH, or --model X.gguf with the embedded backend, else packaged."""
    if settings.gguf_path is None and settings.backend == "embedded" and settings.model.lower().endswith(".gguf"):
        return Path(settings.model).expanduser()
    return settings.gguf_path


def embedded_backend(settings: Settings) -> EmbeddedBackend:
    return EmbeddedBackend(embedded_gguf(settings), settings.context_window)


class Engine:
    """Cheap to construct: the store, the embedding model, the LLM and the conversations open on first use.

    The app builds one per request from the current settings, passing in the heavy parts it shares
    between sessions (store, embedder, backend, conversations, and the retriever with what it keeps between
    questions).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        embedder: Embedder | None = None,
        chosen: ChosenBackend | None = None,
        conversations: ConversationStore | None = None,
        sources: SourceViewer | None = None,
        retriever: Retriever | None = None,
    ) -> None:
        self.settings = settings
        self._retriever = retriever
        self._store = store
        self._embedder = embedder
        self._chosen = chosen
        self._conversations = conversations
        self._sources = sources
        self._backend_lock = threading.Lock()

    @cached_property
    def store(self) -> Store:
        return self._store or open_store(self.settings)

    @cached_property
    def conversations(self) -> ConversationStore:
        """The saved conversations of this knowledge base (`conversations.sqlite3` in its folder)."""
        return self._conversations or ConversationStore.in_data_dir(self.settings.kb_dir)

    @cached_property
    def embedder(self) -> Embedder:
        return self._embedder or Embedder(batch_size=self.settings.embedding_batch_size)

    @cached_property
    def retriever(self) -> Retriever:
        return self._retriever or Retriever(self.store, self.embedder, retrieval_options(self.settings))

    @cached_property
    def originals(self) -> Originals:
        """The documents' files, kept in the data folder to show sources where they stand."""
        return Originals(self.settings.data_dir)

    @cached_property
    def sources(self) -> SourceViewer:
        """Opens a source where it stands (its page highlighted, or its text in context)."""
        return self._sources or SourceViewer(self.store, self.originals, self.settings.data_dir / "cache")

    @cached_property
    def ingestor(self) -> Ingestor:
        return Ingestor(
            self.store,
            self.embedder,
            self.settings.chunk_size,
            self.settings.chunk_overlap,
            limits=IngestLimits.from_settings(self.settings),
            originals=self.originals,
        )

    @property
    def chosen(self) -> ChosenBackend:
        """The backend that answers, and why (chosen on first use)."""
        with self._backend_lock:
            if self._chosen is None:
                self._chosen = choose_backend(self.settings)
            return self._chosen

    # -- the knowledge base -------------------------------------------------------------------------

    def ingest(self, paths: Sequence[Path], on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        return self.ingestor.ingest_paths(paths, on_progress)

    def ingest_uploads(
        self, uploads: Sequence[tuple[str, bytes | Reader]], on_progress: ProgressCallback | None = None
    ) -> list[IngestResult]:
        """Uploaded files as bytes or readers (read one at a time), within the upload limits."""
        return self.ingestor.ingest_uploads(uploads, on_progress)

    @property
    def supported_extensions(self) -> list[str]:
        """The file types the loaders read, as extensions without the dot ("pdf", "md", …)."""
        return sorted({ext.lstrip(".") for ext in SUPPORTED})

    def check_upload(self, sizes: Sequence[int]) -> None:
        """Raise UploadLimitError (saying which limit and how to change it) for a batch over the limits."""
        IngestLimits.from_settings(self.settings).check_upload(sizes)

    def documents(self) -> list[DocumentRecord]:
        return self.store.documents()

    def delete(self, doc_id: str) -> None:
        self.store.delete_document(doc_id)
        self.originals.discard(doc_id)

    def preview(self, doc_id: str) -> list[Chunk]:
        return self.store.chunks_of(doc_id)

    def search(self, query: str, k: int | None = None) -> list[RetrievedChunk]:
        """What retrieval returns for a query (no threshold): shows why an answer used what it used."""
        return self.check_retrieval(query, k).hits

    def check_retrieval(self, query: str, k: int | None = None) -> RetrievalResult:
        """Retrieval at the settings: the ranked passages, those a chat turn would give the model, and what
        each stage did."""
        return self.retriever.retrieve(
            query,
            top_k=k or self.settings.top_k,
            min_score=self.settings.min_score,
            max_chars=self.settings.context_chars,
        )

    def ensure_default_corpus(self, on_progress: ProgressCallback | None = None) -> list[IngestResult]:
        """On first start with an empty knowledge base 'default', index docs_corpus/ (once: deleting it sticks).
        Other knowledge bases start empty."""
        if self.settings.kb_folder is not None or self.store.get_meta(CORPUS_SEEDED) or self.store.documents():
            return []
        corpus = self.settings.corpus_dir
        results = self.ingest([corpus], on_progress) if corpus.is_dir() else []
        if all(r.ok for r in results):
            self.store.set_meta(CORPUS_SEEDED, "1")
        return results
