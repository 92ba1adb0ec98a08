from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import rag  # noqa: F401  (sets the offline environment before any model library loads)
from rag.backends.embedded import EmbeddedBackend
from rag.embeddings import Embedder
from rag.retrieval import Retriever
from tests.servers import ChromaServer, Site, serve_site


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


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    """A real `chroma run` on a free port, shared by the tests that need a server (each in collections of its own)."""
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def site() -> Iterator[Site]:
    """A real HTTP server on this machine serving the pages the test puts in `site.pages`."""
    with serve_site() as served:
        yield served


@pytest.fixture
def retrievers_built(monkeypatch: pytest.MonkeyPatch) -> list[Retriever]:
    """The retrievers built while the test runs: each keeps its own vectors and document cards, so a new one per
    question would read them all again."""
    built: list[Retriever] = []
    build = Retriever.__init__

    def counted(self: Retriever, *args: Any, **kwargs: Any) -> None:
        built.append(self)
        build(self, *args, **kwargs)

    monkeypatch.setattr(Retriever, "__init__", counted)
    return built
