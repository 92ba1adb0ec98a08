"""A page as a picture: a PDF page rendered by PDFium (or a scanned image), its words with their boxes, and
the passage highlighted over them.

The words come from PDFium's character boxes when the page has a text layer, and from OCR (rag/ocr.py) when
it is a scan: the page is rendered at OCR's own scale, so the OCR reads the same pixels it read at ingestion
and finds the same words, whose boxes are then in the pixels of the picture shown. Boxes are in image pixels
at VIEW_SCALE, y growing downwards.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from rag.errors import LoaderError
from rag.loaders.common import reason
from rag.loaders.pdf import _PDFIUM_LOCK as PDFIUM_LOCK  # PDFium is not thread-safe: one lock per process
from rag.ocr import OCR_SCALE, read_boxes, reading_lines

if TYPE_CHECKING:
    from PIL import Image

# 144 dpi: 1,224 x 1,584 px for a US Letter page, where 8 pt print is still legible; and OCR's own scale, so a
# scanned page is read from exactly the pixels shown.
VIEW_SCALE = OCR_SCALE
MIN_TEXT_CHARS = 3  # a page with fewer letters and digits in its text layer is a scan (as the loader decides)
PASSAGE_FILL = (255, 214, 0, 96)  # translucent yellow over the passage's words
LINE_FILL = (255, 120, 0, 110)  # translucent orange over the line that answers
LINE_EDGE = (220, 60, 0, 255)
PADDING = 2.0  # pixels around a highlighted run of words


@dataclass(frozen=True)
class Box:
    left: float
    top: float
    right: float
    bottom: float

    def union(self, other: Box) -> Box:
        return Box(
            min(self.left, other.left),
            min(self.top, other.top),
            max(self.right, other.right),
            max(self.bottom, other.bottom),
        )

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2

    @property
    def height(self) -> float:
        return self.bottom - self.top


@dataclass(frozen=True)
class PageWords:
    """The words of a page in reading order, each with its box, and the picture's size."""

    words: tuple[str, ...]
    boxes: tuple[Box, ...]
    width: int
    height: int
    ocr: bool  # read by OCR (a scanned page), not from a text layer


def pdf_page_count(data: bytes) -> int:

    with PDFIUM_LOCK:
        pdf = _open(data)
        try:
            return len(pdf)
        finally:
            pdf.close()


def render_pdf_page(data: bytes, page: int) -> Image.Image:
    """Page `page` (1-based) as an RGB picture at VIEW_SCALE."""
    with PDFIUM_LOCK:
        pdf = _open(data)
        try:
            _check_page(pdf, page)
            handle = pdf[page - 1]
            try:
                return handle.render(scale=VIEW_SCALE).to_pil().convert("RGB")
            finally:
                handle.close()
        finally:
            pdf.close()


def pdf_page_words(data: bytes, page: int) -> PageWords | None:
    """The words of the page's text layer with their boxes from PDFium's character boxes; None for a scan."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    with PDFIUM_LOCK:
        pdf = _open(data)
        try:
            _check_page(pdf, page)
            handle = pdf[page - 1]
            textpage = handle.get_textpage()
            try:
                width_pt, height_pt = handle.get_size()
                width, height = round(width_pt * VIEW_SCALE), round(height_pt * VIEW_SCALE)
                count = textpage.count_chars()
                chars = [chr(pdfium_c.FPDFText_GetUnicode(textpage.raw, i) or 32) for i in range(count)]
                if sum(ch.isalnum() for ch in chars) < MIN_TEXT_CHARS:
                    return None
                device_x, device_y = ctypes.c_int(), ctypes.c_int()

                def to_pixels(x: float, y: float) -> tuple[int, int]:
                    # The page's rotation and crop box as PDFium renders them.
                    pdfium_c.FPDF_PageToDevice(
                        handle.raw, 0, 0, width, height, 0, x, y, ctypes.byref(device_x), ctypes.byref(device_y)
                    )
                    return device_x.value, device_y.value

                words: list[str] = []
                boxes: list[Box] = []
                current: list[str] = []
                box: Box | None = None
                for i, ch in enumerate(chars):
                    if ch.isspace() or ch in "\x00\x02":  # \x02: PDFium's hyphen ending a line, inside a word
                        if current and box is not None:
                            words.append("".join(current) + ("-" if ch == "\x02" else ""))
                            boxes.append(box)
                        current, box = [], None
                        continue
                    left, bottom, right, top = textpage.get_charbox(i, loose=True)  # loose: the line's full height
                    (x1, y1), (x2, y2) = to_pixels(left, bottom), to_pixels(right, top)
                    char_box = Box(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
                    current.append(ch)
                    box = char_box if box is None else box.union(char_box)
                if current and box is not None:
                    words.append("".join(current))
                    boxes.append(box)
                return PageWords(tuple(words), tuple(boxes), width, height, ocr=False)
            finally:
                textpage.close()
                handle.close()
        finally:
            pdf.close()


def ocr_words(image: Image.Image) -> PageWords:
    """The words OCR reads on a picture, in the loader's reading order; a run of text's box is shared out
    among its words by their length (OCR gives boxes for runs, not words)."""
    pixels = np.asarray(image.convert("RGB"))
    words: list[str] = []
    boxes: list[Box] = []
    for line in reading_lines(read_boxes(pixels)):
        for run in line:
            parts = run.text.split()
            if not parts:
                continue
            total = sum(len(p) for p in parts) + len(parts) - 1
            step = (run.right - run.left) / max(total, 1)
            at = 0
            for part in parts:
                words.append(part)
                boxes.append(Box(run.left + at * step, run.top, run.left + (at + len(part)) * step, run.bottom))
                at += len(part) + 1
    return PageWords(tuple(words), tuple(boxes), image.width, image.height, ocr=True)


def runs_of(boxes: Sequence[Box]) -> list[Box]:
    """Word boxes (in reading order) merged into one rectangle per run of words on the same line."""
    rects: list[Box] = []
    for box in boxes:
        if rects:
            last = rects[-1]
            same_line = abs(box.middle - last.middle) <= max(last.height, box.height) * 0.5
            if same_line and box.left >= last.left - 1 and box.left - last.right <= 3 * max(box.height, 1):
                rects[-1] = last.union(box)
                continue
        rects.append(box)
    return rects


def highlighted(image: Image.Image, passage: Sequence[Box], line: Sequence[Box] = ()) -> Image.Image:
    """The picture with translucent marks over the passage's words and, stronger, over the line that answers."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    overlay = PILImage.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for rect in runs_of(passage):
        draw.rectangle(_padded(rect), fill=PASSAGE_FILL)
    for rect in runs_of(line):
        left, top, right, bottom = _padded(rect)
        draw.rectangle((left, top, right, bottom), fill=LINE_FILL)
        draw.line((left, bottom + 1, right, bottom + 1), fill=LINE_EDGE, width=2)
    return PILImage.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)  # level 3: a tenth of the time of the default, 10 % larger
    return out.getvalue()


def _padded(box: Box) -> tuple[float, float, float, float]:
    return (box.left - PADDING, box.top - PADDING, box.right + PADDING, box.bottom + PADDING)


def _open(data: bytes) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise LoaderError(
            f"The kept file could not be opened as a PDF ({reason(exc)}): add the document again."
        ) from exc


def _check_page(pdf: Any, page: int) -> None:
    if not 1 <= page <= len(pdf):
        raise LoaderError(f"This document has no page {page}: it has {len(pdf)} pages.")
