"""Retrieval evaluation: ingest a folder into a fresh knowledge base and score retrieval on gold answers.

The figure that matters to a user is the answer-in-context rate: a gold answer occurs (case-folded) in
the context the app would actually inject into the prompt at the given settings.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.config import Settings
from rag.embeddings import Embedder
from rag.errors import RagError
from rag.ingest import Ingestor
from rag.llm import estimate_tokens
from rag.prompts import DEFAULT_SYSTEM_PROMPT, plan_prompt, render_llama2
from rag.retrieval import Retriever
from rag.schema import Message
from rag.store import Store

HIT_KS = (1, 5, 10)


@dataclass(frozen=True)
class Question:
    question: str
    answers: list[str]
    doc: str


@dataclass(frozen=True)
class EvalReport:
    questions: int
    chunks: int
    chunk_size: int
    chunk_overlap: int
    top_k: int
    answer_in_context: float
    mean_context_chars: float
    mean_context_tokens: float
    hit_at: dict[int, float]
    mrr: float
    doc_hit_at_1: float
    latency_p50_ms: float
    latency_p95_ms: float
    ingest_seconds: float

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def load_questions(path: Path, limit: int | None = None, seed: int = 0) -> list[Question]:
    try:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        questions = [Question(r["question"], list(r["answers"]), r.get("doc", "")) for r in rows]
    except (OSError, ValueError, KeyError) as exc:
        raise RagError(f"{path}: expected JSON lines with question, answers and doc ({exc}).") from exc
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    folded = text.casefold()
    return any(a.casefold() in folded for a in answers if a.strip())


def evaluate(
    docs: Path, questions: Sequence[Question], settings: Settings, embedder: Embedder | None = None
) -> EvalReport:
    embedder = embedder or Embedder(batch_size=settings.embedding_batch_size)
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        store = Store(Path(tmp))
        started = time.perf_counter()
        results = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap).ingest_paths([docs])
        ingest_seconds = time.perf_counter() - started
        if not any(r.ok for r in results):
            raise RagError(f"Nothing could be ingested from {docs}: {results[0].message if results else 'no files'}")
        retriever = Retriever(store, embedder)
        depth = max(max(HIT_KS), settings.top_k)
        budget = settings.context_window - settings.max_answer_tokens

        def count(messages: Sequence[Message]) -> int:
            return estimate_tokens(render_llama2(messages))

        in_context = 0
        context_chars: list[int] = []
        context_tokens: list[int] = []
        hits = dict.fromkeys(HIT_KS, 0)
        reciprocal_ranks: list[float] = []
        doc_hits = 0
        latencies: list[float] = []
        for q in questions:
            t0 = time.perf_counter()
            ranked = retriever.search(q.question, depth)
            latencies.append(time.perf_counter() - t0)
            plan = plan_prompt(
                system_prompt=DEFAULT_SYSTEM_PROMPT, question=q.question, history=[],
                sources=ranked[: settings.top_k], count_tokens=count, budget=budget,
            )
            context = "\n\n".join(s.chunk.text for s in plan.sources)
            context_chars.append(len(context))
            context_tokens.append(estimate_tokens(context))
            in_context += contains_answer(context, q.answers)
            rank = next((i for i, r in enumerate(ranked, 1) if contains_answer(r.chunk.text, q.answers)), None)
            reciprocal_ranks.append(1 / rank if rank else 0.0)
            for k in HIT_KS:
                hits[k] += bool(rank and rank <= k)
            doc_hits += bool(ranked and ranked[0].chunk.source == q.doc)
        n = max(1, len(questions))
        latencies.sort()
        return EvalReport(
            questions=len(questions),
            chunks=store.chunk_count(),
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            top_k=settings.top_k,
            answer_in_context=round(in_context / n, 4),
            mean_context_chars=round(statistics.fmean(context_chars or [0]), 1),
            mean_context_tokens=round(statistics.fmean(context_tokens or [0]), 1),
            hit_at={k: round(v / n, 4) for k, v in hits.items()},
            mrr=round(statistics.fmean(reciprocal_ranks or [0.0]), 4),
            doc_hit_at_1=round(doc_hits / n, 4),
            latency_p50_ms=round(1000 * _percentile(latencies, 0.50), 2),
            latency_p95_ms=round(1000 * _percentile(latencies, 0.95), 2),
            ingest_seconds=round(ingest_seconds, 2),
        )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]
