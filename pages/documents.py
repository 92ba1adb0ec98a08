"""Documents page: add files, see what the knowledge base holds, preview chunks, delete, test retrieval; its
sources (folders kept in sync, web pages) with "Sync now" and the sync history; export and import; and, when
its index was built by another chunker or embedding model, re-index it in place.

Adding files, re-indexing, syncing, exporting and importing run in the background (ui_jobs.py), one at a time: a
click or another page stops the page's run, not the job; the page, whenever drawn, shows the job's progress under
the upload form, then what it did.

Session state: `documents_job` (the job in the background, or done and not yet shown: its knowledge base is not
the one open), `documents_job_flash` (a finished re-index's message, shown once), `documents_results` (the last
upload's list[IngestResult], shown until the next upload), `documents_upload_stopped` (what a stopped upload left
out), `documents_uploader` (bumped to clear the uploader), `documents_pending_delete` (doc_id awaiting
confirmation), `documents_flash` (a message shown once after a delete), `documents_sync_report` (the last
sync's report), `documents_sources_flash`, `documents_pending_source_removal`, `documents_exported` (the
archive last prepared: name and bytes), `documents_tab` (the tab open).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import streamlit as st

import ui_sources
from rag.archive import ArchiveProgress
from rag.engine import Chunk, DocumentRecord, Engine, IngestResult
from rag.errors import RagError
from rag.formatting import human_size, plural
from rag.kb import check_versions, index_folders
from rag.reindex import ReindexProgress
from rag.sources import Source, SourceStore, SyncReport
from rag.sync import Syncer, SyncProgress
from ui_common import (
    KB_FLASH,
    catalog,
    escape_markdown,
    release_stores,
    require_engine,
    show_error,
    show_unexpected,
    switch_kb,
)
from ui_jobs import ExportJob, ImportJob, Job, ReindexJob, SyncJob, UploadJob

RESULTS = "documents_results"
JOB = "documents_job"
JOB_FLASH = "documents_job_flash"
UPLOAD_STOPPED = "documents_upload_stopped"  # what a stopped upload left out, shown until the next upload
POLL_SECONDS = 0.25
UPLOADER = "documents_uploader"
PENDING_DELETE = "documents_pending_delete"
FLASH = "documents_flash"
PREVIEW_PAGE = 100
SYNC_REPORT = "documents_sync_report"
SOURCES_FLASH = "documents_sources_flash"
PENDING_SOURCE_REMOVAL = "documents_pending_source_removal"
EXPORTED = "documents_exported"
TAB = "documents_tab"
SOURCES_TAB, ARCHIVE_TAB = "Sources and sync", "Export / import"
SYNC_LINES_SHOWN = 50


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


def follow_upload(job: UploadJob, kb: str) -> None:
    """The upload's progress until it is done (a click ends this run, not the upload: the next run shows it
    again), then what went in; the uploader is emptied once every file is in."""
    if not job.done:
        first = escape_markdown(job.names[0])
        st.caption(f"{escape_markdown(job.describe())}…")
        if st.button("Stop adding files", key="stop_upload", icon=":material/stop_circle:"):
            job.stop()
        overall = st.progress(0.0, text=f"File 1 of {len(job.names)}")
        current = st.progress(0.0, text=f"Reading {first}…")
        while not job.done:
            if (p := job.progress) is not None:
                overall.progress(p.overall, text=p.files)
                text = escape_markdown(p.detail)
                if p.fraction == 1.0 and p.last_file_index + 1 < p.file_count:
                    text += f" · reading {escape_markdown(job.names[p.last_file_index + 1])}…"
                current.progress(p.fraction, text=text)
            job.wait(POLL_SECONDS)
        st.rerun()  # the page drawn again as it is when nothing runs (Re-index now no longer greyed), outcome below
    if not shown_here(job, kb):
        return
    st.session_state.pop(JOB, None)
    st.session_state[RESULTS] = job.results
    if job.stopped:
        left = [name for name in job.names if name not in job.added]
        went_in = ", ".join(job.added) if job.added else "none"
        st.session_state[UPLOAD_STOPPED] = (
            f"Stopped. Added before the stop: {escape_markdown(went_in)}. Not added: "
            f"{escape_markdown(', '.join(left))} (a file already in the knowledge base stays as it was). Press "
            "**Add to knowledge base** again to add them: the files already in are skipped."
        )
    elif isinstance(job.error, RagError):
        show_error(job.error)
    elif job.error is not None:  # e.g. sqlite3's "database is locked" while another program writes
        show_unexpected(
            job.error,
            "adding the files",
            "Files reported as indexed below are kept; add the others again in a moment (another program "
            "may be writing to the knowledge base).",
        )
    else:
        st.session_state[UPLOADER] = st.session_state.get(UPLOADER, 0) + 1
        st.rerun()


def shown_here(job: Job[Any, Any], kb: str) -> bool:
    """Whether a finished job's outcome is shown on this page, open on the knowledge base `kb`: only on its own
    knowledge base's (an import makes a new one: anywhere). Elsewhere the page says so, and keeps the job."""
    if isinstance(job, ImportJob) or job.kb == kb:
        return True
    st.info(
        f"{escape_markdown(job.describe())} has ended: choose {escape_markdown(repr(job.kb))} in the sidebar to see "
        "how it went.",
        icon=":material/info:",
    )
    return False


# Per job: the progress bar's text until its first report (today's), the stop button and its help, and what
# the page says once it stopped.
STARTING = {ReindexJob: "Re-indexing…", SyncJob: "Looking at the sources…", ExportJob: "Exporting…",
            ImportJob: "Checking the archive…"}  # fmt: skip
STOP = {
    ReindexJob: ("Stop re-indexing", "The old index keeps answering; Re-index now goes on from where it stopped."),
    SyncJob: ("Stop the sync", "What went in stays in; the file being indexed is taken out again."),
    ExportJob: ("Stop the export", "No archive is made."),
    ImportJob: ("Stop the import", "The knowledge base it was making is deleted."),
}


def stop_note(job: Job[Any, Any]) -> str:
    if isinstance(job, ReindexJob):
        p = job.progress
        how_far = f" ({p.done:,} of {p.total:,} documents are in the new one)" if p is not None else ""
        return (
            f"Re-indexing stopped: the knowledge base keeps answering from its old index{how_far}. Press "
            "**Re-index now** to go on from where it stopped."
        )
    if isinstance(job, SyncJob):
        return (
            "Sync stopped: what went in before the stop stays in (the sync history lists it). Press **Sync now** to "
            "do the rest."
        )
    if isinstance(job, ExportJob):
        return "Export stopped: no archive was made."
    return "Import stopped: nothing was imported."


def progress_text(p: ReindexProgress | SyncProgress | ArchiveProgress) -> str:
    if isinstance(p, ArchiveProgress):
        return f"{p.stage} {p.done:,} of {p.total:,}"
    return escape_markdown(p.describe())


def follow_job(job: Job[Any, Any], kb: str) -> None:
    """A re-index's, sync's, export's or import's progress until it is done (a click ends this run, not the job:
    the next run shows it again), then what it did, said as when the page ran it itself."""
    if not job.done:
        st.caption(f"{escape_markdown(job.describe())}…")
        label, why = STOP[type(job)]
        if st.button(label, key="documents_stop_job", icon=":material/stop_circle:", help=why):
            job.stop()
        bar = st.progress(0.0, text=STARTING[type(job)])
        while not job.done:
            if (p := job.progress) is not None:
                bar.progress(min(1.0, p.fraction), text=progress_text(p))
            job.wait(POLL_SECONDS)
        st.rerun()  # the page drawn again as it is when nothing runs (its buttons no longer greyed), outcome below
    if not shown_here(job, kb):
        return
    st.session_state.pop(JOB, None)
    if job.stopped:
        st.warning(stop_note(job), icon=":material/stop_circle:")
    elif isinstance(job.error, RagError):
        show_error(job.error)
    elif job.error is not None:
        show_unexpected(job.error, "reading the knowledge base", "Try again in a moment, or reload the page.")
    else:
        finished(job)


def finished(job: Job[Any, Any]) -> None:
    """A job done: its outcome where the page has always shown it (the tab it belongs to opened), from a new run."""
    if isinstance(job, ReindexJob) and job.result is not None:
        release_stores(index_folders(job.settings)[:-1])  # the new index serves; the old ones are gone
        st.session_state[JOB_FLASH] = f"Re-indexed: {job.result.summary()}"  # it ends with a full stop
    elif isinstance(job, SyncJob):
        st.session_state[SYNC_REPORT] = job.result
        st.session_state[TAB] = SOURCES_TAB
    elif isinstance(job, ExportJob) and job.result is not None:
        exported = job.result
        st.session_state[EXPORTED] = (job.kb, exported.data, exported.summary.describe().split(" (")[0])
        st.session_state[TAB] = ARCHIVE_TAB
    elif isinstance(job, ImportJob) and job.result is not None:
        summary = job.result
        switch_kb(summary.name)
        st.session_state[KB_FLASH] = (
            f"Imported and opened the knowledge base {summary.name!r}: {plural(summary.documents, 'document')}, "
            f"{plural(summary.chunks, 'chunk')}, nothing embedded again."
        )
    st.rerun()


def running(job: Job[Any, Any] | None) -> bool:
    return job is not None and not job.done


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


# -- the index's versions ------------------------------------------------------------------------------------


def version_notice(engine: Engine, busy: bool) -> None:
    """When the index was built with another chunker, embedding model or chunk settings: say how, and offer to
    re-index in place (the old index answers until the new one is complete; stopped, it goes on next time). The
    re-index runs in the background (followed under the upload form); not while another job runs (`busy`)."""
    check = check_versions(engine.store, engine.settings, engine.embedder.name)
    if not check.outdated:
        return
    reasons = "; ".join(check.reasons())
    st.warning(
        f"This knowledge base was built with another chunker or embedding version: {escape_markdown(reasons)}. "
        "Re-index it to get what this version of the app would build. It keeps answering from the old index until "
        "the new one is complete; stopped, it goes on from where it was the next time.",
        icon=":material/update:",
    )
    if st.button(
        "Re-index now",
        key="documents_reindex",
        icon=":material/autorenew:",
        disabled=busy,
        help="Another job is running (below): re-index when it is done." if busy else None,
    ):
        st.session_state[JOB] = ReindexJob(engine.settings, engine.embedder)


# -- sources: folders kept in sync, web pages ----------------------------------------------------------------


def show_sync_report(report: SyncReport) -> None:
    text = f"Sync of {report.kb}: {report.summary()}"
    (st.warning if report.failures else st.success)(escape_markdown(text), icon=":material/sync:")
    notable = [line for line in report.lines if line.outcome != "unchanged"]
    if notable:
        with st.expander(f"What changed ({plural(len(notable), 'file')})"):
            for line in notable[:SYNC_LINES_SHOWN]:
                st.text(line.describe())
            if len(notable) > SYNC_LINES_SHOWN:
                st.caption(f"… and {len(notable) - SYNC_LINES_SHOWN} more (the sync history keeps them).")


def start(job: Job[Any, Any]) -> None:
    """A job started from a tab: followed under the upload form, from a new run."""
    st.session_state[JOB] = job
    st.rerun()


def sources_section(engine: Engine) -> None:
    settings = engine.settings
    sources = SourceStore(settings.kb_dir)
    try:
        listed = sources.sources()
        if message := st.session_state.pop(SOURCES_FLASH, None):
            st.success(escape_markdown(message), icon=":material/check_circle:")
        if listed:
            st.dataframe(
                [{"#": s.source_id, "Label": s.label, "Kind": s.kind, "Source": s.describe()} for s in listed],
                hide_index=True,
            )
        else:
            st.caption("No sources yet: add a folder (kept in sync with it) or a web page below, then press Sync now.")
        if st.button("Sync now", type="primary", icon=":material/sync:", key="documents_sync", disabled=not listed):
            start(SyncJob(engine))
        if (report := st.session_state.get(SYNC_REPORT)) is not None and report.kb == settings.kb:
            show_sync_report(report)
        if history := sources.history(20):
            with st.expander("Sync history"):
                st.dataframe(
                    [{"Started": local_time(r.started_at), "Status": r.status, "Summary": r.summary} for r in history],
                    hide_index=True,
                )
        add_folder(sources)
        add_web_page(sources)
        if listed:
            remove_source(engine, sources, listed)
    finally:
        sources.close()


def add_folder(sources: SourceStore) -> None:
    with st.form("documents_add_folder", clear_on_submit=True):
        st.markdown("**Add a folder**")
        folder = st.text_input("Folder on this machine", placeholder="e.g. /home/me/Projects/apollo/docs")
        left, right = st.columns(2)
        include = left.text_input("Only these files", placeholder="e.g. *.pdf, reports/**")
        exclude = right.text_input("Not these files", placeholder="e.g. drafts/*, *.tmp")
        label = st.text_input("Name its documents under", placeholder="default: the folder's name")
        if not st.form_submit_button("Add folder"):
            return
    try:
        source = sources.add_folder(Path(folder.strip()), label.strip() or None, _patterns(include), _patterns(exclude))
    except RagError as exc:
        show_error(exc)
        return
    st.session_state[SOURCES_FLASH] = f"Added the {source.describe()}. Press Sync now to index it."
    st.rerun()


def add_web_page(sources: SourceStore) -> None:
    with st.form("documents_add_url", clear_on_submit=True):
        st.markdown("**Add a web page**")
        url = st.text_input("Address", placeholder="https://example.org/handbook/")
        pages = st.number_input(
            "Pages", 1, 500, 1, help="1: this page alone; more: the pages under this address, up to this many."
        )
        if not st.form_submit_button("Add web page"):
            return
    try:
        source = sources.add_web(url.strip(), int(pages))
    except RagError as exc:
        show_error(exc)
        return
    st.session_state[SOURCES_FLASH] = f"Added {source.describe()}. Press Sync now to fetch it."
    st.rerun()


def remove_source(engine: Engine, sources: SourceStore, listed: Sequence[Source]) -> None:
    labels = {str(s.source_id): s.label for s in listed}
    picked = st.selectbox("Source", list(labels), format_func=labels.__getitem__, key="documents_source_pick")
    if st.session_state.get(PENDING_SOURCE_REMOVAL) != picked:
        if st.button("Remove source", key="documents_source_remove"):
            st.session_state[PENDING_SOURCE_REMOVAL] = picked
            st.rerun()
        return
    st.warning(
        f"Remove the source {escape_markdown(labels[picked])} and its documents from this knowledge base? The files "
        "themselves stay where they are.",
        icon=":material/delete:",
    )
    yes, cancel, _ = st.columns([1, 1, 4])
    if cancel.button("Cancel", key="documents_source_cancel"):
        st.session_state.pop(PENDING_SOURCE_REMOVAL, None)
        st.rerun()
    if yes.button("Yes, remove", type="primary", key="documents_source_yes"):
        st.session_state.pop(PENDING_SOURCE_REMOVAL, None)
        source, removed = Syncer(engine.settings, engine.store, engine.ingestor, sources).remove_source(picked)
        st.session_state[SOURCES_FLASH] = f"Removed the source {source.label} and its {plural(removed, 'document')}."
        st.rerun()


def _patterns(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


# -- export and import ---------------------------------------------------------------------------------------


def export_import(engine: Engine) -> None:
    settings = engine.settings
    st.markdown("**Export this knowledge base**")
    st.caption(
        "One file with its documents' chunks and vectors, keyword index, settings and sources (and, if you like, "
        "its conversations), checked on import: nothing is embedded again."
    )
    conversations = st.checkbox("With its conversations", value=True, key="documents_export_conversations")
    if st.button("Prepare the archive", key="documents_export", icon=":material/archive:"):
        start(ExportJob(settings, engine.store, conversations))
    exported = st.session_state.get(EXPORTED)
    if exported is not None and exported[0] == settings.kb:
        name, data, described = exported
        st.caption(f"Ready: {escape_markdown(described)} ({human_size(len(data))}).")
        st.download_button(
            "Download the archive",
            data,
            file_name=f"{_file_name(name)}.zip",
            mime="application/zip",
            icon=":material/download:",
            key="documents_download",
            on_click="ignore",  # the page stays as it is (a rerun would rebuild it for nothing)
        )

    st.markdown("**Import a knowledge base**")
    with st.form("documents_import", clear_on_submit=True):
        upload = st.file_uploader("Archive (.zip, exported by this app)", type=["zip"], key="documents_import_file")
        as_name = st.text_input("Import as", placeholder="default: the name it was exported with")
        with_conversations = st.checkbox("With its conversations", value=True)
        if not st.form_submit_button("Import"):
            return
    if upload is None:
        st.warning("Choose an archive first.")
        return
    archive = upload.getvalue()  # read now: the form lets go of the file after this run
    start(ImportJob(settings.kb, catalog(), upload.name, archive, as_name.strip() or None, with_conversations))


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "knowledge-base"


def guarded(section: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            section()
        except RagError as exc:
            show_error(exc)
        except Exception as exc:
            show_unexpected(exc, "reading the knowledge base", "Try again in a moment, or reload the page.")

    return run


engine = require_engine()
st.title("Documents")
st.caption(
    f"What the assistant knows in the knowledge base {escape_markdown(repr(engine.settings.kb))}: add files or "
    "folders, look inside them, and check what a question retrieves."
)
job: Job[Any, Any] | None = st.session_state.get(JOB)
guarded(lambda: version_notice(engine, running(job)))()
if flash := st.session_state.pop(JOB_FLASH, None):
    st.success(escape_markdown(flash), icon=":material/check_circle:")

with st.form("documents_upload"):
    files = st.file_uploader(
        "Add files",
        type=engine.supported_extensions,
        accept_multiple_files=True,
        key=f"uploader_{st.session_state.get(UPLOADER, 0)}",
        help="Files already indexed are skipped; a changed file with the same name replaces its old version.",
    )
    submitted = st.form_submit_button("Add to knowledge base", type="primary")
job = st.session_state.get(JOB)  # a re-index started above, maybe
if submitted:
    if isinstance(job, UploadJob) and not job.done:
        st.warning("Files are still going in (below): add these when they are done.")
    elif job is not None and not job.done:
        st.warning(f"{escape_markdown(job.describe())} (below): add these files when it is done.")
    elif not files:
        st.warning("Choose one or more files first.")
    else:
        try:
            # Refused before anything is read when over the upload limits; then each file's bytes are taken
            # when its turn comes (getvalue copies them), not the whole batch at once.
            engine.check_upload([f.size for f in files])
        except RagError as exc:
            show_error(exc)
        else:
            job = st.session_state[JOB] = UploadJob(engine, [(f.name, f.getvalue) for f in files])
            st.session_state.pop(RESULTS, None)
            st.session_state.pop(UPLOAD_STOPPED, None)
if isinstance(job, UploadJob):
    follow_upload(job, engine.settings.kb)
elif job is not None:
    follow_job(job, engine.settings.kb)
if stopped_note := st.session_state.get(UPLOAD_STOPPED):
    st.warning(stopped_note, icon=":material/stop_circle:")
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
sections: dict[str, Callable[[], None]] = {}
if documents:
    documents_table(documents)
    by_id = {d.doc_id: d for d in documents}
    sections = {
        "Preview chunks": lambda: preview(engine, by_id),
        "Test retrieval": lambda: search(engine),
        "Delete": lambda: delete(engine, by_id),
    }
else:
    st.info(
        "The knowledge base is empty. Add PDF, Word, Markdown, text, HTML or CSV files, or scans "
        "(PNG, JPEG: read by OCR) above, or a folder or web page under Sources, "
        "then ask about them on the Chat page."
    )
sections[SOURCES_TAB] = lambda: sources_section(engine)
sections[ARCHIVE_TAB] = lambda: export_import(engine)
tabs = st.tabs(list(sections), key=TAB, on_change="rerun")
for tab, section in zip(tabs, sections.values(), strict=True):
    with tab:
        guarded(section)()
