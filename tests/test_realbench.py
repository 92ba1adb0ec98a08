"""Retrieval speed on real documents: a kept knowledge base, real questions, larger sizes built from real chunks."""

from __future__ import annotations

from pathlib import Path

from rag.config import Settings
from rag.embeddings import Embedder
from rag.tools.realbench import bench_real_retrieval, format_real

TEXTS = {
    "tides.txt": "Tides are caused by the pull of the Moon. The Sun adds a smaller pull. " * 12,
    "ferns.md": "# Ferns\n\nFerns reproduce with spores rather than seeds. They like shade and damp soil. " * 12,
}


def test_real_documents_are_timed_at_their_size_and_at_a_larger_one(tmp_path: Path, embedder: Embedder) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in TEXTS.items():
        (docs / name).write_text(text)
    questions = ["What causes the tides?", "How do ferns reproduce?", "Where do ferns grow?"]
    messages: list[str] = []
    figures = bench_real_retrieval(
        [docs], questions, embedder, Settings(chunk_size=200, chunk_overlap=20), [0, 40],
        cache=tmp_path / "cache", progress=messages.append,
    )  # fmt: skip
    real, larger = figures
    assert real.documents == 2 and real.questions == 3 and real.chunks < 40
    assert larger.chunks == 40 and larger.documents > real.documents  # copies of the real documents
    for f in figures:
        assert 0 < f.p50_ms <= f.p95_ms and f.query_embedding_ms > 0 and f.p95_vs_query_embedding > 0
        assert {"candidates", "focus", "select"} <= set(f.stage_p50_ms)
    assert "p95/embed" in format_real(figures)
    assert any(p.name.startswith("real-") for p in (tmp_path / "cache").iterdir())  # kept for the next run
