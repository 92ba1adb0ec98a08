"""Chat page: ask questions about your documents; answers stream in with numbered, checkable sources."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from rag.chat import AnswerStream
from rag.engine import Engine
from rag.errors import RagError
from rag.formatting import plural
from rag.schema import Answer, Message, RetrievedChunk
from ui_common import escape_markdown, get_engine, sidebar

st.set_page_config(page_title="Chat with your documents", page_icon="💬", layout="wide")


@dataclass
class Turn:
    question: str
    text: str = ""
    answer: Answer | None = None
    error: str | None = None  # set when the backend failed: `text` keeps what had arrived


def source_title(index: int, hit: RetrievedChunk) -> str:
    page = f" · page {hit.chunk.page}" if hit.chunk.page is not None else ""
    return f"[{index}] {escape_markdown(hit.chunk.source)}{page} · relevance {hit.score:.2f}"


def render_details(answer: Answer) -> None:
    """Sources numbered as cited, then token usage and timings."""
    if answer.sources:
        st.caption("Sources")
        for i, hit in enumerate(answer.sources, 1):
            with st.expander(source_title(i, hit)):
                st.text(hit.chunk.text)  # document text is shown as text, never as markdown or HTML
    u = answer.usage
    if answer.backend == "none":
        st.caption("No passage of your documents matched, so the model was not asked.")
        return
    parts = [f"{answer.backend} · {escape_markdown(answer.model)}"]
    if u.prompt_tokens is not None:
        parts.append(f"{u.prompt_tokens:,} prompt tokens")
    if u.completion_tokens is not None:
        parts.append(f"{u.completion_tokens:,} answer tokens")
    if u.time_to_first_token is not None:
        parts.append(f"first token after {u.time_to_first_token:.1f} s")
    if u.tokens_per_second:
        parts.append(f"{u.tokens_per_second:.1f} tokens/s")
    st.caption(" · ".join(parts))


def render_turn(turn: Turn, last: bool) -> None:
    with st.chat_message("user"):
        st.text(turn.question)
    with st.chat_message("assistant"):
        if turn.text:
            st.markdown(turn.text)
        if turn.answer is not None:
            render_details(turn.answer)
        if turn.error is not None:
            st.error(f"The answer was interrupted: {turn.error}", icon=":material/error:")
            if last and st.button("Retry", icon=":material/refresh:", key="retry"):
                st.session_state.turns.pop()
                st.session_state.pending = turn.question
                st.rerun()


def history_of(turns: list[Turn]) -> list[Message]:
    """Completed exchanges only: a failed answer is not something the model said."""
    return [
        m
        for t in turns
        if t.answer is not None and t.error is None
        for m in (Message("user", t.question), Message("assistant", t.answer.text))
    ]


def answer(engine: Engine, question: str, turns: list[Turn]) -> None:
    turn = Turn(question)
    with st.chat_message("user"):
        st.text(question)
    with st.chat_message("assistant"):
        placeholder = st.empty()
        placeholder.markdown("_Thinking…_")
        stream: AnswerStream | None = None
        try:
            stream = engine.ask(question, history_of(turns))
            for piece in stream:
                turn.text += piece
                placeholder.markdown(turn.text + " ▌")
            placeholder.markdown(turn.text or "_(no answer)_")
            turn.answer = stream.answer
        except RagError as exc:
            turn.error = str(exc)
        turns.append(turn)
        if turn.error is None and turn.answer is not None:
            render_details(turn.answer)
    if turn.error is not None:
        st.rerun()  # show it the way history shows it: marked, with its Retry button


engine = get_engine()
sidebar(engine)
with st.sidebar:
    if st.button("New conversation", icon=":material/add_comment:", use_container_width=True):
        st.session_state.turns = []
        st.session_state.pop("pending", None)

st.title("Chat with your documents")
turns: list[Turn] = st.session_state.setdefault("turns", [])
if not turns:
    st.caption(
        f"Ask about the {plural(len(engine.documents()), 'document')} in your knowledge base; answers cite them "
        "as [1], [2]. "
        "Add your own on the Documents page."
    )
for i, past in enumerate(turns):
    render_turn(past, last=i == len(turns) - 1)

typed = st.chat_input("Ask a question about your documents")
question = typed or st.session_state.pop("pending", None)
if question and question.strip():
    answer(engine, question.strip(), turns)
