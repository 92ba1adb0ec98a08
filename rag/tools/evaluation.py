"""Retrieval evaluation: ingest a folder into a knowledge base and score retrieval on gold answers.

The figure that matters to a user is the answer-in-context rate: a gold answer occurs (case-folded) in
the context the app would actually inject into the prompt at the given settings. Where the questions
name the pages that hold their evidence (FinanceBench), `evidence_in_context` is the share of questions
with a passage from one of those pages of the right document in that context.

`evaluate_suite` runs every domain of a suite (suite.json: a folder of documents and a JSON-lines file of
questions per domain, each question in a "dev" or a "test" half) and reports each half beside the usual
LangChain tutorial pipeline on the same files. With a cache folder, each knowledge base is kept between
runs (keyed by the files, the chunking settings and the chunker's version), so a second run only retrieves.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.backends.base import GenerationOptions, LLMBackend, estimate_tokens
from rag.chunking import CHUNKER_VERSION
from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import RagError
from rag.ingest import Ingestor, collect_files
from rag.loaders import load_bytes
from rag.prompts import plan_prompt, render_llama2
from rag.retrieval import STAGES, RetrievalOptions, RetrievalResult, Retriever
from rag.retrieval.select import select
from rag.schema import Chunk, Message, RetrievedChunk
from rag.store import Store
from rag.tools.bench import percentile
from rag.turn import NOTHING_RELEVANT

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

HIT_KS = (1, 4, 5, 10)
SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]
    doc: str
    evidence: tuple[tuple[str, int], ...] = ()  # (document, 1-based page) holding the evidence, when known
    split: str = ""  # "dev" or "test" in a suite; "" elsewhere

    @property
    def has_answer(self) -> bool:
        return any(a.strip() for a in self.answers)


@dataclass(frozen=True)
class QuestionResult:
    """How retrieval did on one question."""

    question: Question
    answer_in_context: bool
    evidence_in_context: bool
    answer_rank: int | None  # of the first ranked passage holding a gold answer
    doc_hit_at_1: bool
    doc_hit_at_4: bool
    context_chars: int
    context_tokens: int
    seconds: float
    declined: bool = False
    # After each stage (as if retrieval stopped there): whether a gold answer was in what would be injected.
    stages: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Figures:
    """The figures over a set of questions."""

    questions: int
    answer_questions: int  # with at least one gold answer (the others count for evidence only)
    answer_in_context: float
    evidence_questions: int
    evidence_in_context: float | None
    doc_hit_at_1: float
    doc_hit_at_4: float
    mean_context_chars: float
    mean_context_tokens: float
    latency_p50_ms: float
    latency_p95_ms: float
    hit_at: dict[int, float]
    mrr: float
    stages: dict[str, float] = field(default_factory=dict)  # answer in context after each stage

    @classmethod
    def of(cls, results: Sequence[QuestionResult]) -> Figures:
        n = max(1, len(results))
        answerable = [r for r in results if r.question.has_answer]
        with_evidence = [r for r in results if r.question.evidence]
        latencies = sorted(r.seconds for r in results)
        stage_names = [s for s in STAGES if any(s in r.stages for r in answerable)]
        return cls(
            questions=len(results),
            answer_questions=len(answerable),
            answer_in_context=_share(r.answer_in_context for r in answerable),
            evidence_questions=len(with_evidence),
            evidence_in_context=_share(r.evidence_in_context for r in with_evidence) if with_evidence else None,
            doc_hit_at_1=round(sum(r.doc_hit_at_1 for r in results) / n, 4),
            doc_hit_at_4=round(sum(r.doc_hit_at_4 for r in results) / n, 4),
            mean_context_chars=round(statistics.fmean([r.context_chars for r in results] or [0]), 1),
            mean_context_tokens=round(statistics.fmean([r.context_tokens for r in results] or [0]), 1),
            latency_p50_ms=round(1000 * percentile(latencies, 0.50), 2),
            latency_p95_ms=round(1000 * percentile(latencies, 0.95), 2),
            hit_at={k: round(sum(bool(r.answer_rank and r.answer_rank <= k) for r in results) / n, 4) for k in HIT_KS},
            mrr=round(statistics.fmean([1 / r.answer_rank if r.answer_rank else 0.0 for r in results] or [0.0]), 4),
            stages={s: _share(_after(r.stages, s) for r in answerable) for s in stage_names},
        )


def _after(hits: dict[str, bool], stage: str) -> bool:
    """A question's hit after `stage`; a stage that did not run for it (a profile's preference for a question
    with none of its terms) left the one before as it was."""
    before = STAGES[: STAGES.index(stage) + 1]
    return next((hits[s] for s in reversed(before) if s in hits), False)


def _share(flags: Iterator[bool] | Sequence[bool]) -> float:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else 0.0


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
    stages: dict[str, float] = field(default_factory=dict)  # answer in context after each stage (--stages)
    by_split: dict[str, Figures] = field(default_factory=dict)  # in a suite: the dev and the test half

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
                str(r.get("split", "")),
            )
            for r in rows
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(
            f"{path}: expected JSON lines with question, answers, doc and optionally evidence "
            f'[{{"doc", "page"}}] and split ({exc}).'
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


# -- knowledge bases, fresh or kept ------------------------------------------------------------------------


def knowledge_base_key(files: Sequence[Path], settings: Settings, embedder: Embedder) -> str:
    """What a kept knowledge base depends on: the files (name, size, time), the chunking and the model."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    digest.update(f"{settings.chunk_size}|{settings.chunk_overlap}|{CHUNKER_VERSION}|{embedder.name}".encode())
    return digest.hexdigest()[:16]


def build_knowledge_base(
    where: Path, files: Sequence[Path], settings: Settings, embedder: Embedder
) -> tuple[Store, float]:
    """A knowledge base of the files in `where` (files already indexed there are skipped) and the seconds it
    took; refuses a folder where nothing could be ingested."""
    store = Store(where)
    started = time.perf_counter()
    results = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap).ingest_paths(list(files))
    seconds = time.perf_counter() - started
    if files and not any(r.ok for r in results):
        store.close()
        raise RagError(f"Nothing could be ingested: {results[0].message if results else 'no files'}")
    return store, seconds


# -- our pipeline ------------------------------------------------------------------------------------------


def evaluate(
    docs: Path,
    questions: Sequence[Question],
    settings: Settings,
    embedder: Embedder | None = None,
    options: RetrievalOptions | None = None,
    backend: LLMBackend | None = None,
    *,
    cache: Path | None = None,
    stages: bool = False,
    declines: bool = True,
) -> EvalReport:
    """Retrieval figures at the given settings; with a backend, also its answers to every question. With
    `stages`, also the answer-in-context rate after each stage of retrieval; with `declines`, the decline
    rates (two more knowledge bases, each half of the documents)."""
    options = options or RetrievalOptions()
    memo = MemoizingEmbedder(embedder or Embedder(batch_size=settings.embedding_batch_size))
    files = collect_files([docs])
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        root = cache / knowledge_base_key(files, settings, memo) if cache else Path(tmp)
        store, ingest_seconds = build_knowledge_base(root / "all", files, settings, memo)
        retriever = Retriever(store, memo, options)
        results = []
        answers: list[tuple[Question, str, float]] = []
        for q in questions:
            result, messages = _evaluate_question(retriever, q, settings, backend, stages)
            results.append(result)
            if backend is not None:
                answers.append((q, *_answer(backend, messages, settings)))
        chunk_total = store.chunk_count()
        store.close()
        decline_figures = _declines(files, questions, settings, memo, root, options) if declines else (None, None, 0)
    overall = Figures.of(results)
    return EvalReport(
        questions=len(questions),
        chunks=chunk_total,
        mode=options.mode,
        fusion=options.fusion,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        top_k=settings.top_k,
        context_chars=settings.context_chars,
        min_score=settings.min_score,
        answer_in_context=overall.answer_in_context,
        mean_context_chars=overall.mean_context_chars,
        mean_context_tokens=overall.mean_context_tokens,
        hit_at=overall.hit_at,
        mrr=overall.mrr,
        doc_hit_at_1=overall.doc_hit_at_1,
        doc_hit_at_4=overall.doc_hit_at_4,
        latency_p50_ms=overall.latency_p50_ms,
        latency_p95_ms=overall.latency_p95_ms,
        ingest_seconds=round(ingest_seconds, 2),
        correct_declines=decline_figures[0],
        false_declines=decline_figures[1],
        decline_questions=decline_figures[2],
        answers=_answer_figures(backend, answers) if backend is not None else None,
        evidence_in_context=overall.evidence_in_context,
        evidence_questions=overall.evidence_questions,
        answer_questions=overall.answer_questions,
        stages=overall.stages,
        by_split=_by_split(results),
    )


def _evaluate_question(
    retriever: Retriever, q: Question, settings: Settings, backend: LLMBackend | None, stages: bool
) -> tuple[QuestionResult, list[Message] | None]:
    depth = max(max(HIT_KS), settings.top_k)
    result = retriever.retrieve(
        q.question,
        top_k=settings.top_k,
        min_score=settings.min_score,
        max_chars=settings.context_chars,
        depth=depth,
    )
    count = _token_counter(backend)
    plan = plan_prompt(
        system_prompt=settings.system_prompt,
        question=q.question,
        history=[],
        sources=result.selected,
        count_tokens=count,
        budget=settings.context_window - settings.max_answer_tokens,
    )
    context = "\n\n".join(s.chunk.text for s in plan.sources)
    ranked = result.hits
    rank = next((i for i, r in enumerate(ranked, 1) if contains_answer(r.chunk.text, q.answers)), None)
    record = QuestionResult(
        question=q,
        answer_in_context=contains_answer(context, q.answers),
        evidence_in_context=has_evidence_page(plan.sources, q.evidence),
        answer_rank=rank,
        doc_hit_at_1=bool(ranked) and ranked[0].chunk.source == q.doc,
        doc_hit_at_4=q.doc in {r.chunk.source for r in ranked[:4]},
        context_chars=len(context),
        context_tokens=count([Message("user", context)]) if context else 0,
        seconds=result.seconds,
        declined=result.declined,
        stages=_stage_hits(retriever, result, q, settings) if stages else {},
    )
    return record, (plan.messages if plan.sources else None)


def _stage_hits(retriever: Retriever, result: RetrievalResult, q: Question, settings: Settings) -> dict[str, bool]:
    """After each stage, as if retrieval stopped there: is a gold answer in what the model would be given?"""
    hits: dict[str, bool] = {}
    for report in result.stages:
        if report.stage == "select":
            hits["select"] = contains_answer("\n\n".join(h.chunk.text for h in result.selected), q.answers)
            continue
        assert result.searched is not None  # a search ran: it has stages
        passages = retriever.passages(list(report.ranking[: settings.top_k]), result.searched)
        coverages = retriever.coverages(result.searched, passages)
        chosen = select(passages, coverages, settings.min_score, settings.context_chars)
        hits[report.stage] = contains_answer("\n\n".join(h.chunk.text for h in chosen), q.answers)
    return hits


def _by_split(results: Sequence[QuestionResult]) -> dict[str, Figures]:
    return {
        split: Figures.of([r for r in results if r.question.split == split])
        for split in SPLITS
        if any(r.question.split == split for r in results)
    }


def _token_counter(backend: LLMBackend | None) -> Callable[[Sequence[Message]], int]:
    def count(messages: Sequence[Message]) -> int:
        return backend.count_tokens(messages) if backend else estimate_tokens(render_llama2(messages))

    return count


# -- the LangChain tutorial, on the same files -------------------------------------------------------------

TUTORIAL_TOP_K = 4


def evaluate_tutorial(
    docs: Path, questions: Sequence[Question], embedder: Embedder | None = None, *, cache: Path | None = None
) -> EvalReport:
    """The usual LangChain tutorial on the same files, scored the same way: PyPDFLoader's pypdf text (our
    loaders for other formats), RecursiveCharacterTextSplitter(1000, 200), the same MiniLM model in
    `langchain_chroma.Chroma`, and the top 4 passages by similarity, all given to the model."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from rag.tools.bench import TUTORIAL_CHUNK_OVERLAP, TUTORIAL_CHUNK_SIZE, tutorial_embeddings

    embedder = embedder or Embedder()
    started = time.perf_counter()
    files = collect_files([docs])
    with tempfile.TemporaryDirectory(prefix="rag-eval-tutorial-") as tmp:
        where = Path(tmp)
        if cache is not None:
            digest = hashlib.sha256(f"tutorial|{knowledge_base_key(files, Settings(), embedder)}".encode())
            where = cache / digest.hexdigest()[:16]
        if (where / "complete").exists():
            db = Chroma(embedding_function=tutorial_embeddings(embedder), persist_directory=str(where))
            chunk_count = int(json.loads((where / "complete").read_text())["chunks"])
        else:
            shutil.rmtree(where, ignore_errors=True)  # a build that was cut off: start again
            pages = [page for path in files for page in _tutorial_pages(path, Document)]
            splitter = RecursiveCharacterTextSplitter(
                chunk_size=TUTORIAL_CHUNK_SIZE, chunk_overlap=TUTORIAL_CHUNK_OVERLAP
            )
            chunks = splitter.split_documents(pages)
            db = Chroma.from_documents(chunks, tutorial_embeddings(embedder), persist_directory=str(where))
            chunk_count = len(chunks)
            (where / "complete").write_text(json.dumps({"chunks": chunk_count}))
        ingest_seconds = time.perf_counter() - started
        results = []
        for q in questions:
            t0 = time.perf_counter()
            found = db.similarity_search(q.question, k=TUTORIAL_TOP_K)
            seconds = time.perf_counter() - t0
            hits = [
                RetrievedChunk(Chunk(f"t{i}", "", d.page_content, d.metadata["source"], d.metadata.get("page"), i), 0.0)
                for i, d in enumerate(found)
            ]
            context = "\n\n".join(h.chunk.text for h in hits)
            rank = next((i for i, h in enumerate(hits, 1) if contains_answer(h.chunk.text, q.answers)), None)
            results.append(
                QuestionResult(
                    question=q,
                    answer_in_context=contains_answer(context, q.answers),
                    evidence_in_context=has_evidence_page(hits, q.evidence),
                    answer_rank=rank,
                    doc_hit_at_1=bool(hits) and hits[0].chunk.source == q.doc,
                    doc_hit_at_4=q.doc in {h.chunk.source for h in hits},
                    context_chars=len(context),
                    context_tokens=estimate_tokens(context),
                    seconds=seconds,
                )
            )
    overall = Figures.of(results)
    return EvalReport(
        questions=len(questions),
        chunks=chunk_count,
        mode="dense",
        fusion="none",
        chunk_size=TUTORIAL_CHUNK_SIZE,
        chunk_overlap=TUTORIAL_CHUNK_OVERLAP,
        top_k=TUTORIAL_TOP_K,
        context_chars=0,
        min_score=-1.0,
        answer_in_context=overall.answer_in_context,
        mean_context_chars=overall.mean_context_chars,
        mean_context_tokens=overall.mean_context_tokens,
        hit_at={},
        mrr=0.0,
        doc_hit_at_1=overall.doc_hit_at_1,
        doc_hit_at_4=overall.doc_hit_at_4,
        latency_p50_ms=overall.latency_p50_ms,
        latency_p95_ms=overall.latency_p95_ms,
        ingest_seconds=round(ingest_seconds, 2),
        evidence_in_context=overall.evidence_in_context,
        evidence_questions=overall.evidence_questions,
        answer_questions=overall.answer_questions,
        pipeline="tutorial",
        by_split=_by_split(results),
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


# -- a suite of domains ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    name: str
    docs: Path
    qa: Path
    source: str = ""
    licence: str = ""


@dataclass(frozen=True)
class DomainReport:
    domain: str
    documents: int
    chunks: int
    ours: dict[str, Figures]  # "all", "dev", "test"
    tutorial: dict[str, Figures]


@dataclass(frozen=True)
class SuiteReport:
    domains: list[DomainReport]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def overall(self, pipeline: str, split: str) -> dict[str, float]:
        """The mean over domains of each figure (each domain weighs the same, whatever its size)."""
        rows = [getattr(d, pipeline)[split] for d in self.domains if split in getattr(d, pipeline)]
        if not rows:
            return {}
        evidence = [r.evidence_in_context for r in rows if r.evidence_in_context is not None]
        return {
            "answer_in_context": round(statistics.fmean(r.answer_in_context for r in rows), 4),
            "evidence_in_context": round(statistics.fmean(evidence), 4) if evidence else float("nan"),
            "doc_hit_at_1": round(statistics.fmean(r.doc_hit_at_1 for r in rows), 4),
            "mean_context_chars": round(statistics.fmean(r.mean_context_chars for r in rows), 1),
            "latency_p50_ms": round(statistics.fmean(r.latency_p50_ms for r in rows), 2),
            "latency_p95_ms": round(statistics.fmean(r.latency_p95_ms for r in rows), 2),
        }


def load_suite(path: Path) -> list[Domain]:
    """The domains of a suite file (suite.json: {"domains": [{"name", "docs", "qa", …}]}, paths relative to it)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        domains = [
            Domain(d["name"], path.parent / d["docs"], path.parent / d["qa"], d.get("source", ""), d.get("licence", ""))
            for d in raw["domains"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RagError(f'{path}: expected {{"domains": [{{"name", "docs", "qa"}}, …]}} ({exc}).') from exc
    missing = [d.name for d in domains if not d.docs.is_dir() or not d.qa.is_file()]
    if missing:
        raise RagError(f"{path}: the documents or questions of {', '.join(missing)} are missing: rebuild the suite.")
    return domains


def evaluate_suite(
    suite: Path,
    settings: Settings,
    embedder: Embedder | None = None,
    options: RetrievalOptions | None = None,
    *,
    cache: Path | None = None,
    tutorial: bool = True,
    stages: bool = False,
    only: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> SuiteReport:
    """Every domain (or those in `only`), ours beside the tutorial, each half reported on its own."""
    embedder = embedder or Embedder(batch_size=settings.embedding_batch_size)
    reports = []
    for domain in load_suite(suite):
        if only and domain.name not in only:
            continue
        if progress:
            progress(domain.name)
        questions = load_questions(domain.qa)
        ours = evaluate(domain.docs, questions, settings, embedder, options, cache=cache, stages=stages, declines=False)
        theirs = evaluate_tutorial(domain.docs, questions, embedder, cache=cache) if tutorial else None
        reports.append(
            DomainReport(
                domain=domain.name,
                documents=len(collect_files([domain.docs])),
                chunks=ours.chunks,
                ours={"all": _figures_of(ours), **ours.by_split},
                tutorial={"all": _figures_of(theirs), **theirs.by_split} if theirs else {},
            )
        )
    return SuiteReport(reports)


def _figures_of(report: EvalReport) -> Figures:
    return Figures(
        questions=report.questions,
        answer_questions=report.answer_questions,
        answer_in_context=report.answer_in_context,
        evidence_questions=report.evidence_questions,
        evidence_in_context=report.evidence_in_context,
        doc_hit_at_1=report.doc_hit_at_1,
        doc_hit_at_4=report.doc_hit_at_4,
        mean_context_chars=report.mean_context_chars,
        mean_context_tokens=report.mean_context_tokens,
        latency_p50_ms=report.latency_p50_ms,
        latency_p95_ms=report.latency_p95_ms,
        hit_at=report.hit_at,
        mrr=report.mrr,
        stages=report.stages,
    )


def format_suite(report: SuiteReport) -> list[str]:
    """The suite as one table: per domain and half, ours beside the tutorial; then the mean over domains."""
    lines = [
        "| domain | half | questions | answer in context (ours / tutorial) | evidence in context | document hit@1 "
        "| context chars | retrieval p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def pair(a: float | None, b: float | None) -> str:
        left = "–" if a is None else f"{a:.3f}"
        right = "–" if b is None else f"{b:.3f}"
        return f"{left} / {right}"

    for d in report.domains:
        for split in ("dev", "test", "all"):
            ours = d.ours.get(split)
            if ours is None:
                continue
            theirs = d.tutorial.get(split)
            lines.append(
                f"| {d.domain} | {split} | {ours.questions} | "
                f"{pair(ours.answer_in_context, theirs.answer_in_context if theirs else None)} | "
                f"{pair(ours.evidence_in_context, theirs.evidence_in_context if theirs else None)} | "
                f"{pair(ours.doc_hit_at_1, theirs.doc_hit_at_1 if theirs else None)} | "
                f"{ours.mean_context_chars:,.0f} / {theirs.mean_context_chars if theirs else 0:,.0f} | "
                f"{ours.latency_p50_ms:.0f} / {ours.latency_p95_ms:.0f} |"
            )
    for split in ("dev", "test", "all"):
        ours_mean = report.overall("ours", split)
        theirs_mean = report.overall("tutorial", split)
        if not ours_mean:
            continue
        lines.append(
            f"| **mean of domains** | {split} | | "
            f"**{pair(ours_mean['answer_in_context'], theirs_mean.get('answer_in_context'))}** | "
            f"{pair(ours_mean['evidence_in_context'], theirs_mean.get('evidence_in_context'))} | "
            f"{pair(ours_mean['doc_hit_at_1'], theirs_mean.get('doc_hit_at_1'))} | "
            f"{ours_mean['mean_context_chars']:,.0f} / {theirs_mean.get('mean_context_chars', 0):,.0f} | "
            f"{ours_mean['latency_p50_ms']:.0f} / {ours_mean['latency_p95_ms']:.0f} |"
        )
    if any(d.ours["all"].stages for d in report.domains):
        stage_names = [s for s in STAGES if any(s in d.ours["all"].stages for d in report.domains)]
        lines += ["", "| domain | half | " + " | ".join(f"after {s}" for s in stage_names) + " |"]
        lines.append("|---|---|" + "---|" * len(stage_names))
        for d in report.domains:
            for split in ("dev", "test"):
                if split in d.ours:
                    figures = d.ours[split].stages
                    lines.append(
                        f"| {d.domain} | {split} | "
                        + " | ".join(f"{figures.get(s, 0):.3f}" for s in stage_names)
                        + " |"
                    )
    return lines


# -- declines and answers ----------------------------------------------------------------------------------


def _declines(
    files: Sequence[Path],
    questions: Sequence[Question],
    settings: Settings,
    embedder: Embedder,
    root: Path,
    options: RetrievalOptions,
) -> tuple[float | None, float | None, int]:
    """Split the documents in two halves, one knowledge base each; ask every question of both.

    Asked of the half without its document, a question should be declined (no source above the
    threshold); asked of the half with it, it should not. The chunks were embedded already: no model work.
    """
    halves = [list(files[0::2]), list(files[1::2])]
    if not halves[1]:
        return None, None, 0
    retrievers = []
    for index, half in enumerate(halves):
        store, _ = build_knowledge_base(root / f"half-{index}", half, settings, embedder)
        retrievers.append(Retriever(store, embedder, options))
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
    return retriever.retrieve(
        question, top_k=settings.top_k, min_score=settings.min_score, max_chars=settings.context_chars
    ).selected


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
