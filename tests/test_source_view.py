"""Sources opened where they stand, on a real knowledge base: PDF pages (text and scanned) with the passage
highlighted over PDFium's (or OCR's) boxes of its words, Word and Markdown passages in their text."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.originals import Originals
from rag.page_image import PADDING, runs_of
from rag.source_view import PageView, SourceNotFound, SourceRef, SourceViewer, TextView, text_view_html
from rag.store import Store
from tests.documents import scanned_pdf, text_pdf, word_file
from tests.test_page_image import char_boxes

PAGE_ONE = "Introduction to the report. Nothing about money is on this page, only the plan of the work."
PAGE_TWO = (
    "Operating results. The quarterly revenue grew to 1,234 million dollars, up from 1,100 million a year "
    "earlier. Costs fell by nine percent over the same period. The board approved a dividend of 40 cents.\n\n"
    "Outlook for next year. Management expects demand to stay firm in every region where the group sells, "
    "with new factories opening in the spring and the autumn, and hiring to continue at the present pace."
)


@pytest.fixture
def kb(tmp_path: Path, embedder: Embedder) -> tuple[Store, Originals, Ingestor]:
    store = Store(tmp_path / "kb")
    originals = Originals(tmp_path / "kb")
    return store, originals, Ingestor(store, embedder, chunk_size=400, chunk_overlap=50, originals=originals)


def viewer(kb: tuple[Store, Originals, Ingestor], tmp_path: Path) -> SourceViewer:
    return SourceViewer(kb[0], kb[1], tmp_path / "cache")


def passage(store: Store, doc_id: str, containing: str) -> SourceRef:
    chunk = next(c for c in store.chunks_of(doc_id) if containing in c.text)
    return SourceRef.of_chunk(chunk)


def tinted(view: PageView, plain: PageView, box: tuple[float, float, float, float]) -> bool:
    """The highlight's yellow lowers the blue of the paper around the characters."""
    marked = np.asarray(Image.open(_png(view)))
    bare = np.asarray(Image.open(_png(plain)))
    left, top, right, bottom = (round(v) for v in box)
    return float(marked[top:bottom, left:right, 2].mean()) < float(bare[top:bottom, left:right, 2].mean()) - 20


def _png(view: PageView) -> io.BytesIO:
    return io.BytesIO(view.png)


def test_a_pdf_source_opens_on_its_page_with_its_words_highlighted(
    tmp_path: Path, kb: tuple[Store, Originals, Ingestor]
) -> None:
    store, _, ingest = kb
    pdf = text_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO, "Appendix. Tables follow."])
    [result] = ingest.ingest_paths([pdf])
    assert result.doc_id is not None
    ref = passage(store, result.doc_id, "quarterly revenue")
    assert ref.page == 2
    line = "Costs fell by nine percent over the same period."
    view = viewer(kb, tmp_path).open(ref, line=line)
    assert isinstance(view, PageView) and view.found and not view.ocr
    assert (view.page, view.pages) == (2, 3)
    plain = viewer(kb, tmp_path).document_page(result.doc_id, 2)
    rects = runs_of(view.passage_boxes)
    # Every character of the passage, by PDFium's own boxes, lies under a highlight, which tints it.
    for box in char_boxes(pdf.read_bytes(), 2, "The quarterly revenue grew to 1,234 million dollars"):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        assert any(
            r.left - PADDING <= cx <= r.right + PADDING and r.top - PADDING <= cy <= r.bottom + PADDING for r in rects
        )
        assert tinted(view, plain, box)
    # The line that answers has boxes of its own, inside the passage's.
    line_words = {round(b.left) for b in view.line_boxes}
    costs = char_boxes(pdf.read_bytes(), 2, "Costs")[0]
    assert round(costs[0]) in {round(b.left) for b in view.passage_boxes} and line_words
    # A word of the page outside the passage (the next paragraph, another chunk) is not tinted.
    assert "present pace" not in ref.text
    for box in char_boxes(pdf.read_bytes(), 2, "the present pace"):
        assert not tinted(view, plain, box)


def test_the_neighbour_pages_are_one_call_away_and_carry_no_highlight(
    tmp_path: Path, kb: tuple[Store, Originals, Ingestor]
) -> None:
    store, _, ingest = kb
    [result] = ingest.ingest_paths([text_pdf(tmp_path / "report.pdf", [PAGE_ONE, PAGE_TWO])])
    assert result.doc_id is not None
    ref = passage(store, result.doc_id, "quarterly revenue")
    sources = viewer(kb, tmp_path)
    before = sources.open(ref, page=1)
    assert isinstance(before, PageView) and before.page == 1 and not before.passage_boxes and not before.found


def test_an_opened_page_is_kept_and_comes_back_at_once(tmp_path: Path, kb: tuple[Store, Originals, Ingestor]) -> None:
    store, _, ingest = kb
    [result] = ingest.ingest_paths([text_pdf(tmp_path / "report.pdf", [PAGE_TWO])])
    assert result.doc_id is not None
    sources = viewer(kb, tmp_path)
    ref = passage(store, result.doc_id, "quarterly revenue")
    assert sources.open(ref) is sources.open(ref)


def test_a_scanned_page_is_highlighted_from_the_ocr_boxes(
    tmp_path: Path, kb: tuple[Store, Originals, Ingestor]
) -> None:
    store, _, ingest = kb
    lines = [
        "Delivery note for order 5521",
        "Twelve crates of apples were delivered",
        "Signed by the warehouse manager",
    ]
    [result] = ingest.ingest_paths([scanned_pdf(tmp_path / "scan.pdf", [lines])])
    assert result.doc_id is not None and result.status == "added"
    ref = passage(store, result.doc_id, "crates")
    sources = viewer(kb, tmp_path)
    view = sources.open(ref, line="Twelve crates of apples were delivered")
    assert isinstance(view, PageView) and view.ocr and view.found
    plain = sources.document_page(result.doc_id, 1)
    [crates] = [b for b in view.line_boxes if b.left > 300 and b.left < 700][:1] or [view.line_boxes[0]]
    assert tinted(view, plain, (crates.left, crates.top, crates.right, crates.bottom))
    assert (tmp_path / "cache" / "ocr" / f"{result.doc_id}-1.json").is_file()  # OCR once per page


def test_a_word_passage_opens_in_its_text_with_its_heading_path(
    tmp_path: Path, kb: tuple[Store, Originals, Ingestor]
) -> None:
    store, _, ingest = kb
    blocks = [
        ("h1", "Staff handbook"),
        ("p", "Welcome to the company. " * 12),
        ("h2", "Leave"),
        ("h3", "Parental leave"),
        ("p", "Parents receive sixteen weeks of paid leave, to be taken within a year of the birth. " * 2),
        ("p", "Leave <b>requests</b> go to [the portal](http://example.invalid) one month ahead."),
        ("h2", "Expenses"),
        ("p", "Travel is booked through the office. " * 10),
    ]
    [result] = ingest.ingest_paths([word_file(tmp_path / "handbook.docx", blocks)])
    assert result.doc_id is not None
    ref = passage(store, result.doc_id, "sixteen weeks")
    view = viewer(kb, tmp_path).open(
        ref, line="Parents receive sixteen weeks of paid leave, to be taken within a year of the birth."
    )
    assert isinstance(view, TextView)
    assert view.heading_path == ("Staff handbook", "Leave", "Parental leave")
    marks = [s.mark for s in view.segments]
    assert "line" in marks and "passage" in marks and marks[0] == ""  # text before it, shown around it
    assert "Welcome to the company" in view.plain and ref.text in view.plain
    page = text_view_html(view)
    assert "<b>" not in page and "&lt;b&gt;requests&lt;/b&gt;" in page  # the document's markup stays text
    assert "<a " not in page and 'data-mark="line"' in page


def test_a_pdf_indexed_before_files_were_kept_is_shown_as_text_saying_how_to_get_the_page(
    tmp_path: Path, kb: tuple[Store, Originals, Ingestor], embedder: Embedder
) -> None:
    store, _, _ = kb
    old = Ingestor(store, embedder, chunk_size=400, chunk_overlap=50)  # no files kept
    [result] = old.ingest_paths([text_pdf(tmp_path / "old.pdf", [PAGE_TWO])])
    assert result.doc_id is not None
    view = viewer(kb, tmp_path).open(passage(store, result.doc_id, "quarterly"))
    assert isinstance(view, TextView) and "add the same file again" in view.note


def test_a_deleted_document_says_so(tmp_path: Path, kb: tuple[Store, Originals, Ingestor]) -> None:
    store, _, ingest = kb
    [result] = ingest.ingest_paths([text_pdf(tmp_path / "gone.pdf", [PAGE_TWO])])
    assert result.doc_id is not None
    ref = passage(store, result.doc_id, "quarterly")
    store.delete_document(result.doc_id)
    with pytest.raises(SourceNotFound, match=r"gone\.pdf is no longer in the knowledge base"):
        viewer(kb, tmp_path).open(ref)
