"""Documents page: add files, see what the knowledge base holds, preview chunks, delete, test retrieval.

Session state: `documents_results` (the last upload's list[IngestResult], shown until the next upload),
`documents_uploader` (bumped to clear the uploader), `documents_pending_delete` (doc_id awaiting
confirmation), `documents_flash` (a message shown once after a delete).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import streamlit as st

import ui_sources
from rag.engine import Chunk, DocumentRecord, Engine, IngestProgress, IngestResult, Reader
from rag.errors import RagError
from rag.formatting import human_size, plural
from ui_common import escape_markdown, require_engine, show_error, show_unexpected

RESULTS = "documents_results"
UPLOADER = "documents_uploader"
PENDING_DELETE = "documents_pending_delete"
FLASH = "documents_flash"
PREVIEW_PAGE = 100


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def ingest(engine: Engine, uploads: Sequence[tuple[str, Reader]]) -> list[IngestResult]:
    overall = st.progress(0.0, text=f"File 1 of {len(uploads)}")
    current = st.progress(0.0, text=f"Reading {escape_markdown(uploads[0][0])}…")

    def update(p: IngestProgress) -> None:
        overall.progress(p.overall, text=p.files)
        text = escape_markdown(p.detail)
        if p.fraction == 1.0 and p.last_file_index + 1 < p.file_count:
            text += f" · reading {escape_markdown(uploads[p.last_file_index + 1][0])}…"
        current.progress(p.fraction, text=text)

    return engine.ingest_uploads(uploads, update)


def show_result(r: IngestResult) -> None:
    name = escape_markdown(r.name)
    note = f" (note: {escape_markdown(r.message)})" if r.message else ""
    if r.status == "added":
        st.success(f"{name}: indexed, {plural(r.chunks, 'chunk')} added{note}", icon=":material/check_circle:")
    elif r.status == "replaced":
        st.success(
            f"{name}: changed, re-indexed: old version replaced, {plural(r.chunks, 'chunk')} added{note}",
            icon=":material/check_circle:",
        )
    elif r.status == "unchanged":
        st.info(f"{name}: unchanged, already indexed ({plural(r.chunks, 'chunk')})", icon=":material/redo:")
    elif r.status == "duplicate":
        st.info(f"{name}: {escape_markdown(r.message)}", icon=":material/redo:")
    else:
        message = r.message if r.message.startswith(r.name) else f"{r.name}: {r.message}"
        st.error(escape_markdown(message), icon=":material/error:")


def documents_table(docs: Sequence[DocumentRecord]) -> None:
    rows = [
        {
            "Name": d.name,
            "Type": d.kind,
            "Pages": "—" if d.pages is None else str(d.pages),
            "Chunks": d.chunks,
            "Size": human_size(d.size_bytes),
            "Ingested": local_time(d.ingested_at),
        }
        for d in docs
    ]
    st.dataframe(rows, hide_index=True)


def chunk_label(chunk: Chunk, total: int) -> str:
    page = "" if chunk.page is None else f" · page {chunk.page}"
    return f"Chunk {chunk.position + 1} of {total}{page}"


def preview(engine: Engine, docs: dict[str, DocumentRecord]) -> None:
    doc_id = st.selectbox("Document", list(docs), format_func=lambda d: docs[d].name, key="documents_preview_pick")
    chunks = engine.preview(doc_id)
    st.caption(f"{plural(len(chunks), 'chunk')}: the exact text that is embedded and given to the model.")
    start = 0
    if len(chunks) > PREVIEW_PAGE:
        start = int(st.number_input("From chunk", 1, len(chunks), 1, step=PREVIEW_PAGE, key="documents_preview_from"))
        start -= 1
    shown = chunks[start : start + PREVIEW_PAGE]
    with st.container(height=560 if len(shown) > 2 else "content", border=True):
        for chunk in shown:
            label, button = st.columns([5, 2], vertical_alignment="center")
            label.caption(chunk_label(chunk, len(chunks)))
            where = "On its page" if chunk.page is not None else "In its text"
            if button.button(where, key=f"documents_where_{chunk.id}", icon=":material/open_in_new:"):
                ui_sources.open_chunk(engine, chunk)  # the same view as a source under an answer
            st.text(chunk.text)


def score_text(score: float, threshold: float) -> str:
    """Two decimals, unless rounding would hide that a score is below the threshold (0.1996 vs 0.20)."""
    if score < threshold <= round(score, 2):
        return f"score {score:.4f}"
    return f"score {score:.2f}"


def search(engine: Engine) -> None:
    query = st.text_input(
        "Test retrieval",
        placeholder="Type a question to see which passages retrieval returns",
        key="documents_search",
    )
    if not query.strip():
        return
    check = engine.check_retrieval(query)
    settings = engine.settings
    st.caption(
        f"The {plural(len(check.hits), 'best passage')}, by meaning and by keyword (top-k {settings.top_k}); "
        f"scores are cosine similarity. The model is given those scoring at least {settings.min_score:.2f} "
        f"or holding half of the question's words, within {settings.context_chars:,} characters."
    )
    if check.hits and not check.selected:
        st.info("None is relevant enough: a chat question like this is answered that your documents do not cover it.")
    with st.expander("What each stage of retrieval did"):
        names = {d.doc_id: d.name for d in engine.documents()}
        rows = [
            {"stage": s.stage, "ms": s.milliseconds, "what it did": s.note, "its best passages are from": s.documents}
            for s in check.summaries(names, settings.top_k)
        ]
        st.dataframe(rows, hide_index=True)  # cells are shown as text: a file name cannot inject Markdown
    given = {hit.chunk.id for hit in check.selected}
    for rank, hit in enumerate(check.hits, 1):
        page = "" if hit.chunk.page is None else f" · page {hit.chunk.page}"
        status = "given to the model" if hit.chunk.id in given else "not given to the model"
        with st.container(border=True):
            st.markdown(
                f"**{rank}. {escape_markdown(hit.chunk.source)}**{page} · "
                f"{score_text(hit.score, settings.min_score)} · {status}"
            )
            st.text(hit.chunk.text)


def delete(engine: Engine, docs: dict[str, DocumentRecord]) -> None:
    doc_id = st.selectbox("Document", list(docs), format_func=lambda d: docs[d].name, key="documents_delete_pick")
    if st.session_state.get(PENDING_DELETE) != doc_id:
        st.session_state.pop(PENDING_DELETE, None)
        st.button("Delete", key="documents_delete", on_click=st.session_state.update, args=({PENDING_DELETE: doc_id},))
        return
    doc = docs[doc_id]
    st.warning(f"Delete {escape_markdown(doc.name)} and its {plural(doc.chunks, 'chunk')}?", icon=":material/delete:")
    yes, cancel, _ = st.columns([1, 1, 4])
    cancel.button("Cancel", key="documents_delete_cancel", on_click=st.session_state.pop, args=(PENDING_DELETE, None))
    if yes.button("Yes, delete", type="primary", key="documents_delete_yes"):
        st.session_state.pop(PENDING_DELETE, None)
        engine.delete(doc_id)
        st.session_state[FLASH] = f"Deleted {doc.name} and its {plural(doc.chunks, 'chunk')}."
        st.rerun()


engine = require_engine()
st.title("Documents")
st.caption("What the assistant knows: add files, look inside them, and check what a question retrieves.")

with st.form("documents_upload"):
    files = st.file_uploader(
        "Add files",
        type=engine.supported_extensions,
        accept_multiple_files=True,
        key=f"uploader_{st.session_state.get(UPLOADER, 0)}",
        help="Files already indexed are skipped; a changed file with the same name replaces its old version.",
    )
    submitted = st.form_submit_button("Add to knowledge base", type="primary")
if submitted:
    if not files:
        st.warning("Choose one or more files first.")
    else:
        try:
            # Refused before anything is read when over the upload limits; then each file's bytes are taken
            # when its turn comes (getvalue copies them), not the whole batch at once.
            engine.check_upload([f.size for f in files])
            st.session_state[RESULTS] = ingest(engine, [(f.name, f.getvalue) for f in files])
        except RagError as exc:
            show_error(exc)
        except Exception as exc:  # e.g. sqlite3's "database is locked" while another program writes
            show_unexpected(
                exc,
                "adding the files",
                "Files reported as indexed above are kept; add the others again in a moment (another program "
                "may be writing to the knowledge base).",
            )
        else:
            st.session_state[UPLOADER] = st.session_state.get(UPLOADER, 0) + 1
            st.rerun()
for result in st.session_state.get(RESULTS, []):
    show_result(result)

st.subheader("In the knowledge base")
if message := st.session_state.pop(FLASH, None):
    st.success(escape_markdown(message), icon=":material/delete:")
try:
    documents = engine.documents()
except RagError as exc:
    show_error(exc)
    st.stop()
if not documents:
    st.info(
        "The knowledge base is empty. Add PDF, Word, Markdown, text, HTML or CSV files, or scans "
        "(PNG, JPEG: read by OCR) above, "
        "then ask about them on the Chat page."
    )
    st.stop()
documents_table(documents)
by_id = {d.doc_id: d for d in documents}
sections: dict[str, Callable[[], None]] = {
    "Preview chunks": lambda: preview(engine, by_id),
    "Test retrieval": lambda: search(engine),
    "Delete": lambda: delete(engine, by_id),
}
tabs = st.tabs(list(sections), key="documents_tab", on_change="rerun")
for tab, section in zip(tabs, sections.values(), strict=True):
    with tab:
        try:
            section()
        except RagError as exc:
            show_error(exc)
        except Exception as exc:
            show_unexpected(exc, "reading the knowledge base", "Try again in a moment, or reload the page.")
