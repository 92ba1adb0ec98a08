"""The Documents page's background jobs (ui_jobs.py) with real threads, the real embedding model and real knowledge
bases: each runs to its end on its own and says what it did; stopped, each leaves the knowledge base as its design
says (an upload takes out the file being embedded, a re-index goes on next time, a sync keeps what went in, an
export leaves no archive, an import deletes the knowledge base it was making)."""

from __future__ import annotations

import tempfile
import zipfile
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rag.archive import export_kb
from rag.config import Settings
from rag.embeddings import Embedder
from rag.engine import Engine
from rag.kb import KnowledgeBases, check_versions, current_generation
from rag.reindex import reindex
from rag.sources import SourceStore
from tests.test_sync import paragraph, write
from ui_jobs import ExportJob, ImportJob, Job, ReindexJob, SyncJob, UploadJob

pytestmark = pytest.mark.slow

POLL = 0.01
J = TypeVar("J", bound=Job[Any, Any])


def finished(job: J) -> J:
    job.wait(300)
    assert job.done, "the job did not end within 5 minutes"
    return job


def notes(folder: Path, count: int, start: int = 0) -> Path:
    """`count` short notes (one chunk each) in `folder`."""
    for i in range(start, start + count):
        write(folder / f"note{i:03d}.md", "\n\n".join(paragraph(f"topic{i}-{j}") for j in range(3)))
    return folder


def engine_for(tmp_path: Path, embedder: Embedder, kb: str = "default") -> Engine:
    catalog = KnowledgeBases(Settings(data_dir=tmp_path / "data"), env={})
    if catalog.find(kb) is None:
        catalog.create(kb)
    return Engine(catalog.settings_for(kb), embedder=embedder)


def with_folder_source(engine: Engine, folder: Path) -> None:
    sources = SourceStore(engine.settings.kb_dir)
    sources.add_folder(folder, label="notes")
    sources.close()


def sync_history(engine: Engine) -> list[str]:
    sources = SourceStore(engine.settings.kb_dir)
    try:
        return [run.status for run in sources.history()]
    finally:
        sources.close()


def shipping_log(rows: int) -> bytes:
    """A long file: about one chunk every ten rows."""
    lines = (
        f"Entry {i}: crate {i * 7 % 1000} left bay {i % 40} for dock {i % 17} at {i % 24}:00." for i in range(rows)
    )
    return ("# Shipping log\n\n" + "\n".join(lines) + "\n").encode()


def reader(data: bytes) -> Any:
    return lambda: data


# -- adding files ---------------------------------------------------------------------------------------------------


def test_files_go_in_in_the_background_and_the_job_says_what_went_in(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder, kb="Harbour")
    garden = b"# Garden\n\nThe tomatoes in the garden are watered every Tuesday morning.\n"
    job = UploadJob(engine, [("garden.md", reader(garden)), ("copy.md", reader(garden))])
    assert job.kb == "Harbour"  # the knowledge base they go into, whichever the page shows next
    assert job.describe() == "Adding 2 files to the knowledge base 'Harbour'"  # what the page says runs
    finished(job)
    assert (job.error, job.stopped) == (None, False)
    assert [(r.name, r.status) for r in job.results] == [("garden.md", "added"), ("copy.md", "duplicate")]
    assert job.progress is not None and job.progress.file_count == 2
    assert [d.name for d in engine.documents()] == ["garden.md"]


def test_a_stopped_upload_takes_out_the_file_being_embedded_and_adds_none_after_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    engine = engine_for(tmp_path, embedder)
    note = b"# Visitors\n\nThe greenhouse opens to visitors on the first Sunday of each month.\n"
    job = UploadJob(engine, [("log.md", reader(shipping_log(3000))), ("visitors.md", reader(note))])
    while job.progress is None and not job.done:  # the long file's embedding has begun
        job.wait(POLL)
    job.stop()
    finished(job)
    assert (job.stopped, job.error, job.added, job.results) == (True, None, [], [])
    assert engine.documents() == [] and engine.store.chunk_count() == 0  # nothing half-indexed


def test_a_file_that_cannot_be_read_is_said_and_the_upload_ends_normally(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder)

    def unreadable() -> bytes:
        raise OSError("the disk went away")

    job = finished(UploadJob(engine, [("gone.md", unreadable)]))
    assert (job.error, job.stopped) == (None, False)
    [result] = job.results  # one file's failure is its result; the batch goes on
    assert result.status == "failed" and "the disk went away" in result.message


# -- re-index -------------------------------------------------------------------------------------------------------


def outdated_kb(tmp_path: Path, embedder: Embedder, count: int) -> Engine:
    """A knowledge base synced from a folder of `count` notes, recorded as cut by an older chunker."""
    engine = engine_for(tmp_path, embedder)
    with_folder_source(engine, notes(tmp_path / "notes", count))
    assert finished(SyncJob(engine)).result is not None
    engine.store.set_meta("chunker_version", "2")
    assert check_versions(engine.store, engine.settings, embedder.name).outdated
    return engine


def test_a_reindex_runs_to_its_end_in_the_background(tmp_path: Path, embedder: Embedder) -> None:
    engine = outdated_kb(tmp_path, embedder, 20)
    job = finished(ReindexJob(engine.settings, embedder))
    assert job.describe() == f"Re-indexing the knowledge base {engine.settings.kb!r}"
    assert job.error is None and job.result is not None
    assert (job.result.documents, job.result.rechunked, job.result.resumed) == (20, 20, False)
    assert job.progress is not None and (job.progress.done, job.progress.total) == (20, 20)
    assert current_generation(engine.settings.kb_dir) == 1  # the new index serves


def test_a_stopped_reindex_leaves_the_old_index_answering_and_goes_on_next_time(
    tmp_path: Path, embedder: Embedder
) -> None:
    engine = outdated_kb(tmp_path, embedder, 48)
    job = ReindexJob(engine.settings, embedder)
    while not job.done and (job.progress is None or job.progress.done == 0):  # a first group is in the new index
        job.wait(POLL)
    job.stop()
    finished(job)
    assert (job.stopped, job.error, job.result) == (True, None, None)
    assert current_generation(engine.settings.kb_dir) == 0
    assert len(engine.documents()) == 48 and check_versions(engine.store, engine.settings, embedder.name).outdated

    report = reindex(engine.settings, embedder)  # "Re-index now" again: the lock was let go, the work is kept
    assert (report.resumed, report.documents) == (True, 48)
    assert report.rechunked < 48  # those re-indexed before the stop were not done again


# -- sync -----------------------------------------------------------------------------------------------------------


def test_a_sync_runs_in_the_background_and_reports_like_sync_now(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder)
    with_folder_source(engine, notes(tmp_path / "notes", 3))
    job = finished(SyncJob(engine))
    assert job.error is None and job.result is not None
    assert (job.result.kb, job.result.summary()) == ("default", "3 added, 0 unchanged")
    assert sync_history(engine) == ["done"]


def test_a_stopped_sync_keeps_what_went_in_and_the_next_one_does_the_rest(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder)
    folder = notes(tmp_path / "notes", 20)
    with_folder_source(engine, folder)
    assert finished(SyncJob(engine)).result is not None
    notes(folder, 60, start=20)
    job = SyncJob(engine)
    while not job.done and (job.progress is None or job.progress.ingest is None):  # indexing the new notes
        job.wait(POLL)
    job.stop()
    finished(job)
    assert (job.stopped, job.error) == (True, None)
    assert 20 <= len(engine.documents()) < 80
    assert sync_history(engine) == ["interrupted", "done"]  # said as stopped, not as failed

    rest = finished(SyncJob(engine)).result
    assert rest is not None and rest.counts["added"] + rest.counts["unchanged"] == 80
    assert len(engine.documents()) == 80


# -- export and import ----------------------------------------------------------------------------------------------


def test_an_export_hands_over_an_archive_that_imports_whole(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder)
    with_folder_source(engine, notes(tmp_path / "notes", 5))
    finished(SyncJob(engine))
    job = finished(ExportJob(engine.settings, engine.store, conversations=True))
    assert job.error is None and job.result is not None
    assert (job.result.summary.documents, job.result.summary.chunks) == (5, 5)
    assert zipfile.ZipFile(BytesIO(job.result.data)).testzip() is None

    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    imported = finished(ImportJob("default", there, "default.zip", job.result.data, "Copy", True))
    assert imported.error is None and imported.result is not None
    assert (imported.result.name, imported.result.documents, imported.result.chunks) == ("Copy", 5, 5)
    assert [kb.name for kb in there.list()] == ["default", "Copy"]


def test_a_stopped_export_leaves_no_archive(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_for(tmp_path, embedder)
    with_folder_source(engine, notes(tmp_path / "notes", 5))
    finished(SyncJob(engine))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # where the job writes the archive before reading it
    job = ExportJob(engine.settings, engine.store, conversations=True)
    job.stop()  # whenever it lands, even after the last document: no archive is handed over
    finished(job)
    assert (job.stopped, job.error, job.result) == (True, None, None)
    assert list(scratch.iterdir()) == []
    assert finished(ExportJob(engine.settings, engine.store, conversations=True)).result is not None  # unlocked


def test_a_stopped_import_deletes_the_knowledge_base_it_was_making(tmp_path: Path, embedder: Embedder) -> None:
    engine = engine_for(tmp_path, embedder)
    with_folder_source(engine, notes(tmp_path / "notes", 20))
    finished(SyncJob(engine))
    archive = tmp_path / "notes.zip"
    export_kb(engine.settings, engine.store, archive)
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    job = ImportJob("default", there, archive.name, archive.read_bytes(), "Copy", True)
    job.stop()
    finished(job)
    assert (job.stopped, job.error, job.result) == (True, None, None)
    assert [kb.name for kb in there.list()] == ["default"]


def test_a_damaged_archive_is_the_import_jobs_error(tmp_path: Path) -> None:
    there = KnowledgeBases(Settings(data_dir=tmp_path / "there"), env={})
    job = finished(ImportJob("default", there, "broken.zip", b"hello", None, True))
    assert job.error is not None and "is not a knowledge-base archive" in str(job.error)
    assert [kb.name for kb in there.list()] == ["default"]
