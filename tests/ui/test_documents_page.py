"""The documents page, run by Streamlit's AppTest with the real engine on a two-file knowledge base.

AppTest cannot drive st.file_uploader: uploads are tested in the browser; here the page's results list is
fed through session state (`documents_results`). The page is opened through app.py, its entry point, which
lists the pages (`st.navigation`) and starts the app for each.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from rag.archive import import_kb
from rag.config import PROJECT_ROOT, Settings
from rag.embeddings import Embedder
from rag.engine import Engine
from rag.errors import LoaderError
from rag.ingest import IngestResult
from rag.kb import KnowledgeBases
from rag.loaders import load_bytes
from rag.store import Store
from tests.registry import open_files_under
from tests.servers import Site, free_port
from tests.test_reindex import previous_chunker_kb
from tests.test_web import PAGE
from ui_common import shared_store
from ui_jobs import ReindexJob, SyncJob

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
    assert [t.label for t in at.tabs] == ["Sources and sync", "Export / import"]  # a folder or an archive fills it


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


# -- sources and sync, web pages, re-index, export --------------------------------------------------------------


def add_folder(at: AppTest, folder: Path, include: str = "") -> None:
    widget_by_label(at.text_input, "Folder on this machine").set_value(str(folder))
    widget_by_label(at.text_input, "Only these files").set_value(include)
    widget_by_label(at.button, "Add folder").click().run()
    assert not at.exception, at.exception


def widget_by_label(elements: Any, label: str) -> Any:
    found = [w for w in elements if w.label == label]
    assert found, f"no widget {label!r} among {[w.label for w in elements]}"
    return found[0]


def sync_now(at: AppTest) -> str:
    at.button(key="documents_sync").click().run()
    assert not at.exception, at.exception
    [said] = [shown(e.value) for e in (*at.success, *at.warning) if "Sync of" in e.value]
    return said


def test_a_folder_source_is_synced_with_a_summary_and_kept_in_the_history(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "bees.md").write_text("# Bees\n\nThe hives are opened in May by Ines.\n")
    (folder / "pond.txt").write_text("The pond is cleaned every autumn.\n")
    (folder / "notes.tmp").write_text("scratch")
    at = open_page()
    add_folder(at, folder)
    assert any(f"Added the folder {folder}" in shown(s.value) for s in at.success)
    assert at.dataframe[-1].value["Label"].tolist() == ["handbook"]

    assert sync_now(at) == "Sync of default: 2 added, 0 unchanged, 1 skipped"  # notes.tmp: not a kind it reads
    assert {"handbook/bees.md", "handbook/pond.txt"} <= set(at.dataframe[0].value["Name"])
    assert sync_now(at) == "Sync of default: 0 added, 2 unchanged, 1 skipped"

    (folder / "pond.txt").write_text("The pond is cleaned every spring.\n")
    (folder / "bees.md").rename(folder / "hives.md")
    (folder / "bad.pdf").write_bytes(b"%PDF-1.4 not really")
    said = sync_now(at)
    assert said.startswith(
        "Sync of default: 0 added, 1 changed, 1 renamed, 0 unchanged, 1 skipped, 1 failed: handbook/bad.pdf: "
    )
    assert "not a real PDF" in said and said.count("handbook/bad.pdf") == 1
    history = at.dataframe[-1].value  # the sync history, newest first
    assert list(history["Status"]) == ["done", "done", "done"]
    assert history["Summary"].iloc[-1] == "2 added, 0 unchanged, 1 skipped"

    widget_by_label(at.button, "Remove source").click().run()
    assert any("Remove the source handbook and its documents" in shown(w.value) for w in at.warning)
    at.button(key="documents_source_yes").click().run()
    assert "Removed the source handbook and its 2 documents." in [shown(s.value) for s in at.success]
    assert not {"handbook/hives.md", "handbook/pond.txt"} & set(at.dataframe[0].value["Name"])


def test_a_sync_of_another_knowledge_base_is_shown_with_it_not_with_the_one_open(
    data_dir: Path, tmp_path: Path, embedder: Embedder
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "bees.md").write_text("# Bees\n\nThe hives are opened in May by Ines.\n")
    (folder / "pond.txt").write_text("The pond is cleaned every autumn.\n")
    at = open_page()
    add_folder(at, folder)
    KnowledgeBases(Settings.load()).create("Orchard")
    job = SyncJob(Engine(Settings.load(), store=store(data_dir), embedder=embedder))  # Sync now, in 'default'
    job.wait(300)
    at.session_state["documents_job"] = job
    at.session_state["knowledge_base"] = "Orchard"  # the person switched while it ran
    at.run()
    assert not at.exception, at.exception
    assert (
        "Syncing the sources of the knowledge base 'default' has ended: choose 'default' in the sidebar to see how "
        "it went." in [shown(i.value) for i in at.info]
    )
    assert not [text for text in markdown_values(at) if "Sync of" in text]

    at.session_state["knowledge_base"] = "default"
    at.run()
    assert "Sync of default: 2 added, 0 unchanged" in [shown(s.value) for s in at.success]
    assert list(at.dataframe[-1].value["Status"]) == ["done"]  # the sync history


def test_a_folder_that_does_not_exist_is_refused_with_the_reason(data_dir: Path, tmp_path: Path) -> None:
    at = open_page()
    add_folder(at, tmp_path / "nowhere")
    assert any("is not a folder: give the path of a folder that exists" in shown(e.value) for e in at.error)


def test_a_web_page_is_added_by_address_and_fetched_on_sync(
    data_dir: Path, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.pages["/keepers"] = ("text/html; charset=utf-8", PAGE)
    at = open_page()
    widget_by_label(at.text_input, "Address").set_value(site.url("/keepers"))
    widget_by_label(at.button, "Add web page").click().run()
    assert any("Press Sync now to fetch it." in shown(s.value) for s in at.success)
    said = sync_now(at)
    assert "1 failed" in said and "private" in said  # 127.0.0.1 is this machine: refused unless allowed

    monkeypatch.setenv("RAG_URL_ALLOW", "127.0.0.1")
    assert sync_now(at) == "Sync of default: 1 added, 0 unchanged"
    assert site.url("/keepers") in set(at.dataframe[0].value["Name"])


def test_an_index_of_the_previous_chunker_is_flagged_and_reindexed_from_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder: Embedder
) -> None:
    settings, _docs = previous_chunker_kb(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(empty))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    at = open_page()
    [notice] = [shown(w.value) for w in at.warning if "another chunker" in w.value]
    assert "its chunks were cut by chunker version 2" in notice and "keeps answering from the old index" in notice

    stopped = ReindexJob(settings, embedder)  # as if the person had pressed Re-index now, then its stop button
    stopped.stop()
    stopped.wait(300)
    at.session_state["documents_job"] = stopped
    at.run()
    assert any(
        shown(w.value).startswith("Re-indexing stopped: the knowledge base keeps answering from its old index")
        for w in at.warning
    )
    assert [w for w in at.warning if "another chunker" in w.value]  # still to do
    assert not at.button(key="documents_reindex").disabled

    old_index = [settings.data_dir / "chroma", settings.data_dir / "registry.sqlite3"]
    assert all(open_files_under(path) for path in old_index)  # open in the app
    at.button(key="documents_reindex").click().run()
    assert not at.exception, at.exception
    assert any(shown(s.value).startswith("Re-indexed: re-indexed 3 documents") for s in at.success)
    assert not any(open_files_under(path) for path in old_index)  # let go of: its disk space back at once
    assert not [w for w in at.warning if "another chunker" in w.value]  # up to date now
    assert (settings.data_dir / "index-1").is_dir()
    assert set(at.dataframe[0].value["Name"]) == {"docs/keepers.md", "docs/orders.md", "docs/sales.pdf"}


def test_the_knowledge_base_is_exported_as_an_archive_to_download_that_imports_whole(
    data_dir: Path, tmp_path: Path
) -> None:
    at = open_page()
    at.button(key="documents_export").click().run()
    assert not at.exception, at.exception
    assert any("Ready: default: 2 documents, 2 chunks, 0 conversations" in shown(c.value) for c in at.caption)
    assert [e.proto.label for e in at.get("download_button")] == ["Download the archive"]
    _name, data, _described = at.session_state["documents_exported"]  # what the button hands the browser
    archive = tmp_path / "default.zip"
    archive.write_bytes(data)
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    imported = import_kb(there, archive, "Copy")
    assert (imported.documents, imported.chunks) == (2, 2)
