"""Document focus on a real knowledge base: by name, by place in time, by content."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.retrieval import RetrievalOptions, Retriever
from rag.store import Store

# Short reports written on one template: every one has a cause, a crew and recommendations.
REPORTS = {
    "report-a.txt": (
        "Grounding of the ferry Island Star near Pelican Point. The ferry ran aground on a sandbar at night "
        "while the master was distracted by a phone call.\n\n"
        "Cause. The probable cause was a lack of attention to the position of the vessel.\n\n"
        "Crew. Three crew were on board; none was injured.\n\n"
        "Recommendation. The operator should fit a bridge watch alarm."
    ),
    "report-b.txt": (
        "Fire on the fishing vessel Blue Heron off Cape Wren. A fuel line burst in the engine room and "
        "sprayed diesel on a hot exhaust.\n\n"
        "Cause. The probable cause was a chafed fuel hose that had not been inspected.\n\n"
        "Crew. Five crew were on board; two were treated for smoke inhalation.\n\n"
        "Recommendation. Owners should inspect fuel hoses every six months."
    ),
    "report-c.txt": (
        "Collision of the tug Red Fox with a moored barge in the harbour. The tug's steering failed as it "
        "turned into the basin.\n\n"
        "Cause. The probable cause was a worn hydraulic pump in the steering gear.\n\n"
        "Crew. Two crew were on board; none was injured.\n\n"
        "Recommendation. The operator should service steering pumps yearly."
    ),
}
RELEASES = {
    f"Widget {version} Release Notes.md": f"# Widget {version}\n\nThis release supports Python {python}.\n\n"
    f"## Highlights\n\n{highlight}\n"
    for version, python, highlight in (
        ("1.9.0", "3.7-3.9", "A faster parser."),
        ("1.17.0", "3.8-3.11", "A new plugin interface."),
        ("2.4.0", "3.11-3.14", "The plugin interface is stable."),
    )
}


def knowledge_base(tmp_path: Path, embedder: Embedder, files: dict[str, str]) -> Store:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in files.items():
        (docs / name).write_text(text)
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 120, 0).ingest_paths([docs])
    return store


@pytest.fixture
def reports(tmp_path: Path, embedder: Embedder) -> Store:
    return knowledge_base(tmp_path, embedder, REPORTS)


def test_the_report_a_question_describes_fills_the_context(reports: Store, embedder: Embedder) -> None:
    """The question names no report; what it describes points to one, and its passages come first."""
    question = "What was the probable cause of the accident where the ferry ran aground on a sandbar?"
    result = Retriever(reports, embedder).retrieve(question, top_k=4, max_chars=10_000)
    focus = next(s for s in result.stages if s.stage == "focus")
    assert focus.note.startswith("by content: report-a.txt")
    assert [h.chunk.source for h in result.selected[:3]] == ["report-a.txt"] * 3
    assert "lack of attention" in " ".join(h.chunk.text for h in result.selected)
    unfocused = Retriever(reports, embedder, RetrievalOptions(by_content=False)).retrieve(question, top_k=4)
    assert {h.chunk.source for h in unfocused.selected} != {"report-a.txt"}  # siblings' causes fill it otherwise


def test_the_latest_release_is_read_from_the_documents_own_numbers(tmp_path: Path, embedder: Embedder) -> None:
    store = knowledge_base(tmp_path, embedder, RELEASES)
    retriever = Retriever(store, embedder)
    result = retriever.retrieve("Which Python versions does the latest release support?", top_k=3)
    assert result.hits[0].chunk.source == "Widget 2.4.0 Release Notes.md"  # 2.4 > 1.17 > 1.9, as numbers
    assert next(s for s in result.stages if s.stage == "focus").note.startswith("the latest of the documents alike")
    earliest = retriever.retrieve("What did the earliest release add?", top_k=3)
    assert earliest.hits[0].chunk.source == "Widget 1.9.0 Release Notes.md"
    before = retriever.retrieve("Which Python versions did the release before the latest support?", top_k=3)
    assert before.hits[0].chunk.source == "Widget 1.17.0 Release Notes.md"


PLANS = {
    f"Strategic Plan {year}.md": f"# Strategic Plan {year}\n\nPublished by the agency in {year}.\n\n"
    f"## Goals\n\nThis plan's main goal is to {goal}.\n"
    for year, goal in (
        (2024, "reduce processing times by a third"),
        (2025, "open four regional offices"),
        (2026, "move every service online"),
    )
}


def test_last_years_plan_is_the_one_labelled_with_last_years_number(tmp_path: Path, embedder: Embedder) -> None:
    store = knowledge_base(tmp_path, embedder, PLANS)
    question = "What was the main goal of last year's plan?"
    result = Retriever(store, embedder, today=lambda: date(2026, 5, 4)).retrieve(question, top_k=3)
    assert result.hits[0].chunk.source == "Strategic Plan 2025.md"
    assert "regional offices" in result.selected[0].chunk.text
    assert next(s for s in result.stages if s.stage == "focus").note.startswith("last year's of the documents alike")
    later = Retriever(store, embedder, today=lambda: date(2027, 1, 10)).retrieve(question, top_k=3)
    assert later.hits[0].chunk.source == "Strategic Plan 2026.md"
    this_year = Retriever(store, embedder, today=lambda: date(2026, 5, 4)).retrieve(
        "What is the main goal of this year's plan?", top_k=3
    )
    assert this_year.hits[0].chunk.source == "Strategic Plan 2026.md"


def test_a_document_filter_leaves_the_focus_to_the_user(reports: Store, embedder: Embedder) -> None:
    b = reports.find("report-b.txt")
    assert b is not None
    question = "What was the probable cause of the accident where the ferry ran aground on a sandbar?"
    result = Retriever(reports, embedder).retrieve(question, top_k=4, doc_ids=[b.doc_id])
    assert {h.chunk.source for h in result.hits} == {"report-b.txt"}
    assert next(s for s in result.stages if s.stage == "focus").note == ""


# One organisation's quarterly reports saved under numbers: only their covers say which quarter each covers.
QUARTERLIES = {
    f"report-{n}.md": f"# Quarterly report\n\nFor the quarterly period ended {end}\n\nHarbor Foods Cooperative\n\n"
    f"## Results\n\nThe cooperative sold {tons} tons of produce this quarter and opened {stores} new stores.\n"
    for n, end, tons, stores in (
        (1, "April 1, 2023", "1,200", "two"),
        (2, "July 1, 2023", "1,450", "three"),
        (3, "September 30, 2023", "1,610", "five"),
    )
}


def test_a_quarter_named_in_the_question_picks_the_report_whose_cover_prints_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    store = knowledge_base(tmp_path, embedder, QUARTERLIES)
    retriever = Retriever(store, embedder)
    missed = 0
    for question, source, figure in (
        ("How many tons of produce were sold in Q2 2023?", "report-2.md", "1,450"),
        ("How many new stores were opened in the third quarter of 2023?", "report-3.md", "five"),
        ("Tons of produce sold in Q1'2023?", "report-1.md", "1,200"),
        # The first half of a year is reported with its second quarter.
        ("How many new stores were opened in the first half of 2023?", "report-2.md", "three"),
    ):
        result = retriever.retrieve(question, top_k=2)
        focus = next(s for s in result.stages if s.stage == "focus")
        assert focus.note.startswith("of Q") and focus.note.endswith(f": {source}")
        assert result.selected[0].chunk.source == source
        assert figure in result.selected[0].chunk.text
        # Without the periods read from the covers, the three reports are alike: another one may come first.
        unfocused = Retriever(store, embedder, RetrievalOptions(by_time=False)).retrieve(question, top_k=2)
        missed += unfocused.selected[0].chunk.source != source
    assert missed >= 1
    # A period no report covers leaves the focus as it was.
    other = retriever.retrieve("How many tons were sold in Q4 2023?", top_k=2)
    assert not next(s for s in other.stages if s.stage == "focus").note.startswith("of Q4")
