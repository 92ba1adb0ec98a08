"""A source opened where it stands: the PDF page (or scan) with the passage highlighted on it, or the passage
inside its surrounding text with its heading path; in both, the line that answers marked.

Used by the chat page (each source under an answer, each [n] it cites), the Documents page (a document at a
page) and `python -m rag show`. A PDF page needs the document's kept file (rag/originals.py); without one
(a document indexed before files were kept) the page's passages are shown as text, saying how to get the page.

Opening a page costs a render, the page's words (PDFium's character boxes; OCR for a scan, seconds) and the
alignment; the viewer keeps recent pages' pictures and words in memory, a scan's OCR words on disk, and the
finished pictures, so a source opened again (or its neighbour pages revisited) comes at once.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from rag.alignment import Located, PageTokens, locate, span_on_page, words_of
from rag.errors import LoaderError, RagError
from rag.formatting import terminal_safe
from rag.originals import Originals
from rag.page_image import (
    Box,
    PageWords,
    highlighted,
    ocr_words,
    pdf_page_count,
    pdf_page_words,
    png_bytes,
    render_pdf_page,
)
from rag.schema import HEADER_SEPARATOR, Chunk

if TYPE_CHECKING:
    from PIL import Image

    from rag.store import Store

logger = logging.getLogger(__name__)

CONTEXT_CHUNKS = 2  # chunks shown before and after a passage in a text view
CONTEXT_CHARS = 1500  # at most this much text on each side of it
PAGE_CACHE = 12  # pages whose picture and words are kept in memory (~6 MB a page)
PICTURE_CACHE = 48  # highlighted pictures kept (PNG, ~100-400 KB each)
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*$")
_PAGE_PART = re.compile(r"^page \d+$")


class SourceNotFound(RagError):
    """The source's document is no longer in the knowledge base."""


@dataclass(frozen=True)
class SourceRef:
    """What a source says of itself: enough to open it (saved with each answer's sources)."""

    doc_id: str  # "" for sources saved before ids were kept: found by name then
    name: str
    page: int | None
    text: str  # the passage as the model was given it
    position: int | None = None  # the chunk's position in its document, when known

    @classmethod
    def of_chunk(cls, chunk: Chunk) -> SourceRef:
        return cls(chunk.doc_id, chunk.source, chunk.page, chunk.text, chunk.position)

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}:{self.position:05d}" if self.position is not None else ""


Mark = Literal["", "passage", "line"]


@dataclass(frozen=True)
class Segment:
    text: str
    mark: Mark = ""


@dataclass(frozen=True)
class PageView:
    """A page as a picture, the passage highlighted on it (when it stands on this page)."""

    name: str
    doc_id: str
    page: int
    pages: int
    png: bytes
    passage_boxes: tuple[Box, ...]  # the highlighted words' boxes, in the picture's pixels
    line_boxes: tuple[Box, ...]  # those of the line that answers
    width: int
    height: int
    found: bool  # the passage was found on this page (False on a neighbour page, or when it was not)
    ocr: bool  # the page is a scan: its words were read by OCR
    note: str = ""
    kind: Literal["page"] = "page"


@dataclass(frozen=True)
class TextView:
    """The passage inside its surrounding text, with the headings above it."""

    name: str
    doc_id: str
    page: int | None
    heading_path: tuple[str, ...]
    segments: tuple[Segment, ...]
    note: str = ""
    kind: Literal["text"] = "text"

    @property
    def plain(self) -> str:
        return "".join(s.text for s in self.segments)


SourceView = PageView | TextView

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass
class _Page:
    picture: Image.Image
    words: PageWords
    tokens: PageTokens
    pages: int
    alignments: dict[str, Located] = field(default_factory=dict)


class SourceViewer:
    """Opens sources; safe to share between sessions (one per knowledge base)."""

    def __init__(self, store: Store, originals: Originals, cache_dir: Path | None = None) -> None:
        self.store = store
        self.originals = originals
        self.cache_dir = cache_dir
        self._pages: _Lru[tuple[str, int], _Page] = _Lru(PAGE_CACHE)
        self._pictures: _Lru[tuple[str, int, str, str], PageView] = _Lru(PICTURE_CACHE)
        self._page_locks: dict[tuple[str, int], threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # -- what a caller asks -----------------------------------------------------------------------------

    def open(self, ref: SourceRef, line: str = "", page: int | None = None) -> SourceView:
        """The source where it stands: its page (or `page`, a neighbour) as a picture for a PDF or scan, else
        the passage in its surrounding text. `line`: the line that answers, inside the passage, marked."""
        record = self._record(ref)
        ref = SourceRef(record.doc_id, record.name, ref.page, ref.text, ref.position)
        if record.kind in ("pdf", "image"):
            data = self.originals.read(record.doc_id)
            if data is not None:
                try:
                    return self._page_view(ref, record.kind, data, page or ref.page or 1, line)
                except LoaderError as exc:  # the kept file is damaged: the text still shows the passage
                    logger.warning("%s: page view failed (%s): shown as text", record.name, exc)
                    return self._text_view(ref, line, note=f"The page could not be drawn ({exc}); shown as text.")
            return self._text_view(
                ref,
                line,
                note=f"The page picture needs the file itself, which was not kept when {record.name} was added: add "
                "the same file again on the Documents page (it is not indexed again) to see its pages.",
            )
        return self._text_view(ref, line)

    def page_count(self, doc_id: str) -> int | None:
        """Pages of a document whose pictures can be shown (None: none can, it has no kept PDF or image)."""
        record = self.store.find(doc_id)
        if record is None or record.kind not in ("pdf", "image"):
            return None
        data = self.originals.read(doc_id)
        if data is None:
            return None
        return pdf_page_count(data) if record.kind == "pdf" else 1

    def text(self, ref: SourceRef, line: str = "") -> TextView:
        """The passage in its surrounding text, whatever the document's kind (a PDF's page as text)."""
        record = self._record(ref)
        return self._text_view(SourceRef(record.doc_id, record.name, ref.page, ref.text, ref.position), line)

    def document_page(self, doc_id: str, page: int) -> PageView:
        """A page of a document with no passage marked (the Documents page's preview)."""
        record = self.store.find(doc_id)
        if record is None:
            raise SourceNotFound(f"Document {doc_id} is no longer in the knowledge base: it was deleted.")
        data = self.originals.read(doc_id)
        if data is None or record.kind not in ("pdf", "image"):
            raise SourceNotFound(f"{record.name} has no page pictures: add the file again to keep it.")
        return self._page_view(SourceRef(doc_id, record.name, page, ""), record.kind, data, page, "")

    # -- pages --------------------------------------------------------------------------------------------

    def _page_view(self, ref: SourceRef, kind: str, data: bytes, page: int, line: str) -> PageView:
        key = (ref.doc_id, page, _digest(ref.text if page == ref.page else ""), _digest(line))
        cached = self._pictures.get(key)
        if cached is not None:
            return cached
        loaded = self._page(ref.doc_id, kind, data, page)
        passage_boxes: list[Box] = []
        line_boxes: list[Box] = []
        found = False
        note = ""
        if ref.text and page == ref.page:
            located = loaded.alignments.get(ref.text)
            if located is None:
                located = loaded.alignments.setdefault(ref.text, locate(ref.text, loaded.tokens))
            found = located.found
            if found:
                passage_boxes = [loaded.words.boxes[i] for i in words_of(loaded.tokens, located.page_tokens)]
                start = ref.text.find(line) if line else -1
                if start >= 0:
                    on_page = span_on_page(located, ref.text, start, start + len(line))
                    line_boxes = [loaded.words.boxes[i] for i in words_of(loaded.tokens, on_page)]
            else:
                note = "The passage could not be found word for word on this page; the page is shown as it is."
        picture = highlighted(loaded.picture, passage_boxes, line_boxes) if passage_boxes else loaded.picture
        view = PageView(
            name=ref.name,
            doc_id=ref.doc_id,
            page=page,
            pages=loaded.pages,
            png=png_bytes(picture),
            passage_boxes=tuple(passage_boxes),
            line_boxes=tuple(line_boxes),
            width=loaded.words.width,
            height=loaded.words.height,
            found=found,
            ocr=loaded.words.ocr,
            note=note,
        )
        return self._pictures.put(key, view)

    def _page(self, doc_id: str, kind: str, data: bytes, page: int) -> _Page:
        """The page's picture and words, made once (two sessions opening one page wait for one render)."""
        key = (doc_id, page)
        with self._locks_lock:
            lock = self._page_locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._pages.get(key)
            if cached is not None:
                return cached
            if kind == "image":
                picture, pages = _decoded_image(data, doc_id), 1
                if page != 1:
                    raise LoaderError(f"This picture has one page, not {page}.")
                words = self._ocr_words(doc_id, page, picture)
            else:
                pages = pdf_page_count(data)
                picture = render_pdf_page(data, page)
                text_words = pdf_page_words(data, page)
                words = text_words if text_words is not None else self._ocr_words(doc_id, page, picture)
            return self._pages.put(key, _Page(picture, words, PageTokens.of(words.words), pages))

    def _ocr_words(self, doc_id: str, page: int, picture: Image.Image) -> PageWords:
        """A scanned page's words by OCR (seconds): kept on disk, read once per page."""
        path = self.cache_dir / "ocr" / f"{doc_id}-{page}.json" if self.cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                return PageWords(
                    tuple(raw["words"]), tuple(Box(*b) for b in raw["boxes"]), raw["width"], raw["height"], ocr=True
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.info("OCR cache %s unreadable (%s): reading the page again", path, exc)
        words = ocr_words(picture)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                payload = {**asdict(words), "boxes": [list(asdict(b).values()) for b in words.boxes]}
                path.write_text(json.dumps(payload), encoding="utf-8")
            except OSError as exc:
                logger.info("OCR words of %s page %d not cached (%s)", doc_id, page, exc)
        return words

    # -- text ---------------------------------------------------------------------------------------------

    def _text_view(self, ref: SourceRef, line: str, note: str = "") -> TextView:
        chunks = self.store.chunks_of(ref.doc_id)
        index = _passage_index(chunks, ref)
        if index is None:  # the document changed since (a new version under the same name)
            return TextView(ref.name, ref.doc_id, ref.page, (), tuple(_marked(ref.text, line)), note)
        chunk = chunks[index]
        same_page = [c for c in chunks if c.page == chunk.page] if chunk.page is not None else chunks
        local = same_page.index(chunk)
        before = same_page[max(0, local - CONTEXT_CHUNKS) : local]
        after = same_page[local + 1 : local + 1 + CONTEXT_CHUNKS]
        before_text = _tail(_stitch([c.text for c in before] + [chunk.text])[: -len(chunk.text)], CONTEXT_CHARS)
        after_text = _head(_stitch([chunk.text] + [c.text for c in after])[len(chunk.text) :], CONTEXT_CHARS)
        segments = [Segment(before_text)] if before_text else []
        segments += _marked(chunk.text, line)
        if after_text:
            segments.append(Segment(after_text))
        path = _heading_path(chunks[: index + 1], chunk, self._title(ref.doc_id))
        return TextView(ref.name, ref.doc_id, chunk.page, path, tuple(segments), note)

    def _record(self, ref: SourceRef) -> _Record:
        record = self.store.find(ref.doc_id) if ref.doc_id else None
        if record is None:
            record = self.store.find(ref.name)  # an older source, or a newer version of the same file
        if record is None:
            raise SourceNotFound(
                f"{ref.name} is no longer in the knowledge base (deleted since): the passage the answer used is "
                "still shown with the answer."
            )
        return _Record(record.doc_id, record.name, record.kind)

    def _title(self, doc_id: str) -> str:
        record = self.store.find(doc_id)
        return record.title if record is not None else ""


@dataclass(frozen=True)
class _Record:
    doc_id: str
    name: str
    kind: str


def _decoded_image(data: bytes, doc_id: str) -> Image.Image:
    # The loader's own decoding (orientation, size limit, transparency), so OCR reads what it read at ingestion.
    from rag.loaders.image import _decode

    return _decode(data, doc_id)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest() if text else ""


def _passage_index(chunks: Sequence[Chunk], ref: SourceRef) -> int | None:
    if ref.position is not None:
        for i, c in enumerate(chunks):
            if c.position == ref.position and c.text == ref.text:
                return i
    for i, c in enumerate(chunks):
        if c.text == ref.text and (ref.page is None or c.page == ref.page):
            return i
    return None


def _marked(passage: str, line: str) -> list[Segment]:
    start = passage.find(line) if line else -1
    if start < 0:
        return [Segment(passage, "passage")]
    parts = [
        Segment(passage[:start], "passage"),
        Segment(line, "line"),
        Segment(passage[start + len(line) :], "passage"),
    ]
    return [p for p in parts if p.text]


def _stitch(texts: Sequence[str]) -> str:
    """Consecutive chunks as one text: the overlap a chunk shares with the one before it is not repeated."""
    out = ""
    for text in texts:
        if not out:
            out = text
            continue
        out += text[_overlap(out, text) :] if _overlap(out, text) else "\n\n" + text
    return out


def _overlap(before: str, after: str) -> int:
    """The length of the longest start of `after` that `before` ends with (at least 12 characters)."""
    probe = after[:12]
    if len(probe) < 12:
        return 0
    at = before.find(probe, max(0, len(before) - 4000))
    best = 0
    while at >= 0:
        size = len(before) - at
        if after.startswith(before[at:]) and size > best:
            best = size
            break  # the first (leftmost) occurrence is the longest overlap
        at = before.find(probe, at + 1)
    return best


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    space = cut.find(" ")
    return "…" + (cut[space:] if 0 <= space < 40 else cut)


def _head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit - 40 else cut) + "…"


def _heading_path(chunks: Sequence[Chunk], passage: Chunk, title: str) -> tuple[str, ...]:
    """The headings above the passage, outermost first: Markdown headings (Markdown and Word files are read
    so) in the text up to it, else the heading its chunk's header names."""
    levels: dict[int, str] = {}
    for chunk in chunks:
        lines = chunk.text.split("\n")
        if chunk is passage:  # its own heading lines count only where they open it
            lines = lines[
                : next((i for i, ln in enumerate(lines) if ln.strip() and not _MARKDOWN_HEADING.match(ln)), 0)
            ]
        for text in lines:
            match = _MARKDOWN_HEADING.match(text.strip())
            if match:
                level = len(match.group(1))
                levels = {k: v for k, v in levels.items() if k < level}
                levels[level] = match.group(2)
    if levels:
        return tuple(levels[k] for k in sorted(levels))
    parts = [p for p in passage.header.split(HEADER_SEPARATOR) if p]
    named = [p for p in parts if p != passage.source and p != title and not _PAGE_PART.match(p)]
    return tuple(named[-1:])


def text_view_html(view: TextView) -> str:
    """The text view as HTML for the page: every character of the document escaped, the passage and the line
    that answers in <mark> elements, line breaks kept. Nothing of the document becomes markup or a link."""
    styles = {
        "": "",
        "passage": ' style="background:#fff3b0;padding:0 1px"',
        "line": ' style="background:#ffb86b;padding:0 1px;border-bottom:2px solid #dc3c00"',
    }
    parts = []
    for segment in view.segments:
        escaped = html.escape(segment.text, quote=True)
        parts.append(
            f'<mark data-mark="{segment.mark}"{styles[segment.mark]}>{escaped}</mark>' if segment.mark else escaped
        )
    return (
        '<div class="source-text" style="white-space:pre-wrap;font-family:inherit;line-height:1.5;max-height:32em;'
        'overflow-y:auto">' + "".join(parts) + "</div>"
    )


def text_view_terminal(view: TextView, ansi: bool) -> str:
    """The text view for a terminal: the passage between »» and «« (in reverse video too, on a terminal that
    shows it), the line that answers between [[ and ]] (underlined too). The document's own control characters
    are shown escaped, never sent to the terminal."""
    out = []
    inside = False
    for segment in view.segments:
        if segment.mark and not inside:
            out.append("»» ")
        elif not segment.mark and inside:
            out.append(" ««")
        inside = bool(segment.mark)
        text = "\n".join(terminal_safe(line) for line in segment.text.split("\n"))
        if segment.mark == "line":
            text = f"[[{text}]]"
        if ansi and segment.mark:
            text = ("\x1b[7;4m" if segment.mark == "line" else "\x1b[7m") + text + "\x1b[0m"
        out.append(text)
    if inside:
        out.append(" ««")
    return "".join(out)
