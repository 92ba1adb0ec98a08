"""Retrieval speed on real documents, as a chat turn retrieves (every stage on, then the selection), beside
one query embedding measured in the same run.

The synthetic benchmark (rag/tools/bench.py) draws random words and random vectors: it never names a
document, never matches a title, never prefers a statement. Here the knowledge base is made of real
documents (ingested once, kept in a cache folder) and the queries are real questions. Larger sizes are
built from the same real chunks and vectors: the documents are copied under new names, each copy's vectors
moved a little (so that the vector index holds distinct points), until the size is reached; nothing is
embedded again.
"""

from __future__ import annotations

import hashlib
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import RagError
from rag.ingest import collect_files
from rag.registry import DocumentRecord
from rag.retrieval import RetrievalOptions, Retriever
from rag.schema import Chunk
from rag.store import Store
from rag.tools.bench import percentile
from rag.tools.evaluation import build_knowledge_base, knowledge_base_key

COPY_NOISE = 0.02  # how far each copy's vectors move (their cosine to the original stays ~0.99)


@dataclass(frozen=True)
class RealRetrievalFigures:
    chunks: int
    documents: int
    questions: int
    build_seconds: float
    p50_ms: float  # a whole retrieval as a chat turn runs it: embedding, every stage, the selection
    p95_ms: float
    query_embedding_ms: float  # one query embedding, median, same run
    p95_vs_query_embedding: float  # target ≤ 2 at 10,000 real chunks, ≤ 3 at 100,000
    stage_p50_ms: dict[str, float] = field(default_factory=dict)  # each stage's own time, median
    stage_p95_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


Progress = Callable[[str], None]


def bench_real_retrieval(
    docs: Sequence[Path],
    questions: Sequence[str],
    embedder: Embedder,
    settings: Settings,
    sizes: Sequence[int],
    *,
    cache: Path | None = None,
    options: RetrievalOptions | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[RealRetrievalFigures]:
    """Each size (0: the real documents as they are) measured with the same questions."""
    say = progress or (lambda _message: None)
    files = collect_files(docs)
    if not files:
        raise RagError("No supported files among the documents given: pass folders of real documents.")
    if not questions:
        raise RagError("No questions to time: pass a question file (--qa) or a suite.")
    rng = random.Random(seed)
    embedder.embed_documents(["warm-up"] * 4)
    figures = []
    with tempfile.TemporaryDirectory(prefix="rag-realbench-") as tmp:
        root = cache / f"real-{knowledge_base_key(files, settings, embedder)}" if cache else Path(tmp)
        say(f"the real knowledge base: {len(files)} files")
        master, _ = build_knowledge_base(root / "all", files, settings, embedder)
        documents = _read_all(master)
        real_chunks = sum(len(chunks) for _, chunks, _ in documents)
        for size in sizes:
            target = size or real_chunks
            say(f"retrieval at {target:,} chunks built from {real_chunks:,} real ones")
            started = time.perf_counter()
            if target == real_chunks:
                store, temporary = master, False
            else:
                store, temporary = _built(Path(tmp) / f"size-{target}", documents, target, rng), True
            built = time.perf_counter() - started
            figures.append(_time(store, questions, embedder, settings, options, built))
            if temporary:
                store.close()
        master.close()
    return figures


def _read_all(store: Store) -> list[tuple[DocumentRecord, list[Chunk], np.ndarray]]:
    """Every ready document with its chunks and their stored vectors, in position order."""
    out = []
    for record in store.documents():
        chunks = store.chunks_of(record.doc_id)
        fetched = store.fetch([c.id for c in chunks])
        kept = [c for c in chunks if c.id in fetched]
        if kept:
            out.append((record, kept, np.stack([fetched[c.id][1] for c in kept])))
    return out


def _built(
    where: Path, documents: Sequence[tuple[DocumentRecord, list[Chunk], np.ndarray]], target: int, rng: random.Random
) -> Store:
    """A knowledge base of `target` chunks: the real documents, then copies of them (new names, vectors moved
    a little), whole documents at a time, the last one cut to fit."""
    store = Store(where)
    noise = np.random.default_rng(rng.randrange(2**32))
    total = 0
    copy = 0
    while total < target:
        for record, chunks, vectors in documents:
            if total >= target:
                break
            take = min(len(chunks), target - total)
            if copy:
                doc_id = hashlib.sha256(f"{record.doc_id}|{copy}".encode()).hexdigest()[:16]
                stem, dot, suffix = record.name.rpartition(".")
                name = f"{stem or suffix} (copy {copy}){dot}{suffix if stem else ''}"
                moved = vectors[:take] + noise.normal(0, COPY_NOISE, vectors[:take].shape).astype(np.float32)
                moved /= np.linalg.norm(moved, axis=1, keepdims=True)
            else:
                doc_id, name, moved = record.doc_id, record.name, vectors[:take]
            new = [replace(c, id=f"{doc_id}:{c.position:05d}", doc_id=doc_id, source=name) for c in chunks[:take]]
            store.begin_document(replace(record, doc_id=doc_id, name=name, content_hash=doc_id * 4, chunks=take))
            store.add_chunks(new, moved)
            store.commit_document(doc_id)
            total += take
        copy += 1
    return store


def _time(
    store: Store,
    questions: Sequence[str],
    embedder: Embedder,
    settings: Settings,
    options: RetrievalOptions | None,
    built: float,
) -> RealRetrievalFigures:
    retriever = Retriever(store, embedder, options)

    def retrieve(question: str) -> dict[str, float]:
        result = retriever.retrieve(
            question, top_k=settings.top_k, min_score=settings.min_score, max_chars=settings.context_chars
        )
        return {s.stage: 1000 * s.seconds for s in result.stages}

    for q in questions[:5]:  # warm-up: the keyword index, the document cards and the profile are built once
        retrieve(q)
    totals: list[float] = []
    embeds: list[float] = []
    stages: dict[str, list[float]] = {}
    for q in questions:
        started = time.perf_counter()
        for stage, ms in retrieve(q).items():
            stages.setdefault(stage, []).append(ms)
        totals.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        embedder.embed_query(q)
        embeds.append(1000 * (time.perf_counter() - started))
    one = statistics.median(embeds)
    return RealRetrievalFigures(
        chunks=store.chunk_count(),
        documents=len(store.documents()),
        questions=len(questions),
        build_seconds=round(built, 1),
        p50_ms=round(percentile(totals, 0.50), 1),
        p95_ms=round(percentile(totals, 0.95), 1),
        query_embedding_ms=round(one, 1),
        p95_vs_query_embedding=round(percentile(totals, 0.95) / one, 2),
        stage_p50_ms={s: round(percentile(v, 0.50), 1) for s, v in stages.items()},
        stage_p95_ms={s: round(percentile(v, 0.95), 1) for s, v in stages.items()},
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
    )


def format_real(figures: Sequence[RealRetrievalFigures]) -> str:
    rows = [
        "retrieval on real documents, as a chat turn runs it (every stage, then the selection)",
        f"  {'chunks':>8} {'docs':>6} {'questions':>9} {'p50 ms':>7} {'p95 ms':>7} {'1 embed ms':>10} "
        f"{'p95/embed':>9} {'peak RSS MB':>11}  stages p50 / p95 ms",
    ]
    for f in figures:
        stages = ", ".join(f"{s} {f.stage_p50_ms[s]:.1f}/{f.stage_p95_ms[s]:.1f}" for s in f.stage_p50_ms)
        rows.append(
            f"  {f.chunks:>8,} {f.documents:>6,} {f.questions:>9,} {f.p50_ms:>7.1f} {f.p95_ms:>7.1f} "
            f"{f.query_embedding_ms:>10.1f} {f.p95_vs_query_embedding:>9.2f} {f.peak_rss_mb:>11.0f}  {stages}"
        )
    return "\n".join(rows)
