"""`rag bench --chroma-url`: retrieval measured with the vectors on a real Chroma server next to embedded."""

from __future__ import annotations

import json
from pathlib import Path

import chromadb
import pytest

from rag.embeddings import Embedder
from rag.tools.bench import format_report, run_bench
from tests.servers import ChromaServer

pytestmark = pytest.mark.slow


def test_bench_compares_a_chroma_server_with_the_embedded_store(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.txt").write_text("Tides are caused by the pull of the Moon. The Sun adds a smaller pull. " * 8)
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        messages: list[str] = []
        report = run_bench(
            docs, embedder, 300, 50, 5, sizes=(50, 200), queries=5, repeat=1, progress=messages.append,
            chroma_url=server.url,
        )  # fmt: skip
        left = chromadb.HttpClient(host="127.0.0.1", port=server.port).list_collections()
    finally:
        server.stop()

    assert [(r.chunks, r.store) for r in report.retrieval] == [
        (50, "embedded"), (50, server.url), (200, "embedded"), (200, server.url),
    ]  # fmt: skip
    assert all(0 < r.p50_ms <= r.p95_ms and r.write_chunks_per_second > 0 for r in report.retrieval)
    assert messages[-1].endswith(f"200 chunks, embedded and with the vectors on the Chroma server at {server.url}")
    assert left == []  # the throwaway collections are dropped
    table = format_report(report)
    assert f"Chroma server ({server.url}) ÷ embedded" in table
    assert json.loads(report.to_json())["retrieval"][1]["store"] == server.url
