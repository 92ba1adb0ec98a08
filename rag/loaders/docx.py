"""Word (.docx): paragraphs with headings as Markdown, lists, tables as rows of cells."""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING

from rag.errors import LoaderError
from rag.formatting import human_size
from rag.loaders.common import reason, tidy
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph

# A ZIP is checked before any library opens it: python-docx reads every part whole, so a 65 KB file whose
# image part is 64 MB of zeros cost 140 MB of memory (and 200 MB uploads, gigabytes). The sizes come from
# the ZIP's directory; zipfile stops reading a member at its declared size, so they cannot lie about it.
ZIP_MAX_MEMBERS = 10_000  # a Word file has 20-100 parts; one with many images, a few thousand
ZIP_MAX_BYTES = 256 * 1024 * 1024  # all parts uncompressed: Streamlit takes files up to 200 MB, images barely compress
# Of a part over ZIP_RATIO_FROM bytes. Word's XML compresses 5-30 times, even 30,000 identical paragraphs ~290
# times; zeros and other filler ~1,000 times (deflate's most). So a file expands at most 500 times its size.
ZIP_MAX_RATIO = 500
ZIP_RATIO_FROM = 1024 * 1024  # small parts may be very repetitive and cost nothing


def check_zip(data: bytes, name: str, kind: str = "Word document") -> None:
    """Refuse a ZIP-based file (DOCX, and any other such format) that would expand beyond the limits."""
    fix = f"if it is a real {kind}, open it and save it again (or as PDF) with its images made smaller, or split it."
    try:
        # The entry count from the end record first: ZipFile builds an object per entry (~0.5 KB each), and
        # a 200 MB directory of empty entries would be millions of them. (zipfile's reader of that record
        # is private, but has been there unchanged since Python 2; without it, the count below still holds.)
        end = getattr(zipfile, "_EndRecData", lambda fp: None)(io.BytesIO(data))
        declared = end[4] if end else 0  # _ECD_ENTRIES_TOTAL
        if declared > ZIP_MAX_MEMBERS:
            raise LoaderError(
                f"{name} holds {declared:,} parts, over the limit of {ZIP_MAX_MEMBERS:,} for a {kind}: {fix}"
            )
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LoaderError(
            f"{name} could not be read as a {kind} ({reason(exc)}): it may be damaged, password-protected, "
            "or an old .doc file; open it in Word or LibreOffice and save it again as .docx."
        ) from exc
    if len(members) > ZIP_MAX_MEMBERS:
        raise LoaderError(
            f"{name} holds {len(members):,} parts, over the limit of {ZIP_MAX_MEMBERS:,} for a {kind}: {fix}"
        )
    total = sum(m.file_size for m in members)
    if total > ZIP_MAX_BYTES:
        raise LoaderError(
            f"{name} would expand from {human_size(len(data))} to {human_size(total)}, over the limit of "
            f"{human_size(ZIP_MAX_BYTES)} for a {kind}: {fix}"
        )
    for m in members:
        if m.file_size > ZIP_RATIO_FROM and m.file_size > ZIP_MAX_RATIO * max(m.compress_size, 1):
            raise LoaderError(
                f"{name} looks like a zip bomb: its part {m.filename} would expand from "
                f"{human_size(m.compress_size)} to {human_size(m.file_size)} "
                f"({m.file_size // max(m.compress_size, 1):,} times; real documents stay under {ZIP_MAX_RATIO}), "
                f"so it was not opened: {fix}"
            )


def load_docx(data: bytes, name: str) -> LoadedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_zip(data, name)
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
            f"{name} could not be read as a Word document ({reason(exc)}): it may be damaged, "
            "password-protected, or an old .doc file; open it in Word or LibreOffice and save it again as .docx."
        ) from exc
    text = tidy("\n".join(lines), collapse_spaces=True)
    title = " ".join((document.core_properties.title or "").split())
    if not title:  # the first heading, as the Title or Heading 1 style writes it
        title = next((ln.lstrip("\n# ") for ln in lines if ln.lstrip("\n").startswith("# ")), "")
    return LoadedDocument(name=name, kind="docx", sections=[Section(text=text)], title=title)


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
