"""The app's engine with its vectors on a real Chroma server (`chroma run`): ingest, replace, hybrid search,
decline and delete work as they do embedded, configured the way a user configures them (RAG_CHROMA_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.backends.embedded import EmbeddedBackend
from rag.config import Settings
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine
from rag.turn import prepare
from tests.servers import ChromaServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    running = ChromaServer(tmp_path_factory.mktemp("chroma") / "data").start()
    try:
        yield running
    finally:
        running.stop()


def test_the_engine_ingests_searches_declines_and_deletes_on_a_chroma_server(
    server: ChromaServer, tmp_path: Path, embedder: Embedder, embedded_llm: EmbeddedBackend
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "garden.md").write_text("# Garden\n\nTomatoes need six hours of sun. Water the XJ-9 hose weekly.")
    (docs / "boats.md").write_text("# Boats\n\nA sloop has one mast; a ketch has two.")
    env = {"RAG_DATA_DIR": str(tmp_path / "kb"), "RAG_CHROMA_URL": f"127.0.0.1:{server.port}"}
    settings = Settings.from_env(env)
    assert settings.chroma_url == server.url  # "host:port" is read as a URL
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(embedded_llm, "test: built-in model"))
    assert engine.store.chroma_url == server.url

    assert [r.status for r in engine.ingest([docs])] == ["added", "added"]
    assert {d.name for d in engine.documents()} == {"boats.md", "garden.md"}
    assert engine.search("how many masts does a ketch have")[0].chunk.source == "boats.md"
    assert engine.search("XJ-9")[0].chunk.source == "garden.md"  # the keyword half of hybrid search

    (docs / "garden.md").write_text("# Garden\n\nTomatoes need eight hours of sun.")
    assert [r.status for r in engine.ingest([docs / "garden.md"])] == ["replaced"]
    assert "eight hours" in engine.search("tomatoes sun")[0].chunk.text
    assert engine.store.vector_count() == engine.store.chunk_count()  # the old version left nothing behind

    declined = prepare(engine, "Who won the 1998 football world cup final?")
    assert declined.decline is not None  # nothing relevant: the model is not asked

    garden = engine.store.find("garden.md")
    assert garden is not None
    engine.delete(garden.doc_id)
    assert [d.name for d in engine.documents()] == ["boats.md"]
    assert engine.store.vector_count() == engine.store.chunk_count()
