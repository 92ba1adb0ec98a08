"""HTML: visible text, block boundaries as line breaks, table rows as cells, the title first."""

from __future__ import annotations

import re
from warnings import catch_warnings, simplefilter

from rag.loaders.common import tidy
from rag.loaders.text import looks_binary, not_text
from rag.schema import LoadedDocument, Section

_DROP = ["script", "style", "noscript", "template", "head", "svg", "iframe", "object"]
_BLOCKS = [
    "address", "article", "aside", "blockquote", "caption", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
    "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
]  # fmt: skip
_PREFORMATTED = {"pre", "textarea"}


def load_html(data: bytes, name: str) -> LoadedDocument:
    from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
    from bs4.element import NavigableString, Tag

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
    body = tidy(soup.get_text(), collapse_spaces=True)
    if title and body.split("\n", 1)[0].strip() != title:
        body = f"{title}\n\n{body}" if body else title
    return LoadedDocument(name=name, kind="html", sections=[Section(text=body)], title=title)
