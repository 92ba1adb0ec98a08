"""Files read in worker processes under a time and memory budget (rag/parsing.py), with real workers, real files
and stand-ins for parsers that loop or swell (module-level functions: the workers import them by name)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from rag.embeddings import Embedder
from rag.errors import LoaderError
from rag.ingest import IngestLimits, Ingestor, IngestProgress
from rag.loaders import load_bytes
from rag.loaders.common import ReadLimits
from rag.loaders.pdf import PageProgress
from rag.parsing import ParseBudget, ParserPool
from rag.schema import LoadedDocument
from rag.store import Store
from tests.hostile import docx_bytes

LOOP = b"LOOP "  # a file starting so makes the stand-in loop forever, after writing its pid to the path that follows
SWELL = b"SWELL"  # a file starting so makes the stand-in take memory until it is stopped


def looping_or_swelling(data: bytes, name: str, on_page: PageProgress | None = None) -> LoadedDocument:
    """A parser that never returns on some inputs, as a library bug would; the real loaders on the rest."""
    if data.startswith(LOOP):
        Path(data[len(LOOP) :].decode()).write_text(str(os.getpid()))
        while True:
            pass
    if data.startswith(SWELL):
        hoard = []
        while True:
            hoard.append(bytearray(16 << 20))
    return load_bytes(data, name, on_page)


def reports_pages_then_loops(data: bytes, name: str, on_page: PageProgress | None = None) -> LoadedDocument:
    """A scan read page by page (each page within the budget), whose last page never ends."""
    import time

    pages = int(data.split()[1])
    for done in range(1, pages + 1):
        time.sleep(0.8)
        if on_page:
            on_page(done, pages + 1)
    while True:
        pass


def only_the_loaders_are_imported(data: bytes, name: str, on_page: PageProgress | None = None) -> LoadedDocument:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "sentence_transformers", "chromadb"))
    if heavy:
        raise LoaderError(f"the worker imported {heavy[:5]}")
    return load_bytes(data, name, on_page)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_file_that_loops_forever_is_stopped_at_its_budget_while_the_others_are_indexed(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "looping.pid"
    (tmp_path / "a-loops.txt").write_bytes(LOOP + str(pid_file).encode())
    for name in ("b.txt", "c.md", "d.txt"):
        (tmp_path / name).write_text(f"{name} says the meeting moved to Thursday.")
    store = Store(tmp_path / "kb")
    committed_while_looping: dict[str, bool] = {}
    real_commit = store.commit_document

    def commit(doc_id: str, replaces: str | None = None) -> None:
        record = next(r for r in store.all_documents() if r.doc_id == doc_id)
        committed_while_looping[record.name] = pid_file.exists() and alive(int(pid_file.read_text()))
        real_commit(doc_id, replaces)

    monkeypatch.setattr(store, "commit_document", commit)
    limits = IngestLimits(parse_seconds=20, parse_memory_mb=1024)
    ingestor = Ingestor(store, embedder, 400, 50, limits=limits, load=looping_or_swelling)
    results = {r.name: r for r in ingestor.ingest_paths(sorted(tmp_path.glob("*.*")))}

    assert results["a-loops.txt"].status == "failed"
    assert results["a-loops.txt"].message == (
        "a-loops.txt: reading it took longer than the 20 s a file may take (RAG_PARSE_SECONDS), so it was stopped and "
        "not added; the other files went on. If it is a real document, split it or save it again (e.g. as PDF), or "
        "raise RAG_PARSE_SECONDS."
    )
    assert [results[n].status for n in ("b.txt", "c.md", "d.txt")] == ["added"] * 3
    # The files after it were indexed while it was still being read, not after its 20 s.
    assert committed_while_looping == {"b.txt": True, "c.md": True, "d.txt": True}
    assert not alive(int(pid_file.read_text()))  # and the worker that read it is gone
    assert sorted(d.name for d in store.documents()) == ["b.txt", "c.md", "d.txt"]


def test_a_file_that_takes_all_the_memory_is_stopped_at_its_budget(tmp_path: Path) -> None:
    with ParserPool(ParseBudget(seconds=60, memory_mb=512), looping_or_swelling) as pool:
        with pytest.raises(LoaderError) as failed:
            pool.parse(SWELL, "huge.docx", ReadLimits())
        assert str(failed.value) == (
            "huge.docx: reading it needed more than the 512 MB of memory a file may use (RAG_PARSE_MEMORY_MB), so it "
            "was stopped and not added; the other files went on. If it is a real document, split it or save it again "
            "(e.g. as PDF), or raise RAG_PARSE_MEMORY_MB."
        )
        # The pool goes on with a fresh worker.
        assert pool.parse(b"Plain words.", "after.txt", ReadLimits()).sections[0].text == "Plain words."


def test_a_scan_gets_the_time_budget_for_each_page_and_its_progress_arrives(tmp_path: Path) -> None:
    pages: list[tuple[int, int]] = []
    with (
        ParserPool(ParseBudget(seconds=3, memory_mb=1024), reports_pages_then_loops) as pool,
        pytest.raises(LoaderError, match=r"^scan.pdf: a page of it took longer to read by OCR than the 3 s"),
    ):
        pool.parse(b"PAGES 6", "scan.pdf", ReadLimits(), lambda done, total: pages.append((done, total)))
    assert pages == [(n, 7) for n in range(1, 7)]  # 6 pages of 0.8 s: 4.8 s in all, more than one budget


def test_workers_import_the_loaders_only(tmp_path: Path) -> None:
    with ParserPool(ParseBudget(seconds=120), only_the_loaders_are_imported) as pool:
        doc = pool.parse(docx_bytes(30), "report.docx", ReadLimits())
    assert doc.kind == "docx" and "Paragraph 29 of a long report." in doc.sections[0].text


@pytest.mark.parametrize(
    ("name", "make", "said"),
    [
        ("styles.docx", lambda: docx_bytes(2_000, styles=50_000), None),
        ("plain.docx", lambda: docx_bytes(40_000, word_styles=True), None),
        ("long.docx", lambda: docx_bytes(600_000), "holds over 15,000,000 characters of text"),
        ("blank.docx", lambda: docx_bytes(1_500_000, text=""), "holds over 1,000,000 paragraphs or table rows"),
    ],
)
def test_hostile_word_files_are_read_within_their_budget_in_bounded_memory(
    name: str, make: Callable[[], bytes], said: str | None
) -> None:
    """The files of the attack, at the default limits: each is read (or refused by a limit it passed while being
    read) within a 120 s budget and 512 MB of memory, where python-docx took minutes to hours and up to 2 GB."""
    data = make()
    with ParserPool(ParseBudget(seconds=120, memory_mb=512)) as pool:
        if said is None:
            assert len(pool.parse(data, name, ReadLimits()).sections[0].text) > 10_000
        else:
            with pytest.raises(LoaderError) as refused:
                pool.parse(data, name, ReadLimits())
            assert str(refused.value).startswith(f"{name} {said}")
            assert str(refused.value).endswith("split it into smaller files, or raise RAG_MAX_CHUNKS.")


def test_progress_and_order_are_kept_with_the_workers(tmp_path: Path, embedder: Embedder) -> None:
    names = [f"{i:02d}.txt" for i in range(6)]
    for i, name in enumerate(names):
        (tmp_path / name).write_text("\n\n".join(f"File {i}, paragraph {p}." for p in range(1 + 5 * (i % 3))))
    progress: list[IngestProgress] = []
    results = Ingestor(Store(tmp_path / "kb"), embedder, 400, 50).ingest_paths(
        [tmp_path / n for n in names], progress.append
    )
    assert [(r.name, r.status) for r in results] == [(n, "added") for n in names]
    assert progress[-1].overall == 1.0


def test_the_budget_comes_from_the_settings() -> None:
    from rag.config import Settings

    limits = IngestLimits.from_settings(Settings(parse_seconds=30, parse_memory_mb=700))
    assert limits.parse_budget == ParseBudget(30, 700)
    assert IngestLimits().parse_budget == ParseBudget(120, 2048)
