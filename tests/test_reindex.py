"""Re-indexing in place: a knowledge base built by the previous chunker (tests/fixtures/kb-chunker2, made by
scripts/make_kb_fixture.py) is found outdated and rebuilt from its folder with the current chunker; the old index
answers until the new one is complete, also when the re-index is killed half-way, and the next run finishes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.config import PROJECT_ROOT, Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.kb import INDEX_FILE, IndexVersions, check_versions, current_generation, open_store, record_versions
from rag.registry import DocumentRecord
from rag.reindex import ReindexError, reindex
from rag.schema import Chunk
from rag.sources import SourceStore
from rag.sqlite import now_iso
from rag.sync import Syncer
from tests.registry import ready_documents
from tests.test_sync import paragraph, write

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "kb-chunker2"


def previous_chunker_kb(tmp_path: Path) -> tuple[Settings, Path]:
    """The fixture's data folder and documents, copied; its folder added back as the source it came from."""
    shutil.copytree(FIXTURE / "data", tmp_path / "data")
    docs = shutil.copytree(FIXTURE / "docs", tmp_path / "docs")
    settings = Settings(data_dir=tmp_path / "data")
    sources = SourceStore(settings.kb_dir)
    sources.add_folder(docs, label="docs")
    sources.close()
    return settings, docs


def chunks_by_name(settings: Settings) -> dict[str, list[str]]:
    store = open_store(settings)
    try:
        return {d.name: [c.text for c in store.chunks_of(d.doc_id)] for d in store.documents()}
    finally:
        store.close()


def test_a_knowledge_base_of_the_previous_chunker_is_found_outdated_and_reindexed_in_place(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings, docs = previous_chunker_kb(tmp_path)
    store = open_store(settings)
    check = check_versions(store, settings, embedder.name)
    assert check.outdated and "its chunks were cut by chunker version 2" in check.describe()
    old_ids = {d.name: d.doc_id for d in store.documents()}
    store.close()
    before = chunks_by_name(settings)
    assert any(text.split("\n")[1].startswith(("US", "Intl", "WW")) for text in before["docs/sales.pdf"])  # v2 cut

    report = reindex(settings, embedder)
    assert (report.documents, report.rechunked, report.kept, report.generation) == (3, 3, 0, 1)
    after = chunks_by_name(settings)
    fresh = Settings(data_dir=tmp_path / "fresh")  # what the current code makes of the same folder
    fresh_store = open_store(fresh)
    fresh_sources = SourceStore(fresh.kb_dir)
    fresh_sources.add_folder(docs, label="docs")
    Syncer(fresh, fresh_store, Ingestor(fresh_store, embedder, 600, 100), fresh_sources).sync()
    fresh_store.close()
    assert after == chunks_by_name(fresh) and after["docs/sales.pdf"] != before["docs/sales.pdf"]
    assert after["docs/keepers.md"] == before["docs/keepers.md"]  # prose: the same chunks as before

    store = open_store(settings)
    assert store.data_dir == tmp_path / "data" / "index-1"
    assert {d.name: d.doc_id for d in store.documents()} == old_ids  # the same documents, ids and names
    assert not check_versions(store, settings, embedder.name).outdated
    tables = [text.split("\n")[1:] for text in after["docs/sales.pdf"] if text.startswith("REPORTED SALES")]
    assert tables and all(len(rows) % 4 == 0 and not rows[0].startswith(("US", "Intl", "WW")) for rows in tables)
    [hit] = store.query(embedder.embed_query("Who lights the north lantern?"), 1)
    assert hit.chunk.source == "docs/keepers.md"
    sources = SourceStore(settings.kb_dir)
    sync = Syncer(settings, store, Ingestor(store, embedder, 600, 100), sources).sync()
    assert sync.summary() == "0 added, 3 unchanged"
    store.close()
    sources.close()
    assert not (tmp_path / "data" / "chroma").exists() and not (tmp_path / "data" / "registry.sqlite3").exists()


def test_documents_without_their_file_keep_their_chunks_and_a_new_model_embeds_them_again(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    record = DocumentRecord("ab" * 8, "upload.md", "markdown", "ab" * 32, None, 1, 10, now_iso(), title="Upload")
    chunk = Chunk(f"{record.doc_id}:00000", record.doc_id, "A ketch has two masts.", "upload.md", None, 0, "upload.md")
    store.begin_document(record)
    store.add_chunks([chunk], np.ones((1, 384), dtype=np.float32) / np.sqrt(384))  # not this model's vector
    store.commit_document(record.doc_id)
    record_versions(store, IndexVersions("2", "an-older-model", 600, 100))
    store.close()

    report = reindex(settings, embedder)
    assert (report.rechunked, report.kept, report.without_files) == (0, 1, ["upload.md"])
    assert "no file at hand for upload.md" in report.summary()
    store = open_store(settings)
    [(kept, vector)] = store.chunks_with_vectors(record.doc_id)
    assert kept == chunk
    assert float(np.dot(vector, embedder.embed_documents([chunk.indexed_text])[0])) > 0.9999  # embedded again
    store.close()


def test_a_reindex_killed_half_way_leaves_the_old_index_answering_and_the_next_one_finishes_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    folder = tmp_path / "docs"
    for i in range(24):
        write(folder / f"f{i:02d}.md", "\n\n".join(paragraph(f"topic{i}-{j}") for j in range(4)))
    store = open_store(settings)
    sources = SourceStore(settings.kb_dir)
    sources.add_folder(folder, label="docs")
    assert Syncer(settings, store, Ingestor(store, embedder, 600, 100), sources).sync().counts["added"] == 24
    store.set_meta("chunker_version", "2")  # as if an older chunker had built it
    question = embedder.embed_query("Who lights the topic7-3 lantern?")
    answer = [h.chunk.id for h in store.query(question, 3)]
    store.close()

    env = {**os.environ, "RAG_DATA_DIR": str(settings.data_dir), "PYTHONPATH": str(PROJECT_ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "rag", "kb", "reindex"], env=env, stderr=subprocess.DEVNULL)
    new_registry = settings.data_dir / "index-1" / "registry.sqlite3"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and ready_documents(new_registry) < 1:
        time.sleep(0.05)
    process.kill()
    process.wait()
    copied = ready_documents(new_registry)
    assert 1 <= copied < 24, copied
    assert not (settings.data_dir / INDEX_FILE).exists() and current_generation(settings.data_dir) == 0

    store = open_store(settings)  # the old index serves, whole
    assert store.data_dir == settings.data_dir and len(store.documents()) == 24
    assert [h.chunk.id for h in store.query(question, 3)] == answer
    store.close()

    report = reindex(settings, embedder)
    assert report.resumed and report.documents == 24 and report.rechunked == 24 - copied
    store = open_store(settings)
    assert store.data_dir == settings.data_dir / "index-1" and len(store.documents()) == 24
    assert [h.chunk.id for h in store.query(question, 3)] == answer
    assert store.vector_count() == store.chunk_count() == store.keyword_row_count()
    store.close()


def test_two_reindexes_at_once_are_refused(tmp_path: Path, embedder: Embedder) -> None:
    from filelock import FileLock

    from rag.reindex import REINDEX_LOCK

    settings = Settings(data_dir=tmp_path)
    with FileLock(tmp_path / REINDEX_LOCK), pytest.raises(ReindexError, match="being re-indexed"):
        reindex(settings, embedder)
