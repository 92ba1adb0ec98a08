"""File bytes -> LoadedDocument: text sections (with page numbers for PDFs), ready for chunking.

One module per format; this one picks the loader by file extension. Every failure is a LoaderError whose
message starts with the file name and says how to fix it; no raw library exception leaves ``load_bytes``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders.common import LONG_RUN_RE, empty, reason
from rag.loaders.docx import load_docx
from rag.loaders.html import load_html
from rag.loaders.image import load_image
from rag.loaders.pdf import PageProgress, load_pdf
from rag.loaders.text import load_csv, load_text
from rag.schema import LoadedDocument

SUPPORTED: dict[str, str] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".csv": "csv",
    ".tsv": "csv",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
}


def kind_of(name: str) -> str | None:
    """The loader for a file name ("pdf", "html", …), or None. A web page is named by its address (rag/web.py
    fetches only HTML pages), whatever its path ends with."""
    if name.startswith(("http://", "https://")):
        return "html"
    return SUPPORTED.get(Path(name).suffix.lower())


def is_supported(name: str) -> bool:
    return kind_of(name) is not None


def load_file(path: Path) -> LoadedDocument:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(
            f"{path.name} could not be opened ({reason(exc)}): check that the file exists and is readable."
        ) from exc
    return load_bytes(data, path.name)


def load_bytes(data: bytes, name: str, on_ocr_page: PageProgress | None = None) -> LoadedDocument:
    """Turn one file's bytes into text sections; ``name`` picks the loader and appears in messages.
    ``on_ocr_page(done, total)`` is called after each page read by OCR (slow: seconds a page)."""
    suffix = Path(name).suffix.lower()
    kind = kind_of(name)
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED))
        raise LoaderError(f"{name}: unsupported file type '{suffix or '(none)'}'. Supported: {supported}.")
    if not data.strip():
        raise empty(name)
    try:
        doc = load_pdf(data, name, on_ocr_page) if kind == "pdf" else _LOADERS[kind](data, name)
    except (LoaderError, MemoryError):  # MemoryError: the reading process's budget (rag/parsing.py) says so
        raise
    except Exception as exc:  # a library bug or an input nobody anticipated: still a readable message
        raise LoaderError(
            f"{name} could not be read ({reason(exc)}): it may be damaged; "
            "open it and save it again, or convert it to PDF or plain text."
        ) from exc
    sections = [s for s in doc.sections if s.text.strip()]
    if not sections:
        raise empty(name)
    warnings = list(doc.warnings)
    longest = max((len(m.group()) for s in sections for m in LONG_RUN_RE.finditer(s.text)), default=0)
    if longest:
        warnings.append(
            f"contains a line of {longest:,} characters with no spaces; it will be split at fixed positions"
        )
    return LoadedDocument(
        name=name,
        kind=kind,
        sections=sections,
        pages=doc.pages,
        warnings=warnings,
        title=doc.title,
        ocr_pages=doc.ocr_pages,
    )


_LOADERS: dict[str, Callable[[bytes, str], LoadedDocument]] = {
    "pdf": load_pdf,
    "docx": load_docx,
    "markdown": load_text,
    "text": load_text,
    "html": load_html,
    "csv": load_csv,
    "image": load_image,
}
