"""PDF with PDFium (pypdfium2): every page's text in reading order, tables kept with their headers, the
document's title, and OCR for pages that have no text layer (scanned).

PDFium read all 20 real filings of the development set, one of which pypdf refuses (`LimitReachedError`);
its page text comes 20 times faster than pypdf's, and this loader (tables and headings included) 12 times
(README, "Real documents"). PDFium is not thread-safe: every call goes through one lock; OCR, the slow
part, runs outside it, one page at a time (a page image at OCR scale is ~6 MB: a long scan is never
held in memory whole).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.errors import LoaderError
from rag.loaders.common import HYPHEN_BREAK_RE, READ_LIMITS, TextBudget, count, pages, reason, tidy
from rag.loaders.layout import page_sections, running_lines
from rag.schema import LoadedDocument, Section

logger = logging.getLogger(__name__)

PageProgress = Callable[[int, int], None]  # (pages read by OCR so far, pages that need it)

_PDFIUM_LOCK = threading.Lock()
MIN_PAGE_CHARS = 3  # a page with fewer letters and digits than this has no text layer (a scan)
# An organisation's name on a cover page: "BRIGHT LANE CO., INC.", "6W COMPANY", "Mirelle Inc."
_ORGANISATION = re.compile(
    r"\b(?:inc|incorporated|corp|corporation|company|co|ltd|limited|plc|llc|lp|group|holdings|n\.?v|s\.?a|ag|se)\.?,?$",
    re.IGNORECASE,
)
_MEANINGLESS_TITLE = re.compile(
    r"^(?:untitled|document\d*|microsoft word\s*-.*|[\d\W_]+|.*\.(?:docx?|pdf|indd|xlsx?))$", re.IGNORECASE
)


def load_pdf(data: bytes, name: str, on_ocr_page: PageProgress | None = None) -> LoadedDocument:
    page_lines, metadata, blank, failed = _read(data, name)
    page_count = len(page_lines)
    if blank:
        for number, text in zip(blank, _ocr(data, blank, on_ocr_page), strict=True):
            page_lines[number - 1] = _lines(text)
    read_by_ocr = [n for n in blank if page_lines[n - 1]]
    still_blank = [n for n in blank if not page_lines[n - 1]]
    running = running_lines(page_lines)
    sections: list[Section] = []
    heading = ""
    for number, lines in enumerate(page_lines, start=1):
        if not lines:
            continue
        page, heading = page_sections(lines, number, heading, running)
        sections.extend(_tidied(s) for s in page)
    sections = [s for s in sections if s.text]
    warnings: list[str] = []
    if not sections:
        if failed:
            raise LoaderError(
                f"{name} could not be read as a PDF (no page could be read): it may be damaged "
                "or not a real PDF; re-export or re-download it."
            )
        raise LoaderError(
            f"{name} has no text layer and OCR found no text on its pages: check that the scan is legible "
            "(upright, at least 150 dpi), or run it through an OCR tool (e.g. "
            f"`ocrmypdf '{name}' '{Path(name).stem}-ocr.pdf'`) and upload the result."
        )
    if read_by_ocr:
        warnings.append(
            f"{count(read_by_ocr, 'page')} had no text layer and were read by OCR ({pages(read_by_ocr)}); "
            "check their text in the preview"
        )
    if failed:
        warnings.append(f"{count(failed, 'page')} could not be read and were skipped ({pages(failed)})")
    if still_blank:
        warnings.append(
            f"{count(still_blank, 'page')} of {page_count} have no text, even by OCR, and were skipped "
            f"({pages(still_blank)})"
        )
    return LoadedDocument(
        name=name,
        kind="pdf",
        sections=sections,
        pages=page_count,
        warnings=warnings,
        title=document_title(metadata, page_lines[0] if page_lines else []),
        ocr_pages=len(read_by_ocr),
    )


def _read(data: bytes, name: str) -> tuple[list[list[str]], dict[str, str], list[int], list[int]]:
    """Under the PDFium lock: each page's lines, the metadata, the pages without text (for OCR) and those
    that failed."""
    import pypdfium2 as pdfium

    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise LoaderError(
                    f"{name} is password-protected: open it with its password, save an unprotected copy "
                    "(e.g. print to PDF), and upload that."
                ) from exc
            raise LoaderError(
                f"{name} could not be read as a PDF ({reason(exc)}): it may be damaged or not a real PDF; "
                "re-export or re-download it."
            ) from exc
        try:
            page_count = len(pdf)
            if page_count == 0:
                raise LoaderError(f"{name} has no pages: it may be damaged; re-export or re-download it.")
            # RAG_MAX_PAGES, checked before any page is read (OCR takes seconds a page)
            if page_count > (limit := READ_LIMITS.get().max_pages):
                raise LoaderError(
                    f"{name} has {page_count:,} pages, over the limit of {limit:,} a file: split it into parts "
                    "(e.g. by chapter) and add those, or raise RAG_MAX_PAGES."
                )
            metadata = {k: v for k, v in pdf.get_metadata_dict(skip_empty=True).items() if isinstance(v, str)}
            budget = TextBudget(name)
            page_lines: list[list[str]] = []
            blank: list[int] = []
            failed: list[int] = []
            for number in range(1, page_count + 1):
                try:
                    page = pdf[number - 1]
                    textpage = page.get_textpage()
                    text = textpage.get_text_bounded()
                    textpage.close()
                    if sum(ch.isalnum() for ch in text) < MIN_PAGE_CHARS:
                        blank.append(number)
                        text = ""
                    page.close()
                except (LoaderError, MemoryError):
                    raise
                except Exception as exc:  # one damaged page should not cost the rest of a long document
                    logger.info("%s: page %d could not be read (%s)", name, number, reason(exc))
                    failed.append(number)
                    text = ""
                budget.add(text, blocks=0)  # a file over the text limit stops here, not after its last page
                page_lines.append(_lines(text))
        finally:
            pdf.close()
    return page_lines, metadata, blank, failed


def _ocr(data: bytes, numbers: list[int], on_page: PageProgress | None) -> list[str]:
    """The text of each of these pages, rendered by PDFium and read by OCR, one page at a time (seconds a
    page on a CPU: progress after each)."""
    from rag.ocr import recognize

    texts: list[str] = []
    for done, number in enumerate(numbers, start=1):
        texts.append(recognize(_rgb(_render(data, number))))
        if on_page:
            on_page(done, len(numbers))
    return texts


def _render(data: bytes, number: int) -> Any:
    """Page `number` (1-based) as an image at OCR's scale."""
    import pypdfium2 as pdfium

    from rag.ocr import OCR_SCALE

    with _PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(data)
        try:
            page = pdf[number - 1]
            image = page.render(scale=OCR_SCALE).to_numpy()
            page.close()
        finally:
            pdf.close()
    return image


def _rgb(image: Any) -> Any:
    """PDFium renders BGR(A) arrays; OCR wants RGB."""
    array = image[0] if isinstance(image, tuple) else image
    if array.ndim == 3 and array.shape[2] >= 3:
        return array[:, :, 2::-1].copy()
    return array


def _lines(text: str) -> list[str]:
    text = HYPHEN_BREAK_RE.sub(r"\1\2", text.replace("\r\n", "\n").replace("\r", "\n"))
    return [line for line in text.split("\n") if line.strip()]


def _tidied(section: Section) -> Section:
    return Section(
        tidy(section.text, collapse_spaces=True),
        section.page,
        " ".join(section.heading.split()),
        tidy(section.table_header, collapse_spaces=True),
    )


def document_title(metadata: dict[str, str], first_page: list[str]) -> str:
    """The metadata title when it means something (not "Microsoft Word - x.docx", a file name or an
    accession number), its subject when that is a short description, and the organisation named on the
    first page ("BRIGHT LANE CO., INC."), joined; "" when there is nothing."""
    parts: list[str] = []
    title = " ".join(metadata.get("Title", "").split())
    if title and not _MEANINGLESS_TITLE.match(title) and len(title) <= 150:
        parts.append(title)
    subject = " ".join(metadata.get("Subject", "").split())
    if subject and len(subject) <= 150 and not _MEANINGLESS_TITLE.match(subject):
        parts.append(subject)
    for line in first_page[:60]:
        clean = " ".join(line.split())
        if 3 <= len(clean) <= 80 and _ORGANISATION.search(clean) and sum(ch.isalpha() for ch in clean) >= 2:
            if not any(clean.lower() in p.lower() for p in parts):
                parts.append(clean)
            break
    if not parts:
        first = next((" ".join(ln.split()) for ln in first_page if 3 <= len(ln.strip()) <= 100), "")
        if first:
            parts.append(first)
    return " — ".join(parts)
