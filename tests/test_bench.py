"""The benchmark command on a tiny corpus: every stage runs for real and reports figures of the right shape."""

from __future__ import annotations

import json
import random
from pathlib import Path

from rag.embeddings import Embedder
from rag.tools.bench import BenchReport, format_report, run_bench, sample_queries, synthetic_chunks

TEXTS = {
    "tides.txt": "Tides are caused by the pull of the Moon. The Sun adds a smaller pull. " * 8,
    "ferns.md": "# Ferns\n\nFerns reproduce with spores rather than seeds. They like shade and damp soil. " * 8,
}


def test_bench_measures_ingestion_and_retrieval(tmp_path: Path, embedder: Embedder) -> None:
    for name, text in TEXTS.items():
        (tmp_path / name).write_text(text)
    messages: list[str] = []
    report = run_bench(tmp_path, embedder, 300, 50, 5, sizes=(50, 200), queries=5, repeat=2, progress=messages.append)

    i = report.ingestion
    assert i.files == 2 and i.chunks >= 2 and i.embedded_tokens > 0 and i.tutorial_chunks >= 2
    assert i.raw_tokens_per_second > 0 and i.ingest_tokens_per_second > 0 and i.tutorial_seconds > 0
    assert 0 <= i.reingest_seconds < i.ingest_seconds  # unchanged files are skipped, not re-embedded
    assert i.repeats == 2
    assert [r.chunks for r in report.retrieval] == [50, 200]
    assert all(0 < r.p50_ms <= r.p95_ms and r.query_embedding_ms > 0 and r.peak_rss_mb > 0 for r in report.retrieval)
    assert messages[0].startswith("ingestion") and messages[-1] == "retrieval at 200 chunks"

    table = format_report(report)
    assert "tutorial pipeline" in table and "200" in table
    assert json.loads(report.to_json())["retrieval"][1]["chunks"] == 200
    assert isinstance(report, BenchReport)


def test_synthetic_chunks_use_the_corpus_words_and_group_into_documents() -> None:
    chunks = synthetic_chunks(1500, ["alpha beta beta gamma"], random.Random(0))
    assert len(chunks) == 1500 and len({c.id for c in chunks}) == 1500
    assert {c.doc_id for c in chunks} == {"synthetic-00000", "synthetic-00001"}
    assert set(chunks[0].text.split()) <= {"alpha", "beta", "gamma"}


def test_queries_are_drawn_from_corpus_sentences() -> None:
    queries = sample_queries(["One two three four five six seven. Short one."], 3, random.Random(1))
    assert queries == ["One two three four five six seven."] * 3


def test_bench_reads_the_pdfs_with_ours_and_with_pypdf(tmp_path: Path, embedder: Embedder) -> None:
    from tests.test_loaders import make_pdf, pdf_with_huge_stream

    (tmp_path / "guide.pdf").write_bytes(make_pdf(["Tides follow the Moon.", "Ferns like the shade."]))
    (tmp_path / "filing.pdf").write_bytes(pdf_with_huge_stream("Total revenue 39,669"))  # pypdf refuses it
    messages: list[str] = []
    report = run_bench(tmp_path, embedder, 300, 50, 5, sizes=(), queries=2, repeat=1, progress=messages.append,
                       tutorial=False)  # fmt: skip
    p = report.pdf_parsing
    assert p is not None and p.files == 2 and p.pages == 3  # every page of both files, by ours
    assert p.pypdf_failed == ["filing.pdf"]
    assert p.ours_pages_per_second > 0 and p.pypdf_pages_per_second > 0 and p.pypdf_vs_ours > 0
    assert report.retrieval == [] and report.ingestion.tutorial_seconds == 0.0
    assert messages[0].startswith("PDF parsing")
    table = format_report(report)
    assert "PDF parsing of 2 files (3 pages)" in table and "could not read filing.pdf" in table
    assert "tutorial pipeline: not measured" in table
