"""The evaluation command on a tiny corpus: real ingestion and retrieval, figures with the right shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.backends.embedded import EmbeddedBackend
from rag.config import Settings
from rag.embeddings import Embedder
from rag.retrieval import RetrievalOptions
from rag.tools.evaluation import (
    contains_answer,
    evaluate,
    evaluate_suite,
    evaluate_tutorial,
    format_suite,
    load_questions,
    load_suite,
)

DOCS = {
    "bees.txt": "Honey bees communicate the location of flowers with a waggle dance.",
    "volcano.txt": "Mount Etna, on Sicily, is one of the most active volcanoes in the world.",
    "trains.txt": "The Shinkansen high-speed rail line opened in Japan in 1964.",
}
QA = [
    {
        "question": "How do honey bees tell each other where flowers are?",
        "answers": ["waggle dance"],
        "doc": "bees.txt",
    },
    {"question": "Where is Mount Etna?", "answers": ["Sicily"], "doc": "volcano.txt"},
    {"question": "When did the Shinkansen open?", "answers": ["1964"], "doc": "trains.txt"},
    {"question": "What colour is the sky on Mars?", "answers": ["butterscotch"], "doc": "mars.txt"},
]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("\n".join(json.dumps(q) for q in QA))
    return docs, qa


def test_contains_answer_is_case_folded() -> None:
    assert contains_answer("The WAGGLE Dance", ["waggle dance"])
    assert not contains_answer("no answer here", [" "])  # a blank gold answer never matches


def test_load_questions_samples_reproducibly(corpus: tuple[Path, Path]) -> None:
    _, qa = corpus
    assert len(load_questions(qa)) == 4
    assert load_questions(qa, limit=2, seed=3) == load_questions(qa, limit=2, seed=3)


def test_evaluate_scores_retrieval_on_gold_answers(corpus: tuple[Path, Path], embedder: Embedder) -> None:
    docs, qa = corpus
    report = evaluate(docs, load_questions(qa), Settings(top_k=1), embedder)
    assert report.questions == 4 and report.chunks == 3
    assert report.answer_in_context == 0.75  # the Mars question has no answer in the corpus
    assert report.hit_at[1] == 0.75 and report.mrr == 0.75 and report.doc_hit_at_1 == 0.75
    assert 0 < report.mean_context_chars < 100
    assert report.latency_p50_ms > 0
    assert json.loads(report.to_json())["answer_in_context"] == 0.75
    # Halves [bees, trains] and [volcano]: each answerable question is asked of both; the Mars one of neither.
    assert report.decline_questions == 3
    assert report.false_declines == 0.0  # the sentences answer their questions well above the threshold
    assert report.correct_declines is not None and 0 <= report.correct_declines <= 1
    assert report.answers is None


def test_the_threshold_decides_what_is_declined(corpus: tuple[Path, Path], embedder: Embedder) -> None:
    docs, qa = corpus
    default = evaluate(docs, load_questions(qa), Settings(top_k=1), embedder)
    nothing = evaluate(docs, load_questions(qa), Settings(top_k=1, min_score=0.99), embedder)
    # Bees asked of a volcano and a train, and so on: no evidence, declined; asked of their own half, answered.
    assert default.correct_declines == 1.0 and default.false_declines == 0.0
    assert nothing.correct_declines == 1.0 and nothing.false_declines == 1.0
    # No passage reaches a similarity of 0.99: what the model is still given are the passages that hold the
    # question's rare words ("Etna", "Shinkansen"), each question's own sentence here.
    assert nothing.answer_in_context == default.answer_in_context == 0.75
    assert nothing.mean_context_chars == default.mean_context_chars


def test_rrf_and_dense_modes_are_scored_too(corpus: tuple[Path, Path], embedder: Embedder) -> None:
    docs, qa = corpus
    for mode, fusion in (("dense", "convex"), ("keyword", "convex"), ("hybrid", "rrf")):
        options = RetrievalOptions(mode=mode, fusion=fusion)  # type: ignore[arg-type]
        report = evaluate(docs, load_questions(qa), Settings(top_k=1), embedder, options)
        assert (report.mode, report.fusion) == (mode, fusion)
        assert report.hit_at[4] >= report.hit_at[1] > 0


@pytest.mark.slow
def test_answers_come_from_the_real_embedded_model(
    corpus: tuple[Path, Path], embedder: Embedder, embedded_llm: EmbeddedBackend
) -> None:
    docs, qa = corpus
    report = evaluate(
        docs, load_questions(qa)[:2], Settings(top_k=1, max_answer_tokens=48), embedder, backend=embedded_llm
    )
    assert report.answers is not None
    assert report.answers.answered == 2 and report.answers.backend == "embedded"
    assert all(sample["answer"] for sample in report.answers.samples)  # non-empty answers, one per question
    assert 0 <= report.answers.answer_contains_gold <= 1


def test_eval_command_prints_json(corpus: tuple[Path, Path], tmp_path: Path) -> None:
    from tests.test_cli import run

    docs, qa = corpus
    result = run(["eval", "--docs", str(docs), "--qa", str(qa), "--limit", "3", "--json"], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["questions"] == 3 and 0 <= out["answer_in_context"] <= 1 and out["mean_context_chars"] > 0


@pytest.fixture
def filings(tmp_path: Path) -> tuple[Path, Path]:
    """Two three-page PDF reports of two companies; questions name the page that holds their evidence."""
    from fpdf import FPDF

    docs = tmp_path / "filings"
    docs.mkdir()
    pages = {
        "ACME_2023.pdf": ["Acme Widgets overview.", "Acme revenue was 4,210 million dollars.", "Acme risk factors."],
        "ZENITH_2023.pdf": ["Zenith Motors overview.", "Zenith revenue was 9,870 million dollars.", "Zenith risks."],
    }
    for name, texts in pages.items():
        pdf = FPDF()
        pdf.set_font("Helvetica", size=12)
        for text in texts:
            pdf.add_page()
            pdf.multi_cell(0, 8, text)
        (docs / name).write_bytes(bytes(pdf.output()))
    rows = [
        {"question": "What was Acme's revenue?", "answers": ["4,210"], "doc": "ACME_2023.pdf",
         "evidence": [{"doc": "ACME_2023.pdf", "page": 2}]},
        {"question": "What risks does Zenith face?", "answers": [], "doc": "ZENITH_2023.pdf",
         "evidence": [{"doc": "ZENITH_2023.pdf", "page": 3}]},
        {"question": "Who founded Acme?", "answers": [], "doc": "ACME_2023.pdf",
         "evidence": [{"doc": "ACME_2023.pdf", "page": 7}]},  # a page that does not exist: never in context
    ]  # fmt: skip
    qa = tmp_path / "filings.jsonl"
    qa.write_text("\n".join(json.dumps(r) for r in rows))
    return docs, qa


def test_evidence_in_context_counts_passages_from_the_evidence_pages(
    filings: tuple[Path, Path], embedder: Embedder
) -> None:
    docs, qa = filings
    questions = load_questions(qa)
    assert questions[0].evidence == (("ACME_2023.pdf", 2),)
    report = evaluate(docs, questions, Settings(top_k=1), embedder)
    assert report.evidence_questions == 3 and report.answer_questions == 1
    assert report.evidence_in_context == pytest.approx(2 / 3, abs=1e-3)  # the third: a page no passage is from
    assert report.answer_in_context == 1.0  # over the one question with a gold answer
    assert report.doc_hit_at_1 == 1.0 and report.doc_hit_at_4 == 1.0
    assert report.pipeline == "ours"


def test_the_tutorial_pipeline_is_scored_on_the_same_questions(filings: tuple[Path, Path], embedder: Embedder) -> None:
    docs, qa = filings
    report = evaluate_tutorial(docs, load_questions(qa), embedder)
    assert report.pipeline == "tutorial" and report.top_k == 4 and report.chunk_size == 1000
    assert report.chunks == 6  # one chunk a page: pypdf's text, 1000/200 splitting
    assert report.doc_hit_at_4 == 1.0
    assert report.evidence_in_context is not None and report.evidence_in_context >= 1 / 3
    assert report.evidence_questions == 3


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    """Two domains of two documents each, every question in a dev or a test half."""
    domains = {
        "animals": {
            "bees.txt": DOCS["bees.txt"],
            "owls.txt": "Barn owls swallow their prey whole and cough up pellets of bone and fur.",
        },
        "places": {
            "volcano.txt": DOCS["volcano.txt"],
            "trains.txt": DOCS["trains.txt"],
        },
    }
    questions = {
        "animals": [
            {"question": "How do honey bees point the way to flowers?", "answers": ["waggle dance"], "doc": "bees.txt",
             "split": "dev"},
            {"question": "What do barn owls cough up?", "answers": ["pellets"], "doc": "owls.txt", "split": "test"},
        ],
        "places": [
            {"question": "On which island is Mount Etna?", "answers": ["Sicily"], "doc": "volcano.txt", "split": "dev"},
            {"question": "What year did the Shinkansen open?", "answers": ["1964"], "doc": "trains.txt",
             "split": "test"},
        ],
    }  # fmt: skip
    entries = []
    for name, files in domains.items():
        (tmp_path / name / "docs").mkdir(parents=True)
        for file, text in files.items():
            (tmp_path / name / "docs" / file).write_text(text)
        (tmp_path / name / "qa.jsonl").write_text("\n".join(json.dumps(q) for q in questions[name]))
        entries.append({"name": name, "docs": f"{name}/docs", "qa": f"{name}/qa.jsonl", "licence": "test"})
    (tmp_path / "suite.json").write_text(json.dumps({"domains": entries}))
    return tmp_path / "suite.json"


def test_a_suite_reports_each_domain_and_half_beside_the_tutorial(
    suite: Path, tmp_path: Path, embedder: Embedder
) -> None:
    cache = tmp_path / "cache"
    report = evaluate_suite(suite, Settings(top_k=2), embedder, cache=cache, stages=True)
    assert [d.domain for d in report.domains] == ["animals", "places"]
    for domain in report.domains:
        assert set(domain.ours) == {"all", "dev", "test"} and set(domain.tutorial) == {"all", "dev", "test"}
        assert domain.ours["dev"].questions == 1 and domain.ours["test"].questions == 1
        assert domain.ours["all"].answer_in_context == 1.0  # two documents each: the answer is found
        assert set(domain.ours["all"].stages) == {"candidates", "focus", "select"}
    assert report.overall("ours", "all")["answer_in_context"] == 1.0
    table = "\n".join(format_suite(report))
    assert "| animals | dev | 1 |" in table and "mean of domains" in table and "after focus" in table
    kept = sorted(p.name for p in cache.iterdir())
    # A second run finds the knowledge bases kept (ours and the tutorial's): nothing is ingested again.
    again = evaluate_suite(suite, Settings(top_k=2), embedder, cache=cache, only=["places"])
    assert [d.domain for d in again.domains] == ["places"] and sorted(p.name for p in cache.iterdir()) == kept


def test_a_suite_with_missing_files_is_refused_with_what_to_do(suite: Path) -> None:
    from rag.errors import RagError

    (suite.parent / "places" / "qa.jsonl").unlink()
    with pytest.raises(RagError, match="places are missing: rebuild the suite"):
        load_suite(suite)


def test_eval_suite_command_prints_the_table(suite: Path, tmp_path: Path) -> None:
    from tests.test_cli import run

    result = run(["eval", "--suite", str(suite), "--no-tutorial", "--domain", "animals"], tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "| animals | dev | 1 | 1.000 / – |" in result.stdout and "places" not in result.stdout


def test_a_stage_that_did_not_run_for_a_question_leaves_its_hit_as_the_stage_before_left_it() -> None:
    from rag.tools.evaluation import _after

    assert _after({"candidates": False, "focus": True, "select": True}, "prefer") is True  # no profile term
    assert _after({"candidates": True, "focus": False, "select": False}, "rerank") is False  # rerank off
    assert _after({"candidates": False, "focus": False, "prefer": True, "select": True}, "prefer") is True
