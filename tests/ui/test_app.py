"""The chat page, run by Streamlit's AppTest with the real engine (built-in model, tiny knowledge base)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT
from tests.test_llm import free_port


@pytest.mark.slow
def test_chat_page_answers_from_the_knowledge_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "garden.md").write_text("# Garden\n\nThe tomatoes in the garden are watered every Tuesday.\n")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{free_port()}")

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240)
    at.run()
    assert not at.exception
    assert "Ollama is not reachable" in at.sidebar.warning[0].value
    assert "1 document · 1 chunk" in at.sidebar.caption[0].value

    at.chat_input[0].set_value("When are the tomatoes watered?").run()
    assert not at.exception
    messages = at.chat_message
    assert [m.name for m in messages] == ["user", "assistant"]
    assert messages[1].markdown[0].value.strip()  # the streamed answer, replayed
    assert any("garden.md" in md.value for md in messages[1].markdown)
