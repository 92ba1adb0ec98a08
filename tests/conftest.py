from __future__ import annotations

import pytest

import rag  # noqa: F401  (sets the offline environment before any model library loads)
from rag.backends.embedded import EmbeddedBackend
from rag.embeddings import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real packaged embedding model, loaded once for the whole run."""
    model = Embedder()
    model.embed_query("warm up")
    return model


@pytest.fixture(scope="session")
def embedded_llm() -> EmbeddedBackend:
    """The real built-in llama.cpp model (SmolLM2-135M-Instruct), loaded once."""
    return EmbeddedBackend(context_window=4096)
