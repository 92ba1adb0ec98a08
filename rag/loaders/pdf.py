"""PDF (pypdf): one section per page, so citations carry page numbers."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders.common import HYPHEN_BREAK_RE, count, pages, reason, tidy
from rag.schema import LoadedDocument, Section

_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved_level = logging.NOTSET


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """pypdf logs a warning for every small defect it repairs; the user cannot act on those.

    Counted so concurrent loads (Streamlit runs sessions in threads) restore the level only once.
    """
    global _quiet_depth, _quiet_saved_level
    logger = logging.getLogger("pypdf")
    with _quiet_lock:
        if _quiet_depth == 0:
            _quiet_saved_level = logger.level
            logger.setLevel(logging.ERROR)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                logger.setLevel(_quiet_saved_level)


def _pdf_unreadable(name: str, exc: BaseException) -> LoaderError:
    return LoaderError(
        f"{name} could not be read as a PDF ({reason(exc)}): it may be damaged or not a real PDF; "
        "re-export or re-download it."
    )


def _pdf_locked(name: str) -> LoaderError:
    return LoaderError(
        f"{name} is password-protected: open it with its password, save an unprotected copy "
        "(e.g. print to PDF), and upload that."
    )


def load_pdf(data: bytes, name: str) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

    sections: list[Section] = []
    warnings: list[str] = []
    failed: list[int] = []
    blank: list[int] = []
    with _quiet_pypdf():
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    # Many PDFs are "encrypted" only to set permissions and open with an empty password.
                    unlocked = reader.decrypt("")
                except DependencyError as exc:
                    raise LoaderError(
                        f"{name} is encrypted and reading it needs the 'cryptography' package: "
                        "install it (`pip install cryptography`) or upload an unprotected copy."
                    ) from exc
                if not unlocked:
                    raise _pdf_locked(name)
            page_count = len(reader.pages)
        except LoaderError:
            raise
        except FileNotDecryptedError as exc:
            raise _pdf_locked(name) from exc
        except Exception as exc:  # PdfReadError, LimitReachedError, and pypdf's internal errors on junk
            raise _pdf_unreadable(name, exc) from exc
        if page_count == 0:
            raise LoaderError(f"{name} has no pages: it may be damaged; re-export or re-download it.")
        for number in range(1, page_count + 1):
            try:
                raw = reader.pages[number - 1].extract_text()
            except LimitReachedError as exc:  # a decompression-bomb guard: the whole file is suspect
                raise _pdf_unreadable(name, exc) from exc
            except Exception:  # one damaged page should not cost the rest of a long document
                failed.append(number)
                continue
            text = tidy(HYPHEN_BREAK_RE.sub(r"\1\2", raw or ""), collapse_spaces=True)
            if text:
                sections.append(Section(text=text, page=number))
            else:
                blank.append(number)
    if not sections:
        if failed:
            raise LoaderError(
                f"{name} could not be read as a PDF (no page could be read): it may be damaged "
                "or not a real PDF; re-export or re-download it."
            )
        raise LoaderError(
            f"{name} has no text layer (is it a scanned image?): run OCR on it first, e.g. "
            f"`ocrmypdf {name} {Path(name).stem}-ocr.pdf`, and upload the result."
        )
    if failed:
        warnings.append(f"{count(failed, 'page')} could not be read and were skipped ({pages(failed)})")
    if blank:
        warnings.append(
            f"{count(blank, 'page')} of {page_count} have no text (scanned images?) and were skipped "
            f"({pages(blank)}); run OCR on the file to include them"
        )
    return LoadedDocument(name=name, kind="pdf", sections=sections, pages=page_count, warnings=warnings)
