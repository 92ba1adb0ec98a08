"""Knowledge bases in the app's sidebar (ui_common.py), run by Streamlit's AppTest with the real engine: create,
switch, rename and delete (after a confirmation) knowledge bases; each has its own documents, conversations and
settings; RAG_KB chooses the one a new session opens; the folder watcher follows the app setting."""

from __future__ import annotations

import gc
import time
import weakref
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Selectbox

from rag.config import PROJECT_ROOT, Settings, save_settings
from rag.conversations import ConversationStore
from rag.kb import KnowledgeBases
from rag.sources import SourceStore
from tests.registry import open_files_under
from tests.servers import free_port
from ui_common import folder_watcher, get_store, shared_store

pytestmark = pytest.mark.slow

GARDEN = "# Garden\n\nThe tomatoes in the garden are watered every Tuesday morning.\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text(GARDEN)
    data = tmp_path / "data"
    monkeypatch.setenv("RAG_DATA_DIR", str(data))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")
    return data


def open_app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def picker(at: AppTest) -> Selectbox[str]:
    [box] = [s for s in at.sidebar.selectbox if s.label == "Knowledge base"]
    return box


def sidebar_text(at: AppTest) -> str:
    kinds = (at.sidebar.caption, at.sidebar.info, at.sidebar.warning, at.sidebar.error, at.sidebar.success)
    return "\n".join(str(e.value).replace("\\", "") for kind in kinds for e in kind)


def create(at: AppTest, name: str) -> None:
    at.sidebar.text_input(key="kb_new_name").set_value(name)
    at.sidebar.button(key="kb_create").click().run()
    assert not at.exception, at.exception


def test_a_knowledge_base_is_created_switched_to_renamed_and_deleted_after_a_confirmation(data_dir: Path) -> None:
    at = open_app()
    assert picker(at).options == ["default"] and picker(at).value == "default"
    assert "Knowledge base 'default': 1 document · 1 chunk" in sidebar_text(at)

    create(at, "Orchard")
    assert picker(at).value == "Orchard" and picker(at).options == ["default", "Orchard"]
    assert "Created and opened the knowledge base 'Orchard'." in sidebar_text(at)
    assert "Knowledge base 'Orchard': 0 documents · 0 chunks" in sidebar_text(at)  # its own, empty

    create(at, "orchard")  # names are unique, ignoring case: refused, said, nothing made
    assert "A knowledge base named 'Orchard' exists already" in sidebar_text(at)
    assert picker(at).options == ["default", "Orchard"]

    picker(at).select("default").run()
    assert picker(at).value == "default" and "1 document" in sidebar_text(at)
    picker(at).select("Orchard").run()

    at.sidebar.text_input(key="kb_rename_Orchard").set_value("Cider orchard")
    at.sidebar.button(key="kb_rename").click().run()
    assert picker(at).value == "Cider orchard" and picker(at).options == ["default", "Cider orchard"]

    at.sidebar.button(key="kb_delete").click().run()
    assert "Delete the knowledge base 'Cider orchard' with all its documents" in sidebar_text(at)
    at.sidebar.button(key="kb_delete_cancel").click().run()
    assert picker(at).options == ["default", "Cider orchard"]  # cancelled: still there
    at.sidebar.button(key="kb_delete").click().run()
    assert open_files_under(data_dir / "kbs")  # its index, open in the app
    settings = KnowledgeBases(Settings.load()).settings_for("Cider orchard")
    store = weakref.ref(get_store(settings))  # the app's (cached, shared) store of it
    at.sidebar.button(key="kb_delete_yes").click().run()
    assert not at.exception, at.exception
    assert picker(at).options == ["default"] and picker(at).value == "default"
    assert "Deleted the knowledge base 'Cider orchard'." in sidebar_text(at)
    assert not list((data_dir / "kbs").iterdir())
    assert not open_files_under(data_dir / "kbs")  # its files let go of: their disk space is back at once
    gc.collect()
    assert store() is None  # nor kept in memory (its retriever holds every vector of it)
    assert not any(b.key == "kb_delete" for b in at.sidebar.button)  # 'default' cannot be deleted


def test_each_knowledge_base_shows_its_own_documents_and_conversations(data_dir: Path) -> None:
    at = open_app()  # first start: 'default' gets the corpus
    catalog = KnowledgeBases(Settings.load())
    catalog.create("Empty")
    ConversationStore.in_data_dir(data_dir).create(title="Tomato question")
    at.run()
    assert [b.label for b in at.sidebar.button if b.key and b.key.startswith("open_")] == ["Tomato question"]
    assert "Conversations in 'default'" in sidebar_text(at)

    picker(at).select("Empty").run()
    assert not any(b.key and b.key.startswith("open_") for b in at.sidebar.button)  # not its conversation
    assert "Conversations in 'Empty'" in sidebar_text(at)
    assert "Knowledge base 'Empty': questions are answered from its documents alone" in at.caption[0].value.replace(
        "\\", ""
    )
    at.switch_page("pages/documents.py").run()
    assert not at.exception, at.exception
    assert any("The knowledge base is empty" in i.value for i in at.info)
    assert not at.dataframe or "garden.md" not in str(at.dataframe[0].value)


def test_rag_kb_chooses_the_knowledge_base_a_session_opens(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    KnowledgeBases(Settings.load()).create("Work")
    monkeypatch.setenv("RAG_KB", "Work")
    at = open_app()
    assert picker(at).value == "Work" and "Knowledge base 'Work': 0 documents" in sidebar_text(at)


def test_retrieval_settings_are_saved_for_the_knowledge_base_in_use(data_dir: Path) -> None:
    KnowledgeBases(Settings.load()).create("Work")
    at = open_app("pages/settings.py")
    picker(at).select("Work").run()
    assert any("Retrieval in the knowledge base 'Work'" in s.value.replace("\\", "") for s in at.subheader)
    [top_k] = [n for n in at.number_input if n.label.startswith("Sources per question")]
    top_k.set_value(5)
    [prompt] = [a for a in at.text_area if a.label == "System prompt"]
    prompt.set_value("Answer in one sentence.")
    [save] = [b for b in at.button if b.label == "Save settings"]
    save.click().run()
    assert not at.exception, at.exception
    catalog = KnowledgeBases(Settings.load())
    work, default = catalog.settings_for("Work"), catalog.settings_for("default")
    assert (work.top_k, work.system_prompt) == (5, "Answer in one sentence.")
    assert (default.top_k, default.system_prompt) == (Settings().top_k, Settings().system_prompt)


def test_the_watch_setting_keeps_a_folder_source_in_sync_while_the_app_runs(data_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    at = open_app()
    sources = SourceStore(data_dir)
    sources.add_folder(folder, label="notes")
    sources.close()
    save_settings(Settings.load().with_overrides(watch="on"))
    at.run()
    watcher = folder_watcher(str(data_dir))
    try:
        assert watcher.running
        time.sleep(1.0)  # the watcher looks at the folders it is given
        (folder / "bees.md").write_text("# Bees\n\nThe hives are opened in May.\n")
        store = shared_store(str(data_dir))  # the app's own
        deadline = time.monotonic() + 60
        while store.find("notes/bees.md") is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert store.find("notes/bees.md") is not None, "the watcher did not sync the new file"
        save_settings(Settings.load().with_overrides(watch="off"))
        at.run()
        deadline = time.monotonic() + 15
        while watcher.running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not watcher.running
    finally:
        watcher.run_while(False)
