"""Chat page: ask questions about your documents; answers stream in with numbered sources."""

from __future__ import annotations

import streamlit as st

from rag.config import Settings
from rag.engine import Engine
from rag.errors import RagError
from rag.ingest import plural
from rag.prompts import source_label
from rag.schema import Answer, Message

st.set_page_config(page_title="Chat with your documents", page_icon="💬", layout="wide")


@st.cache_resource(show_spinner="Loading the knowledge base…")
def get_engine() -> Engine:
    engine = Engine(Settings.from_env())
    engine.ensure_default_corpus()
    return engine


def render_sources(answer: Answer) -> None:
    if not answer.sources:
        st.caption("No passage of your documents matched this question.")
        return
    with st.expander(f"Sources ({len(answer.sources)})"):
        for i, hit in enumerate(answer.sources, 1):
            st.markdown(f"**{source_label(i, hit)}** · score {hit.score:.2f}")
            st.text(hit.chunk.text)
    u = answer.usage
    st.caption(f"{answer.backend} · {answer.model} · {u.prompt_tokens} prompt tokens · "
               f"{u.completion_tokens} answer tokens · {u.seconds}s")


engine = get_engine()
choice = engine.backend
with st.sidebar:
    st.subheader("Model")
    (st.warning if choice.fallback else st.info)(choice.reason)
    st.caption(f"{plural(len(engine.store.documents()), 'document')} · {plural(engine.store.chunk_count(), 'chunk')}")
    if st.button("New conversation"):
        st.session_state.turns = []

st.title("Chat with your documents")
turns: list[tuple[str, Answer]] = st.session_state.setdefault("turns", [])
for asked, answer in turns:
    with st.chat_message("user"):
        st.text(asked)
    with st.chat_message("assistant"):
        st.markdown(answer.text)
        render_sources(answer)

question = st.chat_input("Ask a question about your documents")
if question:
    with st.chat_message("user"):
        st.text(question)
    history = [m for q, a in turns for m in (Message("user", q), Message("assistant", a.text))]
    with st.chat_message("assistant"):
        try:
            with st.spinner("Thinking…"):
                stream = engine.ask(question, history)
            st.write_stream(stream)
            assert stream.answer is not None
            render_sources(stream.answer)
            turns.append((question, stream.answer))
        except RagError as exc:
            st.error(str(exc))
