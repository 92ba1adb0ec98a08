"""File bytes -> LoadedDocument: text sections (with page numbers for PDFs), ready for chunking.

Every failure is a LoaderError whose message starts with the file name and says how to fix it;
no raw library exception leaves ``load_bytes``.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from warnings import catch_warnings, simplefilter

from rag.errors import LoaderError
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:  # the libraries themselves are imported when a file of their kind is loaded
    from docx.table import Table
    from docx.text.paragraph import Paragraph

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
}

LONG_RUN = 10_000  # a run of non-space characters longer than this cannot be split at word boundaries
_REASON_MAX = 160  # keep library messages short enough to read in a toast

_LONG_RUN_RE = re.compile(rf"\S{{{LONG_RUN + 1},}}")
_SPACES_RE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_HYPHEN_BREAK_RE = re.compile(r"([a-z])-\n([a-z])")  # "exam-\nple" -> "example", lower-case only
# Control characters (NUL, C0 except tab/newline, DEL, C1) break tokenizers and the vector store.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def is_supported(name: str) -> bool:
    return Path(name).suffix.lower() in SUPPORTED


def load_file(path: Path) -> LoadedDocument:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoaderError(
            f"{path.name} could not be opened ({_reason(exc)}): check that the file exists and is readable."
        ) from exc
    return load_bytes(data, path.name)


def load_bytes(data: bytes, name: str) -> LoadedDocument:
    """Turn one file's bytes into text sections; ``name`` picks the loader and appears in messages."""
    suffix = Path(name).suffix.lower()
    kind = SUPPORTED.get(suffix)
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED))
        raise LoaderError(f"{name}: unsupported file type '{suffix or '(none)'}'. Supported: {supported}.")
    if not data.strip():
        raise _empty(name)
    try:
        doc = _LOADERS[kind](data, name)
    except LoaderError:
        raise
    except Exception as exc:  # a library bug or an input nobody anticipated: still a readable message
        raise LoaderError(
            f"{name} could not be read ({_reason(exc)}): it may be damaged; "
            "open it and save it again, or convert it to PDF or plain text."
        ) from exc
    sections = [s for s in doc.sections if s.text.strip()]
    if not sections:
        raise _empty(name)
    warnings = list(doc.warnings)
    longest = max((len(m.group()) for s in sections for m in _LONG_RUN_RE.finditer(s.text)), default=0)
    if longest:
        warnings.append(
            f"contains a line of {longest:,} characters with no spaces; it will be split at fixed positions"
        )
    return LoadedDocument(name=name, kind=kind, sections=sections, pages=doc.pages, warnings=warnings)


# --- helpers ---------------------------------------------------------------------------------


def _empty(name: str) -> LoaderError:
    return LoaderError(f"{name} is empty: there is nothing to index.")


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return reason if len(reason) <= _REASON_MAX else reason[: _REASON_MAX - 1] + "…"


def _tidy(text: str, *, collapse_spaces: bool) -> str:
    """Light normalisation: LF line ends, no control characters, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_RE.sub("", text)
    if collapse_spaces:
        # Extracted text (PDF, Word, HTML) has layout spacing, not meaningful indentation.
        text = "\n".join(_SPACES_RE.sub(" ", line).strip() for line in text.split("\n"))
    else:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_LINES_RE.sub("\n\n", text).strip()


# --- PDF --------------------------------------------------------------------------------------

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
        f"{name} could not be read as a PDF ({_reason(exc)}): it may be damaged or not a real PDF; "
        "re-export or re-download it."
    )


def _pdf_locked(name: str) -> LoaderError:
    return LoaderError(
        f"{name} is password-protected: open it with its password, save an unprotected copy "
        "(e.g. print to PDF), and upload that."
    )


def _load_pdf(data: bytes, name: str) -> LoadedDocument:
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
            text = _tidy(_HYPHEN_BREAK_RE.sub(r"\1\2", raw or ""), collapse_spaces=True)
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
        warnings.append(f"{_count(failed, 'page')} could not be read and were skipped ({_pages(failed)})")
    if blank:
        warnings.append(
            f"{_count(blank, 'page')} of {page_count} have no text (scanned images?) and were skipped "
            f"({_pages(blank)}); run OCR on the file to include them"
        )
    return LoadedDocument(name=name, kind="pdf", sections=sections, pages=page_count, warnings=warnings)


def _count(items: list[int], noun: str) -> str:
    return f"1 {noun}" if len(items) == 1 else f"{len(items)} {noun}s"


def _pages(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (", …" if len(numbers) > 10 else "")


# --- DOCX -------------------------------------------------------------------------------------


def _load_docx(data: bytes, name: str) -> LoadedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Paragraph):
                lines.append(_docx_paragraph(block))
            elif isinstance(block, Table):
                lines.extend(_docx_table(block))
                lines.append("")  # keep the table apart from the next paragraph
    except Exception as exc:  # PackageNotFoundError, BadZipFile, KeyError on missing parts, XML errors
        raise LoaderError(
            f"{name} could not be read as a Word document ({_reason(exc)}): it may be damaged, "
            "password-protected, or an old .doc file; open it in Word or LibreOffice and save it again as .docx."
        ) from exc
    text = _tidy("\n".join(lines), collapse_spaces=True)
    return LoadedDocument(name=name, kind="docx", sections=[Section(text=text)])


def _docx_paragraph(paragraph: Paragraph) -> str:
    text = paragraph.text.strip()
    if not text:
        return ""
    style = paragraph.style.name if paragraph.style is not None and paragraph.style.name else ""
    level = _heading_level(style)
    if level:
        # A blank line before headings keeps them at the start of a chunk where possible.
        return f"\n{'#' * level} {text}"
    if style.startswith("List Bullet"):
        return f"- {text}"
    return text


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)), 6) if match else 0


def _docx_table(table: Table) -> list[str]:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        previous: object = None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; show it once.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(" | ".join(cells))
    return rows


# --- plain text, Markdown, CSV ----------------------------------------------------------------

_BOMS: list[tuple[bytes, str]] = [
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def _not_text(name: str) -> LoaderError:
    return LoaderError(
        f"{name} does not look like text (binary data?): check that it is the right file; "
        "if it is text, save it as UTF-8 and upload it again."
    )


def _looks_binary(data: bytes) -> bool:
    if any(data.startswith(bom) for bom, _ in _BOMS):  # UTF-16/32 text is full of NUL bytes
        return False
    if b"\x00" in data:
        return True
    sample = data[:65536]
    control = sum(1 for b in sample if (b < 32 and b not in b"\t\n\r\f\x1b") or b == 127)
    return control / len(sample) > 0.1


def _unprintable_share(text: str) -> float:
    sample = text[:65536]
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if c not in "\t\n\r\f" and unicodedata.category(c) in ("Cc", "Co", "Cn"))
    return bad / len(sample)


def _encoding_label(encoding: str) -> str:
    name = codecs.lookup(encoding).name  # canonical, e.g. "cp1252", "iso8859-1"
    if re.fullmatch(r"cp125\d", name):
        return "windows-" + name[2:]
    return name.upper()


def _decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """UTF-8 (or a BOM-marked Unicode encoding) first; else the best legacy guess, with a warning."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), []
            except UnicodeDecodeError:
                text = data.decode(encoding, errors="replace")
                label = _encoding_label(encoding)
                return text, [f"is marked as {label} but has invalid bytes; they were replaced with '\ufffd'"]
    if _looks_binary(data):
        raise _not_text(name)
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    for encoding in _legacy_candidates(data):
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if _unprintable_share(text) > 0.05:  # decodable but full of control characters: not prose
            raise _not_text(name)
        return text, [f"decoded as {_encoding_label(encoding)} (not UTF-8)"]
    raise _not_text(name)  # unreachable in practice: latin-1 decodes any bytes


def _legacy_candidates(data: bytes) -> list[str]:
    """Encodings to try, best first, for bytes that are not UTF-8.

    charset_normalizer alone misreads short Western text (b"caf\\xe9" comes back as Urdu cp1006),
    so windows-1252, the most common legacy encoding, wins whenever it fits as well as the best guess.
    It still loses to e.g. cp1251 for Russian or cp1250 for Czech, where it fits worse or not at all.
    """
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data[:262_144]))  # a sample: whole files take seconds
    candidates = ["cp1252", "latin_1"]  # latin-1 decodes any bytes: the last resort
    if matches:
        least_chaos = min(m.chaos for m in matches)
        calm = [m for m in matches if m.chaos <= least_chaos + 0.01]
        coherence = max(m.coherence for m in calm)
        western = any("cp1252" in m.could_be_from_charset and m.coherence >= coherence - 0.05 for m in calm)
        if not western:
            candidates.insert(0, max(calm, key=lambda m: m.coherence).encoding)
    return candidates


def _load_text(data: bytes, name: str) -> LoadedDocument:
    text, warnings = _decode(data, name)
    kind = SUPPORTED[Path(name).suffix.lower()]
    # Indentation matters in Markdown and code blocks: keep spaces, only fix line ends and controls.
    section = Section(text=_tidy(text, collapse_spaces=False))
    return LoadedDocument(name=name, kind=kind, sections=[section], warnings=warnings)


def _load_csv(data: bytes, name: str) -> LoadedDocument:
    text, warnings = _decode(data, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to guess: commas are the common case
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(v.strip() for v in row)]
    except csv.Error as exc:
        raise LoaderError(
            f"{name} could not be read as CSV ({_reason(exc)}): check that it is comma-separated text "
            "(export it again as 'CSV UTF-8'), or save it as .txt to index it as plain text."
        ) from exc
    if not rows:
        raise _empty(name)
    header = [" ".join(h.split()) or f"column {i}" for i, h in enumerate(rows[0], start=1)]
    if len(rows) == 1:
        warnings.append("has a header row but no data rows")
        return LoadedDocument(name=name, kind="csv", sections=[Section(text="; ".join(header))], warnings=warnings)
    lines: list[str] = []
    for row in rows[1:]:
        # "col: value" pairs make every line understandable on its own after chunking.
        pairs = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {' '.join(value.split())}"
            for i, value in enumerate(row)
            if value.strip()
        ]
        lines.append("; ".join(pairs))
    return LoadedDocument(name=name, kind="csv", sections=[Section(text="\n".join(lines))], warnings=warnings)


# --- HTML -------------------------------------------------------------------------------------

_DROP = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object"]
_BLOCKS = [
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
]  # fmt: skip
_PREFORMATTED = {"pre", "textarea"}


def _load_html(data: bytes, name: str) -> LoadedDocument:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
    from bs4.element import NavigableString, Tag

    if _looks_binary(data):
        raise _not_text(name)
    # Bytes, not str: BeautifulSoup reads the BOM and <meta charset> to pick the encoding. XHTML (an XML
    # declaration first) parses as HTML without loss; bs4's warning about it would only alarm the user.
    with catch_warnings():
        simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title is not None else ""
    for tag in soup.find_all(_DROP):
        if isinstance(tag, Tag):
            tag.decompose()
    # HTML collapses whitespace in text; only block boundaries (and <pre>) make line breaks.
    for string in list(soup.find_all(string=True)):
        # Exact type: subclasses are comments, the doctype, CDATA; rewriting them would make them text.
        if type(string) is NavigableString and not any(p.name in _PREFORMATTED for p in string.parents):
            string.replace_with(re.sub(r"\s+", " ", str(string)))
    # Innermost rows first so a nested table does not swallow its parent's cells.
    for row in reversed(soup.find_all("tr")):
        if isinstance(row, Tag):
            cells = [" ".join(c.get_text(" ").split()) for c in row.find_all(["td", "th"], recursive=False)]
            row.replace_with("\n" + " | ".join(cells) + "\n")
    for br in soup.find_all("br"):
        if isinstance(br, Tag):
            br.replace_with("\n")
    for block in soup.find_all(_BLOCKS):
        if isinstance(block, Tag):
            block.insert_before("\n\n")
            block.insert_after("\n\n")
    # Spaces left around removed tags are noise; this also flattens <pre> indentation, a fair price.
    body = _tidy(soup.get_text(), collapse_spaces=True)
    if title and body.split("\n", 1)[0].strip() != title:
        body = f"{title}\n\n{body}" if body else title
    return LoadedDocument(name=name, kind="html", sections=[Section(text=body)])


_LOADERS: dict[str, Callable[[bytes, str], LoadedDocument]] = {
    "pdf": _load_pdf,
    "docx": _load_docx,
    "markdown": _load_text,
    "text": _load_text,
    "html": _load_html,
    "csv": _load_csv,
}
