"""Streamlit glue for checking answers: the sources under an answer (the line that answers first, in the order
the model read them, with the score that ranked them), a source opened where it stands (its PDF page with the
passage highlighted, or its text in context), and feedback on an answer.

Document text is never given to Markdown: passages are shown with st.text, or as HTML whose every character of
the document is escaped (rag/source_view.py, `text_view_html`).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

import streamlit as st

from rag.conversations import ConversationStore, SavedSource, StoredMessage
from rag.engine import Engine
from rag.errors import RagError
from rag.formatting import shorten
from rag.schema import Chunk
from rag.source_view import PageView, Segment, SourceRef, SourceView, TextView, text_view_html
from ui_common import escape_markdown, show_error

OPEN = "source_open"  # session state: (message key, source index) of the source opened in the dialog
PAGE = "source_page"  # session state: the page shown in the dialog (a neighbour of the source's)
_CITATION = re.compile(r"\[(\d{1,3})\]")
LINE_CHARS = 90  # of the line that answers, in a source's one-line summary
SOURCES_CAPTION = "Sources, in the order the model read them; the score is the one that ranked them: {by}."
PARTS_CAPTION = "The parts read, in order, each with what the model noted reading it."


def whole_document(message: StoredMessage) -> bool:
    """Was this answer made by reading whole documents (its sources are the parts read)?"""
    sources = message.sources or []
    return bool(sources) and all(s.rank_score is None and s.score == 0.0 for s in sources)


def summary(index: int, source: SavedSource) -> str:
    """ "[2] “Net income … $ 2,327” · report.pdf · page 8 · ranked 0.83": the line that answers first."""
    parts = [f"[{index}]"]
    if source.line:
        parts.append(f"“{escape_markdown(shorten(' '.join(source.line.split()), LINE_CHARS))}” ·")
    parts.append(escape_markdown(source.source))
    if source.page is not None:
        pages = f"pages {source.page}–{source.last_page}" if source.last_page not in (None, source.page) else ""
        parts.append(f"· {pages or f'page {source.page}'}")
    if source.rank_score is not None:
        parts.append(f"· ranked {source.rank_score:.2f}")
    elif source.score:
        parts.append(f"· similarity {source.score:.2f}")
    return " ".join(parts)


def cited(answer: str, count: int) -> list[int]:
    """The source numbers an answer cites, each once, in the order it first cites them."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= count:
            seen.setdefault(number, None)
    return list(seen)


def render_sources(engine: Engine, message: StoredMessage, key: str) -> None:
    """Under an answer: a button per source it cites, then every source (the line that answers first)."""
    sources = message.sources or []
    if not sources:
        return
    numbers = cited(message.content, len(sources))
    if numbers:
        columns = st.columns(min(len(numbers), 8) + 1, gap="small")
        columns[0].caption("Check what it cites:")
        for column, number in zip(columns[1:], numbers[:8], strict=False):
            if column.button(f"[{number}]", key=f"{key}_cite_{number}", help=f"Open source {number} where it stands"):
                open_source(engine, sources, key, number - 1)
    if whole_document(message):
        st.caption(PARTS_CAPTION)
    else:
        by = next((s.ranked_by for s in sources if s.ranked_by), "") or "cosine similarity with the question"
        st.caption(SOURCES_CAPTION.format(by=by))
    for i, source in enumerate(sources, 1):
        with st.expander(summary(i, source)):
            if source.note:
                st.caption("What the model noted reading this part:")
                st.text(source.note)
            else:
                st.html(passage_html(source))
            if st.button("Open where it stands", key=f"{key}_open_{i}", icon=":material/open_in_new:"):
                open_source(engine, sources, key, i - 1)


def passage_html(source: SavedSource) -> str:
    """The passage as the model read it, its line that answers marked (escaped: see the module docstring)."""
    view = TextView(source.source, source.doc_id, source.page, (), _segments(source.text, source.line))
    return text_view_html(view)


def _segments(text: str, line: str) -> tuple[Segment, ...]:
    start = text.find(line) if line else -1
    if start < 0:
        return (Segment(text, "passage"),)
    parts = (Segment(text[:start], "passage"), Segment(line, "line"), Segment(text[start + len(line) :], "passage"))
    return tuple(p for p in parts if p.text)


def open_source(engine: Engine, sources: Sequence[SavedSource], key: str, index: int) -> None:
    """Source `index` of an answer, opened where it stands in a dialog (its line that answers marked)."""
    source = sources[index]
    st.session_state[OPEN] = (key, index)
    st.session_state[PAGE] = source.page
    # A whole-document part is shown at its first page, unmarked: the model's note says what it found there.
    ref = SourceRef(source.doc_id, source.source, source.page, "" if source.note else source.text, source.position)
    source_dialog(engine, ref, source.line)


def open_chunk(engine: Engine, chunk: Chunk) -> None:
    """A chunk of a document (the Documents page's preview), opened where it stands."""
    st.session_state[OPEN] = ("chunk", chunk.id)
    st.session_state[PAGE] = chunk.page
    source_dialog(engine, SourceRef.of_chunk(chunk), "")


@st.dialog("Source", width="large")
def source_dialog(engine: Engine, ref: SourceRef, line: str) -> None:
    page = st.session_state.get(PAGE) or ref.page
    try:
        with st.spinner("Drawing the page…" if ref.page is not None else "Opening…"):
            view = engine.sources.open(ref, line=line, page=page)
    except RagError as exc:
        show_error(exc)
        st.text(ref.text)
        return
    render_view(view, ref.page)


def render_view(view: SourceView, home_page: int | None = None, key: str = "dialog") -> None:
    """A source where it stands: its page as a picture (neighbours one click away), or its text in context."""
    if isinstance(view, PageView):
        where = f"{escape_markdown(view.name)} · page {view.page} of {view.pages}"
        if view.ocr:
            where += " · a scanned page (its words read by OCR)"
        st.caption(where)
        previous, info, following = st.columns([1, 4, 1])
        previous.button(
            "◀ Page", key=f"{key}_prev", disabled=view.page <= 1, on_click=_turn_page, args=(view.page - 1,)
        )
        following.button(
            "Page ▶", key=f"{key}_next", disabled=view.page >= view.pages, on_click=_turn_page, args=(view.page + 1,)
        )
        if view.found:
            info.caption("The passage is highlighted in yellow; the line that answers in orange.")
        elif home_page is not None and view.page != home_page:
            info.caption(f"The passage is on page {home_page}.")
        if view.note:
            st.info(escape_markdown(view.note))
        st.image(view.png, caption=f"{view.name}, page {view.page}", width="stretch")
        return
    path = " › ".join(view.heading_path)
    st.caption(" · ".join(escape_markdown(p) for p in (view.name, path) if p))
    if view.note:
        st.info(escape_markdown(view.note))
    st.html(text_view_html(view))


def _turn_page(page: int) -> None:
    st.session_state[PAGE] = page


# -- feedback -----------------------------------------------------------------------------------------------

THUMBS = {"up": 1, "down": 0}


def render_feedback(conversations: ConversationStore, conversation_id: str, message: StoredMessage) -> None:
    """Thumbs up or down and an optional comment on an answer, saved with it at once, changeable later."""
    key = f"feedback_{conversation_id}_{message.seq}"
    given = THUMBS.get(message.feedback or "")
    left, right = st.columns([1, 5])
    with left:
        choice = st.feedback("thumbs", key=f"{key}_thumbs", default=given)
    if choice is None and given is not None:  # the thumb clicked again: taken back, with its comment
        conversations.set_feedback(conversation_id, message.seq, None)
        st.rerun()
    if choice is not None and choice != given:
        conversations.set_feedback(
            conversation_id, message.seq, "up" if choice == 1 else "down", message.feedback_comment
        )
        st.rerun()
    if message.feedback is None:
        return
    with right:
        comment = st.text_input(
            "Comment (optional)",
            value=message.feedback_comment or "",
            key=f"{key}_comment",
            placeholder="What was right or wrong?",
            label_visibility="collapsed",
        )
    if comment.strip() != (message.feedback_comment or ""):
        conversations.set_feedback(conversation_id, message.seq, message.feedback, comment)
        st.rerun()
    said = "👍 helpful" if message.feedback == "up" else "👎 not helpful"
    note = f": {html.escape(message.feedback_comment)}" if message.feedback_comment else ""
    st.caption(f"Your feedback: {said}{escape_markdown(note)}")
