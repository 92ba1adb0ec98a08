"""Word (.docx): paragraphs with headings as Markdown, lists, tables as rows of cells."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from rag.errors import LoaderError
from rag.loaders.common import reason, tidy
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph


def load_docx(data: bytes, name: str) -> LoadedDocument:
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
