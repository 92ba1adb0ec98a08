"""Sections → chunks with stable ids and a header saying where each comes from.

Prose is split by LangChain's recursive splitter. A table is split between rows, never inside one, and
every piece of it starts with the table's title and column headers, so "iPhone 39,669 40,665" always
travels with "Net sales by category / Three Months Ended / July 1, 2023 June 25, 2022".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from rag.formatting import shorten
from rag.loaders.layout import classify_line
from rag.schema import HEADER_SEPARATOR, Chunk, LoadedDocument, Section

# Changes whenever the same file would be cut into other chunks: a knowledge base records the version it was
# built with, so that a newer chunker can tell which knowledge bases to re-index.
CHUNKER_VERSION = "3"  # 3: table row groups kept with their labels; column headers atop many pages kept
MAX_TITLE_CHARS = 120
MAX_HEADING_CHARS = 90
SMALL_GROUP_SHARE = 3  # a table's row group taking at most 1/3 of a chunk's room is never split
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.MULTILINE)


def make_splitter(kind: str, chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    """Markdown splits at headings first; everything else at paragraphs, lines, sentences, words."""
    if kind == "markdown":
        return RecursiveCharacterTextSplitter.from_language(
            Language.MARKDOWN, chunk_size=chunk_size, chunk_overlap=chunk_overlap
        )
    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        separators=["\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " ", ""],
        keep_separator="end",
    )


def chunk_id(doc_id: str, position: int) -> str:
    return f"{doc_id}:{position:05d}"


def doc_of(chunk_id_: str) -> str:
    """The document id of a chunk id (the inverse of `chunk_id`'s first part)."""
    return chunk_id_.rpartition(":")[0]


def chunk_header(doc: LoadedDocument, heading: str, page: int | None) -> str:
    """ "<title> · <file name> · <heading> · page N": what the chunk's own text may not say. The title is
    left out when it only repeats the file name."""
    title = shorten(" ".join(doc.title.split()), MAX_TITLE_CHARS)
    parts = [_header_start(doc.title, doc.name)]
    heading = shorten(" ".join(heading.split()), MAX_HEADING_CHARS)
    if heading and heading.lower() not in title.lower():
        parts.append(heading)
    if page is not None:
        parts.append(f"page {page}")
    return HEADER_SEPARATOR.join(parts)


def renamed_header(header: str, title: str, old_name: str, new_name: str) -> str:
    """The header a chunk of the document titled `title` gets when its file is renamed: what `chunk_header` gives
    under the new name (a header already renamed stays as it is)."""
    old, new = _header_start(title, old_name), _header_start(title, new_name)
    if header.startswith(new) and (len(header) == len(new) or header[len(new) :].startswith(HEADER_SEPARATOR)):
        return header
    if not header.startswith(old):
        raise ValueError(f"the header {header!r} does not start with {old!r}")
    return new + header[len(old) :]


def _header_start(title: str, name: str) -> str:
    """The title (unless it only repeats the file name) and the file name."""
    title = shorten(" ".join(title.split()), MAX_TITLE_CHARS)
    if title and _words(title) != _words(Path(name).stem):
        return f"{title}{HEADER_SEPARATOR}{name}"
    return name


def chunk_document(doc: LoadedDocument, doc_id: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    """Split every section on its own so that a chunk never spans two pages (or two tables)."""
    splitter = make_splitter(doc.kind, chunk_size, chunk_overlap)
    chunks: list[Chunk] = []
    for section in doc.sections:
        if section.table_header:
            pieces = [(text, section.heading) for text in split_table(section, chunk_size)]
        else:
            pieces = _split_prose(splitter, section)
        for piece, heading in pieces:
            text = piece.strip()
            if not text:
                continue
            position = len(chunks)
            chunks.append(
                Chunk(
                    id=chunk_id(doc_id, position),
                    doc_id=doc_id,
                    text=text,
                    source=doc.name,
                    page=section.page,
                    position=position,
                    header=chunk_header(doc, heading, section.page),
                )
            )
    return chunks


def split_table(section: Section, chunk_size: int) -> list[str]:
    """The table's rows in pieces of at most `chunk_size` characters (a longer row stands alone), each
    starting with the table's header. A small group of rows under a label ("DARZALEX" then its US, Intl
    and WW rows) is kept in one piece; a longer one fills the piece it starts in and goes on in the next,
    which its label opens again (pieces stay full)."""
    header = section.table_header.strip()
    room = max(chunk_size - len(header) - 1, chunk_size // 2)
    pieces: list[list[str]] = [[]]
    used = 0

    def add(rows: list[str], opening: Sequence[str] = ()) -> None:
        """The rows, in the current piece if they fit, else in a new one that starts with `opening`."""
        nonlocal used
        if pieces[-1] and used + _size(rows) > room:
            pieces.append(list(opening))
            used = _size(opening)
        pieces[-1].extend(rows)
        used += _size(rows)

    for labels, rows in _row_groups(section.text.split("\n")):
        if _size(labels + rows) <= room // SMALL_GROUP_SHARE:
            add(labels + rows)
            continue
        repeat = labels if _size(labels) <= room // SMALL_GROUP_SHARE else []  # a long label block is not repeated
        add(labels + rows[:1])
        for row in rows[1:]:
            add([row], opening=repeat)
    return [f"{header}\n" + "\n".join(rows) if header else "\n".join(rows) for rows in pieces if rows]


def _size(rows: Sequence[str]) -> int:
    return sum(len(row) + 1 for row in rows)


def _row_groups(rows: list[str]) -> list[tuple[list[str], list[str]]]:
    """(label lines, rows with figures) in order: a label line after a row with figures opens a group."""
    groups: list[tuple[list[str], list[str]]] = []
    for row in rows:
        is_label = classify_line(row).figures == 0
        if not groups or (is_label and groups[-1][1]):
            groups.append(([], []))
        (groups[-1][0] if is_label else groups[-1][1]).append(row)
    return groups


def _split_prose(splitter: RecursiveCharacterTextSplitter, section: Section) -> list[tuple[str, str]]:
    """Pieces of prose with the heading in force where each starts: the section's, or the last Markdown
    heading ("## Details", as Markdown and Word files are loaded) before the piece."""
    pieces = _join_bare_headings(splitter.split_text(section.text))
    headings = [(m.start(), m.group(1)) for m in _MARKDOWN_HEADING.finditer(section.text)]
    if not headings:
        return [(piece, section.heading) for piece in pieces]
    out: list[tuple[str, str]] = []
    offset = 0
    for piece in pieces:
        found = section.text.find(piece.strip()[:80], offset)
        start = found if found >= 0 else offset
        offset = start
        before = [text for at, text in headings if at <= start]
        out.append((piece, before[-1] if before else section.heading))
    return out


def _join_bare_headings(pieces: list[str]) -> list[str]:
    """A piece that is only a heading ("### Ollama's context length", split off before a code block) says
    nothing on its own and outranks real passages on the heading's words: it opens the next piece."""
    out: list[str] = []
    carried = ""
    for piece in pieces:
        if _MARKDOWN_HEADING.fullmatch(piece.strip()):
            carried += piece.strip() + "\n\n"
            continue
        out.append(carried + piece)
        carried = ""
    if carried:
        out.append(carried.strip())
    return out


def _words(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+", text.lower()))
