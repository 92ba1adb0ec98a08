"""The command line's measuring commands: eval (retrieval scored on questions with gold answers) and bench (speed on
this machine)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rag.config import BACKENDS, DEFAULT_CORPUS_DIR, RERANKS, normalize_host
from rag.engine import Engine, retrieval_options
from rag.errors import RagError
from rag.profiles import PROFILE_NAMES
from rag.retrieval import FUSIONS, OPTIONAL_STAGES, SEARCH_MODES


def add_commands(sub: Any) -> None:
    """The eval and bench commands."""
    evaluate = sub.add_parser("eval", help="score retrieval on questions with gold answers (fresh or kept KB)")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--docs", type=Path, metavar="DIR", help="documents to ingest (with --qa)")
    source.add_argument(
        "--suite", type=Path, metavar="SUITE.json", help="every domain of a suite, ours beside the tutorial"
    )
    evaluate.add_argument("--qa", type=Path, metavar="FILE.jsonl", help="question, answers, doc (with --docs)")
    evaluate.add_argument("--domain", action="append", default=[], help="with --suite: only this domain (repeatable)")
    evaluate.add_argument(
        "--cache", type=Path, metavar="DIR", help="keep the knowledge bases here between runs (re-used when unchanged)"
    )
    evaluate.add_argument("--stages", action="store_true", help="also the answer-in-context rate after each stage")
    evaluate.add_argument("--no-tutorial", action="store_true", help="with --suite: skip the tutorial pipeline")
    evaluate.add_argument(
        "--no-declines", action="store_true", help="with --docs: skip the decline rates (two more knowledge bases)"
    )
    evaluate.add_argument("--limit", type=int, help="sample this many questions")
    evaluate.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--answer", action="store_true", help="also answer every question with the active backend")
    evaluate.add_argument("--backend", choices=BACKENDS, help="with --answer: default RAG_BACKEND or auto")
    evaluate.add_argument("--model", help="with --answer: the Ollama model")
    evaluate.add_argument("--mode", choices=SEARCH_MODES, default="hybrid", help="retrieval to score (default hybrid)")
    evaluate.add_argument("--fusion", choices=FUSIONS, default="convex", help="how hybrid fuses (default convex)")
    evaluate.add_argument("--profile", choices=PROFILE_NAMES, help="override the domain profile setting")
    evaluate.add_argument("--rerank", choices=RERANKS, help="override the reranking setting")
    evaluate.add_argument(
        "--without",
        action="append",
        default=[],
        choices=OPTIONAL_STAGES,
        help="turn a stage of retrieval off, to measure what it adds (repeatable)",
    )
    evaluate.add_argument("--top-k", type=int, help="override the top-k setting")
    evaluate.add_argument("--context-chars", type=int, help="override the context size setting (characters)")
    evaluate.add_argument("--chunk-size", type=int, help="override the chunk size setting (characters)")
    evaluate.add_argument("--chunk-overlap", type=int, help="override the chunk overlap setting (characters)")
    evaluate.add_argument("--min-score", type=float, help="override the relevance threshold")
    evaluate.add_argument(
        "--pipeline",
        choices=("ours", "tutorial"),
        default="ours",
        help="tutorial: score the usual LangChain pipeline (pypdf, 1000/200 chunks, dense top-4) on the same files",
    )
    evaluate.set_defaults(run=cmd_eval)

    bench = sub.add_parser("bench", help="measure ingestion throughput and retrieval latency on this machine")
    bench.add_argument(
        "--docs",
        type=Path,
        default=DEFAULT_CORPUS_DIR,
        metavar="DIR",
        help="documents to ingest (default: docs_corpus/; use a larger folder for stable figures)",
    )
    bench.add_argument("--sizes", default="1000,10000,100000", help="knowledge-base sizes for retrieval, in chunks")
    bench.add_argument("--queries", type=int, default=100, help="queries per size (default 100)")
    bench.add_argument(
        "--repeat", type=int, default=2, help="ingestion runs of each pipeline; the best time counts (default 2)"
    )
    bench.add_argument(
        "--chroma-url",
        metavar="URL",
        help="also measure retrieval with the vectors on this Chroma server (`chroma run`), next to embedded",
    )
    bench.add_argument(
        "--no-tutorial", action="store_true", help="skip the tutorial pipeline's ingestion (halves the time)"
    )
    bench.add_argument(
        "--real",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="time retrieval on real documents instead (repeatable), with the questions of --qa or --suite",
    )
    bench.add_argument("--qa", type=Path, metavar="FILE.jsonl", help="with --real: the questions to time")
    bench.add_argument(
        "--suite", type=Path, metavar="SUITE.json", help="time retrieval on every document and question of a suite"
    )
    bench.add_argument("--cache", type=Path, metavar="DIR", help="with --real/--suite: keep the knowledge base here")
    bench.add_argument("--json", action="store_true", help="print one JSON object")
    bench.set_defaults(run=cmd_bench)


def cmd_eval(engine: Engine, args: argparse.Namespace) -> int:
    from rag.retrieval import without
    from rag.tools.evaluation import evaluate, evaluate_suite, evaluate_tutorial, format_suite, load_questions

    settings = engine.settings.with_overrides(
        top_k=args.top_k,
        context_chars=args.context_chars,
        chunk_size=args.chunk_size,
        chunk_overlap=args.chunk_overlap,
        min_score=args.min_score,
        profile=args.profile,
        rerank=args.rerank,
    )
    options = replace(retrieval_options(settings), mode=args.mode, fusion=args.fusion)
    options = without(options, args.without)
    if args.suite is not None:
        with _measurement_requirements("eval --suite"):
            suite = evaluate_suite(
                args.suite,
                settings,
                engine.embedder,
                options,
                cache=args.cache,
                tutorial=not args.no_tutorial,
                stages=args.stages,
                only=args.domain,
                progress=lambda name: print(f"# {name}", file=sys.stderr),
            )
        print(suite.to_json() if args.json else "\n".join(format_suite(suite)))
        return 0
    if args.qa is None:
        raise RagError("--docs needs --qa FILE.jsonl (the questions with their gold answers).")
    questions = load_questions(args.qa, args.limit, args.seed)
    backend = None
    if args.answer:
        backend = engine.chosen.backend
        print(f"# {engine.chosen.reason}", file=sys.stderr)
    with _measurement_requirements("eval --pipeline tutorial"):
        if args.pipeline == "tutorial":
            report = evaluate_tutorial(args.docs, questions, engine.embedder, cache=args.cache)
        else:
            report = evaluate(
                args.docs,
                questions,
                settings,
                engine.embedder,
                options,
                backend,
                cache=args.cache,
                stages=args.stages,
                declines=not args.no_declines,
            )
    if args.json:
        print(report.to_json())
        return 0
    if report.pipeline == "tutorial":
        print(
            f"{report.questions} questions, the LangChain tutorial pipeline: {report.chunks} chunks "
            f"({report.chunk_size}/{report.chunk_overlap} chars), dense top-{report.top_k}, "
            f"ingest {report.ingest_seconds}s"
        )
        _print_context_figures(report)
        return 0
    print(
        f"{report.questions} questions, {report.chunks} chunks ({report.chunk_size}/{report.chunk_overlap} chars), "
        f"{report.mode} ({report.fusion}) top-{report.top_k} within {report.context_chars} chars, "
        f"threshold {report.min_score}, "
        f"ingest {report.ingest_seconds}s"
    )
    _print_context_figures(report)
    print("hit@" + "  hit@".join(f"{k} {v:.3f}" for k, v in report.hit_at.items()) + f"  MRR {report.mrr:.3f}")
    if report.stages:
        print("after each stage   " + "  ".join(f"{stage} {share:.3f}" for stage, share in report.stages.items()))
    for split, figures in report.by_split.items():
        print(
            f"{split} half            answer in context {figures.answer_in_context:.3f} ({figures.questions} questions)"
        )
    if report.correct_declines is not None and report.false_declines is not None:
        print(
            f"declines            {report.correct_declines:.1%} correct (asked of the half without the document), "
            f"{report.false_declines:.1%} false (asked of the half with it), {report.decline_questions} questions"
        )
    if report.answers is not None:
        a = report.answers
        print(
            f"answers ({a.backend} {a.model}): {a.answer_contains_gold:.3f} contain a gold answer, "
            f"{a.mean_seconds:.1f} s each"
        )
        for sample in a.samples:
            print(f"  Q: {sample['question']}\n     gold: {sample['gold']}\n     answer: {sample['answer'][:200]}")
    return 0


def _print_context_figures(report: Any) -> None:
    if report.evidence_in_context is not None:
        print(
            f"evidence in context {report.evidence_in_context:.3f}  ({report.evidence_questions} questions with "
            "evidence pages: a passage from one of them is in the prompt)"
        )
    print(
        f"answer in context   {report.answer_in_context:.3f}  ({report.answer_questions} questions with gold "
        f"answers; mean context {report.mean_context_chars:.0f} chars, ~{report.mean_context_tokens:.0f} tokens)"
    )
    print(f"document hit@1      {report.doc_hit_at_1:.3f}  hit@4 {report.doc_hit_at_4:.3f}")
    print(f"retrieval latency   p50 {report.latency_p50_ms:.1f} ms, p95 {report.latency_p95_ms:.1f} ms")


def cmd_bench(engine: Engine, args: argparse.Namespace) -> int:
    from rag.tools.bench import format_report, run_bench

    try:
        sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise RagError(f"--sizes {args.sizes!r}: give chunk counts separated by commas, e.g. 1000,10000.") from exc
    s = engine.settings
    if args.real or args.suite:
        return _bench_real(engine, args, sizes)
    with _measurement_requirements("bench"):
        report = run_bench(
            args.docs,
            engine.embedder,
            s.chunk_size,
            s.chunk_overlap,
            s.top_k,
            sizes,
            args.queries,
            repeat=args.repeat,
            progress=lambda message: print(f"# {message}", file=sys.stderr, flush=True),
            chroma_url=normalize_host(args.chroma_url).rstrip("/") if args.chroma_url else None,
            tutorial=not args.no_tutorial,
        )
    print(report.to_json() if args.json else format_report(report))
    return 0


def _bench_real(engine: Engine, args: argparse.Namespace, sizes: list[int]) -> int:
    """`bench --real DIR… --qa FILE` or `bench --suite SUITE.json`: real documents, real questions."""
    import random

    from rag.tools.evaluation import load_questions, load_suite
    from rag.tools.realbench import bench_real_retrieval, format_real

    folders = list(args.real)
    question_files = [args.qa] if args.qa else []
    if args.suite:
        domains = load_suite(args.suite)
        folders += [d.docs for d in domains]
        question_files += [d.qa for d in domains]
    if not question_files:
        raise RagError("bench --real needs questions to time: add --qa FILE.jsonl (or use --suite).")
    questions = [q.question for path in question_files for q in load_questions(path)]
    random.Random(0).shuffle(questions)
    figures = bench_real_retrieval(
        folders,
        questions[: args.queries],
        engine.embedder,
        engine.settings,
        sizes or [0],
        cache=args.cache,
        options=retrieval_options(engine.settings),
        progress=lambda message: print(f"# {message}", file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))
    else:
        print(format_real(figures))
    return 0


# What `bench` and `eval --pipeline tutorial` measure against (the usual tutorial's parts): development
# requirements (requirements-dev.txt), not the app's.
MEASUREMENT_ONLY = ("langchain_chroma", "pypdf")


@contextmanager
def _measurement_requirements(command: str) -> Iterator[None]:
    """A measurement-only package missing (a runtime-only install): say how to install it."""
    try:
        yield
    except ModuleNotFoundError as exc:
        if exc.name not in MEASUREMENT_ONLY:
            raise
        raise RagError(
            f"`python -m rag {command}` compares with the usual tutorial pipeline, whose {exc.name} is a development "
            "requirement: install them with `.venv/bin/pip install -r requirements-dev.txt` (`make setup` does)."
        ) from exc
