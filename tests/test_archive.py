"""A knowledge base exported on one data folder and imported on an empty one: the same documents, chunk ids,
vectors, keyword rows, settings and conversations, and so the same sources and the same prompt to the model for 20
questions, with nothing embedded again; a damaged archive is refused with a message naming
what is wrong, and nothing is left of an import that fails."""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rag.archive import MANIFEST, ArchiveError, export_kb, import_kb, read_manifest
from rag.backends.embedded import EmbeddedBackend
from rag.config import DEFAULT_CORPUS_DIR, Settings, save_settings
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine
from rag.ingest import Ingestor
from rag.kb import KnowledgeBaseError, KnowledgeBases, open_store, recorded_versions
from rag.store import Store
from rag.turn import prepare
from tests.servers import ChromaServer
from tests.test_sync import CountingEmbedder

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What context length does Llama 2 use?",
    "How much memory does the 13B model need at Q4_K_M?",
    "What is retrieval-augmented generation?",
    "How do I run Llama 2 with Ollama?",
    "What does the [INST] tag mean in the Llama 2 chat format?",
    "How many parameters do the Llama 2 models have?",
    "How many threads should I use on a CPU?",
    "Where does this app keep my documents?",
    "What is a KV cache?",
    "Which quantization is the usual choice?",
    "What is the system prompt in Llama 2's format?",
    "How are documents split into chunks?",
    "What happens when the model does not fit in memory?",
    "Which embedding model does the app use?",
    "What license is Llama 2 released under?",
    "How does the app cite its sources?",
    "What is grouped-query attention?",
    "How fast is generation on a CPU?",
    "What does Ollama's num_ctx option do?",
    "Can the app work without internet?",
]


def harbour_kb(data_dir: Path, embedder: Embedder) -> tuple[KnowledgeBases, Settings, Store]:
    """A knowledge base with the shipped documents, its own settings and a saved conversation."""
    catalog = KnowledgeBases(Settings(data_dir=data_dir), env={})
    catalog.create("Harbour")
    save_settings(catalog.settings_for("Harbour").with_overrides(top_k=8, system_prompt="Answer briefly."), env={})
    settings = catalog.settings_for("Harbour")
    store = open_store(settings)
    results = Ingestor(store, embedder, settings.chunk_size, settings.chunk_overlap).ingest_paths([DEFAULT_CORPUS_DIR])
    assert all(r.status == "added" for r in results)
    conversations = ConversationStore.in_data_dir(settings.kb_dir)
    conversation = conversations.create(title="Memory")
    conversations.add_message(conversation, "user", "How much memory for 7B?")
    conversations.add_message(conversation, "assistant", "About 8 GB of RAM.")
    return catalog, settings, store


def contents(store: Store) -> tuple[list[object], np.ndarray]:
    """Everything a search or a citation reads: registry rows, chunks and keyword rows; and the vectors."""
    out: list[object] = []
    vectors = []
    for d in store.documents():
        pairs = store.chunks_with_vectors(d.doc_id)
        out.append((d, [c for c, _ in pairs], store.keyword_rows(d.doc_id)))
        vectors += [v for _, v in pairs]
    return out, np.stack(vectors)


def test_an_export_imported_on_an_empty_data_folder_gives_the_same_sources_prompts_and_answers(
    tmp_path: Path, embedder: Embedder, embedded_llm: EmbeddedBackend
) -> None:
    _catalog, settings, store = harbour_kb(tmp_path / "here", embedder)
    archive = tmp_path / "harbour.zip"
    exported = export_kb(settings, store, archive)
    assert (exported.documents, exported.conversations) == (6, 1) and exported.chunks == store.chunk_count()
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == sorted([MANIFEST, "documents.jsonl", "chunks.jsonl", "vectors.f32",
                                               "keywords.jsonl", "settings.json", "sources.json",
                                               "conversations.sqlite3"])  # fmt: skip

    counting = CountingEmbedder(embedder)
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    imported = import_kb(there, archive)
    assert (imported.name, imported.documents, imported.chunks) == ("Harbour", 6, exported.chunks)
    assert counting.texts == []  # nothing embedded again
    settings_there = there.settings_for("Harbour")
    assert (settings_there.top_k, settings_there.system_prompt) == (8, "Answer briefly.")
    store_there = open_store(settings_there)
    (rows, vectors), (rows_there, vectors_there) = contents(store), contents(store_there)
    assert rows_there == rows
    # The vectors as exported; Chroma normalises a cosine vector as it stores it, which may move its last bit.
    assert np.abs(vectors_there - vectors).max() < 1e-7
    assert recorded_versions(store_there) == recorded_versions(store) is not None
    [conversation] = ConversationStore.in_data_dir(settings_there.kb_dir).list()
    assert (conversation.title, conversation.messages) == ("Memory", 2)

    chosen = ChosenBackend(embedded_llm, "test: the built-in model")
    here_engine = Engine(settings.with_overrides(temperature=0.0), store=store, embedder=embedder, chosen=chosen)
    there_engine = Engine(settings_there.with_overrides(temperature=0.0), store=store_there, embedder=embedder,
                          chosen=chosen)  # fmt: skip
    for question in QUESTIONS:  # the same prompt to the same model: the same answer, as far as the model is steady
        here, there_prepared = prepare(here_engine, question), prepare(there_engine, question)
        assert [(s.chunk.id, s.score) for s in here.sources] == [(s.chunk.id, s.score) for s in there_prepared.sources]
        assert here.prompt == there_prepared.prompt
    store.close()
    store_there.close()


def _rewrite(archive: Path, target: Path, change: Callable[[str, bytes], bytes | None]) -> Path:
    """A copy of the archive with members changed (None: left out), as a valid zip file."""
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = change(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
    return target


def _flip_stored_byte(archive: Path, target: Path) -> Path:
    """One bit of the vectors changed inside the zip file itself (as a bad disk or a broken copy would)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("vectors.f32")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 100] ^= 0x01
    target.write_bytes(bytes(data))
    return target


def _manifest_change(edit: Callable[[dict[str, object]], None]) -> Callable[[str, bytes], bytes | None]:
    def change(name: str, data: bytes) -> bytes | None:
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        edit(manifest)
        return json.dumps(manifest).encode()

    return change


DAMAGES: list[tuple[str, Callable[[Path, Path], Path], str]] = [
    (
        "a chunk's text changed",
        lambda a, t: _rewrite(a, t, lambda n, d: d.replace(b"ketch", b"ketcH", 1) if n == "chunks.jsonl" else d),
        "chunks.jsonl does not match its checksum in manifest.json",
    ),
    ("a bit of the vectors flipped", _flip_stored_byte, "vectors.f32 cannot be read (Bad CRC-32"),
    (
        "the vectors left out",
        lambda a, t: _rewrite(a, t, lambda n, d: None if n == "vectors.f32" else d),
        "vectors.f32 is missing from it",
    ),
    (
        "no manifest",
        lambda a, t: _rewrite(a, t, lambda n, d: None if n == MANIFEST else d),
        "is not a knowledge-base archive: it has no manifest.json",
    ),
    (
        "cut short",
        lambda a, t: (t.write_bytes(a.read_bytes()[: a.stat().st_size // 2]), t)[1],
        "is not a knowledge-base archive: it is not a readable zip file",
    ),
    ("not a zip file", lambda a, t: (t.write_text("hello"), t)[1], "it is not a readable zip file"),
    (
        "a newer format",
        lambda a, t: _rewrite(a, t, _manifest_change(lambda m: m.update(format_version=99))),
        "archive format 99, newer than this app reads (1): update the app",
    ),
]


@pytest.mark.parametrize(("damage", "make", "message"), DAMAGES, ids=[d[0] for d in DAMAGES])
def test_a_damaged_archive_is_refused_with_a_message_naming_what_is_wrong(
    tmp_path: Path, embedder: Embedder, damage: str, make: Callable[[Path, Path], Path], message: str
) -> None:
    archive = _small_archive(tmp_path, embedder)
    broken = make(archive, tmp_path / "broken.zip")
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    with pytest.raises(ArchiveError) as caught:
        import_kb(there, broken)
    assert message in str(caught.value) and str(caught.value).startswith("broken.zip")
    assert [kb.name for kb in there.list()] == ["default"]  # nothing made


def test_an_import_that_fails_half_way_leaves_nothing(tmp_path: Path, embedder: Embedder) -> None:
    archive = _small_archive(tmp_path, embedder)
    lying = _rewrite(archive, tmp_path / "lying.zip", _manifest_change(lambda m: m["counts"].update(chunks=999)))  # type: ignore[attr-defined]
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    with pytest.raises(ArchiveError, match="where the manifest lists 1, 999 and"):
        import_kb(there, lying)
    assert [kb.name for kb in there.list()] == ["default"] and not list((tmp_path / "there" / "kbs").iterdir())


def test_an_import_over_a_knowledge_base_with_documents_is_refused_and_as_names_another(
    tmp_path: Path, embedder: Embedder
) -> None:
    archive = _small_archive(tmp_path, embedder)
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    import_kb(there, archive)
    with pytest.raises(KnowledgeBaseError, match="exists and holds documents: import with --as"):
        import_kb(there, archive)
    import_kb(there, archive, name="Small copy")
    assert [kb.name for kb in there.list()] == ["default", "Small", "Small copy"]
    empty_default = import_kb(there, archive, name="default")  # an empty knowledge base takes it in
    assert empty_default.documents == 1


@pytest.mark.slow
def test_an_archive_imports_onto_a_chroma_server(
    tmp_path: Path, embedder: Embedder, chroma_server: ChromaServer
) -> None:
    archive = _small_archive(tmp_path, embedder)
    env = {"RAG_DATA_DIR": str(tmp_path / "there"), "RAG_CHROMA_URL": chroma_server.url}
    there = KnowledgeBases(Settings.load(env), env)
    import_kb(there, archive)
    settings = there.settings_for("Small")
    store = open_store(settings)
    assert store.chroma_url == chroma_server.url and store.vector_count() == 1
    [hit] = store.query(embedder.embed_query("What does a ketch have?"), 1)
    assert "two masts" in hit.chunk.text
    store.close()


def _small_archive(tmp_path: Path, embedder: Embedder) -> Path:
    archive = tmp_path / "small.zip"
    if not archive.exists():
        catalog = KnowledgeBases(Settings(data_dir=tmp_path / "small-data"), env={})
        catalog.create("Small")
        settings = catalog.settings_for("Small")
        store = open_store(settings)
        Ingestor(store, embedder, 600, 100).ingest_uploads([("boats.md", b"# Boats\n\nA ketch has two masts.")])
        export_kb(settings, store, archive)
        store.close()
        shutil.rmtree(tmp_path / "small-data")
    read_manifest(archive)
    return archive


def test_vectors_are_written_as_float32_rows() -> None:
    rows = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(np.frombuffer(rows.astype("<f4").tobytes(), dtype="<f4").reshape(2, 3), rows)
