"""HTML: visible text, block boundaries as line breaks, table rows as cells, the title first."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from warnings import catch_warnings, simplefilter

from rag.loaders.common import tidy
from rag.loaders.text import looks_binary, not_text
from rag.schema import LoadedDocument, Section

if TYPE_CHECKING:
    from bs4.element import PageElement, Tag

_DROP = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object"]
_BLOCKS = [
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
]  # fmt: skip
_PREFORMATTED = {"pre", "textarea"}


def load_html(data: bytes, name: str) -> LoadedDocument:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
    from bs4.element import Tag

    if looks_binary(data):
        raise not_text(name)
    # Bytes, not str: BeautifulSoup reads the BOM and <meta charset> to pick the encoding. XHTML (an XML
    # declaration first) parses as HTML without loss; bs4's warning about it would only alarm the user.
    with catch_warnings():
        simplefilter("ignore", XMLParsedAsHTMLWarning)
        soup = BeautifulSoup(data, "lxml")
    title = " ".join(soup.title.get_text().split()) if soup.title is not None else ""
    for tag in soup.find_all(_DROP):
        if isinstance(tag, Tag):
            tag.decompose()
    # Each table row as its cells' text, innermost rows first so a nested table does not swallow its
    # parent's cells (an outer cell takes an inner row's text, not its markup).
    rows: dict[int, str] = {}  # by the row element's id
    for row in reversed(soup.find_all("tr")):
        if isinstance(row, Tag):
            cells = [" ".join(_cell_text(c, rows).split()) for c in row.find_all(["td", "th"], recursive=False)]
            rows[id(row)] = "\n" + " | ".join(cells) + "\n"
    body = _text(soup, rows)
    # Spaces left around removed tags are noise; this also flattens <pre> indentation, a fair price.
    body = tidy(body, collapse_spaces=True)
    if title and body.split("\n", 1)[0].strip() != title:
        body = f"{title}\n\n{body}" if body else title
    return LoadedDocument(name=name, kind="html", sections=[Section(text=body)], title=title)


# The tree is read, never rewritten: rewriting it (each string replaced by its collapsed form, each row by
# its text, "\n\n" inserted around each block) made bs4 walk to the end of a subtree or up to the root for
# each change, and looking up each string's ancestors cost another such walk: HTML nested 4,000 deep took
# seconds. Each walk below uses a stack instead of recursion, which would stop at Python's depth limit.


def _text(root: Tag, rows: dict[int, str]) -> str:
    """The document's text as ``get_text()`` gives it, with whitespace collapsed (except in <pre>), a blank
    line around each block, a line break for each <br> and each table row as its cells (from ``rows``)."""
    from bs4.element import NavigableString, Tag

    types = root.interesting_string_types or Tag.MAIN_CONTENT_STRING_TYPES  # what get_text() would take
    out: list[str] = []
    stack: list[tuple[PageElement | str, bool]] = [(root, False)]  # (element or text to emit, inside <pre>)
    while stack:
        node, pre = stack.pop()
        if type(node) is str:  # a block's closing blank line
            out.append(node)
        elif isinstance(node, Tag):
            if id(node) in rows:
                out.append(rows[id(node)])
                continue
            if node.name == "br":
                out.append("\n")
                continue
            pre = pre or node.name in _PREFORMATTED
            if node.name in _BLOCKS:
                out.append("\n\n")
                stack.append(("\n\n", pre))
            stack.extend((child, pre) for child in reversed(node.contents))
        elif isinstance(node, NavigableString) and type(node) in types:
            # Exact type: subclasses are comments, the doctype, CDATA; HTML collapses whitespace in plain text.
            plain = type(node) is NavigableString and not pre
            out.append(re.sub(r"\s+", " ", node) if plain else str(node))
    return "".join(out)


def _cell_text(cell: Tag, rows: dict[int, str]) -> str:
    """``cell.get_text(" ")``, with the rows of tables inside it as their text (they come first in ``rows``)."""
    from bs4.element import NavigableString, Tag

    types = cell.interesting_string_types or Tag.MAIN_CONTENT_STRING_TYPES
    out: list[str] = []
    stack: list[PageElement] = list(reversed(cell.contents))
    while stack:
        node = stack.pop()
        if isinstance(node, Tag):
            if id(node) in rows:
                out.append(rows[id(node)])
            else:
                stack.extend(reversed(node.contents))
        elif isinstance(node, NavigableString) and type(node) in types:
            out.append(str(node))
    return " ".join(out)
