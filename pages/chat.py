"""Chat page: ask questions about your documents; answers stream in with numbered, checkable sources.

Conversations are saved (SQLite in the data folder): the sidebar lists them to reopen, rename, export or
delete. Each browser tab has its own current conversation in `st.session_state`. A conversation can be limited
to some documents ("Search only these documents") and have them read whole ("Read the chosen documents whole");
both are saved with it. A turn runs in rag/turn.py; this page shows it as it streams.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import streamlit as st

import ui_sources
from rag.conversations import (
    Conversation,
    ConversationNotFound,
    ConversationStore,
    SelectedDocument,
    StoredMessage,
    resolve_doc_filter,
)
from rag.engine import Engine
from rag.errors import RagError
from rag.exports import conversation_json, conversation_markdown, export_file_name
from rag.formatting import plural, safe_markdown
from rag.turn import Chat, Turn, asks_for_whole_document, whole_document_plan
from ui_common import escape_markdown, render_markdown, require_engine, show_error, show_unexpected

logger = logging.getLogger(__name__)

# The documents chosen before the first question creates the conversation (then saved with it).
NEW_FILTER = "new_conversation_doc_filter"
NEW_FILTER_WIDGET = "doc_filter_new"
# The whole-document switch before the first question (then saved with the conversation), and one that failed to save.
NEW_WHOLE_WIDGET = "whole_new"
WHOLE_NOT_SAVED = "whole_document_not_saved"
# Saved as the error of an answer cut off by a rerun (a click elsewhere, a new question, a reload).
STOPPED = "it stopped when the page was used before the answer finished; what had arrived is kept above."
WHOLE_STOPPED = "stopped before every part was read; what the parts read so far found is kept above."
# The answer this tab streams (`AnswerInFlight`). At a click, Streamlit starts the new run at once
# (runner.fastReruns) while the run that streams learns of the click only at its next piece, then saves what
# arrived; a run that read or added to that conversation before would show it without the answer, or put a
# new question before it. So the new run saves the stopped answer itself first (`Turn.save_stopped`).
ANSWER_IN_FLIGHT = "answer_in_flight"
# A stopped run whose turn had not started yet ends at its next call to the page; this bounds the wait for it.
STOPPED_SAVE_WAIT_SECONDS = 300


@dataclass
class AnswerInFlight:
    """An answer this tab streams: the conversation it goes to (None until the turn has made it), its turn (None
    until made), and an event set once the turn is saved, whatever ended it."""

    conversation_id: str | None = None
    saved: threading.Event = field(default_factory=threading.Event)
    turn: Turn | None = None


def render_usage(message: StoredMessage) -> None:
    u = message.usage
    if u is None:
        return
    if u.backend == "none":
        st.caption("No passage of your documents matched, so the model was not asked.")
        return
    parts = [f"{u.backend or '?'} · {escape_markdown(u.model or '?')}"]
    if u.prompt_tokens is not None:
        parts.append(f"{u.prompt_tokens:,} prompt tokens")
    if u.completion_tokens is not None:
        parts.append(f"{u.completion_tokens:,} answer tokens")
    if u.time_to_first_token is not None:
        parts.append(f"first token after {u.time_to_first_token:.1f} s")
    if u.tokens_per_second:
        parts.append(f"{u.tokens_per_second:.1f} tokens/s")
    st.caption(" · ".join(parts))


def render_inspector(message: StoredMessage) -> None:
    """The exact prompt that was sent and how the context window was spent."""
    if not message.prompt or not message.budget:
        return
    b = message.budget
    with st.expander("Prompt sent to the model"):
        rows = [{"part": part, "tokens": getattr(b, part)} for part in b.PARTS]
        rows.append({"part": "reserved for the answer", "tokens": b.reserved})
        st.dataframe(rows, hide_index=True)
        st.caption(
            f"{b.prompt:,} prompt tokens + {b.reserved:,} reserved of a {b.window:,}-token window; "
            f"{b.history_dropped} older messages left out"
        )
        st.code(message.prompt, language=None, wrap_lines=True)


def render_answer(engine: Engine, conversation_id: str, message: StoredMessage, question: str, last: bool) -> None:
    if message.content:
        render_markdown(message.content)  # no image loaded, no link: a planted instruction cannot leak the chat
    if message.standalone_query and message.standalone_query != question:
        st.caption(f"searched for: {escape_markdown(message.standalone_query)}")
    if message.searched_only:
        read = "read whole" if ui_sources.whole_document(message) else "searched only"
        st.caption(f"{read}: {escape_markdown(', '.join(message.searched_only))}")
    ui_sources.render_sources(engine, message, f"m_{conversation_id}_{message.seq}")
    if message.error is not None:
        st.error(f"The answer was interrupted: {safe_markdown(message.error)}", icon=":material/error:")
        if last and st.button("Retry", icon=":material/refresh:", key="retry"):
            st.session_state.pending = question
            st.rerun()
    else:
        render_usage(message)
        render_inspector(message)
    if last and message.searched_only and not ui_sources.whole_document(message):
        suggest_whole_document(question)
    ui_sources.render_feedback(engine.conversations, conversation_id, message)


def suggest_whole_document(question: str) -> None:
    """A question about all of a chosen document (a summary, every item, a count): offer to read it whole."""
    if not asks_for_whole_document(question):
        return
    st.info(
        "This asks about the whole of the chosen documents, which the best few passages cannot cover. Reading "
        "them whole goes through every part in order (it takes longer: you are told how long before it starts).",
        icon=":material/menu_book:",
    )
    if st.button("Answer from the whole documents", key="suggest_whole", icon=":material/menu_book:"):
        st.session_state.pending = question
        st.session_state.pending_whole = True
        st.rerun()


def render_conversation(engine: Engine, conversation: Conversation) -> None:
    if conversation.summary:
        with st.expander("Earlier in this conversation", icon=":material/summarize:"):
            st.text(conversation.summary)
    messages = conversation.messages
    for i, message in enumerate(messages):
        if message.role == "user":
            with st.chat_message("user"):
                st.text(message.content)
            continue
        question = messages[i - 1].content if i and messages[i - 1].role == "user" else ""
        with st.chat_message("assistant"):
            render_answer(engine, conversation.id, message, question, last=i == len(messages) - 1)


def forget_new_filter() -> None:
    """A new conversation starts searching every document."""
    st.session_state.pop(NEW_FILTER, None)
    st.session_state.pop(NEW_FILTER_WIDGET, None)
    st.session_state.pop(f"{NEW_FILTER_WIDGET}_saved", None)
    st.session_state.pop(NEW_WHOLE_WIDGET, None)


def document_filter(engine: Engine, conversation: Conversation | None) -> list[SelectedDocument]:
    """The "Search only these documents" selector; returns the selection (empty: search every document).

    The selection belongs to the conversation: saved as soon as it changes, restored when it is reopened.
    A selected document deleted since is dropped, with a note, rather than silently searched around.
    """
    documents = engine.documents()
    saved = conversation.doc_filter if conversation is not None else st.session_state.get(NEW_FILTER, [])
    kept, gone = resolve_doc_filter(saved, documents)
    if gone:
        names = escape_markdown(", ".join(d.name for d in gone))
        st.info(
            f"No longer in your knowledge base, so dropped from the documents this conversation searches: {names}",
            icon=":material/info:",
        )
    names_by_id = {d.doc_id: d.name for d in documents}
    key = NEW_FILTER_WIDGET if conversation is None else f"doc_filter_{conversation.id}"
    # What this tab last read from (or saved to) the conversation: when the saved choice differs from it, another
    # tab changed it, and this tab shows that choice rather than saving its own stale one over it.
    last_saved = f"{key}_saved"
    saved_ids = [d.doc_id for d in kept]
    shown = st.session_state.get(key)
    changed_elsewhere = st.session_state.get(last_saved, saved_ids) != saved_ids
    if shown is None or changed_elsewhere or any(doc_id not in names_by_id for doc_id in shown):
        st.session_state[key] = saved_ids  # first shown, changed in another tab, or a document went
    if not documents:
        chosen: list[str] = []
    else:
        chosen = st.multiselect(
            "Search only these documents",
            list(names_by_id),
            format_func=names_by_id.__getitem__,
            key=key,
            placeholder="All documents",
            help="Leave empty to search every document. The choice is saved with this conversation.",
        )
    selection = [SelectedDocument(doc_id, names_by_id[doc_id]) for doc_id in chosen]
    st.session_state[last_saved] = list(chosen)
    if selection != saved:
        if conversation is None:
            st.session_state[NEW_FILTER] = selection
        else:
            engine.conversations.set_doc_filter(conversation.id, selection)
    return selection


def answer(engine: Engine, question: str, selection: list[SelectedDocument], whole: bool = False) -> None:
    """One turn, run and saved by rag/turn.py; this page only shows it as it streams.

    Whatever ends the stream early (a backend failure, an unexpected error, or Streamlit's rerun, raised
    inside the loop when the person clicks anything while the answer streams), the turn saves the
    question and the part of the answer that arrived, with the reason. A whole-document turn says first how
    many model calls it takes and about how long, shows "part 12 of 40" as it reads, and, stopped, keeps
    what the parts read so far found.
    """
    conversation_id = st.session_state.get("conversation_id")
    stopped = WHOLE_STOPPED if whole else STOPPED
    in_flight = AnswerInFlight(conversation_id)
    st.session_state[ANSWER_IN_FLIGHT] = in_flight
    try:
        # A new conversation is saved with `whole`: it goes on reading the chosen documents whole.
        with Chat(engine, "app").ask(
            question, conversation_id, selection, stopped=stopped, whole_document=whole
        ) as turn:
            in_flight.conversation_id, in_flight.turn = turn.conversation_id, turn
            show_turn(turn, question, whole)
    finally:
        in_flight.saved.set()
    st.rerun()


def wait_for_stopped_answer(conversation_id: str | None) -> None:
    """An answer to this conversation that this tab streamed, stopped by the click that started this run: its
    save comes before the conversation is read (another conversation, or a new one, does not wait). Saved from
    here at once when its question is (the stopped run learns of the click only at the model's next piece);
    else its turn had not started, and the stopped run ends at its next call to the page."""
    in_flight: AnswerInFlight | None = st.session_state.get(ANSWER_IN_FLIGHT)
    if in_flight is None or in_flight.saved.is_set() or conversation_id is None:
        return
    if in_flight.conversation_id in (conversation_id, None):  # None: its turn had not made the conversation yet
        if in_flight.turn is not None and in_flight.turn.save_stopped():
            return
        with st.spinner("Saving the answer that was stopped…"):
            in_flight.saved.wait(STOPPED_SAVE_WAIT_SECONDS)


def show_turn(turn: Turn, question: str, whole: bool) -> None:
    """The question and its answer as it streams."""
    st.session_state.conversation_id = turn.conversation_id
    st.session_state.pop(NEW_FILTER, None)  # now saved with the conversation
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        progress = None
        if whole:
            with st.spinner("Measuring the model's speed…"):
                plan = turn.make_plan()
            names = escape_markdown(", ".join(d.name for d in turn.documents))
            st.caption(f"Reading the whole of {names}: {plan.describe()}.")
            st.button("Stop (keep what is read)", key="stop_whole", icon=":material/stop_circle:")
            progress = st.progress(0.0, text=f"part 0 of {len(plan.parts)}")
        placeholder = st.empty()
        placeholder.markdown("_Thinking…_" if not whole else "_Reading…_")
        for _piece in turn:  # the turn keeps the text so far in turn.text
            step = turn.progress
            if progress is not None and step is not None:
                progress.progress(min(step.done / max(step.total, 1), 1.0), text=step.describe())
                if step.note is not None and not turn.text:
                    with placeholder.container():
                        st.caption(f"Read {escape_markdown(step.note.part.label)}; its note:")
                        st.text(step.note.text or "(nothing about the question)")
                    continue
            with placeholder.container():
                render_markdown(turn.text + " ▌")


def conversations_sidebar(engine: Engine) -> None:
    store = engine.conversations
    with st.sidebar:
        if st.button("New conversation", icon=":material/add_comment:", use_container_width=True):
            st.session_state.pop("conversation_id", None)
            st.session_state.pop("pending", None)
            forget_new_filter()
        st.caption(f"Conversations in {escape_markdown(repr(engine.settings.kb))}")
        current = st.session_state.get("conversation_id")
        for info in store.list(limit=30):
            # A title is the first question as typed: shown as text, never as Markdown (no image, no link).
            label = escape_markdown(info.title) if info.title else "(untitled)"
            if st.button(
                label,
                key=f"open_{info.id}",
                use_container_width=True,
                type="primary" if info.id == current else "secondary",
                icon=":material/menu_book:" if info.whole_document else None,
                help="Reads its chosen documents whole" if info.whole_document else None,
            ):
                st.session_state.conversation_id = info.id
                forget_new_filter()
                st.rerun()
        if current is None:
            return
        wait_for_stopped_answer(current)
        try:
            this_conversation(store, current, engine.settings.kb)
        except ConversationNotFound:
            return  # deleted in another tab: the page says so and starts a new one
        except RagError as exc:
            show_error(exc)


def this_conversation(store: ConversationStore, current: str, knowledge_base: str) -> None:
    """Rename, export or delete the open conversation (in the sidebar)."""
    with st.expander("This conversation", icon=":material/tune:"):
        title = st.text_input("Title", store.get(current).title, key=f"title_{current}")
        if st.button("Rename", key="rename"):
            try:
                store.rename(current, title)
            except ConversationNotFound:
                raise
            except RagError as exc:  # e.g. an empty title: say how to fix it, keep the old one
                show_error(exc)
            else:
                st.rerun()
        saved = store.get(current)
        st.download_button(
            "Export as Markdown",
            conversation_markdown(saved, knowledge_base),
            file_name=export_file_name(saved, "md"),
            mime="text/markdown",
        )
        st.download_button(
            "Export as JSON",
            conversation_json(saved, knowledge_base),
            file_name=export_file_name(saved, "json"),
            mime="application/json",
        )
        if st.session_state.get("confirm_delete") == current:
            st.warning("Delete this conversation and all its messages?")
            if st.button("Yes, delete", key="delete_yes"):
                store.delete(current)
                st.session_state.pop("conversation_id", None)
                st.session_state.pop("confirm_delete", None)
                forget_new_filter()
                st.rerun()
        elif st.button("Delete conversation", key="delete"):
            st.session_state.confirm_delete = current
            st.rerun()


def forget_deleted(exc: ConversationNotFound) -> None:
    """The open conversation was deleted (in another tab): say so, and go on with a new one."""
    st.warning(safe_markdown(str(exc)), icon=":material/info:")
    st.session_state.pop("conversation_id", None)
    st.session_state.pop("confirm_delete", None)


def chat(engine: Engine) -> None:
    """The open conversation, the document selector and the question box; a question is answered at once."""
    conversation: Conversation | None = None
    if (current_id := st.session_state.get("conversation_id")) is not None:
        wait_for_stopped_answer(current_id)
        try:
            conversation = engine.conversations.get(current_id)
        except ConversationNotFound as exc:
            forget_deleted(exc)
    selection = document_filter(engine, conversation)
    whole = whole_document_switch(engine, conversation, selection)
    if conversation is None or not conversation.messages:
        st.caption(
            f"Ask about the {plural(len(engine.documents()), 'document')} in your knowledge base; answers cite them "
            "as [1], [2]. Add your own on the Documents page."
        )
    if conversation is not None:
        render_conversation(engine, conversation)

    typed = st.chat_input("Ask a question about your documents")
    question = typed or st.session_state.pop("pending", None)
    whole = st.session_state.pop("pending_whole", False) or whole
    if question and question.strip():
        try:
            answer(engine, question.strip(), selection, whole=whole and bool(selection))
        except ConversationNotFound as exc:  # deleted in another tab while this one was asking
            forget_deleted(exc)


def whole_document_switch(engine: Engine, conversation: Conversation | None, selection: list[SelectedDocument]) -> bool:
    """ "Read the chosen documents whole" for this conversation's questions, with what it costs; off without
    chosen documents.

    The switch belongs to the conversation: saved as soon as it is switched, shown as saved (after a reload, in
    another tab, by `rag chat --conversation ID`). Before the first question it is this tab's, then saved with
    the new conversation.
    """
    if not selection:
        return False
    key, save = NEW_WHOLE_WIDGET, None
    if conversation is not None:
        key, save = f"whole_{conversation.id}", (engine.conversations, conversation.id)
        st.session_state[key] = conversation.whole_document  # as saved: by this tab, another one, or before a reload
    if (failed := st.session_state.pop(WHOLE_NOT_SAVED, None)) is not None:
        show_error(failed)
    on = st.toggle(
        "Read the chosen documents whole",
        key=key,
        help="For summaries, 'list every …', 'how many …': every part of the chosen documents is read in order "
        "and what each says is combined, citing the pages. It takes one model call per part. The choice is saved "
        "with this conversation.",
        on_change=save_whole_document if save is not None else None,
        args=(*save, key) if save is not None else None,
    )
    if on:
        try:
            plan = cached_plan(engine, selection)
        except RagError as exc:
            show_error(exc)
            return False
        st.caption(f"Each question reads {plan}. A question can be stopped; what is read is kept.")
    return on


def save_whole_document(store: ConversationStore, conversation_id: str, key: str) -> None:
    """The switch, switched: saved with the conversation before the page is drawn again."""
    try:
        store.set_whole_document(conversation_id, bool(st.session_state[key]))
    except ConversationNotFound:
        pass  # deleted in another tab: the page says so as it draws
    except RagError as exc:  # e.g. the database locked: said above the switch, which shows what is saved
        st.session_state[WHOLE_NOT_SAVED] = exc


def cached_plan(engine: Engine, selection: list[SelectedDocument]) -> str:
    """What reading the chosen documents whole costs, in words (measured once per choice and model)."""
    backend = engine.chosen.backend
    key = ("whole_plan", backend.name, backend.model, tuple(d.doc_id for d in selection))
    said: str | None = st.session_state.get("whole_plan_said", {}).get(key)
    if said is None:
        with st.spinner("Measuring the model's speed…"):
            said = whole_document_plan(engine, "Summarize these documents.", selection).describe()
        st.session_state.setdefault("whole_plan_said", {})[key] = said
    return said


engine = require_engine()
st.title("Chat with your documents")
st.caption(
    f"Knowledge base {escape_markdown(repr(engine.settings.kb))}: questions are answered from its documents alone, "
    "and its conversations are kept with it (switch knowledge base in the sidebar)."
)
try:
    conversations_sidebar(engine)
    chat(engine)
except RagError as exc:  # e.g. the knowledge base or the conversation store failing after the start
    show_error(exc)
except Exception as exc:  # e.g. sqlite3's "database is locked": a message, the trace in the log
    show_unexpected(exc, "showing the conversation", "Reload the page in a moment; your conversations are saved.")
