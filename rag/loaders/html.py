"""HTML: visible text, block boundaries as line breaks, table rows as cells, the title first."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from rag.loaders.common import TextBudget, tidy
from rag.loaders.text import bom_encoding, legacy_candidates, looks_binary, not_text
from rag.schema import LoadedDocument, Section

_DROP = frozenset(["script", "style", "noscript", "template", "head", "svg", "iframe", "object"])
_BLOCKS = frozenset([
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
])  # fmt: skip
_PREFORMATTED = frozenset(["pre", "textarea"])
_CELLS = frozenset(["td", "th"])
# Text anywhere inside these is never shown as page text (ruby annotations, code, inert templates): the
# text BeautifulSoup's get_text() left out, as its Script, Stylesheet, TemplateString and RubyText types.
_HIDDEN = frozenset(["rt", "rp", "script", "style", "template"])
_SPACES = re.compile(r"\s+")


_FEED_BYTES = 1 << 20  # the page is parsed this much at a time


def load_html(data: bytes, name: str) -> LoadedDocument:
    from lxml import etree

    if looks_binary(data):
        raise not_text(name)
    # One pass over lxml's parse events, no tree: BeautifulSoup built its tree from the same events, but in
    # time quadratic in the depth for text after a closed child (8,000 levels: 2.5-5 s), and lxml's own tree
    # (lxml.html) stops at 256 levels (2,048 with huge_tree) and drops the rest of the text; the events go
    # as deep as the document (checked to 100,000 levels). The text is decoded here (lxml alone reads
    # undeclared UTF-8 as Latin-1) and handed over as UTF-8.
    extractor = _Extractor()
    parser = etree.HTMLParser(target=extractor, recover=True, encoding="utf-8")
    page = _decode(data).encode("utf-8")
    budget = TextBudget(name)
    counted = 0
    for start in range(0, len(page), _FEED_BYTES):  # in pieces, so that a page over the text limit stops early
        parser.feed(page[start : start + _FEED_BYTES])
        budget.add("".join(extractor.out[counted:]), blocks=0)
        counted = len(extractor.out)
    parser.close()
    title = " ".join("".join(extractor.title).split())
    body = "".join(extractor.out)
    # Spaces left around removed tags are noise; this also flattens <pre> indentation, a fair price.
    body = tidy(body, collapse_spaces=True)
    if title and body.split("\n", 1)[0].strip() != title:
        body = f"{title}\n\n{body}" if body else title
    return LoadedDocument(name=name, kind="html", sections=[Section(text=body)], title=title)


# --- encoding ---------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(rb"\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([^\"'>]+)", re.I)
_META = re.compile(rb"<\s*meta\b[^>]*", re.I)  # each <meta ...> up to its ">": one linear scan
_CHARSET = re.compile(rb"charset\s*=\s*[\"']?([^\s\"'/;>]+)", re.I)  # charset= or content="...; charset="
# As browsers do (WHATWG Encoding): these labels mean the wider encoding, e.g. ISO-8859-1 windows-1252, whose
# 0x80-0x9F are €, “ ” and the like, not control characters. A UTF-16/32 label in bytes that spell out
# ASCII "<meta" is wrong: UTF-8. UTF-7 is not an encoding for web pages.
_LABEL_MEANS = {
    "ascii": "cp1252", "iso8859-1": "cp1252", "iso8859-9": "cp1254", "iso8859-11": "cp874", "tis-620": "cp874",
    "shift_jis": "cp932", "euc_kr": "cp949", "gb2312": "gb18030", "gbk": "gb18030",
    "utf-16": "utf-8", "utf-16-le": "utf-8", "utf-16-be": "utf-8",
    "utf-32": "utf-8", "utf-32-le": "utf-8", "utf-32-be": "utf-8",
}  # fmt: skip


def _decode(data: bytes) -> str:
    """The page as text: by its byte-order mark, else the encoding its XML declaration or <meta charset> (or
    http-equiv Content-Type) names, else UTF-8, else the best legacy guess (as for plain text files)."""
    if (encoding := bom_encoding(data)) is not None:
        return data.decode(encoding, errors="replace")
    for encoding in _declared_encodings(data):
        try:
            return data.decode(encoding, errors="replace")  # as a browser shows it: bad bytes as '\ufffd'
        except LookupError:  # a codec, but not a text encoding (base64, rot13, ...)
            continue
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for encoding in legacy_candidates(data):
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")  # unreachable: the last candidate is latin-1, which decodes any bytes


def _declared_encodings(data: bytes) -> list[str]:
    """Python codecs for the encodings the page declares near its start, in that order (unknown ones left out)."""
    match = _XML_DECLARATION.match(data, 0, 1024)
    labels = [match.group(1)] if match else []
    # The first 4 KB, or 5% of the page if more, as BeautifulSoup searched (a <meta> belongs in <head>).
    window = data[: max(4096, len(data) // 20)]
    labels += [m.group(1) for tag in _META.finditer(window) if (m := _CHARSET.search(tag.group()))]
    codecs_named = []
    for label in labels:
        try:
            codec = codecs.lookup(label.decode("ascii", errors="replace")).name
        except LookupError:
            continue
        if codec != "utf-7":
            codecs_named.append(_LABEL_MEANS.get(codec, codec))
    return codecs_named


# --- text -------------------------------------------------------------------------------------

# Where an open element's content goes: the page text, a table cell, a table row (only its <td>/<th>
# children count), or nowhere (dropped elements, a <br>'s inside, a row's content outside its cells).
_MAIN, _CELL, _ROW, _VOID = range(4)
# What an element's end adds: nothing, the blank line after a block, a row's text, a cell's words.
_PLAIN, _BLOCK, _ROW_END, _CELL_END = range(4)


class _Row:
    """A table row inside a cell of an outer table: its cells, each as its words and rows in order."""

    __slots__ = ("cells",)

    def __init__(self, cells: list[list[str | _Row]]) -> None:
        self.cells = cells


def _words(cell: list[str | _Row]) -> Iterator[str]:
    """A cell's words, its nested rows' in their places with "|" between their cells (as their text would
    read), without recursion and each word once: rows nested N deep cost N, not N squared."""
    stack: list[Iterator[str | _Row]] = [iter(cell)]
    while stack:
        for piece in stack[-1]:
            if isinstance(piece, str):
                yield piece
            else:
                stack.append(_row_pieces(piece))
                break
        else:
            stack.pop()


def _row_pieces(row: _Row) -> Iterator[str | _Row]:
    for i, cell in enumerate(row.cells):
        if i:
            yield "|"
        yield from cell


class _Frame:
    """An open element: where its content goes and what its end adds."""

    __slots__ = ("cells", "ends", "mode", "pre", "tag", "words")

    def __init__(
        self, tag: str, mode: int, ends: int = _PLAIN, *, pre: bool = False, words: list[str | _Row] | None = None
    ) -> None:
        self.tag = tag
        self.mode = mode
        self.ends = ends
        self.pre = pre  # inside <pre> or <textarea>: whitespace kept
        self.words: list[str | _Row] = words if words is not None else []  # the enclosing cell's (_CELL)
        self.cells: list[list[str | _Row]] = []  # a row's cells (_ROW)


class _Extractor:
    """An lxml parser target: the page text straight from the parse events, in time linear in the page.

    The text is what the former BeautifulSoup walk gave: whitespace collapsed (except inside <pre> and
    <textarea>), a blank line around each block, a line break for each <br>, each table row on its own
    line as its cells' words joined by " | " (a nested row's text goes into the outer cell, innermost first),
    no comments, doctype or processing instructions, and nothing inside dropped elements.
    """

    def __init__(self) -> None:
        self.out: list[str] = []
        self.title: list[str] = []
        self._title_at = -1  # the first <title>'s depth while it is open; -2 once it has closed
        self._hidden = 0  # open elements whose text is hidden (_HIDDEN)
        self._pending: list[str] = []  # consecutive data events (lxml splits text at entities): one string
        self._stack = [_Frame("", _MAIN)]  # the document itself at the bottom, never closed
        self._open: dict[str, int] = {}  # open elements by name, to match an end tag as BeautifulSoup did

    def start(self, tag: str, attrib: object, nsmap: object = None) -> None:
        self._flush()
        parent = self._stack[-1]
        if tag == "title" and self._title_at == -1:
            self._title_at = len(self._stack)
        if tag in _HIDDEN:
            self._hidden += 1
        self._open[tag] = self._open.get(tag, 0) + 1
        mode = parent.mode
        if mode == _VOID:
            frame = _Frame(tag, _VOID)
        elif mode == _ROW:  # only the row's own cells count
            frame = _Frame(tag, _CELL, _CELL_END) if tag in _CELLS else _Frame(tag, _VOID)
        elif tag in _DROP:
            frame = _Frame(tag, _VOID)
        elif tag == "tr":
            frame = _Frame(tag, _ROW, _ROW_END)
        elif mode == _CELL:  # inside a cell, other elements only pass their text on
            frame = _Frame(tag, _CELL, words=parent.words)
        elif tag == "br":
            self.out.append("\n")
            frame = _Frame(tag, _VOID)
        else:
            block = tag in _BLOCKS
            if block:
                self.out.append("\n\n")
            frame = _Frame(tag, _MAIN, _BLOCK if block else _PLAIN, pre=parent.pre or tag in _PREFORMATTED)
        self._stack.append(frame)

    def end(self, tag: str) -> None:
        self._flush()
        if self._open.get(tag):  # close it and whatever is still open inside it; a stray end tag does nothing
            while self._pop() != tag:
                pass

    def data(self, data: str) -> None:
        self._pending.append(data)

    def comment(self, text: str) -> None:
        self._flush()  # a comment ends a string (and is no text itself); so do the two below

    def pi(self, target: str, data: str) -> None:
        self._flush()

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        self._flush()

    def close(self) -> None:
        self._flush()
        while len(self._stack) > 1:
            self._pop()

    def _flush(self) -> None:
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending.clear()
        if self._hidden:
            return
        if self._title_at >= 0:
            self.title.append(text)
        frame = self._stack[-1]
        if frame.mode == _MAIN:
            self.out.append(text if frame.pre else _SPACES.sub(" ", text))
        elif frame.mode == _CELL:
            frame.words.extend(text.split())

    def _pop(self) -> str:
        frame = self._stack.pop()
        self._open[frame.tag] -= 1
        if frame.tag in _HIDDEN:
            self._hidden -= 1
        if self._title_at == len(self._stack):
            self._title_at = -2
        if frame.ends == _BLOCK:
            self.out.append("\n\n")
        elif frame.ends == _CELL_END:
            self._stack[-1].cells.append(frame.words)
        elif frame.ends == _ROW_END:
            outer = self._stack[-1]
            if outer.mode == _MAIN:
                self.out.append("\n" + " | ".join(" ".join(_words(cell)) for cell in frame.cells) + "\n")
            elif outer.mode == _CELL:  # a nested row, read with the outer cell
                outer.words.append(_Row(frame.cells))
        return frame.tag
