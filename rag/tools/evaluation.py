"""Retrieval evaluation: ingest a folder into a fresh knowledge base and score retrieval on gold answers.

The figure that matters to a user is the answer-in-context rate: a gold answer occurs (case-folded) in
the context the app would actually inject into the prompt at the given settings. Where the questions
name the pages that hold their evidence (FinanceBench), `evidence_in_context` is the share of questions
with a passage from one of those pages of the right document in that context.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.backends.base import GenerationOptions, LLMBackend, estimate_tokens
from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import RagError
from rag.ingest import Ingestor, collect_files
from rag.loaders import load_bytes
from rag.prompts import plan_prompt, render_llama2
from rag.retrieval import Fusion, Retriever, SearchMode
from rag.schema import Chunk, Message, RetrievedChunk
from rag.store import Store
from rag.tools.bench import percentile
from rag.turn import NOTHING_RELEVANT

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

HIT_KS = (1, 4, 5, 10)


@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]
    doc: str
    evidence: tuple[tuple[str, int], ...] = ()  # (document, 1-based page) holding the evidence, when known


@dataclass(frozen=True)
class EvalReport:
    questions: int
    chunks: int
    mode: str
    fusion: str
    chunk_size: int
    chunk_overlap: int
    top_k: int
    context_chars: int
    min_score: float
    answer_in_context: float  # a gold answer occurs in the context the app would inject (questions with answers)
    mean_context_chars: float
    mean_context_tokens: float
    hit_at: dict[int, float]
    mrr: float
    doc_hit_at_1: float
    doc_hit_at_4: float  # the gold document among the first four passages' documents
    latency_p50_ms: float
    latency_p95_ms: float
    ingest_seconds: float
    # Questions asked of a knowledge base that lacks their document (the corpus split in two halves):
    # the share declined (wanted), and the share of answerable questions declined (unwanted).
    correct_declines: float | None = None
    false_declines: float | None = None
    decline_questions: int = 0
    answers: AnswerFigures | None = None
    # Questions with evidence pages: the share with a passage from one of them in the injected context.
    evidence_in_context: float | None = None
    evidence_questions: int = 0
    answer_questions: int = 0  # questions with at least one gold answer (the others count for evidence only)
    pipeline: str = "ours"  # or "tutorial": the usual LangChain pipeline on the same files

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


@dataclass(frozen=True)
class AnswerFigures:
    backend: str
    model: str
    answered: int
    answer_contains_gold: float
    mean_seconds: float
    samples: list[dict[str, str]]


class MemoizingEmbedder(Embedder):
    """Embeds each distinct text once, so the same chunks can fill several knowledge bases."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__()
        self._inner = inner
        self._memo: dict[str, np.ndarray] = {}

    @property
    def model(self) -> SentenceTransformer:
        return self._inner.model

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        for text, vector in zip(missing, self._inner.embed_documents(missing), strict=True):
            self._memo[text] = vector
        if not texts:
            return self._inner.embed_documents([])
        return np.stack([self._memo[t] for t in texts])

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        yield list(range(len(texts))), self.embed_documents(texts)


def load_questions(path: Path, limit: int | None = None, seed: int = 0) -> list[Question]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        questions = [
            Question(
                r["question"],
                list(r["answers"]),
                r.get("doc", ""),
                tuple((str(e["doc"]), int(e["page"])) for e in r.get("evidence", [])),
            )
            for r in rows
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(
            f"{path}: expected JSON lines with question, answers, doc and optionally evidence "
            f'[{{"doc", "page"}}] ({exc}).'
        ) from exc
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def has_evidence_page(passages: Sequence[RetrievedChunk], evidence: Sequence[tuple[str, int]]) -> bool:
    """Whether a passage comes from one of the evidence pages (document name and 1-based page)."""
    pages = set(evidence)
    return any((p.chunk.source, p.chunk.page) in pages for p in passages)


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(a.casefold() in folded for a in answers if a.strip())


def evaluate(
    docs: Path,
    questions: Sequence[Question],
    settings: Settings,
    embedder: Embedder | None = None,
    mode: SearchMode = "hybrid",
    backend: LLMBackend | None = None,
    fusion: Fusion = "convex",
) -> EvalReport:
    """Retrieval figures at the given settings; with a backend, also its answers to every question."""
    memo = MemoizingEmbedder(embedder or Embedder(batch_size=settings.embedding_batch_size))
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        store = Store(Path(tmp) / "all")
        started = time.perf_counter()
        results = _ingestor(store, memo, settings).ingest_paths([docs])
        ingest_seconds = time.perf_counter() - started
        if not any(r.ok for r in results):
            raise RagError(f"Nothing could be ingested from {docs}: {results[0].message if results else 'no files'}")
        retriever = Retriever(store, memo, mode, fusion)
        depth = max(max(HIT_KS), settings.top_k)
        budget = settings.context_window - settings.max_answer_tokens

        def count(messages: Sequence[Message]) -> int:
            return backend.count_tokens(messages) if backend else estimate_tokens(render_llama2(messages))

        in_context = 0
        evidence_hits = 0
        doc_hits_4 = 0
        context_chars: list[int] = []
        context_tokens: list[int] = []
        hits = dict.fromkeys(HIT_KS, 0)
        reciprocal_ranks: list[float] = []
        doc_hits = 0
        latencies: list[float] = []
        answers: list[tuple[Question, str, float]] = []
        for q in questions:
            t0 = time.perf_counter()
            ranked = retriever.search(q.question, depth)
            latencies.append(time.perf_counter() - t0)
            injected = retriever.select(
                q.question, ranked[: settings.top_k], settings.min_score, settings.context_chars
            )
            plan = plan_prompt(
                system_prompt=settings.system_prompt,
                question=q.question,
                history=[],
                sources=injected,
                count_tokens=count,
                budget=budget,
            )
            context = "\n\n".join(s.chunk.text for s in plan.sources)
            context_chars.append(len(context))
            context_tokens.append(count([Message("user", context)]) if context else 0)
            in_context += contains_answer(context, q.answers)
            evidence_hits += has_evidence_page(plan.sources, q.evidence)
            doc_hits_4 += q.doc in {r.chunk.source for r in ranked[:4]}
            rank = next((i for i, r in enumerate(ranked, 1) if contains_answer(r.chunk.text, q.answers)), None)
            reciprocal_ranks.append(1 / rank if rank else 0.0)
            for k in HIT_KS:
                hits[k] += bool(rank and rank <= k)
            doc_hits += bool(ranked and ranked[0].chunk.source == q.doc)
            if backend is not None:
                answers.append((q, *_answer(backend, plan.messages if plan.sources else None, settings)))
        chunk_total = store.chunk_count()
        store.close()
        declines = _declines(docs, questions, settings, memo, Path(tmp), mode, fusion)
    n = max(1, len(questions))
    with_answers = [q for q in questions if any(a.strip() for a in q.answers)]
    with_evidence = [q for q in questions if q.evidence]
    latencies.sort()
    return EvalReport(
        questions=len(questions),
        chunks=chunk_total,
        mode=mode,
        fusion=fusion,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        top_k=settings.top_k,
        context_chars=settings.context_chars,
        min_score=settings.min_score,
        answer_in_context=round(in_context / max(1, len(with_answers)), 4),
        mean_context_chars=round(statistics.fmean(context_chars or [0]), 1),
        mean_context_tokens=round(statistics.fmean(context_tokens or [0]), 1),
        hit_at={k: round(v / n, 4) for k, v in hits.items()},
        mrr=round(statistics.fmean(reciprocal_ranks or [0.0]), 4),
        doc_hit_at_1=round(doc_hits / n, 4),
        doc_hit_at_4=round(doc_hits_4 / n, 4),
        latency_p50_ms=round(1000 * percentile(latencies, 0.50), 2),
        latency_p95_ms=round(1000 * percentile(latencies, 0.95), 2),
        ingest_seconds=round(ingest_seconds, 2),
        correct_declines=declines[0],
        false_declines=declines[1],
        decline_questions=declines[2],
        answers=_answer_figures(backend, answers) if backend is not None else None,
        evidence_in_context=round(evidence_hits / len(with_evidence), 4) if with_evidence else None,
        evidence_questions=len(with_evidence),
        answer_questions=len(with_answers),
    )


TUTORIAL_TOP_K = 4


def evaluate_tutorial(docs: Path, questions: Sequence[Question], embedder: Embedder | None = None) -> EvalReport:
    """The usual LangChain tutorial on the same files, scored the same way: PyPDFLoader's pypdf text (our
    loaders for other formats), RecursiveCharacterTextSplitter(1000, 200), the same MiniLM model in
    `langchain_chroma.Chroma`, and the top 4 passages by similarity, all given to the model."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.tools.bench import TUTORIAL_CHUNK_OVERLAP, TUTORIAL_CHUNK_SIZE, tutorial_embeddings

    embedder = embedder or Embedder()
    started = time.perf_counter()
    pages = [page for path in collect_files([docs]) for page in _tutorial_pages(path, Document)]
    splitter = RecursiveCharacterTextSplitter(chunk_size=TUTORIAL_CHUNK_SIZE, chunk_overlap=TUTORIAL_CHUNK_OVERLAP)
    chunks = splitter.split_documents(pages)
    with tempfile.TemporaryDirectory(prefix="rag-eval-tutorial-") as tmp:
        db = Chroma.from_documents(chunks, tutorial_embeddings(embedder), persist_directory=tmp)
        ingest_seconds = time.perf_counter() - started
        rows: list[tuple[Question, list[RetrievedChunk], float]] = []
        for q in questions:
            t0 = time.perf_counter()
            found = db.similarity_search(q.question, k=TUTORIAL_TOP_K)
            seconds = time.perf_counter() - t0
            hits = [
                RetrievedChunk(Chunk(f"t{i}", "", d.page_content, d.metadata["source"], d.metadata["page"], i), 0.0)
                for i, d in enumerate(found)
            ]
            rows.append((q, hits, seconds))
    n = max(1, len(questions))
    with_answers = [q for q in questions if any(a.strip() for a in q.answers)]
    with_evidence = [q for q in questions if q.evidence]
    contexts = ["\n\n".join(h.chunk.text for h in hits) for _, hits, _ in rows]
    latencies = sorted(s for _, _, s in rows)
    return EvalReport(
        questions=len(questions),
        chunks=len(chunks),
        mode="dense",
        fusion="none",
        chunk_size=TUTORIAL_CHUNK_SIZE,
        chunk_overlap=TUTORIAL_CHUNK_OVERLAP,
        top_k=TUTORIAL_TOP_K,
        context_chars=0,
        min_score=-1.0,
        answer_in_context=round(
            sum(contains_answer(c, q.answers) for (q, _, _), c in zip(rows, contexts, strict=True) if q in with_answers)
            / max(1, len(with_answers)),
            4,
        ),
        mean_context_chars=round(statistics.fmean([len(c) for c in contexts] or [0]), 1),
        mean_context_tokens=round(statistics.fmean([estimate_tokens(c) for c in contexts] or [0]), 1),
        hit_at={},
        mrr=0.0,
        doc_hit_at_1=round(sum(bool(h) and h[0].chunk.source == q.doc for q, h, _ in rows) / n, 4),
        doc_hit_at_4=round(sum(q.doc in {x.chunk.source for x in h} for q, h, _ in rows) / n, 4),
        latency_p50_ms=round(1000 * percentile(latencies, 0.50), 2),
        latency_p95_ms=round(1000 * percentile(latencies, 0.95), 2),
        ingest_seconds=round(ingest_seconds, 2),
        evidence_in_context=round(
            sum(has_evidence_page(h, q.evidence) for q, h, _ in rows if q.evidence) / len(with_evidence), 4
        )
        if with_evidence
        else None,
        evidence_questions=len(with_evidence),
        answer_questions=len(with_answers),
        pipeline="tutorial",
    )


def _tutorial_pages(path: Path, document: Any) -> list[Any]:
    """What the tutorial's loaders give: pypdf's text per page for a PDF (a file pypdf refuses is skipped,
    as the tutorial would fail on it), our loaders' sections for the rest."""
    if path.suffix.lower() == ".pdf":
        from pypdf import PdfReader

        try:
            reader = PdfReader(path)
            return [
                document(page.extract_text() or "", metadata={"source": path.name, "page": number})
                for number, page in enumerate(reader.pages, start=1)
            ]
        except Exception:  # pypdf's LimitReachedError and its errors on damaged files
            return []
    try:
        loaded = load_bytes(path.read_bytes(), path.name)
    except RagError:
        return []
    return [document(s.text, metadata={"source": path.name, "page": s.page}) for s in loaded.sections]


def _ingestor(store: Store, embedder: Embedder, settings: Settings) -> Ingestor:
    return Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap)


def _declines(
    docs: Path,
    questions: Sequence[Question],
    settings: Settings,
    embedder: Embedder,
    tmp: Path,
    mode: SearchMode,
    fusion: Fusion,
) -> tuple[float | None, float | None, int]:
    """Split the documents in two halves, one knowledge base each; ask every question of both.

    Asked of the half without its document, a question should be declined (no source above the
    threshold); asked of the half with it, it should not. The chunks were embedded already: no model work.
    """
    files = collect_files([docs])
    halves = [files[0::2], files[1::2]]
    if not halves[1]:
        return None, None, 0
    retrievers = []
    for index, half in enumerate(halves):
        store = Store(tmp / f"half-{index}")
        _ingestor(store, embedder, settings).ingest_paths(half)
        retrievers.append(Retriever(store, embedder, mode, fusion))
    home = {f.name: index for index, half in enumerate(halves) for f in half}
    asked = [q for q in questions if q.doc in home]
    correct = false = 0
    for q in asked:
        with_doc, without_doc = retrievers[home[q.doc]], retrievers[1 - home[q.doc]]
        false += not _selected(with_doc, q.question, settings)
        correct += not _selected(without_doc, q.question, settings)
    for r in retrievers:
        r.store.close()
    if not asked:
        return None, None, 0
    return round(correct / len(asked), 4), round(false / len(asked), 4), len(asked)


def _selected(retriever: Retriever, question: str, settings: Settings) -> list[RetrievedChunk]:
    hits = retriever.search(question, settings.top_k)
    return retriever.select(question, hits, settings.min_score, settings.context_chars)


def _answer(backend: LLMBackend, messages: Sequence[Message] | None, settings: Settings) -> tuple[str, float]:
    """The backend's whole answer (the app's plain reply when nothing relevant was found) and its time."""
    if messages is None:
        return NOTHING_RELEVANT, 0.0
    started = time.perf_counter()
    options = GenerationOptions(backend.context_window, settings.max_answer_tokens, settings.temperature)
    text = "".join(backend.stream(messages, options))
    return text.strip(), time.perf_counter() - started


def _answer_figures(backend: LLMBackend, answers: Sequence[tuple[Question, str, float]]) -> AnswerFigures:
    n = max(1, len(answers))
    return AnswerFigures(
        backend=backend.name,
        model=backend.model,
        answered=len(answers),
        answer_contains_gold=round(sum(contains_answer(text, q.answers) for q, text, _ in answers) / n, 4),
        mean_seconds=round(statistics.fmean([s for _, _, s in answers] or [0.0]), 2),
        samples=[{"question": q.question, "gold": q.answers[0], "answer": text} for q, text, _ in answers[:5]],
    )
