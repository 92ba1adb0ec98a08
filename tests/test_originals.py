"""The documents' original files, kept in the data folder: written at ingestion, gone with the document."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF

from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.originals import Originals
from rag.store import Store


def make_pdf(path: Path, text: str) -> Path:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, text)
    pdf.output(str(path))
    return path


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "kb")


def ingestor(store: Store, embedder: Embedder, originals: Originals | None) -> Ingestor:
    return Ingestor(store, embedder, chunk_size=400, chunk_overlap=50, originals=originals)


def test_keep_read_discard(tmp_path: Path) -> None:
    originals = Originals(tmp_path)
    assert originals.read("abcd1234") is None and originals.size() == 0
    assert originals.keep("abcd1234", "Report Q3.PDF", b"%PDF-1.7 bytes")
    assert originals.read("abcd1234") == b"%PDF-1.7 bytes"
    assert originals.path("abcd1234") == tmp_path / "originals" / "abcd1234.pdf"
    assert originals.size() == len(b"%PDF-1.7 bytes")
    originals.discard("abcd1234")
    assert originals.read("abcd1234") is None


def test_names_from_outside_cannot_reach_other_files(tmp_path: Path) -> None:
    originals = Originals(tmp_path)
    (tmp_path / "secret.txt").write_text("not a document")
    assert originals.read("../secret") is None
    with pytest.raises(ValueError, match="not a document id"):
        originals.keep("../x", "a.pdf", b"data")
    originals.keep("abcd1234", "odd name.p df", b"data")  # a suffix that is no file type
    assert originals.path("abcd1234") == tmp_path / "originals" / "abcd1234.bin"


def test_a_file_that_cannot_be_kept_is_said_in_the_log_not_raised(tmp_path: Path) -> None:
    (tmp_path / "originals").write_text("a file where the folder should be")  # mkdir fails, even for root
    assert Originals(tmp_path).keep("abcd1234", "a.pdf", b"data") is False
    assert Originals(tmp_path).read("abcd1234") is None


def test_ingestion_keeps_the_file_and_delete_removes_it(tmp_path: Path, store: Store, embedder: Embedder) -> None:
    originals = Originals(tmp_path / "kb")
    pdf = make_pdf(tmp_path / "guide.pdf", "The launch of the new product is planned for Tuesday morning.")
    [result] = ingestor(store, embedder, originals).ingest_paths([pdf])
    assert result.status == "added" and result.doc_id is not None
    assert originals.read(result.doc_id) == pdf.read_bytes()
    store.delete_document(result.doc_id)
    assert originals.prune({d.doc_id for d in store.documents()}) == [result.doc_id]
    assert originals.read(result.doc_id) is None


def test_a_replaced_version_loses_its_file_and_a_failed_one_keeps_none(
    tmp_path: Path, store: Store, embedder: Embedder
) -> None:
    originals = Originals(tmp_path / "kb")
    ingest = ingestor(store, embedder, originals)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nThe launch is on Tuesday.\n")
    [first] = ingest.ingest_paths([notes])
    notes.write_text("# Notes\n\nThe launch moved to Thursday.\n")
    [second] = ingest.ingest_paths([notes])
    assert second.status == "replaced" and first.doc_id and second.doc_id
    assert originals.read(first.doc_id) is None
    assert originals.read(second.doc_id) == notes.read_bytes()
    empty = tmp_path / "empty.md"
    empty.write_text("   ")
    [failed] = ingest.ingest_paths([empty])
    assert failed.status == "failed"
    assert {p.name for p in originals.folder.iterdir()} == {f"{second.doc_id}.md"}


def test_a_document_indexed_before_files_were_kept_gets_its_file_when_added_again(
    tmp_path: Path, store: Store, embedder: Embedder
) -> None:
    pdf = make_pdf(tmp_path / "old.pdf", "Indexed by an earlier version of the app, which kept no files.")
    [before] = ingestor(store, embedder, None).ingest_paths([pdf])
    originals = Originals(tmp_path / "kb")
    assert before.doc_id is not None and originals.read(before.doc_id) is None
    [again] = ingestor(store, embedder, originals).ingest_paths([pdf])
    assert again.status == "unchanged"  # not indexed again
    assert originals.read(before.doc_id) == pdf.read_bytes()
