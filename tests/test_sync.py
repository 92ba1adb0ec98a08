"""Folder sources kept in sync: real folders in tmp_path, the real encoder (counted), embedded Chroma. A sync
brings the knowledge base to the folder's state: new and changed files indexed, deleted ones removed, renamed or
moved ones recognised by content with nothing embedded again, unchanged ones untouched; files it cannot read get
a line each and are tried again; a sync stopped half-way is finished by the next; two at once take turns; the
watcher syncs after changes settle. The property test checks, after random changes, that the knowledge base
equals a fresh ingest of the folder (RAG_PROPERTY_RUNS sets how many runs; default 6)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from hypothesis.strategies import SearchStrategy

from rag.config import PROJECT_ROOT, Settings
from rag.embeddings import Embedder
from rag.ingest import WAVE_CHUNKS, Ingestor
from rag.kb import open_store
from rag.sources import SourceStore, SyncReport
from rag.store import Store
from rag.sync import (
    CHANGED_WHILE_READ,
    Syncer,
    SyncProgress,
    file_hash,
    matches,
    scan_folder,
    watch,
    watched_paths,
)
from tests.registry import ready_documents

pytestmark = pytest.mark.slow


class CountingEmbedder(Embedder):
    """The real model (shared with the session's), counting every text it embeds."""

    def __init__(self, inner: Embedder) -> None:
        super().__init__()
        self._model = inner.model
        self.texts: list[str] = []

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        self.texts.extend(texts)
        yield from super().embed_batches(texts)


class Kb:
    """A knowledge base in a data folder with one folder source, synced through the real ingestion path."""

    def __init__(self, data_dir: Path, folder: Path, embedder: Embedder, label: str = "docs", **source: object):
        self.settings = Settings(data_dir=data_dir)
        self.store: Store = open_store(self.settings)
        self.embedder = embedder
        ingestor = Ingestor(self.store, embedder, self.settings.chunk_size, self.settings.chunk_overlap)
        self.sources = SourceStore(self.settings.kb_dir)
        self.sources.add_folder(folder, label=label, **source)  # type: ignore[arg-type]
        self.syncer = Syncer(self.settings, self.store, ingestor, self.sources)

    def sync(self, progress: list[SyncProgress] | None = None) -> SyncReport:
        return self.syncer.sync(on_progress=progress.append if progress is not None else None)

    def names(self) -> dict[str, int]:
        return {d.name: d.chunks for d in self.store.documents()}

    def close(self) -> None:
        self.store.close()
        self.sources.close()


@pytest.fixture
def counting(embedder: Embedder) -> CountingEmbedder:
    return CountingEmbedder(embedder)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def paragraph(topic: str) -> str:
    return f"# {topic.title()}\n\nThe {topic} lantern is lit at dusk by the keeper of the {topic} harbour."


def test_a_sync_adds_changes_removes_and_renames_and_leaves_the_rest_untouched(
    tmp_path: Path, counting: CountingEmbedder
) -> None:
    folder = tmp_path / "notes"
    for topic in ("north", "south", "east"):
        write(folder / f"{topic}.md", paragraph(topic))
    write(folder / "sub" / "west.txt", paragraph("west"))
    kb = Kb(tmp_path / "data", folder, counting)
    first = kb.sync()
    assert first.counts["added"] == 4 and first.summary().startswith("4 added, 0 unchanged")
    assert kb.names() == {"docs/east.md": 1, "docs/north.md": 1, "docs/south.md": 1, "docs/sub/west.txt": 1}

    embedded = len(counting.texts)
    vectors = {c.id: v for d in kb.store.documents() for c, v in kb.store.chunks_with_vectors(d.doc_id)}
    write(folder / "north.md", paragraph("north") + " It burns whale oil.")  # changed
    (folder / "south.md").unlink()  # removed
    (folder / "archive").mkdir()
    (folder / "east.md").rename(folder / "archive" / "east-2023.md")  # moved and renamed
    write(folder / "new.md", paragraph("central"))  # added
    os.utime(folder / "sub" / "west.txt")  # touched, same content
    report = kb.sync()
    assert report.summary() == "1 added, 1 changed, 1 renamed, 1 removed, 1 unchanged"
    assert kb.names() == {"docs/archive/east-2023.md": 1, "docs/new.md": 1, "docs/north.md": 1, "docs/sub/west.txt": 1}
    assert len(counting.texts) - embedded == 2 == report.embedded_chunks  # the changed and the new file only
    moved = kb.store.find("docs/archive/east-2023.md")
    assert moved is not None
    [(chunk, vector)] = kb.store.chunks_with_vectors(moved.doc_id)
    assert np.array_equal(vector, vectors[chunk.id])  # the same vector: not embedded again
    assert chunk.source == "docs/archive/east-2023.md" and "docs/archive/east-2023.md" in chunk.header
    assert [r.chunk.id for r in kb.store.keyword_query(["2023"], 5)] == [chunk.id]  # found by its new name

    again = kb.sync()
    assert again.summary() == "0 added, 4 unchanged" and len(counting.texts) - embedded == 2
    assert [run.summary for run in kb.sources.history()] == [again.summary(), report.summary(), first.summary()]
    kb.close()


def test_files_that_cannot_be_read_get_a_line_each_keep_their_documents_and_are_tried_again(
    tmp_path: Path, counting: CountingEmbedder
) -> None:
    folder = tmp_path / "docs"
    write(folder / "good.md", paragraph("good"))
    write(folder / "later.md", paragraph("later"))
    (folder / "dangling.md").symlink_to(folder / "missing.md")
    (folder / "outside.md").symlink_to(write(tmp_path / "elsewhere.md", paragraph("elsewhere")))
    write(folder / "photo.bmp", "not an image the app reads")
    kb = Kb(tmp_path / "data", folder, counting)
    report = kb.sync()
    lines = {line.name: (line.outcome, line.message) for line in report.lines}
    assert lines["docs/dangling.md"] == ("failed", f"a broken link (to {folder / 'missing.md'})")
    assert lines["docs/outside.md"] == ("skipped", "a link to outside the folder: not followed")
    assert lines["docs/photo.bmp"] == ("skipped", "unsupported type '.bmp'")
    assert "1 failed: docs/dangling.md: a broken link" in report.summary()
    assert set(kb.names()) == {"docs/good.md", "docs/later.md"}

    # A file that changes after the sync has read it is not indexed half-way: it fails, and goes in next time.
    write(folder / "busy.md", paragraph("busy"))
    (folder / "later.md").unlink()

    def meanwhile(p: SyncProgress) -> None:
        if p.stage == "removing":  # after the scan read busy.md, before the ingestor reads it
            write(folder / "busy.md", paragraph("busy") + " Edited while the sync ran.")

    kb.syncer.sync(on_progress=meanwhile)
    assert "docs/busy.md" not in kb.names()
    failed = [line for line in kb.sources.history()[0].lines if line.outcome == "failed"]
    assert [(line.name, line.message) for line in failed if line.name == "docs/busy.md"] == [
        ("docs/busy.md", "cannot be read (it changed since the sync looked at it; it is read again at the next sync)")
    ]
    (folder / "dangling.md").unlink()
    (folder / "dangling.md").symlink_to(folder / "good.md")  # now a link inside the folder: same content as good.md
    report = kb.sync()
    assert report.counts["added"] == 1 and report.counts["failed"] == 0
    assert [(line.name, line.outcome) for line in report.lines if line.outcome == "duplicate"] == [
        ("docs/good.md", "duplicate")
    ]  # the first path in name order is the document: docs/dangling.md
    assert set(kb.names()) == {"docs/busy.md", "docs/dangling.md"}
    kb.close()


def test_a_file_changing_while_it_is_hashed_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "growing.txt", "x" * 10_000_000)
    stop = threading.Event()

    def grow() -> None:
        with open(path, "a") as f:
            while not stop.is_set():
                f.write("more ")
                f.flush()

    writer = threading.Thread(target=grow)
    writer.start()
    try:
        with pytest.raises(OSError) as caught:
            for _ in range(20):  # each read of 10 MB takes long enough for the writer to append
                file_hash(path)
        assert caught.value.strerror == CHANGED_WHILE_READ
    finally:
        stop.set()
        writer.join()


def test_a_missing_or_unlistable_folder_removes_nothing(tmp_path: Path, counting: CountingEmbedder) -> None:
    folder = tmp_path / "usb-drive"
    write(folder / "a.md", paragraph("alpha"))
    kb = Kb(tmp_path / "data", folder, counting)
    kb.sync()
    shutil.move(folder, tmp_path / "unplugged")  # a drive unplugged, a share unmounted
    report = kb.sync()
    assert report.counts["removed"] == 0 and kb.names() == {"docs/a.md": 1}
    assert report.failures[0].message.startswith(f"the folder {folder} is missing: its documents are kept")
    kb.close()


def test_include_and_exclude_patterns_choose_the_files(tmp_path: Path, counting: CountingEmbedder) -> None:
    folder = tmp_path / "project"
    for rel in ("README.md", "notes/plan.md", "notes/plan.txt", "drafts/idea.md", "src/x/deep.md"):
        write(folder / rel, paragraph(rel.replace("/", " ").replace(".", " ")))
    kb = Kb(tmp_path / "data", folder, counting, include=["*.md"], exclude=["drafts/*", "*/x/*"])
    kb.sync()
    assert set(kb.names()) == {"docs/README.md", "docs/notes/plan.md"}
    assert matches("a/b/c.md", ["*.md"]) and matches("drafts/a/b.md", ["drafts/*"]) and not matches("b.md", ["a/*"])
    kb.close()


def test_a_list_of_files_is_a_source_too(tmp_path: Path, counting: CountingEmbedder) -> None:
    one = write(tmp_path / "x" / "one.md", paragraph("one"))
    two = write(tmp_path / "y" / "two.md", paragraph("two"))
    settings = Settings(data_dir=tmp_path / "data")
    store = open_store(settings)
    sources = SourceStore(settings.kb_dir)
    sources.add_files([one, two], label="picked")
    syncer = Syncer(settings, store, Ingestor(store, counting, 600, 100), sources)
    assert syncer.sync().counts["added"] == 2
    two.unlink()
    report = syncer.sync()
    assert report.failures[0].name == "picked/two.md" and "cannot be read" in report.failures[0].message
    assert {d.name for d in store.documents()} == {"picked/one.md", "picked/two.md"}  # kept until it is back
    assert watched_paths(sources.sources()) == [one.resolve(), two.resolve()]
    store.close()
    sources.close()


def test_two_syncs_at_once_take_turns_and_embed_each_file_once(tmp_path: Path, counting: CountingEmbedder) -> None:
    folder = tmp_path / "docs"
    for i in range(12):
        write(folder / f"f{i:02d}.md", paragraph(f"topic{i}"))
    kb = Kb(tmp_path / "data", folder, counting)
    other = Syncer(kb.settings, kb.store, Ingestor(kb.store, counting, 600, 100), SourceStore(kb.settings.kb_dir))
    reports: list[SyncReport] = []
    waited: list[SyncProgress] = []

    def run(syncer: Syncer) -> None:
        reports.append(syncer.sync(on_progress=lambda p: waited.append(p) if p.stage == "waiting" else None))

    threads = [threading.Thread(target=run, args=(s,)) for s in (kb.syncer, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(r.counts["added"] for r in reports) == [0, 12]
    assert sorted(r.counts["unchanged"] for r in reports) == [0, 12]
    assert len(counting.texts) == 12 and len(kb.names()) == 12
    assert [p.detail for p in waited] == ["another sync of this knowledge base is running"]
    kb.close()


def test_ten_thousand_files_sync_with_bounded_memory_and_progress(tmp_path: Path, counting: CountingEmbedder) -> None:
    """10,000 files of 25 contents (duplicates after the first of each): the whole sync path at that size,
    with 25 documents to embed."""
    folder = tmp_path / "many"
    for i in range(10_000):
        write(folder / f"d{i % 40:02d}" / f"f{i:05d}.txt", paragraph(f"topic{i % 25}"))
    kb = Kb(tmp_path / "data", folder, counting)
    progress: list[SyncProgress] = []
    tracemalloc.start()
    report = kb.sync(progress)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.counts["added"] == 25 and report.counts["duplicate"] == 9_975
    assert peak < 60 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    reading = [p for p in progress if p.stage == "reading"]
    assert len(reading) >= 200 and reading[-1].done == reading[-1].total == 10_000
    tracemalloc.start()
    again = kb.sync()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert again.counts["unchanged"] == 25 and peak < 60 * 1024 * 1024
    kb.close()


def test_the_watcher_syncs_after_changes_settle(tmp_path: Path, counting: CountingEmbedder) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    kb = Kb(tmp_path / "data", folder, counting)
    kb.sync()
    reports: list[SyncReport] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=watch,
        args=(lambda: {"default": watched_paths(kb.sources.sources())}, lambda _kb: reports.append(kb.sync()), stop),
        kwargs={"settle_ms": 300},
    )
    watcher.start()
    try:
        time.sleep(1.0)  # the watch is set up
        write(folder / "a.md", paragraph("alpha"))
        write(folder / "b.md", paragraph("bravo"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(kb.names()) < 2:
            time.sleep(0.2)
        assert set(kb.names()) == {"docs/a.md", "docs/b.md"}
        (folder / "a.md").unlink()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(kb.names()) > 1:
            time.sleep(0.2)
        assert set(kb.names()) == {"docs/b.md"}
        write(folder / ".hidden.md", paragraph("hidden"))  # hidden files are not watched
        time.sleep(1.5)
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert sum(r.counts["added"] for r in reports) == 2 and sum(r.counts["removed"] for r in reports) == 1
    assert all(r.counts["added"] + r.counts["removed"] > 0 for r in reports)  # no sync for the hidden file
    kb.close()


def test_scanning_keeps_hidden_files_out_and_does_not_loop_on_links(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    write(folder / ".git" / "config.md", "hidden")
    write(folder / "a" / "x.md", "x")
    (folder / "a" / "loop").symlink_to(folder)
    scan = scan_folder(folder)
    assert [e.path for e in scan.entries] == ["a/x.md"]
    assert scan.problems == [] and scan.unlisted == []


# -- the property: after any changes, a sync gives what a fresh ingest of the folder gives --------------------------

PROPERTY_RUNS = int(os.environ.get("RAG_PROPERTY_RUNS", "6"))
NAMES = ("a.md", "b.md", "c.txt", "sub/d.md", "sub/e.md", "deep/x/f.md")
TEXTS = tuple(paragraph(t) for t in ("amber", "birch", "cedar", "dune", "ember", "fjord", "glacier", "heath"))


def _ops() -> SearchStrategy[tuple[str, int, str, str]]:
    from hypothesis import strategies as st

    kinds = st.sampled_from(["write", "write", "delete", "rename", "rename", "touch"])
    return st.tuples(kinds, st.integers(0, 5), st.sampled_from(NAMES), st.sampled_from(TEXTS))


def test_after_random_changes_a_sync_equals_a_fresh_ingest_and_embeds_only_new_content(
    tmp_path: Path, counting: CountingEmbedder
) -> None:
    from hypothesis import HealthCheck, settings
    from hypothesis import strategies as st
    from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

    OPS = _ops()
    runs = {"machines": 0, "syncs": 0, "renamed": 0, "renames_kept": 0, "worst_renamed_cosine": 1.0}

    class Folder(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            runs["machines"] += 1
            self.root = Path(tempfile.mkdtemp(dir=tmp_path))
            self.folder = self.root / "folder"
            self.folder.mkdir()
            self.kb = Kb(self.root / "data", self.folder, counting)
            self.embedded_as: dict[str, str] = {}  # doc id -> the name its vectors were embedded under

        def teardown(self) -> None:
            self.kb.close()

        def existing(self, pick: int) -> Path | None:
            files = sorted(p for p in self.folder.rglob("*") if p.is_file())
            return files[pick % len(files)] if files else None

        def apply(self, op: tuple[str, int, str, str]) -> None:
            kind, pick, name, text = op
            path = self.existing(pick)
            if kind == "write":  # a new file, or a change
                write(self.folder / name, text)
            elif path is None:
                return
            elif kind == "delete":
                path.unlink()
            elif kind == "rename" and path != self.folder / name:  # a rename or a move, maybe over another file
                (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, self.folder / name)
            elif kind == "touch":
                os.utime(path, ns=(time.time_ns(), time.time_ns() + 5_000_000_000))

        @rule(ops=st.lists(OPS, min_size=1, max_size=3))
        def change_then_sync(self, ops: list[tuple[str, int, str, str]]) -> None:
            for op in ops:
                self.apply(op)
            runs["syncs"] += 1
            store = self.kb.store
            before = {(d.doc_id, d.kind) for d in store.documents()}
            vectors_before = {c.id: v for d in store.documents() for c, v in store.chunks_with_vectors(d.doc_id)}
            embedded = len(counting.texts)
            report = self.kb.sync()
            runs["renamed"] += report.counts["renamed"]
            after = store.documents()
            new = [d for d in after if (d.doc_id, d.kind) not in before]
            # Only new content is embedded; content already there keeps its vectors whatever its name now.
            assert len(counting.texts) - embedded == sum(d.chunks for d in new)
            for d in after:
                if d in new:
                    self.embedded_as[d.doc_id] = d.name
                else:
                    for chunk, vector in store.chunks_with_vectors(d.doc_id):
                        assert np.array_equal(vector, vectors_before[chunk.id])
            self.compare_with_fresh_ingest()

        def compare_with_fresh_ingest(self) -> None:
            fresh_root = Path(tempfile.mkdtemp(dir=self.root))
            fresh = Kb(fresh_root, self.folder, counting)
            before = len(counting.texts)
            fresh.sync()
            del counting.texts[before:]  # the reference's embedding is not the knowledge base's
            mine, theirs = self.kb.store, fresh.store
            as_documents = lambda s: sorted((d.doc_id, d.name, d.kind, d.content_hash, d.chunks) for d in s.documents())  # noqa: E731
            assert as_documents(mine) == as_documents(theirs)
            for d in theirs.documents():
                expected = theirs.chunks_with_vectors(d.doc_id)
                got = mine.chunks_with_vectors(d.doc_id)
                assert [c for c, _ in got] == [c for c, _ in expected]  # ids, texts, headers, sources, pages
                assert mine.keyword_rows(d.doc_id) == theirs.keyword_rows(d.doc_id)
                for (_, v1), (_, v2) in zip(got, expected, strict=True):
                    cosine = float(np.dot(v1, v2))
                    if self.embedded_as.get(d.doc_id, d.name) == d.name:
                        assert cosine > 0.9999  # the same text, up to the batch's effect on the last bits
                    else:  # renamed: its vectors were embedded with its old name in the header
                        runs["renames_kept"] += 1
                        runs["worst_renamed_cosine"] = min(runs["worst_renamed_cosine"], cosine)
                        assert cosine > 0.9
            fresh.close()
            shutil.rmtree(fresh_root, ignore_errors=True)

        @invariant()
        def nothing_half_indexed(self) -> None:
            store = self.kb.store
            assert store.vector_count() == store.chunk_count() == store.keyword_row_count()

    Folder.TestCase.settings = settings(
        max_examples=PROPERTY_RUNS,
        stateful_step_count=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    Folder.TestCase().runTest()
    print(f"property runs: {runs}")  # shown with -s: the counts the README quotes
    assert runs["machines"] >= PROPERTY_RUNS and runs["syncs"] > 0


# -- a sync killed half-way --------------------------------------------------------------------------------------------


FILES = 200
SECTIONS_PER_FILE = 40
CHUNKS_PER_FILE = 8  # what 40 short sections make at a chunk size of 600
# More chunks than one wave holds, by half again: ingestion commits at least two waves however fast the files are
# parsed (with 400 chunks a quick machine embedded them all in one wave and the kill found nothing to interrupt).
assert FILES * CHUNKS_PER_FILE >= 1.5 * WAVE_CHUNKS


def test_a_sync_killed_half_way_is_finished_by_the_next_losing_nothing(tmp_path: Path, embedder: Embedder) -> None:
    # Enough files that ingestion commits them over several waves: the kill lands between two of them.
    folder = tmp_path / "docs"
    for i in range(FILES):
        write(folder / f"f{i:03d}.md", "\n\n".join(paragraph(f"topic{i}-{j}") for j in range(SECTIONS_PER_FILE)))
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(PROJECT_ROOT)}
    command = [sys.executable, "-m", "rag", "sources", "add", str(folder)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=120)
    sync = subprocess.Popen([sys.executable, "-m", "rag", "sync"], env=env, stderr=subprocess.PIPE, text=True)
    registry = tmp_path / "data" / "registry.sqlite3"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and ready_documents(registry) < 1:
        time.sleep(0.1)
    sync.kill()  # SIGKILL: no clean-up of any kind
    sync.wait()
    committed = ready_documents(registry)
    assert 1 <= committed < FILES, committed
    settings = Settings(data_dir=tmp_path / "data")
    kb_store = open_store(settings)  # opening recovers what the killed writer left half-written
    sources = SourceStore(settings.kb_dir)
    report = Syncer(settings, kb_store, Ingestor(kb_store, embedder, 600, 100), sources).sync()
    assert report.counts["added"] == FILES - committed and report.counts["unchanged"] == committed
    assert report.resumed_from and "interrupted" in report.summary()
    assert len(kb_store.documents()) == FILES
    assert kb_store.vector_count() == kb_store.chunk_count() == kb_store.keyword_row_count() == FILES * CHUNKS_PER_FILE
    assert [run.status for run in sources.history()] == ["done", "interrupted"]
    kb_store.close()
    sources.close()
