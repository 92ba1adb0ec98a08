"""Several knowledge bases in one data folder: made, renamed, deleted and switched; each with its own documents,
vectors (embedded or on a real Chroma server), keyword index, conversations and settings; a data folder made
before there were several is 'default' as it is; and what built an index is recorded and compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from filelock import FileLock

from rag.chunking import CHUNKER_VERSION
from rag.config import Settings, SettingsError, save_settings
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import (
    SYNC_LOCK,
    KnowledgeBaseError,
    KnowledgeBases,
    check_versions,
    index_location,
    open_store,
    recorded_versions,
)
from rag.store import Store
from tests.servers import ChromaServer

FIXTURE_KB = Path(__file__).parent / "fixtures" / "kb-d8538cc"  # made by the version before numbered migrations


def ingest_text(settings: Settings, store: Store, embedder: Embedder, name: str, text: str) -> None:
    ingestor = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap)
    [result] = ingestor.ingest_uploads([(name, text.encode())])
    assert result.status == "added", result


def test_a_fresh_data_folder_has_only_default_and_knowledge_bases_are_made_renamed_and_deleted(tmp_path: Path) -> None:
    catalog = KnowledgeBases(Settings(data_dir=tmp_path / "data"))
    assert [kb.name for kb in catalog.list()] == ["default"]
    made = catalog.create("Client ACME 2024")
    catalog.create("beta")
    assert [kb.name for kb in catalog.list()] == ["default", "beta", "Client ACME 2024"]
    assert made.folder.parent == tmp_path / "data" / "kbs" and (made.folder / "kb.json").exists()
    assert catalog.get("client acme 2024").kb_id == made.kb_id  # names ignore case

    renamed = catalog.rename("Client ACME 2024", "ACME")
    assert renamed.folder == made.folder  # a rename changes the name only: nothing moves
    assert [kb.name for kb in catalog.list()] == ["default", "ACME", "beta"]

    catalog.delete("ACME")
    assert [kb.name for kb in catalog.list()] == ["default", "beta"]
    assert not made.folder.exists()


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (lambda c: c.create("Beta"), "A knowledge base named 'beta' exists already"),
        (lambda c: c.create("a/b"), "holds a slash"),
        (lambda c: c.create("  "), "is empty"),
        (lambda c: c.create("x" * 61), "longer than 60 characters"),
        (lambda c: c.rename("beta", "default"), "A knowledge base named 'default' exists already"),
        (lambda c: c.rename("default", "main"), "'default' is the data folder itself and keeps its name"),
        (lambda c: c.delete("default"), "'default' is the data folder itself and cannot be deleted"),
        (lambda c: c.get("nope"), "There is no knowledge base 'nope'"),
    ],
)
def test_what_cannot_be_done_to_knowledge_bases_is_refused_with_what_to_do(
    tmp_path: Path, action: object, message: str
) -> None:
    catalog = KnowledgeBases(Settings(data_dir=tmp_path))
    catalog.create("beta")
    with pytest.raises(KnowledgeBaseError) as caught:
        action(catalog)  # type: ignore[operator]
    assert message in str(caught.value)
    assert [kb.name for kb in catalog.list()] == ["default", "beta"]  # nothing changed


def test_a_knowledge_base_being_synced_is_not_deleted(tmp_path: Path) -> None:
    catalog = KnowledgeBases(Settings(data_dir=tmp_path))
    kb = catalog.create("busy")
    with FileLock(kb.folder / SYNC_LOCK), pytest.raises(KnowledgeBaseError, match="being written or synced right"):
        catalog.delete("busy")
    assert catalog.find("busy") is not None
    catalog.delete("busy")
    assert catalog.find("busy") is None


def test_each_knowledge_base_has_its_own_documents_vectors_keywords_and_conversations(
    tmp_path: Path, embedder: Embedder
) -> None:
    base = Settings(data_dir=tmp_path / "data")
    catalog = KnowledgeBases(base)
    catalog.create("garden")
    default, garden = catalog.settings_for("default"), catalog.settings_for("garden")
    assert (default.kb_dir, garden.kb_dir) == (tmp_path / "data", catalog.get("garden").folder)
    stores = {name: open_store(s) for name, s in (("default", default), ("garden", garden))}
    ingest_text(default, stores["default"], embedder, "boats.md", "A ketch has two masts; a sloop has one.")
    ingest_text(garden, stores["garden"], embedder, "tomatoes.md", "Tomatoes need six hours of sun a day.")

    for name, store in stores.items():
        [doc] = store.documents()
        assert doc.name == {"default": "boats.md", "garden": "tomatoes.md"}[name]
        hits = store.query(embedder.embed_query("How much sun do tomatoes need?"), k=5)
        assert {h.chunk.source for h in hits} == {doc.name}  # never the other knowledge base's passages
        assert store.vector_count() == store.keyword_row_count() == 1
    assert [r.chunk.source for r in stores["default"].keyword_query(["tomatoes"], 5)] == []

    conversations = {name: ConversationStore.in_data_dir(s.kb_dir) for name, s in (("d", default), ("g", garden))}
    conversations["g"].create(title="About tomatoes")
    assert [c.title for c in conversations["g"].list()] == ["About tomatoes"]
    assert conversations["d"].list() == []
    for store in stores.values():
        store.close()


def test_settings_of_a_knowledge_base_are_its_own_and_the_apps_are_shared(tmp_path: Path) -> None:
    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_CHUNK_SIZE": "700"}
    catalog = KnowledgeBases(Settings.load(env), env)
    catalog.create("contracts")
    contracts = catalog.settings_for("contracts")
    assert (contracts.kb, contracts.chunk_size) == ("contracts", 700)  # from the environment until saved
    save_settings(
        contracts.with_overrides(chunk_size=900, top_k=4, system_prompt="Cite clauses.", temperature=0.7), env
    )

    mine, default = catalog.settings_for("contracts"), catalog.settings_for("default")
    assert (mine.chunk_size, mine.top_k, mine.system_prompt) == (900, 4, "Cite clauses.")
    assert (default.chunk_size, default.top_k) == (700, 12)  # the other's own settings are untouched
    assert mine.temperature == default.temperature == 0.7  # an app-wide setting is the app's
    assert json.loads((catalog.get("contracts").folder / "settings.json").read_text()) == {
        "chunk_size": 900,
        "top_k": 4,
        "system_prompt": "Cite clauses.",
    }

    save_settings(default.with_overrides(top_k=20), env)  # the default's own, saved beside the app's
    assert catalog.settings_for("default").top_k == 20
    assert catalog.settings_for("contracts").top_k == 4
    assert catalog.settings_for("contracts").temperature == 0.7


def test_rag_kb_names_the_knowledge_base_commands_open(tmp_path: Path) -> None:
    catalog = KnowledgeBases(Settings(data_dir=tmp_path))
    catalog.create("Reports")
    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_KB": "reports"}
    settings = KnowledgeBases(Settings.load(env), env).settings_for()
    assert settings.kb == "Reports" and settings.kb_dir == catalog.get("Reports").folder
    with pytest.raises(SettingsError, match="Knowledge base name 'a/b' holds a slash"):
        Settings.from_env({"RAG_KB": "a/b"})
    with pytest.raises(KnowledgeBaseError, match="python -m rag kb create"):
        KnowledgeBases(Settings.load(env), env).settings_for("Missing")


def test_a_data_folder_made_before_knowledge_bases_opens_as_default_with_nothing_embedded_again(
    tmp_path: Path, embedder: Embedder
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE_KB, data_dir)
    catalog = KnowledgeBases(Settings(data_dir=data_dir))
    assert [kb.name for kb in catalog.list()] == ["default"]
    settings = catalog.settings_for("default")
    assert index_location(settings).folder == data_dir
    store = open_store(settings)
    [doc] = store.documents()
    [hit] = store.query(embedder.embed_query("Who lit the north harbour lantern?"), k=1)
    assert "Ada Finch" in hit.chunk.text and hit.chunk.id.startswith(doc.doc_id)
    check = check_versions(store, settings, embedder.name)
    assert check.recorded is None and check.outdated  # built before versions were recorded: re-index offered
    assert "built before the app recorded how" in check.describe()
    store.close()


def test_the_first_ingest_records_what_built_the_index_and_a_change_of_settings_is_noticed(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path)
    store = open_store(settings)
    assert recorded_versions(store) is None
    ingest_text(settings, store, embedder, "a.md", "The alpha lantern is green.")
    versions = recorded_versions(store)
    assert versions is not None
    assert (versions.chunker, versions.embedding_model, versions.chunk_size) == (CHUNKER_VERSION, embedder.name, 600)
    assert not check_versions(store, settings, embedder.name).outdated
    bigger = settings.with_overrides(chunk_size=1200)
    check = check_versions(store, bigger, embedder.name)
    assert check.outdated and "its chunks are 600 characters with 100 of overlap; the settings say 1200" in (
        check.describe()
    )
    ingest_text(bigger, store, embedder, "b.md", "The bravo bridge opens at noon.")
    assert recorded_versions(store) == versions  # a later ingest does not rewrite what built the first documents
    store.close()


@pytest.mark.slow
def test_on_a_chroma_server_each_knowledge_base_has_its_own_collection_removed_with_it(
    tmp_path: Path, embedder: Embedder, chroma_server: ChromaServer
) -> None:
    import chromadb

    env = {"RAG_DATA_DIR": str(tmp_path), "RAG_CHROMA_URL": chroma_server.url, "RAG_CHROMA_COLLECTION": "kbtest"}
    catalog = KnowledgeBases(Settings.load(env), env)
    catalog.create("one")
    catalog.create("two")
    collections = {}
    for name in ("one", "two", "default"):
        settings = catalog.settings_for(name)
        store = open_store(settings)
        ingest_text(settings, store, embedder, f"{name}.md", f"The {name} lantern is lit at dusk by the keeper.")
        collections[name] = index_location(settings).collection
        store.close()
    assert collections["default"] == "kbtest" and len(set(collections.values())) == 3
    client = chromadb.HttpClient(host="127.0.0.1", port=chroma_server.port)
    on_server = {c.name: c.count() for c in client.list_collections() if c.name.startswith("kbtest")}
    assert on_server == {collections[n]: 1 for n in ("one", "two", "default")}
    catalog.delete("one")
    names = {c.name for c in client.list_collections()}
    assert collections["one"] not in names and collections["two"] in names
