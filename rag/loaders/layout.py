"""Lines of extracted page text → sections: prose split at headings, tables kept whole with their headers.

Reports, filings and manuals print their figures in tables. Extracted text gives each table row as one
line ("iPhone 39,669 40,665"), but the row alone says neither which periods its columns are nor which
table it belongs to. This module finds the tables (runs of lines that end in figures), the lines above
each that name its columns and its title ("Net sales by category", "Three Months Ended", "2023 2022"),
and the section headings of the prose, so the chunker can repeat a table's header atop each of its
chunks and every chunk can say which section it comes from.

Pure text heuristics, no layout model: on the FinanceBench filings they were measured against PDFium's
plain text and pdfplumber's table extraction (README, "Real documents").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from rag.formatting import shorten
from rag.schema import Section

# A figure as tables print it: 1,234  (1,234)  $5.3  12%  (7.1)%  —  - ; "$" and "%" may stand apart; a
# cell may hold a marker instead ("#": a variance of 100 % or more, "*", "†", a footnote "(a)").
_VALUE = re.compile(
    r"^(?:[($]*[-–—+]?\$?\d[\d,]*(?:\.\d+)?\)?%?\)?[,;]?|[-–—]|\$|%|\)|n/?a|nm|#|\*+|[†‡]|\([a-z]\))$", re.IGNORECASE
)
_YEAR = re.compile(r"^\(?(?:19|20)\d\d\)?[,.]?$")
_MONTHS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b(?:,?\s+(?:19|20)\d\d\b)?",
    re.IGNORECASE,
)
_PERIOD_WORDS = re.compile(
    r"\b(?:months?|quarters?|weeks?|years?|fiscal|ended|ending|as of|q[1-4]|fy|ytd|h[12]|change|%)\b", re.IGNORECASE
)
_SMALL_WORDS = frozenset("a an and as at by for from in of on or the to with vs per".split())  # noqa: SIM905
MAX_HEADER_LINES = 12  # lines above a table that can name its columns and title (wrapped cells: one word a line)
MAX_HEADER_CHARS = 240  # a table header longer than this is cut (it is repeated in every chunk of the table)
MAX_GAP_LINES = 3  # label-only lines ("Cash flows from investing activities") allowed between rows of one table
MIN_TABLE_ROWS = 2
MAX_HEADING_CHARS = 90
EDGE_LINES = 3  # running headers and footers are among a page's first or last lines
RUNNING_SHARE = 0.3  # a line on at least this share of the pages (and at least 3) is a running header/footer


@dataclass(frozen=True)
class Line:
    text: str
    values: int  # figures at the end of the line
    figures: int  # of them, those that are not years (a line of years names columns)


def classify_line(text: str) -> Line:
    # Dates ("July 29, 2023") name columns; their day numbers are not figures.
    tokens = _MONTHS.sub(" ", text).split()
    values = 0
    for token in reversed(tokens):
        if not _VALUE.match(token):
            break
        values += 1
    trailing = tokens[len(tokens) - values :] if values else []
    figures = sum(1 for t in trailing if any(ch.isdigit() for ch in t) and not _YEAR.match(t))
    return Line(text, values, figures)


def is_data_row(line: Line) -> bool:
    """A table row: ends in figures ("Revenue $ 8,890 $ 9,569"), not prose that ends with a number."""
    if line.figures == 0:
        return False
    label_words = len(_MONTHS.sub(" ", line.text).split()) - line.values
    if line.text.rstrip().endswith(".") and label_words > 6:  # "… rose to 12.5." is a sentence
        return False
    return line.values >= 2 or label_words <= 8


def is_period_line(text: str) -> bool:
    """A line naming columns: years, dates, "Three Months Ended", "Q1 Q2" (no figures)."""
    line = classify_line(text)
    if line.figures:
        return False
    tokens = text.split()
    years = sum(1 for t in tokens if _YEAR.match(t))
    return (
        (years >= 1 and (years >= 2 or len(tokens) <= 6))
        or bool(_MONTHS.search(text))
        or (len(tokens) <= 8 and bool(_PERIOD_WORDS.search(text)))
    )


def is_heading(text: str) -> bool:
    """A short title-like line: "Consolidated Statements of Cash Flows", "ITEM 7. MANAGEMENT'S DISCUSSION"."""
    stripped = text.strip()
    if not 3 <= len(stripped) <= MAX_HEADING_CHARS or stripped[-1] in ",;:":
        return False
    # A full stop ends sentences, not headings, except "Item 7." / "Note 3. Income Taxes".
    if stripped.endswith(".") and not re.match(r"^(?:item|part|note|section)\s+\w+\.?(?:\s|$)", stripped, re.I):
        return False
    words = re.findall(r"[^\W\d_][\w'’&-]*", stripped)
    if not words or len(words) > 12 or not (stripped[0].isupper() or stripped[0].isdigit()):
        return False
    if len(words) == 1 and not (stripped.isupper() and len(stripped) >= 4):  # "Income": a wrapped column label
        return False
    if classify_line(stripped).figures or _MONTHS.search(stripped):  # figures and dates are not headings
        return False
    content = [w for w in words if w.lower() not in _SMALL_WORDS]
    capitalised = sum(1 for w in content if w[0].isupper())
    return bool(content) and capitalised / len(content) >= 0.75


def running_lines(pages: Sequence[Sequence[str]]) -> frozenset[str]:
    """Lines repeated at the top or bottom of many pages (running headers and footers, "Table of Contents"
    links). Only the page's edges count: a table's column header ("Three Months Ended") recurs too."""
    if len(pages) < 3:
        return frozenset()
    seen: Counter[str] = Counter()
    for lines in pages:
        stripped = [ln.strip() for ln in lines if ln.strip()]
        seen.update(set(stripped[:EDGE_LINES] + stripped[-EDGE_LINES:]))
    threshold = max(3, int(RUNNING_SHARE * len(pages)))
    # A table's column header at the top of many pages ("FOURTH QUARTER TWELVE MONTHS") names its columns.
    return frozenset(line for line, n in seen.items() if n >= threshold and not is_period_line(line))


def page_sections(
    lines: Sequence[str], page: int | None, heading: str, running: frozenset[str]
) -> tuple[list[Section], str]:
    """One page's lines → its sections, in reading order; `heading` is the one in force where the page
    starts (headings carry across pages). Returns the sections and the heading in force at the end."""
    kept = [ln.strip() for ln in lines if ln.strip() and ln.strip() not in running]
    if kept and re.fullmatch(r"(?:page\s+)?\d{1,4}(?:\s+of\s+\d+)?", kept[-1], re.IGNORECASE):
        kept.pop()  # the page number
    classified = [classify_line(ln) for ln in kept]
    tables = _find_tables(classified)
    sections: list[Section] = []
    prose: list[str] = []

    def flush_prose() -> None:
        """Prose split at headings; a heading starts the section it names (headings in a row: the last
        one names it; more than three in a row are column labels, not headings)."""
        nonlocal heading
        paragraph: list[str] = []
        has_body = False
        run: list[str] = []
        for text in [*prose, ""]:
            if text and is_heading(text):
                run.append(text)
                continue
            if run:
                if len(run) <= 3:
                    if has_body:
                        sections.append(Section("\n".join(paragraph), page, heading))
                        paragraph, has_body = [], False
                    heading = run[-1]
                paragraph.extend(run)
                run = []
            if text:
                paragraph.append(text)
                has_body = True
        if paragraph:
            sections.append(Section("\n".join(paragraph), page, heading))
        prose.clear()

    i = 0
    for start, header_start, end in tables:
        prose.extend(kept[i:header_start])
        flush_prose()
        header_lines = kept[header_start:start]
        # The title is the heading just above the column headers (periods), not a row-group label below them.
        first_period = next((n for n, h in enumerate(header_lines) if is_period_line(h)), len(header_lines))
        title = next((h for h in reversed(header_lines[:first_period]) if is_heading(h)), "")
        if title:
            heading = title
        # Labels below the column headers name the first group of rows ("Cash Flows from Operating
        # Activities", a product's name), not every row of the table: they stay with their rows.
        last_period = max((n for n, h in enumerate(header_lines) if is_period_line(h)), default=len(header_lines) - 1)
        body = header_start + last_period + 1
        header = shorten(_join_wrapped(header_lines[: last_period + 1]), MAX_HEADER_CHARS)
        sections.append(Section("\n".join(kept[body:end]), page, heading, table_header=header))
        i = end
    prose.extend(kept[i:])
    flush_prose()
    return sections, heading


def _find_tables(lines: Sequence[Line]) -> list[tuple[int, int, int]]:
    """(first row, first header line, end) of each table: runs of data rows with few label-only lines
    between, at least MIN_TABLE_ROWS rows; the header is the short lines just above the first row."""
    found: list[tuple[int, int, int]] = []
    i = 0
    previous_end = 0
    while i < len(lines):
        if not is_data_row(lines[i]):
            i += 1
            continue
        start = i
        end = i + 1
        rows = 1
        j = end
        while j < len(lines):
            if is_data_row(lines[j]):
                rows += 1
                end = j + 1
                j += 1
                continue
            gap = j
            while gap < len(lines) and not is_data_row(lines[gap]) and gap - end < MAX_GAP_LINES:
                if len(lines[gap].text) > 120:  # a paragraph: the table has ended
                    break
                gap += 1
            if gap < len(lines) and is_data_row(lines[gap]) and gap - end < MAX_GAP_LINES:
                j = gap
                continue
            break
        if rows >= MIN_TABLE_ROWS:
            header_start = start
            chars = 0
            while (
                header_start > previous_end
                and start - header_start < MAX_HEADER_LINES
                and chars + len(lines[header_start - 1].text) <= MAX_HEADER_CHARS
                and _header_like(lines[header_start - 1].text)
            ):
                chars += len(lines[header_start - 1].text) + 1
                header_start -= 1
                if lines[header_start].text.endswith(":"):  # "… were as follows:" introduces the table
                    break
            found.append((start, header_start, end))
            previous_end = end
        i = end
    return found


def _header_like(text: str) -> bool:
    if len(text) > 160:
        return False
    if text.endswith(":"):
        return True
    return not text.endswith(".") or is_period_line(text) or is_heading(text)


def _join_wrapped(lines: Sequence[str]) -> str:
    """Header lines, with the one- to three-word pieces of wrapped column labels ("Net", "Income") joined
    by spaces rather than line breaks."""
    out: list[str] = []
    for line in lines:
        if out and (len(line.split()) <= 3 or len(out[-1].split()) <= 3):
            out[-1] += " " + line
        else:
            out.append(line)
    return "\n".join(out)
