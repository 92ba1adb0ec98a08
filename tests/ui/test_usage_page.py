"""The Usage page, run by Streamlit's AppTest on a data folder holding a known history of saved answers: what a
person sees (totals, charts, tables, the date filter, the CSV export) against a direct count in SQLite."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT
from rag.conversations import DB_NAME, ConversationStore, SavedSource, SavedUsage

TODAY = date.today()


def seed(data: Path) -> None:
    """Answers of the last days through the app, the CLI and the API, one declined, one failed, one with a thumbs
    down; and one from 40 days ago (outside the page's first range of 30 days)."""
    store = ConversationStore.in_data_dir(data)
    history: list[tuple[int, str, str, int | None, str | None, str | None]] = [
        # days ago, channel, backend, prompt tokens, error, feedback
        (0, "app", "embedded", 300, None, "up"),
        (0, "api", "openai", 2000, None, "down"),
        (1, "cli", "embedded", 500, None, None),
        (3, "app", "none", None, None, None),  # declined: no model asked
        (3, "api", "ollama", None, "Ollama is not running at http://127.0.0.1:11434: start it.", None),
        (40, "app", "embedded", 700, None, None),
    ]
    for days_ago, channel, backend, prompt, error, feedback in history:
        cid = store.create()
        store.add_message(cid, "user", "A question?", channel=channel)  # type: ignore[arg-type]
        usage = None
        if error is None:
            model = {"openai": "gpt-4o-mini", "none": "none"}.get(backend, "SmolLM2-135M-Instruct")
            usage = SavedUsage(
                backend=backend, model=model, prompt_tokens=prompt, completion_tokens=prompt and prompt // 10,
                seconds=3.0 if prompt else None, time_to_first_token=1.0 if prompt else None,
            )  # fmt: skip
        sources = [SavedSource("guide.md", 2, 0.7, "text")] if prompt else []
        saved = store.add_message(
            cid, "assistant", "An answer [1].", sources=sources, usage=usage, error=error,
            channel=channel,  # type: ignore[arg-type]
        )  # fmt: skip
        if feedback is not None:
            store.set_feedback(cid, saved.seq, feedback)  # type: ignore[arg-type]
        when = datetime(TODAY.year, TODAY.month, TODAY.day, 12).astimezone() - timedelta(days=days_ago)
        with sqlite3.connect(store.path) as db:
            db.execute("UPDATE messages SET created_at = ? WHERE conversation_id = ?", (when.isoformat(), cid))
    store.close()


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str | None, bytes]]:
    """What each download button would hand the browser, by file id: Streamlit's own media storage, watched."""
    seen: dict[str, tuple[str | None, bytes]] = {}
    keep = MemoryMediaFileStorage.load_and_get_id

    def watched(
        self: MemoryMediaFileStorage, data: str | bytes, mimetype: str, kind: Any, filename: str | None = None
    ) -> str:
        file_id = keep(self, data, mimetype, kind, filename)
        seen[file_id] = (filename, data.encode() if isinstance(data, str) else data)
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", watched)
    return seen


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, downloads: dict[str, tuple[str | None, bytes]]) -> AppTest:
    data = tmp_path / "data"
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "guide.md").write_text("# Guide\n\nThe guide says where the spare keys are.\n")
    (corpus / "unread.md").write_text("# Unread\n\nNobody ever asks about the boiler manual.\n")
    monkeypatch.setenv("RAG_DATA_DIR", str(data))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))  # indexed on first start: guide.md and unread.md
    monkeypatch.setenv("RAG_MODEL_PRICES", "gpt-4o-mini=0.15/0.60")
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens there
    seed(data)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240)
    at.run()
    at.switch_page("pages/usage.py").run()
    assert not at.exception, at.exception
    return at


def metric(at: AppTest, label: str) -> str:
    found = [m.value for m in at.metric if m.label == label]
    assert found, f"no metric {label!r} among {[m.label for m in at.metric]}"
    return str(found[0])


def table(at: AppTest, column: str) -> Any:
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a column {column!r}"
    return found[0]


def answers_in_sqlite(data: Path, since: date) -> int:
    with sqlite3.connect(data / DB_NAME) as db:
        rows = db.execute(
            "SELECT created_at FROM messages WHERE role = 'assistant' AND (usage IS NOT NULL OR error IS NOT NULL)"
        ).fetchall()
    return sum(datetime.fromisoformat(at).astimezone().date() >= since for (at,) in rows)


@pytest.mark.slow
def test_the_totals_charts_and_tables_show_the_saved_answers(page: AppTest, tmp_path: Path) -> None:
    assert page.title[0].value == "Usage"
    assert metric(page, "Questions") == str(answers_in_sqlite(tmp_path / "data", TODAY - timedelta(days=29))) == "5"
    assert (metric(page, "Answered by a model"), metric(page, "Declined"), metric(page, "Errors")) == ("3", "1", "1")
    assert (metric(page, "Prompt tokens"), metric(page, "Answer tokens")) == ("2,800", "280")
    assert (metric(page, "Thumbs up"), metric(page, "Thumbs down")) == ("1", "1")
    assert metric(page, "Cost") == "0.0004"  # 2,000 × 0.15 + 200 × 0.60 per million: the priced answer only
    assert metric(page, "First token, p50 / p95") == "1.0 / 1.0 s"
    charts = page.get("vega_lite_chart")
    assert len(charts) == 7  # questions, tokens, first token, speed, outcomes, feedback, cost
    channels = table(page, "channel")
    assert dict(zip(channels["channel"], channels["questions"], strict=True)) == {"app": 2, "api": 2, "cli": 1}
    models = table(page, "backend · model")
    assert dict(zip(models["backend · model"], models["questions"], strict=True))["openai · gpt-4o-mini"] == 1
    cited = table(page, "answers citing it")
    assert list(cited["document"]) == ["guide.md"] and list(cited["answers citing it"]) == [3]
    never = next(d.value for d in page.dataframe if list(d.value.columns) == ["document"])
    assert list(never["document"]) == ["unread.md"]


@pytest.mark.slow
def test_the_date_filter_and_the_weekly_view_change_what_is_counted(page: AppTest, tmp_path: Path) -> None:
    page.date_input(key="usage_range").set_value((TODAY - timedelta(days=60), TODAY)).run()
    assert metric(page, "Questions") == str(answers_in_sqlite(tmp_path / "data", TODAY - timedelta(days=60))) == "6"
    page.date_input(key="usage_range").set_value((TODAY, TODAY)).run()
    assert metric(page, "Questions") == "2"
    page.radio(key="usage_by").set_value("week").run()
    assert not page.exception, page.exception
    assert metric(page, "Questions") == "2"


@pytest.mark.slow
def test_the_csv_export_holds_a_line_per_day_and_one_per_answer(
    page: AppTest, downloads: dict[str, tuple[str | None, bytes]]
) -> None:
    files = {b.proto.label: downloads[Path(b.proto.url).stem] for b in page.get("download_button")}
    name, data = files["Download per day (CSV)"]
    assert name == f"usage-per-day-{TODAY - timedelta(days=29)}-{TODAY}.csv"
    days = list(csv.DictReader(io.StringIO(data.decode())))
    assert len(days) == 30 and days[-1]["period"] == TODAY.isoformat() and days[-1]["questions"] == "2"
    assert sum(int(d["questions"]) for d in days) == 5
    _, data = files["Download every answer (CSV)"]
    answers = list(csv.DictReader(io.StringIO(data.decode())))
    assert sorted(a["channel"] for a in answers) == ["api", "api", "app", "app", "cli"]
