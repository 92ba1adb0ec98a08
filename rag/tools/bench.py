"""Benchmarks, measured in one run on this machine: ingestion throughput against the embedding model's
own limit and against the usual LangChain tutorial pipeline, re-ingestion, and retrieval latency and
memory at growing knowledge-base sizes.

Ratios are taken against references measured in the same run, so they hold on any machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import resource
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.chroma_client import drop_collection
from rag.embeddings import Embedder
from rag.errors import RagError
from rag.ingest import Ingestor, collect_files
from rag.loaders import load_bytes
from rag.registry import DocumentRecord
from rag.retrieval import Retriever
from rag.schema import Chunk
from rag.sqlite import now_iso
from rag.store import Store

# The pipeline of the usual LangChain RAG tutorial, the reference the targets are set against.
TUTORIAL_CHUNK_SIZE = 1000
TUTORIAL_CHUNK_OVERLAP = 200
TUTORIAL_BATCH_SIZE = 32  # sentence-transformers' default, as HuggingFaceEmbeddings uses it
SYNTHETIC_WORDS_PER_CHUNK = 100
SYNTHETIC_DOC_CHUNKS = 1000

Progress = Callable[[str], None]


@dataclass(frozen=True)
class IngestionFigures:
    files: int
    chunks: int
    embedded_tokens: int
    raw_encode_seconds: float
    raw_tokens_per_second: float
    ingest_seconds: float
    ingest_tokens_per_second: float
    ingest_vs_raw: float  # end-to-end throughput / raw encode throughput (target ≥ 0.85)
    tutorial_chunks: int
    tutorial_embedded_tokens: int
    tutorial_seconds: float
    ingest_vs_tutorial: float  # our wall time / the tutorial's (target ≤ 0.8)
    reingest_seconds: float
    reingest_vs_ingest: float  # unchanged re-ingest / first ingest (target ≤ 0.03)
    repeats: int = 1  # each timing is the best of this many runs


@dataclass(frozen=True)
class RetrievalFigures:
    chunks: int
    build_seconds: float
    p50_ms: float
    p95_ms: float
    query_embedding_ms: float
    p95_vs_query_embedding: float  # target ≤ 2 at 100k chunks
    peak_rss_mb: float  # peak of the whole process so far (sizes run smallest first)
    store: str = "embedded"  # or the URL of the Chroma server the vectors were on
    write_chunks_per_second: float = 0.0  # storing chunks with their vectors (Chroma + registry + keyword index)


@dataclass(frozen=True)
class PdfParsingFigures:
    """Reading the PDFs of --docs: our loader, PDFium's text alone, and pypdf (the tutorial's PyPDFLoader)."""

    files: int
    pages: int
    ours_seconds: float  # rag.loaders: PDFium text, tables, headings, title (no OCR needed on these files)
    ours_pages_per_second: float
    pdfium_text_seconds: float  # PDFium's page text alone
    pypdf_seconds: float
    pypdf_pages_per_second: float  # over the pages of the files pypdf could read
    pypdf_failed: list[str]
    pypdf_vs_ours: float  # pypdf's seconds a page ÷ ours (target ≥ 10)
    pypdf_vs_pdfium_text: float


@dataclass(frozen=True)
class BenchReport:
    device: str
    ingestion: IngestionFigures
    retrieval: list[RetrievalFigures] = field(default_factory=list)
    pdf_parsing: PdfParsingFigures | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def run_bench(
    docs: Path,
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    top_k: int,
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    queries: int = 100,
    seed: int = 0,
    repeat: int = 2,
    progress: Progress | None = None,
    chroma_url: str | None = None,
    tutorial: bool = True,
) -> BenchReport:
    """With `chroma_url`, each size is measured embedded and with the vectors on that Chroma server (in a
    throwaway collection), on the same chunks, vectors and queries, the queries interleaved."""
    say = progress or (lambda _message: None)
    files = collect_files([docs])
    if not files:
        raise RagError(f"No supported files in {docs}: give --docs a folder of documents to ingest.")
    pdfs = [f for f in files if f.suffix.lower() == ".pdf"]
    pdf_parsing = None
    if pdfs:
        say(f"PDF parsing: ours, PDFium's text and pypdf on {len(pdfs)} PDF files")
        pdf_parsing = bench_pdf_parsing(pdfs)
    embedder.embed_documents(["warm-up"] * 4)  # load the model outside every timing
    say(f"ingestion: our pipeline, the raw encoder{' and the tutorial pipeline' if tutorial else ''} on the same files")
    ingestion, texts = bench_ingestion(files, embedder, chunk_size, chunk_overlap, repeat, tutorial)
    rng = random.Random(seed)
    query_texts = sample_queries(texts, queries, rng)
    retrieval = []
    for size in sizes:
        if not chroma_url:
            say(f"retrieval at {size:,} chunks")
            retrieval.append(bench_retrieval(size, texts, query_texts, embedder, top_k, rng))
            continue
        say(f"retrieval at {size:,} chunks, embedded and with the vectors on the Chroma server at {chroma_url}")
        retrieval.extend(
            bench_retrieval_side_by_side(size, texts, query_texts, embedder, top_k, rng, [None, chroma_url])
        )
    return BenchReport(device=embedder.device, ingestion=ingestion, retrieval=retrieval, pdf_parsing=pdf_parsing)


def bench_pdf_parsing(files: Sequence[Path]) -> PdfParsingFigures:
    """Each reader over the same files, file by file in turn (so a busy moment of the machine weighs on
    all three alike); pages/s over the pages each could read."""
    import pypdfium2 as pdfium
    from pypdf import PdfReader

    ours = pdfium_text = pypdf = 0.0
    pages = pypdf_pages = 0
    failed: list[str] = []
    for path in files:
        data = path.read_bytes()
        started = time.perf_counter()
        with contextlib.suppress(RagError):  # counted as no pages read
            pages += load_bytes(data, path.name).pages or 0
        ours += time.perf_counter() - started

        started = time.perf_counter()
        pdf = pdfium.PdfDocument(data)
        for page in pdf:
            page.get_textpage().get_text_bounded()
        pdf.close()
        pdfium_text += time.perf_counter() - started

        started = time.perf_counter()
        try:
            reader = PdfReader(io.BytesIO(data))
            count = 0
            for page in reader.pages:
                page.extract_text()
                count += 1
            pypdf_pages += count
        except Exception:  # LimitReachedError and pypdf's errors on what it cannot read
            failed.append(path.name)
        pypdf += time.perf_counter() - started
    ours_rate = pages / ours if ours else 0.0
    pypdf_rate = pypdf_pages / pypdf if pypdf else 0.0
    return PdfParsingFigures(
        files=len(files),
        pages=pages,
        ours_seconds=round(ours, 2),
        ours_pages_per_second=round(ours_rate, 1),
        pdfium_text_seconds=round(pdfium_text, 2),
        pypdf_seconds=round(pypdf, 2),
        pypdf_pages_per_second=round(pypdf_rate, 1),
        pypdf_failed=failed,
        pypdf_vs_ours=round(ours_rate / pypdf_rate, 1) if pypdf_rate else 0.0,
        pypdf_vs_pdfium_text=round((pages / pdfium_text) / pypdf_rate, 1) if pypdf_rate and pdfium_text else 0.0,
    )


def bench_ingestion(
    files: Sequence[Path],
    embedder: Embedder,
    chunk_size: int,
    chunk_overlap: int,
    repeat: int = 2,
    tutorial_pipeline: bool = True,
) -> tuple[IngestionFigures, list[str]]:
    """Each of the three measured `repeat` times, in rotating order, keeping the best time of each: on a
    shared machine the best of a few runs is what the code can do, the rest is other processes' noise.
    Without `tutorial_pipeline` (large corpora: it doubles the time) its figures are zeros."""
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        ours: list[float] = []
        raw: list[float] = []
        tutorial: list[float] = []
        texts: list[str] = []
        tutorial_texts: list[str] = []
        reingest_seconds = 0.0
        failed = 0

        def run_ours(attempt: int) -> None:
            nonlocal texts, reingest_seconds, failed
            store = Store(Path(tmp) / f"ours-{attempt}")
            ingestor = Ingestor(store, embedder, chunk_size, chunk_overlap)
            started = time.perf_counter()
            results = ingestor.ingest_paths(files)
            ours.append(time.perf_counter() - started)
            failed = sum(not r.ok for r in results)
            if failed == len(results):
                raise RagError(f"Nothing could be ingested: {results[0].message}")
            started = time.perf_counter()
            ingestor.ingest_paths(files)
            reingest_seconds = time.perf_counter() - started
            texts = [c.indexed_text for record in store.documents() for c in store.chunks_of(record.doc_id)]
            store.close()

        def run_raw(attempt: int) -> None:
            started = time.perf_counter()
            embedder.embed_documents(texts)
            raw.append(time.perf_counter() - started)

        def run_tutorial(attempt: int) -> None:
            nonlocal tutorial_texts
            tutorial_texts, seconds = run_tutorial_pipeline(files, embedder, Path(tmp) / f"tutorial-{attempt}")
            tutorial.append(seconds)

        order = [run_ours, run_raw, run_tutorial]  # ours first: the raw encoder needs its chunk texts
        if not tutorial_pipeline:
            order.remove(run_tutorial)
        for attempt in range(max(1, repeat)):
            for step in order:
                step(attempt)
            order = order[1:] + order[:1] if attempt == 0 else order[::-1]
        tokens = embedded_tokens(embedder, texts)
    best_ours, best_raw, best_tutorial = min(ours), min(raw), min(tutorial, default=0.0)
    return (
        IngestionFigures(
            files=len(files) - failed,
            chunks=len(texts),
            embedded_tokens=tokens,
            raw_encode_seconds=round(best_raw, 2),
            raw_tokens_per_second=round(tokens / best_raw),
            ingest_seconds=round(best_ours, 2),
            ingest_tokens_per_second=round(tokens / best_ours),
            ingest_vs_raw=round(best_raw / best_ours, 3),
            tutorial_chunks=len(tutorial_texts),
            tutorial_embedded_tokens=embedded_tokens(embedder, tutorial_texts),
            tutorial_seconds=round(best_tutorial, 2),
            ingest_vs_tutorial=round(best_ours / best_tutorial, 3) if best_tutorial else 0.0,
            reingest_seconds=round(reingest_seconds, 4),
            reingest_vs_ingest=round(reingest_seconds / best_ours, 4),
            repeats=max(1, repeat),
        ),
        texts,
    )


def embedded_tokens(embedder: Embedder, texts: Sequence[str]) -> int:
    """Word-piece tokens the model actually reads (it truncates each text at its maximum length)."""
    cap = embedder.max_tokens or 10**9
    return sum(min(n, cap) for n in embedder.count_tokens(texts))


def run_tutorial_pipeline(files: Sequence[Path], embedder: Embedder, path: Path) -> tuple[list[str], float]:
    """Load → RecursiveCharacterTextSplitter(1000, 200) → Chroma.from_documents with the same model.

    Files are parsed by our loaders (the tutorial's loaders wrap the same parsers), so the comparison is
    about chunking, embedding and storing.
    """
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    started = time.perf_counter()
    pages: list[Document] = []
    for file in files:
        try:
            doc = load_bytes(file.read_bytes(), file.name)
        except RagError:
            continue
        pages.extend(Document(s.text, metadata={"source": file.name, "page": s.page or 0}) for s in doc.sections)
    splitter = RecursiveCharacterTextSplitter(chunk_size=TUTORIAL_CHUNK_SIZE, chunk_overlap=TUTORIAL_CHUNK_OVERLAP)
    chunks = splitter.split_documents(pages)
    Chroma.from_documents(chunks, tutorial_embeddings(embedder), persist_directory=str(path))
    return [c.page_content for c in chunks], time.perf_counter() - started


def tutorial_embeddings(embedder: Embedder) -> Any:
    """The same model as LangChain's HuggingFaceEmbeddings runs it (the library's batching, batch 32)."""
    from langchain_core.embeddings import Embeddings

    model = embedder.model

    class SentenceTransformerEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            vectors = model.encode(texts, batch_size=TUTORIAL_BATCH_SIZE, show_progress_bar=False)
            return [list(map(float, v)) for v in vectors]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return SentenceTransformerEmbeddings()


def sample_queries(texts: Sequence[str], count: int, rng: random.Random) -> list[str]:
    """Question-like queries: the opening words of sentences from the corpus."""
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s.split()) >= 6]
    if not sentences:
        sentences = [t for t in texts if t.strip()] or ["what is this about"]
    return [" ".join(rng.choice(sentences).split()[:10]) for _ in range(count)]


def synthetic_chunks(count: int, texts: Sequence[str], rng: random.Random) -> list[Chunk]:
    """Chunks of words drawn with the corpus's word frequencies, so keyword search does realistic work."""
    counts = Counter(w for t in texts for w in t.split())
    words = list(counts)
    weights = np.array([counts[w] for w in words], dtype=np.float64)
    picks = np.random.default_rng(rng.randrange(2**32)).choice(
        len(words), size=(count, SYNTHETIC_WORDS_PER_CHUNK), p=weights / weights.sum()
    )
    chunks = []
    for i, row in enumerate(picks):
        doc = f"synthetic-{i // SYNTHETIC_DOC_CHUNKS:05d}"
        chunks.append(Chunk(f"{doc}:{i}", doc, " ".join(words[j] for j in row), f"{doc}.txt", None, i))
    return chunks


def bench_retrieval(
    size: int,
    texts: Sequence[str],
    queries: Sequence[str],
    embedder: Embedder,
    top_k: int,
    rng: random.Random,
    chroma_url: str | None = None,
) -> RetrievalFigures:
    """One store: embedded, or with its vectors on the Chroma server at `chroma_url`."""
    return bench_retrieval_side_by_side(size, texts, queries, embedder, top_k, rng, [chroma_url])[0]


def bench_retrieval_side_by_side(
    size: int,
    texts: Sequence[str],
    queries: Sequence[str],
    embedder: Embedder,
    top_k: int,
    rng: random.Random,
    locations: Sequence[str | None],
) -> list[RetrievalFigures]:
    """The same synthetic knowledge base in each location (None: embedded; else a Chroma server's URL, in a
    throwaway collection), then each query searched in every store in turn, rotating which goes first. On a
    shared machine the load changes over minutes: stores measured one after the other would compare loads."""
    collection = f"rag-bench-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        started = time.perf_counter()
        chunks = synthetic_chunks(size, texts, rng)
        vectors = np.random.default_rng(rng.randrange(2**32)).standard_normal((size, embedder.dimension))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        generating = time.perf_counter() - started
        stores: list[Store] = []
        write_seconds: list[float] = []
        try:
            for n, url in enumerate(locations):
                path = Path(tmp) / f"store-{n}"
                store = Store(path, url, collection=f"{collection}-{n}") if url else Store(path)
                stores.append(store)
                writing = time.perf_counter()
                for start in range(0, size, SYNTHETIC_DOC_CHUNKS):
                    batch = chunks[start : start + SYNTHETIC_DOC_CHUNKS]
                    doc_id = batch[0].doc_id
                    record = DocumentRecord(doc_id, f"{doc_id}.txt", "text", doc_id, None, len(batch), 0, now_iso())
                    store.begin_document(record)
                    store.add_chunks(batch, vectors[start : start + len(batch)])
                    store.commit_document(doc_id)
                write_seconds.append(time.perf_counter() - writing)

            retrievers = [Retriever(store, embedder) for store in stores]
            for retriever in retrievers:
                for q in queries[:5]:  # warm-up (the in-memory keyword index is built on the first search)
                    retriever.retrieve(q, top_k=top_k)
            search_ms: list[list[float]] = [[] for _ in stores]
            embed_ms = []
            for i, q in enumerate(queries):
                first = i % len(stores)
                for n in [*range(first, len(stores)), *range(first)]:
                    t0 = time.perf_counter()
                    retrievers[n].retrieve(q, top_k=top_k)
                    search_ms[n].append(1000 * (time.perf_counter() - t0))
                t0 = time.perf_counter()
                embedder.embed_query(q)
                embed_ms.append(1000 * (time.perf_counter() - t0))
        finally:
            for store in stores:
                store.close()
            for n, url in enumerate(locations[: len(stores)]):
                if url:
                    drop_collection(url, f"{collection}-{n}")
    one_embedding = statistics.median(embed_ms)
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    return [
        RetrievalFigures(
            chunks=size,
            build_seconds=round(generating + write_seconds[n], 1),
            p50_ms=round(percentile(search_ms[n], 0.50), 1),
            p95_ms=round(percentile(search_ms[n], 0.95), 1),
            query_embedding_ms=round(one_embedding, 1),
            p95_vs_query_embedding=round(percentile(search_ms[n], 0.95) / one_embedding, 2),
            peak_rss_mb=peak_rss_mb,
            store=url or "embedded",
            write_chunks_per_second=round(size / write_seconds[n]),
        )
        for n, url in enumerate(locations)
    ]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def format_report(report: BenchReport) -> str:
    i = report.ingestion
    rows: list[Any] = [
        f"device: {report.device}",
        "",
        f"ingestion of {i.files} files ({i.chunks} chunks, {i.embedded_tokens:,} embedded tokens);"
        f" each time the best of {i.repeats} runs",
        f"  raw encode of the same chunk texts  {i.raw_encode_seconds:8.2f} s  {i.raw_tokens_per_second:7,} tokens/s",
        f"  end to end (parse→chunk→embed→store) {i.ingest_seconds:7.2f} s  {i.ingest_tokens_per_second:7,} tokens/s"
        f"  = {i.ingest_vs_raw:.2f} × raw (target ≥ 0.85)",
        (
            f"  tutorial pipeline (1000/200, {i.tutorial_chunks} chunks, {i.tutorial_embedded_tokens:,} tokens)"
            f"  {i.tutorial_seconds:.2f} s: ours takes {i.ingest_vs_tutorial:.2f} × its time (target ≤ 0.8)"
            if i.tutorial_seconds
            else "  tutorial pipeline: not measured (--no-tutorial)"
        ),
        f"  re-ingest unchanged                 {i.reingest_seconds:8.3f} s  = {i.reingest_vs_ingest:.2%} of the first"
        " (target ≤ 3%)",
        "",
        "retrieval (query embedding + dense + keyword + fusion)",
        f"  {'chunks':>8} {'p50 ms':>8} {'p95 ms':>8} {'1 embed ms':>10} {'p95/embed':>9} {'peak RSS MB':>11}"
        f" {'writes/s':>9}  store",
    ]
    if report.pdf_parsing is not None:
        p = report.pdf_parsing
        rows[2:2] = [
            f"PDF parsing of {p.files} files ({p.pages:,} pages)",
            f"  ours (PDFium + tables + headings)   {p.ours_seconds:8.2f} s  {p.ours_pages_per_second:7.1f} pages/s"
            f"  = {p.pypdf_vs_ours:.1f} × pypdf's speed (target ≥ 10)",
            f"  PDFium's page text alone            {p.pdfium_text_seconds:8.2f} s"
            f"  = {p.pypdf_vs_pdfium_text:.1f} × pypdf's speed",
            f"  pypdf                               {p.pypdf_seconds:8.2f} s  {p.pypdf_pages_per_second:7.1f} pages/s"
            + (f"; could not read {', '.join(p.pypdf_failed)}" if p.pypdf_failed else ""),
            "",
        ]
    rows.extend(
        f"  {r.chunks:>8,} {r.p50_ms:>8.1f} {r.p95_ms:>8.1f} {r.query_embedding_ms:>10.1f} "
        f"{r.p95_vs_query_embedding:>9.2f} {r.peak_rss_mb:>11.0f} {r.write_chunks_per_second:>9,.0f}  {r.store}"
        for r in report.retrieval
    )
    rows.extend(server_comparison(report.retrieval))
    return "\n".join(rows)


def server_comparison(figures: Sequence[RetrievalFigures]) -> list[str]:
    """Each size's Chroma-server figures against the embedded store's from the same run."""
    embedded = {r.chunks: r for r in figures if r.store == "embedded"}
    pairs = [(embedded[r.chunks], r) for r in figures if r.store != "embedded" and r.chunks in embedded]
    if not pairs:
        return []
    rows = ["", f"Chroma server ({pairs[0][1].store}) ÷ embedded, same chunks and queries"]
    rows.append(f"  {'chunks':>8} {'p50':>6} {'p95':>6} {'writes/s':>9}")
    rows.extend(
        f"  {e.chunks:>8,} {s.p50_ms / e.p50_ms:>6.2f} {s.p95_ms / e.p95_ms:>6.2f} "
        f"{s.write_chunks_per_second / e.write_chunks_per_second:>9.2f}"
        + ("  (target: p95 ≤ 1.5 at 100,000)" if e.chunks == 100_000 else "")
        for e, s in pairs
    )
    return rows
