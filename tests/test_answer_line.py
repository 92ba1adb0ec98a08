"""The line that answers: the sentence or table row of a passage that best matches the question."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.answer_line import (
    Coverage,
    answer_lines,
    candidate_lines,
    checkable_sources,
    keyword_coverage,
    ranking_scores,
)
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.keyword_index import query_terms
from rag.retrieval import Retriever
from rag.store import Store

TABLE = """CONDENSED CONSOLIDATED STATEMENTS OF INCOME
Three Months Ended Six Months Ended
(MILLIONS) July 2, 2023 July 3, 2022 July 2, 2023 July 3, 2022
Revenues $ 12,734 $ 27,742 $ 31,015 $ 53,402
Research and development expenses 2,648 2,815 5,153 5,116
Discontinued operations, net of tax (2) 34 (1) 26
Net income attributable to common shareholders $ 2,327 $ 9,906 $ 7,870 $ 17,769"""

PROSE = (
    "Llama 2 was trained on 2 trillion tokens of public data. It has a context length of 4096 tokens,\n"
    "double that of Llama 1. The models come in 7B, 13B and 70B sizes."
)


def share_of(question: str) -> Coverage:
    terms = set(query_terms(question))

    def coverage(texts: Sequence[str]) -> list[float]:
        return [len(terms & set(query_terms(t))) / len(terms) for t in texts]

    return coverage


def test_candidates_are_table_rows_and_sentences_across_wrapped_lines() -> None:
    rows = [TABLE[s:e] for s, e in candidate_lines(TABLE)]
    assert "Revenues $ 12,734 $ 27,742 $ 31,015 $ 53,402" in rows
    assert "Discontinued operations, net of tax (2) 34 (1) 26" in rows
    sentences = [PROSE[s:e] for s, e in candidate_lines(PROSE)]
    assert sentences == [
        "Llama 2 was trained on 2 trillion tokens of public data.",
        "It has a context length of 4096 tokens,\ndouble that of Llama 1.",
        "The models come in 7B, 13B and 70B sizes.",
    ]


def test_the_row_that_holds_the_asked_figure_is_the_line(embedder: Embedder) -> None:
    for question, row in [
        ("What was net income attributable to common shareholders in Q2 2023?", "Net income attributable"),
        ("How much was spent on research and development?", "Research and development expenses"),
        ("What were revenues in the three months ended July 2, 2023?", "Revenues $ 12,734"),
    ]:
        [line] = answer_lines(question, [TABLE], embedder, share_of(question))
        assert line is not None and line.text.startswith(row), (question, line)
        assert TABLE[line.start : line.end] == line.text


def test_each_passage_gets_its_own_line_in_one_batch(embedder: Embedder) -> None:
    question = "What context length does Llama 2 use?"
    lines = answer_lines(question, [PROSE, TABLE, "…"], embedder, share_of(question))
    assert lines[0] is not None and "context length of 4096" in lines[0].text
    assert lines[1] is not None  # the best of a passage that does not answer is still a line of it
    assert lines[2] is None  # nothing to mark


def test_no_question_marks_nothing(embedder: Embedder) -> None:
    assert answer_lines("  ", [PROSE], embedder) == [None]


def test_sources_are_saved_in_the_model_s_order_with_the_score_that_ranked_them_and_their_line(
    tmp_path: Path, embedder: Embedder
) -> None:
    store = Store(tmp_path / "kb")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "llama.md").write_text("# Llama 2\n\n" + PROSE + "\n")
    (folder / "income.md").write_text("# Income\n\n" + TABLE + "\n")
    (folder / "other.md").write_text("# Weather\n\nIt rained on Tuesday. The sun came out on Friday.\n")
    Ingestor(store, embedder, 600, 100).ingest_paths([folder])
    question = "What context length does Llama 2 use?"
    result = Retriever(store, embedder).retrieve(question, top_k=3)
    ranking = ranking_scores(result)
    saved = checkable_sources(question, result.selected, ranking, embedder, keyword_coverage(store, question))
    assert [s.text for s in saved] == [h.chunk.text for h in result.selected]  # the order the model reads
    scores = [s.rank_score for s in saved if s.rank_score is not None]
    assert len(scores) == len(saved)
    assert scores == sorted(scores, reverse=True)  # the score shown is the one that ordered them
    assert all(s.ranked_by.startswith("meaning and keywords fused") for s in saved)  # and it says which it is
    assert saved[0].source == "llama.md" and "context length of 4096" in saved[0].line
    assert saved[0].source_id == result.selected[0].chunk.id


def test_a_heading_is_never_part_of_the_line_that_answers(embedder: Embedder) -> None:
    passage = "# Bakery handbook\n\n## Ovens\nThe ovens are cleaned every Sunday evening by Marguerite."
    spans = [passage[s:e] for s, e in candidate_lines(passage)]
    assert spans == ["The ovens are cleaned every Sunday evening by Marguerite."]
    [line] = answer_lines("When are the ovens cleaned?", [passage], embedder)
    assert line is not None and line.text == "The ovens are cleaned every Sunday evening by Marguerite."
