"""The documents page, run by Streamlit's AppTest with the real engine on a two-file knowledge base.

AppTest cannot drive st.file_uploader: uploads are tested in the browser; here the page's results list is
fed through session state (`documents_results`). The page is opened through app.py, its entry point, which
lists the pages (`st.navigation`) and starts the app for each.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT
from rag.errors import LoaderError
from rag.ingest import IngestResult
from rag.loaders import load_bytes
from rag.store import Store
from tests.servers import free_port
from ui_common import shared_store

pytestmark = pytest.mark.slow

GARDEN = "# Garden\n\nThe tomatoes in the garden are watered every Tuesday morning.\n"
HOSTILE = (
    "Release notes.\n\nThe parser must not run <script>alert(1)</script> or follow [click](http://evil.example).\n"
)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text(GARDEN)
    (corpus / "hostile.txt").write_text(HOSTILE)
    data = tmp_path / "data"
    monkeypatch.setenv("RAG_DATA_DIR", str(data))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    return data


def open_page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240).run()  # the entry point lists the pages
    at.switch_page("pages/documents.py").run()
    assert not at.exception, at.exception
    return at


def store(data_dir: Path) -> Store:
    return shared_store(str(data_dir))  # the page's own (process-wide cached) store


def doc_id(data_dir: Path, name: str) -> str:
    record = store(data_dir).find(name)
    assert record is not None, f"{name} is not in the knowledge base"
    return record.doc_id


def shown(markdown: str) -> str:
    """Markdown source as the user reads it: the page escapes file names and messages."""
    return re.sub(r"\\(.)", r"\1", markdown)


def markdown_values(at: AppTest) -> list[str]:
    """Every element whose text Streamlit renders as Markdown, as the user reads it."""
    kinds = (at.markdown, at.caption, at.title, at.subheader, at.success, at.info, at.warning, at.error)
    return [shown(str(e.value)) for kind in kinds for e in kind]


def test_lists_the_documents_with_their_details(data_dir: Path) -> None:
    at = open_page()
    table = at.dataframe[0].value
    assert list(table.columns) == ["Name", "Type", "Pages", "Chunks", "Size", "Ingested"]
    rows = {row["Name"]: row for row in table.to_dict("records")}
    assert set(rows) == {"garden.md", "hostile.txt"}
    assert rows["garden.md"]["Type"] == "markdown"
    assert rows["garden.md"]["Chunks"] == 1
    assert rows["garden.md"]["Size"] == f"{len(GARDEN.encode())} B"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows["hostile.txt"]["Ingested"])
    assert "2 documents · 2 chunks" in at.sidebar.caption[-1].value


def test_an_empty_knowledge_base_says_what_to_do(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = data_dir.parent / "empty"
    empty.mkdir()
    monkeypatch.setenv("RAG_CORPUS_DIR", str(empty))
    at = open_page()
    assert not at.dataframe
    assert "The knowledge base is empty" in at.info[0].value
    assert not at.tabs


def test_delete_asks_first_and_cancel_keeps_the_document(data_dir: Path) -> None:
    at = open_page()
    garden = doc_id(data_dir, "garden.md")
    at.selectbox(key="documents_delete_pick").set_value(garden).run()
    at.button(key="documents_delete").click().run()
    assert [shown(w.value) for w in at.main.warning] == ["Delete garden.md and its 1 chunk?"]
    assert store(data_dir).find("garden.md") is not None

    at.button(key="documents_delete_cancel").click().run()
    assert not at.exception
    assert not at.main.warning
    assert "garden.md" in set(at.dataframe[0].value["Name"])

    at.button(key="documents_delete").click().run()
    at.button(key="documents_delete_yes").click().run()
    assert not at.exception
    assert "Deleted garden.md and its 1 chunk." in [shown(s.value) for s in at.success]
    assert list(at.dataframe[0].value["Name"]) == ["hostile.txt"]
    assert store(data_dir).find("garden.md") is None
    assert store(data_dir).vector_count() == 1
    assert at.selectbox(key="documents_delete_pick").value == doc_id(data_dir, "hostile.txt")


def test_preview_shows_document_text_literally(data_dir: Path) -> None:
    at = open_page()
    at.selectbox(key="documents_preview_pick").set_value(doc_id(data_dir, "hostile.txt")).run()
    texts = [t.value for t in at.text] + [c.value for c in at.code]
    assert any("<script>alert(1)</script>" in t and "[click](http://evil.example)" in t for t in texts)
    assert "Chunk 1 of 1" in [c.value for c in at.caption]
    assert not [v for v in markdown_values(at) if "alert(1)" in v or "evil.example" in v]


def test_retrieval_check_ranks_the_relevant_file_first(data_dir: Path) -> None:
    at = open_page()
    at.text_input(key="documents_search").input("How often are the tomatoes watered?").run()
    assert not at.exception
    hits = [shown(m.value) for m in at.markdown if re.match(r"\*\*\d+\. ", m.value)]
    assert len(hits) == 2
    assert hits[0].startswith("**1. garden.md**") and hits[1].startswith("**2. hostile.txt**")
    scores = [float(s) for h in hits for s in re.findall(r"score (-?\d\.\d{2,4})\b", h)]
    assert len(scores) == 2 and scores[0] > scores[1]
    assert hits[0].endswith("· given to the model") and hits[1].endswith("· not given to the model")
    assert any("watered every Tuesday" in t.value for t in at.text)
    assert not [v for v in markdown_values(at) if "alert(1)" in v]
    assert not at.info
    stages = at.dataframe[-1].value  # what each stage did, as a table
    assert list(stages["stage"]) == ["candidates", "focus", "select"]
    assert stages["what it did"][1].startswith("by content: garden.md")
    assert stages["its best passages are from"][2] == "garden.md ×1"  # the one passage given to the model
    at.text_input(key="documents_search").input("Who won the Super Bowl in 2016?").run()
    assert "do not cover it" in at.info[0].value
    declined = [shown(m.value) for m in at.markdown if re.match(r"\*\*\d+\. ", m.value)]
    assert len(declined) == 2 and all(h.endswith("· not given to the model") for h in declined)


def test_upload_results_show_each_file_and_survive_reruns(data_dir: Path) -> None:
    try:
        load_bytes(b"%PDF-1.4 not really a pdf", "scan.pdf")
        pytest.fail("a broken PDF should not load")
    except LoaderError as exc:
        failure = str(exc)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240).run()
    at.switch_page("pages/documents.py")
    at.session_state["documents_results"] = [
        IngestResult("guide.pdf", "added", 12, "page 3 has no text layer", "a" * 16),
        IngestResult("notes.md", "unchanged", 3, doc_id="b" * 16),
        IngestResult("copy_of_notes.md", "duplicate", 3, "same content as 'notes.md', already indexed: skipped"),
        IngestResult("scan.pdf", "failed", message=failure),
    ]
    at.run()
    assert not at.exception
    for _ in range(2):
        assert [shown(s.value) for s in at.success] == [
            "guide.pdf: indexed, 12 chunks added (note: page 3 has no text layer)"
        ]
        assert [shown(i.value) for i in at.info] == [
            "notes.md: unchanged, already indexed (3 chunks)",
            "copy_of_notes.md: same content as 'notes.md', already indexed: skipped",
        ]
        assert [shown(e.value) for e in at.error] == [failure]
        at.run()


def test_an_unexpected_failure_is_a_message_with_what_to_do_not_a_trace(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from rag.engine import Engine

    def locked(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    at = open_page()
    monkeypatch.setattr(Engine, "check_retrieval", locked)  # e.g. another program writing to the knowledge base
    at.text_input(key="documents_search").input("How often are the tomatoes watered?").run()
    assert not at.exception, at.exception
    message = at.error[0].value
    assert "Something went wrong while reading the knowledge base" in message
    assert "database is locked" in message and "Try again in a moment" in message
