"""Ingestion on real parts: loaders, the splitter, the embedding model and Chroma + registry on disk."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fpdf import FPDF

from rag.check import check
from rag.config import PROJECT_ROOT
from rag.embeddings import Embedder
from rag.errors import LoaderError, RagError
from rag.ingest import Ingestor, IngestProgress, collect_files
from rag.registry import DocumentRecord
from rag.retrieval import Retriever
from rag.schema import LoadedDocument, RetrievedChunk
from rag.store import Store
from tests.test_cli import run


def never_parsed(data: bytes, name: str, on_page: object = None) -> LoadedDocument:
    """A loader for files that must not be read again (the workers import it by name)."""
    raise LoaderError(f"{name} was parsed again")


def same_hits(before: list[RetrievedChunk], after: list[RetrievedChunk]) -> bool:
    return [(r.chunk.id, round(r.score, 3)) for r in before] == [(r.chunk.id, round(r.score, 3)) for r in after]


def make_pdf(path: Path, pages: list[str]) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


def image_only_pdf(path: Path) -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    pdf.output(str(path))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "kb")


@pytest.fixture
def ingestor(store: Store, embedder: Embedder) -> Ingestor:
    return Ingestor(store, embedder, chunk_size=400, chunk_overlap=50, batch_size=8)


def test_a_batch_with_bad_files_ingests_the_good_ones_and_explains_the_rest(
    tmp_path: Path, ingestor: Ingestor, store: Store
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    make_pdf(folder / "guide.pdf", ["Page one is about apples.", "Page two is about pears and plums."])
    (folder / "notes.md").write_text("# Notes\n\nThe launch is on Tuesday.\n")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "corrupt.pdf").write_bytes(make_pdf(tmp_path / "real.pdf", ["x" * 200]).read_bytes()[:300])
    image_only_pdf(folder / "scan.pdf")
    (folder / "blob.txt").write_text("A" * 30_000)
    (folder / "latin1.txt").write_bytes("Le café est à côté de la gare.".encode("cp1252"))
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
    (folder / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 100)

    progress: list[IngestProgress] = []
    results = {r.name: r for r in ingestor.ingest_paths([folder, folder / "clip.mp4"], progress.append)}

    assert results["guide.pdf"].status == "added" and results["guide.pdf"].chunks == 2
    assert results["notes.md"].status == "added"
    assert results["latin1.txt"].status == "added" and "windows-1252" in results["latin1.txt"].message
    assert results["blob.txt"].status == "added" and "no spaces" in results["blob.txt"].message
    assert results["empty.txt"].status == "failed" and "empty" in results["empty.txt"].message
    assert results["corrupt.pdf"].status == "failed" and "could not be read as a PDF" in results["corrupt.pdf"].message
    assert results["scan.pdf"].status == "failed" and "no text layer" in results["scan.pdf"].message
    assert results["photo.png"].status == "failed" and "not a valid PNG or JPEG image" in results["photo.png"].message
    assert results["clip.mp4"].status == "failed" and "unsupported file type '.mp4'" in results["clip.mp4"].message

    names = {d.name for d in store.documents()}
    assert names == {"guide.pdf", "notes.md", "latin1.txt", "blob.txt"}
    assert store.vector_count() == store.chunk_count()  # nothing of the failed files is stored
    pages = {c.page for d in store.documents() if d.name == "guide.pdf" for c in store.chunks_of(d.doc_id)}
    assert pages == {1, 2}
    assert progress[-1].chunks_done == progress[-1].chunks_total


def test_reingesting_unchanged_files_adds_nothing_and_embeds_nothing(
    tmp_path: Path, store: Store, embedder: Embedder
) -> None:
    doc = tmp_path / "a.md"
    doc.write_text("# Title\n\n" + "Some text about the topic. " * 40)
    first = Ingestor(store, embedder, 400, 50).ingest_paths([doc])
    assert first[0].status == "added"

    class NoEmbedding(Embedder):
        def embed_batches(self, texts):
            raise AssertionError("an unchanged file must not be embedded again")

    again = Ingestor(store, NoEmbedding(), 400, 50).ingest_paths([doc])
    assert again[0].status == "unchanged" and again[0].describe() == "unchanged, skipped"
    assert store.vector_count() == first[0].chunks


def test_unchanged_and_duplicate_files_are_not_parsed_again(tmp_path: Path, ingestor: Ingestor) -> None:
    (tmp_path / "a.md").write_text("# A\n\nAlpha text.")
    (tmp_path / "b.txt").write_text("Beta text.")
    assert [r.status for r in ingestor.ingest_paths([tmp_path / "a.md", tmp_path / "b.txt"])] == ["added", "added"]
    (tmp_path / "copy of a.md").write_bytes((tmp_path / "a.md").read_bytes())
    again = Ingestor(ingestor.store, ingestor.embedder, 400, 50, load=never_parsed)
    results = again.ingest_paths([tmp_path / "a.md", tmp_path / "b.txt", tmp_path / "copy of a.md"])
    assert [r.status for r in results] == ["unchanged", "unchanged", "duplicate"]


def test_results_and_progress_follow_the_order_of_the_files(
    tmp_path: Path, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.ingest.WAVE_PATIENCE", 600.0)  # one wave, however slow the machine reads the files
    names = [f"{i:02d}.txt" for i in range(7)]
    for i, name in enumerate(names):  # sizes vary, so parsing ahead finishes out of step with embedding
        (tmp_path / name).write_text("\n\n".join(f"File {i}, paragraph {p}." for p in range(1 + 9 * (i % 3))))
    progress: list[IngestProgress] = []
    results = ingestor.ingest_paths([tmp_path / n for n in names], progress.append)
    assert [r.name for r in results] == names and all(r.status == "added" for r in results)
    assert [p.file_index for p in progress] == sorted(p.file_index for p in progress)
    # Small files are embedded together: one progress line covers all seven.
    assert {(p.name, p.file_index, p.last_file_index, p.file_count) for p in progress} == {
        ("00.txt and 6 more files", 0, 6, 7)
    }
    assert progress[0].chunks_done == 0 and progress[-1].chunks_done == progress[-1].chunks_total
    assert (progress[0].files, progress[0].overall) == ("Files 1–7 of 7", 0.0)
    assert (progress[-1].fraction, progress[-1].overall) == (1.0, 1.0)


def test_small_files_are_indexed_in_waves_each_with_its_own_entry(
    tmp_path: Path, ingestor: Ingestor, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.ingest.WAVE_CHUNKS", 5)
    monkeypatch.setattr("rag.ingest.FIRST_WAVE_CHUNKS", 5)  # waves by size alone, not by the parser's pace
    monkeypatch.setattr("rag.ingest.WAVE_PATIENCE", 600.0)
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("\n\n".join(f"Note {i}.{p}: " + "text " * 60 for p in range(3)))
    progress: list[IngestProgress] = []
    results = ingestor.ingest_paths(sorted(tmp_path.glob("*.txt")), progress.append)
    assert [r.status for r in results] == ["added"] * 5 and all(r.chunks == 3 for r in results)
    spans = sorted({(p.file_index, p.last_file_index) for p in progress})
    assert spans == [(0, 1), (2, 3), (4, 4)]  # 3 + 3 chunks reach 5; the last file alone
    done = [p for p in progress if p.fraction == 1.0]
    assert [(p.files, p.overall) for p in done] == [
        ("Files 1–2 of 5", 0.4),
        ("Files 3–4 of 5", 0.8),
        ("File 5 of 5", 1.0),
    ]
    for doc in store.documents():
        texts = [c.text for c in store.chunks_of(doc.doc_id)]
        assert len(texts) == 3 and all(t.startswith(f"Note {doc.name[0]}.") for t in texts)
    assert store.vector_count() == store.chunk_count() == 15


def test_the_same_name_twice_in_one_batch_keeps_the_later_file(
    tmp_path: Path, ingestor: Ingestor, store: Store
) -> None:
    for folder, amount in (("old", "ten"), ("new", "twelve")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "plan.txt").write_text(f"The budget is {amount} thousand euros.")
    results = ingestor.ingest_paths([tmp_path / "old" / "plan.txt", tmp_path / "new" / "plan.txt"])
    assert [r.status for r in results] == ["added", "replaced"]
    [only] = store.documents()
    assert [c.text for c in store.chunks_of(only.doc_id)] == ["The budget is twelve thousand euros."]


def test_a_wave_that_fails_leaves_nothing_behind_and_the_other_files_go_in(
    tmp_path: Path, store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.ingest.WAVE_CHUNKS", 2)
    monkeypatch.setattr("rag.ingest.FIRST_WAVE_CHUNKS", 2)
    monkeypatch.setattr("rag.ingest.WAVE_PATIENCE", 600.0)  # waves by size alone, not by the parser's pace

    class RunsOutOfMemoryOnPoison(Embedder):  # the model failing mid-batch, e.g. out of memory
        def embed_batches(self, texts):
            for indices, vectors in embedder.embed_batches(texts):
                yield indices, vectors
                if any("POISON" in texts[i] for i in indices):
                    raise RagError("the embedding model ran out of memory: close other programs and retry.")

    for name, text in [("a", "Apples."), ("b", "Bananas."), ("c", "POISON cherries."), ("d", "Dates."), ("e", "Eggs.")]:
        (tmp_path / f"{name}.txt").write_text(text)
    results = Ingestor(store, RunsOutOfMemoryOnPoison(), 400, 50, batch_size=1).ingest_paths(
        sorted(tmp_path.glob("*.txt"))
    )
    assert [r.status for r in results] == ["added", "added", "failed", "failed", "added"]
    assert results[2].message == "c.txt: the embedding model ran out of memory: close other programs and retry."
    assert results[3].message.startswith("d.txt: the embedding model ran out of memory")
    assert sorted(d.name for d in store.documents()) == ["a.txt", "b.txt", "e.txt"]
    assert store.vector_count() == store.chunk_count() == 3  # c's stored chunk was removed with its wave
    assert store.recover() == []  # no half-indexed document left for the next start to clean


def test_a_changed_file_with_the_same_name_replaces_the_old_version(
    tmp_path: Path, ingestor: Ingestor, store: Store
) -> None:
    doc = tmp_path / "plan.txt"
    doc.write_text("The budget is ten thousand euros.\n\n" * 30)
    ingestor.ingest_paths([doc])
    doc.write_text("The budget is twelve thousand euros.")
    result = ingestor.ingest_paths([doc])[0]
    assert result.status == "replaced" and result.chunks == 1
    [only] = store.documents()
    assert [c.text for c in store.chunks_of(only.doc_id)] == ["The budget is twelve thousand euros."]
    assert store.vector_count() == 1


def test_the_same_content_under_another_name_is_not_indexed_twice(
    tmp_path: Path, ingestor: Ingestor, store: Store
) -> None:
    (tmp_path / "one.txt").write_text("Identical content.")
    (tmp_path / "copy of one.txt").write_text("Identical content.")
    results = ingestor.ingest_paths([tmp_path / "one.txt", tmp_path / "copy of one.txt"])
    assert [r.status for r in results] == ["added", "duplicate"]
    assert "one.txt" in results[1].message
    assert len(store.documents()) == 1


def test_collect_files_recurses_and_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "a.md").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "c.exe").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "d.txt").write_text("x")
    assert [p.name for p in collect_files([tmp_path])] == ["b.txt", "a.md"]


def test_killing_the_ingest_process_leaves_no_half_indexed_document(tmp_path: Path) -> None:
    data_dir = tmp_path / "kb"
    big = tmp_path / "big.txt"
    big.write_text("\n\n".join(f"Paragraph {i}: " + "words about many things " * 30 for i in range(1500)))
    env = {**os.environ, "RAG_DATA_DIR": str(data_dir), "RAG_CORPUS_DIR": str(tmp_path / "no-corpus")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "ingest", str(big)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stored = 0
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            stored = _chunks_stored(data_dir / "registry.sqlite3")
            if stored >= 64:  # several batches are in Chroma, the document is not committed
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the ingest finished before it could be killed: make the file bigger"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert stored >= 64

    import chromadb

    raw = chromadb.PersistentClient(path=str(data_dir / "chroma"))
    assert raw.get_collection("chunks").count() >= 64  # the crash really left partial chunks behind
    del raw

    store = Store(data_dir)  # opening recovers
    assert store.documents() == []
    assert store.vector_count() == 0


def _chunks_stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(chunks_stored), 0) FROM documents WHERE status = 'indexing'"
            ).fetchone()
            return int(row[0])
    except sqlite3.OperationalError:
        return 0


# -- limits (issue 11): a file over a limit fails with a message, the rest of the batch goes in -----------


def test_a_pdf_over_the_page_limit_fails_alone_and_says_how_to_get_round_it(
    tmp_path: Path, store: Store, embedder: Embedder
) -> None:
    from rag.ingest import IngestLimits

    manual = make_pdf(tmp_path / "manual.pdf", [f"Chapter {i}: servicing the pump, step by step." for i in range(6)])
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe pump is serviced every spring.\n")
    ingestor = Ingestor(store, embedder, 400, 50, limits=IngestLimits(max_pages=5))
    results = {r.name: r for r in ingestor.ingest_paths([manual, notes])}
    assert results["manual.pdf"].status == "failed"
    assert results["manual.pdf"].message == (
        "manual.pdf has 6 pages, over the limit of 5 a file: split it into parts (e.g. by chapter) and add those, "
        "or raise RAG_MAX_PAGES."
    )
    assert results["notes.md"].status == "added"
    assert [d.name for d in store.documents()] == ["notes.md"]
    assert store.vector_count() == store.chunk_count() == results["notes.md"].chunks


def test_a_file_over_the_chunk_limit_fails_before_anything_of_it_is_stored(
    tmp_path: Path, store: Store, embedder: Embedder
) -> None:
    from rag.ingest import IngestLimits

    long = tmp_path / "long.txt"
    long.write_text("\n\n".join(f"Paragraph {i} says something about the harvest of year {i}." for i in range(300)))
    short = tmp_path / "short.txt"
    short.write_text("The harvest starts in August.")
    ingestor = Ingestor(store, embedder, 400, 50, limits=IngestLimits(max_chunks=20))
    results = {r.name: r for r in ingestor.ingest_paths([long, short])}
    message = results["long.txt"].message
    assert results["long.txt"].status == "failed"
    assert message.startswith("long.txt makes ") and "chunks, over the limit of 20 a file" in message
    assert message.endswith("split it into smaller files, or raise RAG_MAX_CHUNKS.")
    assert results["short.txt"].status == "added"
    assert [d.name for d in store.documents()] == ["short.txt"]
    assert store.vector_count() == store.chunk_count() == 1  # nothing of long.txt, not even half


def test_an_upload_over_the_file_or_byte_limit_is_refused_before_anything_is_read(
    store: Store, embedder: Embedder
) -> None:
    from rag.ingest import IngestLimits, UploadLimitError

    read: list[str] = []

    def reader(name: str) -> Callable[[], bytes]:
        def read_it() -> bytes:
            read.append(name)
            return b"Some text."

        return read_it

    ingestor = Ingestor(store, embedder, 400, 50, limits=IngestLimits(max_upload_files=2, max_upload_bytes=100))
    with pytest.raises(UploadLimitError, match=r"This upload has 3 files, over the limit of 2: add them in batches"):
        ingestor.ingest_uploads([(f"{n}.txt", reader(n)) for n in "abc"])
    with pytest.raises(UploadLimitError, match=r"This upload is 150 B, over the limit of 100 B: add the files in"):
        ingestor.ingest_uploads([("a.txt", b"x" * 75), ("b.txt", b"y" * 75)])
    assert read == [] and store.documents() == []
    with pytest.raises(UploadLimitError, match="RAG_MAX_UPLOAD_MB"):
        IngestLimits(max_upload_bytes=1024**3).check_upload([600 * 1024**2, 600 * 1024**2])


def test_uploads_are_read_one_file_at_a_time_and_those_past_the_byte_limit_fail(
    store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rag.ingest
    from rag.ingest import IngestLimits

    monkeypatch.setattr(rag.ingest, "PARSE_AHEAD", 1)  # so that reading is seen interleaved with indexing
    events: list[str] = []
    texts = {"a.txt": "Apples ripen in September.", "b.txt": "Pears ripen in October.", "c.txt": "Plums ripen."}

    def reader(name: str) -> Callable[[], bytes]:
        def read_it() -> bytes:
            events.append(f"read {name}")
            return (texts[name] + " " * 20).encode()

        return read_it

    real_begin = store.begin_document

    def begin(record: DocumentRecord) -> None:
        events.append(f"index {record.name}")
        real_begin(record)

    monkeypatch.setattr(store, "begin_document", begin)
    ingestor = Ingestor(store, embedder, 400, 50, limits=IngestLimits(max_upload_bytes=100))
    results = ingestor.ingest_uploads([(name, reader(name)) for name in texts])
    assert events[0] == "read a.txt" and events.index("read c.txt") > events.index("read b.txt")
    assert [r.status for r in results] == ["added", "added", "failed"]
    assert results[2].message == (
        "c.txt: not added: with it the upload passes the limit of 100 B; add it in another batch "
        "(or raise RAG_MAX_UPLOAD_MB)."
    )
    assert sorted(d.name for d in store.documents()) == ["a.txt", "b.txt"]


def test_limits_come_from_the_settings() -> None:
    from rag.config import Settings
    from rag.ingest import IngestLimits

    limits = IngestLimits.from_settings(
        Settings(max_pages_per_file=10, max_chunks_per_file=20, max_upload_files=3, max_upload_mb=2)
    )
    assert limits == IngestLimits(max_pages=10, max_chunks=20, max_upload_files=3, max_upload_bytes=2 * 1024 * 1024)
    assert IngestLimits() == IngestLimits.from_settings(Settings())


def test_a_folder_scan_says_what_it_skips_and_never_leaves_the_folder(tmp_path: Path) -> None:
    from rag.ingest import scan_paths

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the knowledge base")
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.md").write_text("# Notes\n")
    (folder / "sub" / "tool.exe").write_bytes(b"MZ")
    (folder / "link.txt").symlink_to(outside / "secret.txt")
    (folder / "linked-dir").symlink_to(outside, target_is_directory=True)
    (folder / "inner.txt").write_text("inside")
    (folder / "alias.txt").symlink_to(folder / "inner.txt")  # a link within the folder is fine
    files, skipped = scan_paths([folder])
    assert sorted(p.name for p in files) == ["alias.txt", "inner.txt", "notes.md"]
    reasons = {s.path.relative_to(folder).as_posix(): s.reason for s in skipped}
    assert reasons["sub/tool.exe"] == "unsupported type '.exe'"
    assert "outside the folder" in reasons["link.txt"]
    assert "folder outside the folder" in reasons["linked-dir"]
    assert collect_files([folder]) == files


# -- a full disk (issue 19): a sentence, nothing half-written, nothing committed lost -------------------------------

DISK_FULL = "The disk holding {} is full: "


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A small tmpfs of the given size (e.g. "3m") for the data folder; unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root (CI runs as root)")
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{len(mounts)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", "-l", str(point)], check=False)


def notes(folder: Path, count: int, paragraphs: int = 40) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    words = "alpha beta gamma delta river mountain report figure quarter revenue harbour lantern orchard".split()  # noqa: SIM905
    paths = []
    for i in range(count):
        path = folder / f"note{i}.txt"
        text = "\n\n".join(" ".join(words[(i + p + w) % len(words)] for w in range(90)) for p in range(paragraphs))
        path.write_text(text)
        paths.append(path)
    return paths


def fill(disk: Path) -> Path:
    """Take every free byte of the disk."""
    ballast = disk / "ballast"
    with ballast.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 16))
        except OSError:
            pass
    return ballast


def test_a_batch_bigger_than_the_free_space_fails_before_anything_is_written(
    tmp_path: Path, small_disk: Callable[[str], Path], embedder: Embedder
) -> None:
    data_dir = small_disk("3m") / "kb"
    store = Store(data_dir)
    results = Ingestor(store, embedder, 400, 50).ingest_paths(notes(tmp_path / "notes", 3))
    assert [r.status for r in results] == ["failed"] * 3
    for r in results:
        assert r.message.startswith(f"{r.name}: {DISK_FULL.format(data_dir)}")
        assert re.search(r"is full: [\d.]+ MB free, about [\d.]+ MB needed\. Nothing was half-written", r.message)
    assert store.documents() == [] and store.all_documents() == []


def test_a_write_that_fails_for_lack_of_space_aborts_its_document_and_loses_nothing_committed(
    tmp_path: Path, small_disk: Callable[[str], Path], embedder: Embedder
) -> None:
    disk = small_disk("24m")
    data_dir = disk / "kb"
    first, *others = notes(tmp_path / "notes", 3, paragraphs=10)
    store = Store(data_dir)
    ingestor = Ingestor(store, embedder, 400, 50)
    assert ingestor.ingest_paths([first])[0].status == "added"
    question = Retriever(store, embedder).retrieve("harbour lantern orchard", top_k=3).hits
    ballast: list[Path] = []

    def disk_fills_up(progress: IngestProgress) -> None:  # another program takes the space as the wave starts
        if progress.chunks_done == 0 and not ballast:
            ballast.append(fill(disk))

    results = ingestor.ingest_paths(others, disk_fills_up)
    assert ballast and [r.status for r in results] == ["failed", "failed"]
    assert all(DISK_FULL.format(data_dir) in r.message for r in results), [r.message for r in results]
    assert all(re.search(r"is full: [\d.]+ MB free, about [\d.]+ MB needed\.", r.message) for r in results)
    assert [d.name for d in store.documents()] == [first.name]  # nothing of the others is visible
    store.close()
    ballast[0].unlink()  # space comes back

    reopened = Store(data_dir)
    assert check(reopened).ok  # whatever the failed writes left was removed on opening
    assert [d.name for d in reopened.documents()] == [first.name]
    assert same_hits(question, Retriever(reopened, embedder).retrieve("harbour lantern orchard", top_k=3).hits)
    assert [r.status for r in Ingestor(reopened, embedder, 400, 50).ingest_paths(others)] == ["added", "added"]


def test_every_command_says_the_disk_is_full_and_reads_go_on(tmp_path: Path, small_disk: Callable[[str], Path]) -> None:
    disk = small_disk("24m")
    data_dir = disk / "kb"
    files = notes(tmp_path / "notes", 3, paragraphs=10)
    env = {"RAG_CORPUS_DIR": str(tmp_path / "no-corpus")}
    assert run(["ingest", str(files[0])], data_dir, **env).returncode == 0
    ballast = fill(disk)
    listed = run(["docs"], data_dir, **env)
    assert listed.returncode == 0 and files[0].name in listed.stdout, listed.stderr
    for args in (["check"], ["prompt", "harbour lantern"], ["ingest", str(files[1])], ["delete", files[0].name]):
        done = run(args, data_dir, **env)
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert DISK_FULL.format(data_dir) in done.stdout + done.stderr, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
    ballast.unlink()
    assert run(["check"], data_dir, **env).returncode == 0
    assert files[0].name in run(["docs"], data_dir, **env).stdout


def test_an_uploaded_name_is_stored_with_its_control_characters_replaced(store: Store, embedder: Embedder) -> None:
    results = Ingestor(store, embedder, 400, 50).ingest_uploads([("plan\x1b[2J\x07\nv2.txt", b"The plan changed.")])
    assert [(r.name, r.status) for r in results] == [("plan_[2J__v2.txt", "added")]
    [doc] = store.documents()
    assert doc.name == "plan_[2J__v2.txt"
    assert [c.source for c in store.chunks_of(doc.doc_id)] == ["plan_[2J__v2.txt"]
