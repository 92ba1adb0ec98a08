"""Pages as pictures: PDFium's words and boxes, OCR's for a scan, and highlights drawn over them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pypdfium2 as pdfium
import pytest
from PIL import Image

from rag.errors import LoaderError
from rag.page_image import (
    VIEW_SCALE,
    Box,
    highlighted,
    ocr_words,
    pdf_page_count,
    pdf_page_words,
    png_bytes,
    render_pdf_page,
    runs_of,
)
from tests.documents import page_picture, scanned_pdf, text_pdf

TEXT = "The quarterly revenue grew to 1,234 million dollars. Costs fell by nine percent over the same period."


def char_boxes(data: bytes, page: int, wanted: str) -> list[tuple[float, float, float, float]]:
    """PDFium's own boxes (in picture pixels) of the characters of `wanted` on the page, spaces aside."""
    pdf = pdfium.PdfDocument(data)
    textpage = pdf[page - 1].get_textpage()
    height = pdf[page - 1].get_height()
    chars = [(i, textpage.get_text_range(i, 1)) for i in range(textpage.count_chars())]
    visible = [(i, ch) for i, ch in chars if ch.strip()]
    flat = "".join(ch for _, ch in visible)
    start = flat.index("".join(wanted.split()))
    out = []
    for i, _ in visible[start : start + len("".join(wanted.split()))]:
        left, bottom, right, top = textpage.get_charbox(i, loose=True)
        out.append((left * VIEW_SCALE, (height - top) * VIEW_SCALE, right * VIEW_SCALE, (height - bottom) * VIEW_SCALE))
    return out


def test_words_come_with_pdfium_boxes_in_the_pixels_of_the_picture(tmp_path: Path) -> None:
    data = text_pdf(tmp_path / "a.pdf", [TEXT, "Second page."]).read_bytes()
    assert pdf_page_count(data) == 2
    words = pdf_page_words(data, 1)
    assert words is not None and not words.ocr
    assert " ".join(words.words).startswith("The quarterly revenue grew to 1,234 million dollars.")
    picture = render_pdf_page(data, 1)
    assert (words.width, words.height) == picture.size
    expected = char_boxes(data, 1, "quarterly")
    box = words.boxes[words.words.index("quarterly")]
    assert box.left == pytest.approx(expected[0][0], abs=1.5)
    assert box.right == pytest.approx(expected[-1][2], abs=1.5)
    assert box.top == pytest.approx(min(b[1] for b in expected), abs=1.5)


def test_a_page_that_does_not_exist_is_a_clear_error(tmp_path: Path) -> None:
    data = text_pdf(tmp_path / "a.pdf", [TEXT]).read_bytes()
    with pytest.raises(LoaderError, match="has no page 3: it has 1 pages"):
        render_pdf_page(data, 3)


def test_a_scanned_page_has_no_text_layer_and_ocr_finds_its_words_where_they_are(tmp_path: Path) -> None:
    data = scanned_pdf(tmp_path / "scan.pdf", [["Invoice number 4471", "Total due 980 euros"]]).read_bytes()
    assert pdf_page_words(data, 1) is None
    picture = render_pdf_page(data, 1)
    words = ocr_words(picture)
    assert words.ocr and "4471" in words.words and "980" in words.words
    # The OCR box of "Total" lies on the second printed line, left of "980".
    total, amount = words.boxes[words.words.index("Total")], words.boxes[words.words.index("980")]
    invoice = words.boxes[words.words.index("Invoice")]
    assert total.top > invoice.bottom and total.right < amount.left
    ink = np.asarray(picture.convert("L").crop((int(total.left), int(total.top), int(total.right), int(total.bottom))))
    assert ink.min() < 100  # the box holds printed ink


def test_words_on_one_line_merge_into_one_mark_and_lines_stay_apart() -> None:
    boxes = [Box(10, 10, 40, 20), Box(45, 10, 80, 20), Box(10, 30, 50, 40)]
    assert runs_of(boxes) == [Box(10, 10, 80, 20), Box(10, 30, 50, 40)]


def test_highlights_tint_the_marked_words_and_nothing_else() -> None:
    picture = page_picture(["Marked words here", "plain words there"])
    marked = highlighted(picture, [Box(100, 140, 600, 200)], [Box(100, 140, 300, 200)])
    before, after = np.asarray(picture), np.asarray(marked)
    assert (after[170, 450] != before[170, 450]).any()  # the passage
    assert after[170, 200, 2] < after[170, 450, 2]  # the line that answers is marked more strongly
    assert (after[800:900, 100:600] == before[800:900, 100:600]).all()  # elsewhere untouched
    assert Image.open(io.BytesIO(png_bytes(marked))).size == picture.size
