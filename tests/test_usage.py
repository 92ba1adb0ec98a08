"""Usage over time on a real conversations file holding a known history: every figure against the history."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from rag.backends.embedded import EmbeddedBackend
from rag.config import ModelPrice, Settings
from rag.conversations import DB_NAME, ConversationStore, SavedSource, SavedUsage
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine, knowledge_base_engines
from rag.kb import KnowledgeBases
from rag.usage import (
    Granularity,
    KnowledgeBaseUsage,
    UsageReport,
    format_report,
    percentile,
    usage_of,
    usage_report,
)

MONDAY = date(2026, 11, 30)
PRICES = {"gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60)}


def at(day: date, hour: int = 12) -> str:
    """An ISO time falling on `day` in this machine's time zone (usage counts local days)."""
    return datetime(day.year, day.month, day.day, hour).astimezone().isoformat()


def answer(
    store: ConversationStore,
    day: date,
    channel: str,
    *,
    backend: str = "embedded",
    model: str = "SmolLM2-135M-Instruct",
    prompt: int | None = 100,
    completion: int | None = 10,
    ttft: float | None = 1.0,
    seconds: float | None = 2.0,
    cited: tuple[str, ...] = ("guide.pdf",),
    error: str | None = None,
    feedback: str | None = None,
    retries: int = 0,
) -> None:
    cid = store.create()
    store.add_message(cid, "user", "A question?", channel=channel)  # type: ignore[arg-type]
    usage = None
    if error is None or prompt is not None:
        usage = SavedUsage(
            backend=backend, model=model, prompt_tokens=prompt, completion_tokens=completion, seconds=seconds,
            time_to_first_token=ttft, retries=retries,
            tokens_per_second=completion / (seconds - ttft) if completion and seconds and ttft is not None else None,
        )  # fmt: skip
    saved = store.add_message(
        cid, "assistant", "An answer.", sources=[SavedSource(name, 1, 0.5, "text") for name in cited],
        usage=usage, error=error, channel=channel,  # type: ignore[arg-type]
    )  # fmt: skip
    if feedback is not None:
        store.set_feedback(cid, saved.seq, feedback)  # type: ignore[arg-type]
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE messages SET created_at = ? WHERE conversation_id = ?", (at(day), cid))


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    s = ConversationStore(tmp_path / DB_NAME)
    answer(s, MONDAY, "app", ttft=0.5, feedback="up")
    answer(s, MONDAY, "cli", ttft=1.5, cited=("guide.pdf", "notes.md"))
    answer(s, MONDAY, "app", backend="none", model="none", prompt=None, completion=None, ttft=None, seconds=None,
           cited=())  # fmt: skip
    answer(s, MONDAY + timedelta(days=2), "api", backend="openai", model="gpt-4o-mini", prompt=2000, completion=500,
           ttft=0.2, seconds=5.2, feedback="down", retries=2)  # fmt: skip
    answer(s, MONDAY + timedelta(days=8), "api", prompt=None, completion=None, ttft=None, seconds=None, cited=(),
           error="Ollama is not running")  # fmt: skip
    # An earlier message a client sent along (an API request's history): not a turn, not counted.
    cid = s.create()
    s.add_message(cid, "user", "Earlier question", channel="api")
    s.add_message(cid, "assistant", "Earlier answer", channel="api")
    return s


def report_of(
    store: ConversationStore, start: date | None = None, end: date | None = None, granularity: Granularity = "day"
) -> UsageReport:
    kb = KnowledgeBaseUsage(store, ["guide.pdf", "notes.md", "unread.md"])
    return usage_report({"default": kb}, start, end, granularity, PRICES)


def test_totals_add_up_the_saved_answers(store: ConversationStore) -> None:
    report = report_of(store)
    t = report.total
    assert (t.questions, t.answered, t.declined, t.errors, t.retries) == (5, 3, 1, 1, 2)
    assert (t.prompt_tokens, t.completion_tokens) == (2200, 520)
    assert (t.feedback_up, t.feedback_down) == (1, 1)
    assert t.ttft_p50 == 0.5 and t.ttft_p95 == pytest.approx(1.4)  # of 0.2, 0.5, 1.5 (interpolated)
    assert t.cost == pytest.approx((2000 * 0.15 + 500 * 0.60) / 1e6)  # only the priced OpenAI-compatible answer
    with sqlite3.connect(store.path) as db:
        counted = db.execute(
            "SELECT COUNT(*) FROM messages WHERE role = 'assistant' AND (usage IS NOT NULL OR error IS NOT NULL)"
        ).fetchone()[0]
    assert t.questions == counted


def test_per_day_and_per_week_with_empty_periods_shown(store: ConversationStore) -> None:
    days = report_of(store, start=MONDAY, end=MONDAY + timedelta(days=9))
    assert [row.label for row in days.periods][:3] == ["2026-11-30", "2026-12-01", "2026-12-02"]
    assert len(days.periods) == 10
    assert [row.figures.questions for row in days.periods] == [3, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    weeks = report_of(store, granularity="week")
    assert [(row.label, row.figures.questions) for row in weeks.periods] == [("2026-11-30", 4), ("2026-12-07", 1)]
    only_first = report_of(store, start=MONDAY, end=MONDAY)
    assert only_first.total.questions == 3 and only_first.never_cited == ["unread.md"]


def test_by_channel_model_and_knowledge_base(store: ConversationStore) -> None:
    report = report_of(store)
    channels = {row.label: row.figures.questions for row in report.by_channel}
    assert channels == {"app": 2, "api": 2, "cli": 1}
    models = {row.label: row.figures for row in report.by_model}
    assert models["embedded · SmolLM2-135M-Instruct"].questions == 2
    assert models["openai · gpt-4o-mini"].cost == pytest.approx(0.0006)
    assert models["none · none"].declined == 1
    assert models["failed before a model answered"].errors == 1
    assert [(row.label, row.figures.questions) for row in report.by_knowledge_base] == [("default", 5)]
    assert (("2026-11-30", "app", 2) in report.by_period_and_channel) and len(report.by_period_and_channel) == 4


def test_documents_cited_most_and_never(store: ConversationStore) -> None:
    report = report_of(store)
    assert report.cited_most == [("guide.pdf", 3), ("notes.md", 1)]
    assert report.never_cited == ["unread.md"]


def test_csv_exports_and_the_text_summary(store: ConversationStore) -> None:
    report = report_of(store, start=MONDAY, end=MONDAY + timedelta(days=2))
    periods = list(csv.DictReader(io.StringIO(report.periods_csv())))
    assert [(p["period"], p["questions"], p["prompt_tokens"]) for p in periods] == [
        ("2026-11-30", "3", "200"), ("2026-12-01", "0", "0"), ("2026-12-02", "1", "2000"),
    ]  # fmt: skip
    turns = list(csv.DictReader(io.StringIO(report.turns_csv())))
    assert len(turns) == 4 and turns[1]["cited"] == "guide.pdf; notes.md" and turns[3]["channel"] == "api"
    text = format_report(report)
    assert "4 questions (3 answered by a model, 1 declined, 0 failed, 2 retries)" in text
    assert "2026-12-02" in text and "unread.md" in text and "openai · gpt-4o-mini" in text


def test_a_range_that_ends_before_it_starts_says_so(store: ConversationStore) -> None:
    with pytest.raises(ValueError, match="swap the dates"):
        report_of(store, start=MONDAY, end=MONDAY - timedelta(days=1))


def test_percentiles_interpolate_and_empty_is_none() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_each_knowledge_base_counts_its_own_conversations(
    tmp_path: Path, embedder: Embedder, embedded_llm: EmbeddedBackend
) -> None:
    settings = Settings(data_dir=tmp_path / "data", backend="embedded", corpus_dir=tmp_path / "none")
    KnowledgeBases(settings).create("Allotment")
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(embedded_llm, "test: built-in model"))
    engines = knowledge_base_engines(engine)
    assert list(engines) == ["default", "Allotment"] and engines["default"] is engine
    answer(engine.conversations, MONDAY, "app")
    answer(engines["Allotment"].conversations, MONDAY, "api")
    answer(engines["Allotment"].conversations, MONDAY, "cli")
    report = usage_report(usage_of(engine), None, None, "day", PRICES)
    assert [(row.label, row.figures.questions) for row in report.by_knowledge_base] == [
        ("default", 1),
        ("Allotment", 2),
    ]
