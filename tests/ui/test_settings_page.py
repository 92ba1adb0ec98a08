"""The settings page, run by Streamlit's AppTest against a fake Ollama (or none) and a temporary data dir.

The page is opened through app.py with `switch_page`, as a browser would reach it: app.py is the entry point
that lists the pages (`st.navigation`) and starts the app for each of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT, Settings, settings_file
from rag.formatting import plain_markdown
from rag.prompts import DEFAULT_SYSTEM_PROMPT
from tests.fake_ollama import FakeOllama
from tests.servers import ChromaServer, free_port

OpenPage = Callable[[], AppTest]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()  # empty: no default knowledge base to index
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_CORPUS_DIR", str(corpus))
    for var in ("RAG_BACKEND", "RAG_MODEL", "RAG_GGUF_PATH", "RAG_TOP_K", "RAG_CHUNK_SIZE", "RAG_CHUNK_OVERLAP"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "data"


@pytest.fixture
def ollama(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOllama]:
    with FakeOllama(models=["llama2:latest", "mistral:latest"]) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.host)
        yield server


@pytest.fixture
def no_ollama(monkeypatch: pytest.MonkeyPatch) -> str:
    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("OLLAMA_HOST", host)
    return host


@pytest.fixture
def open_page(data_dir: Path) -> OpenPage:
    """A new browser session on the settings page (a fresh AppTest is a fresh session)."""

    def open_() -> AppTest:
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=240)
        at.run()  # the entry point first (as a browser opens it): it lists the pages
        at.switch_page("pages/settings.py")
        at.run()
        assert not at.exception, at.exception
        return at

    return open_


def widget(elements: Any, label: str) -> Any:
    found = [w for w in elements if w.label == label]
    assert found, f"no widget {label!r} among {[w.label for w in elements]}"
    return found[0]


def save(at: AppTest) -> AppTest:
    widget(at.button, "Save settings").click().run()
    assert not at.exception, at.exception
    return at


def texts(elements: Any) -> list[str]:
    return [e.value for e in elements]


def test_saved_settings_persist_across_restarts(open_page: OpenPage, data_dir: Path, ollama: FakeOllama) -> None:
    at = open_page()
    widget(at.radio, "Backend").set_value("ollama")
    widget(at.selectbox, "Ollama model").set_value("mistral:latest")
    widget(at.slider, "Temperature").set_value(0.5)
    widget(at.number_input, "Sources per question (top-k)").set_value(5)
    widget(at.number_input, "Context budget (characters)").set_value(6000)
    widget(at.number_input, "Chunk size (characters)").set_value(800)
    widget(at.number_input, "Chunk overlap (characters)").set_value(150)
    widget(at.slider, "Minimum score").set_value(0.35)
    widget(at.text_area, "System prompt").set_value("Answer in one sentence, citing [1].")
    save(at)

    assert texts(at.success) == ["Saved: applies to the next question"]
    saved = json.loads(settings_file(data_dir).read_text())
    assert saved["model"] == "mistral:latest" and saved["top_k"] == 5
    assert "ollama_host" not in saved and "gguf_path" not in saved  # unchanged: the environment still decides
    s = Settings.load()  # what a restarted app (or the CLI) reads
    assert (s.backend, s.model, s.temperature, s.top_k) == ("ollama", "mistral:latest", 0.5, 5)
    assert (s.chunk_size, s.chunk_overlap, s.min_score, s.context_chars) == (800, 150, 0.35, 6000)
    assert s.system_prompt == "Answer in one sentence, citing [1]."
    # The sidebar already answers with the new model (its name shown as text, never as Markdown).
    assert plain_markdown("with mistral:latest") in at.sidebar.info[0].value

    again = open_page()
    assert widget(again.selectbox, "Ollama model").value == "mistral:latest"
    assert widget(again.number_input, "Chunk size (characters)").value == 800
    assert widget(again.radio, "Backend").value == "ollama"
    assert any("Saved in" in c and "override environment variables" in c for c in texts(again.caption))


def test_an_openai_compatible_server_can_be_chosen(open_page: OpenPage, data_dir: Path, no_ollama: str) -> None:
    at = open_page()
    widget(at.radio, "Backend").set_value("openai")
    widget(at.text_input, "OpenAI-compatible server (openai backend)").set_value("gpu-box:8000/v1/")
    widget(at.text_input, "API key (openai backend)").set_value("sk-local-123")
    save(at)

    s = Settings.load()
    assert (s.backend, s.openai_base_url, s.openai_api_key) == ("openai", "http://gpu-box:8000/v1", "sk-local-123")
    assert plain_markdown("http://gpu-box:8000/v1 with llama2") in at.sidebar.info[0].value  # no fallback banner
    # The one warning: the prompt leaves this machine.
    assert ["sent to `http://gpu-box:8000/v1`" in w.value for w in at.sidebar.warning] == [True]
    again = open_page()
    assert widget(again.text_input, "Model").value == "llama2"  # the server's model name, typed
    assert widget(again.text_input, "API key (openai backend)").value == "sk-local-123"
    assert "sk-local-123" not in repr(s)  # secrets stay out of logs and tracebacks


def test_a_chroma_server_can_be_chosen_and_a_down_one_is_explained(
    open_page: OpenPage, data_dir: Path, no_ollama: str, tmp_path: Path
) -> None:
    server = ChromaServer(tmp_path / "chroma").start()
    try:
        at = open_page()
        widget(at.text_input, "Chroma server URL").set_value(f"127.0.0.1:{server.port}")
        widget(at.text_input, "Chroma collection").set_value("team-kb")
        save(at)
        s = Settings.load()
        assert (s.chroma_url, s.chroma_collection) == (server.url, "team-kb")
        assert not at.error, [e.value for e in at.error]
        assert any("Knowledge base 'default': 0 documents" in c for c in texts(at.sidebar.caption))
    finally:
        server.stop()
    nowhere = f"http://127.0.0.1:{free_port()}"
    widget(at.text_input, "Chroma server URL").set_value(nowhere)
    save(at)
    down = open_page()  # no server there: the page says how to start one and stays usable to change the URL
    # URLs in messages are shown as code, never as links (rag.formatting.safe_markdown)
    assert any(f"Cannot reach Chroma at `{nowhere}`" in e.value and "chroma run" in e.value for e in down.error)
    widget(down.text_input, "Chroma server URL").set_value("")
    save(down)
    assert Settings.load().chroma_url == ""


@pytest.mark.parametrize(
    ("field", "kind", "value", "message", "old"),
    [
        (
            "Chunk overlap (characters)",
            "number_input",
            300,
            "Chunk overlap 300 must be at least 0 and less than half the chunk size",
            100,
        ),
        (
            "GGUF file (embedded backend)",
            "text_input",
            "/nowhere/llama-2-7b-chat.Q4_K_M.gguf",
            "GGUF file /nowhere/llama-2-7b-chat.Q4_K_M.gguf not found",
            "",
        ),
        ("GGUF file (embedded backend)", "text_input", "/nowhere/model.bin", "is not a .gguf file", ""),
        ("Max answer tokens", "number_input", 4000, "must be between 16 and half the context window (2048)", 512),
    ],
)
def test_a_bad_value_is_refused_and_nothing_is_saved(
    open_page: OpenPage, data_dir: Path, no_ollama: str, field: str, kind: str, value: Any, message: str, old: Any
) -> None:
    path = settings_file(data_dir)
    at = open_page()
    widget(getattr(at, kind), field).set_value(value)
    save(at)
    assert message in at.error[0].value
    assert "Nothing was saved: the app keeps using the previous settings." in texts(at.main.caption)
    assert not at.success
    assert not path.exists()

    # With settings saved before, the file keeps them byte for byte, and so does the app.
    at = open_page()
    widget(at.number_input, "Sources per question (top-k)").set_value(4)
    save(at)
    before = path.read_bytes()
    widget(getattr(at, kind), field).set_value(value)
    widget(at.number_input, "Sources per question (top-k)").set_value(7)
    save(at)
    assert message in at.error[0].value
    assert path.read_bytes() == before
    assert Settings.load().top_k == 4
    again = open_page()  # reopened, the page shows the old values
    assert widget(again.number_input, "Sources per question (top-k)").value == 4
    assert widget(getattr(again, kind), field).value == old


def test_a_gguf_path_can_be_set_and_cleared(open_page: OpenPage, data_dir: Path, ollama: FakeOllama) -> None:
    gguf = data_dir.parent / "llama-2-7b-chat.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF")
    at = open_page()
    widget(at.text_input, "GGUF file (embedded backend)").set_value(str(gguf))
    save(at)
    assert not at.error
    assert Settings.load().gguf_path == gguf

    widget(at.text_input, "GGUF file (embedded backend)").set_value("  ")
    save(at)
    assert not at.error
    assert Settings.load().gguf_path is None
    assert "gguf_path" not in json.loads(settings_file(data_dir).read_text())


def test_reset_system_prompt_restores_the_default(open_page: OpenPage, data_dir: Path, no_ollama: str) -> None:
    at = open_page()
    assert widget(at.button, "Reset system prompt to default").disabled  # already the default
    widget(at.text_area, "System prompt").set_value("Talk like a pirate.")
    save(at)
    assert Settings.load().system_prompt == "Talk like a pirate."
    reset = widget(at.button, "Reset system prompt to default")
    assert not reset.disabled

    reset.click().run()
    assert not at.exception
    assert "System prompt reset to the default" in texts(at.success)[0]
    assert widget(at.text_area, "System prompt").value == DEFAULT_SYSTEM_PROMPT
    assert Settings.load().system_prompt == DEFAULT_SYSTEM_PROMPT
    assert widget(at.button, "Reset system prompt to default").disabled


def test_installed_models_are_listed_when_ollama_runs(
    open_page: OpenPage, ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page()
    model = widget(at.selectbox, "Ollama model")
    assert model.options == ["llama2:latest", "mistral:latest"]
    assert model.value == "llama2:latest"  # the default "llama2" is installed as llama2:latest
    assert any(f"Ollama is reachable at {plain_markdown(ollama.host)} with 2 models" in c for c in texts(at.caption))

    monkeypatch.setenv("RAG_MODEL", "llama2:13b")
    at = open_page()
    model = widget(at.selectbox, "Ollama model")
    assert model.options == ["llama2:13b (not installed)", "llama2:latest", "mistral:latest"]
    assert model.value == "llama2:13b"
    assert any(plain_markdown("'llama2:13b'") + " is not installed: pull it below" in c for c in texts(at.caption))


def test_pulling_a_model_shows_success_and_lists_it(open_page: OpenPage, ollama: FakeOllama) -> None:
    at = open_page()
    widget(at.text_input, "Model to pull").set_value("phi3")
    widget(at.button, "Pull").click().run()
    assert not at.exception and not at.error
    assert texts(at.success) == ["Pulled phi3: choose it as the Ollama model above and save."]
    assert ("/api/pull", {"model": "phi3", "insecure": False, "stream": True}) in ollama.requests
    assert "phi3:latest" in widget(at.selectbox, "Ollama model").options


def test_pulling_an_unknown_model_says_so(open_page: OpenPage, ollama: FakeOllama) -> None:
    at = open_page()
    widget(at.text_input, "Model to pull").set_value("does-not-exist")
    widget(at.button, "Pull").click().run()
    assert not at.success
    assert "Ollama could not pull 'does-not-exist' (pull model manifest: file does not exist)" in at.error[0].value
    assert widget(at.selectbox, "Ollama model").options == ["llama2:latest", "mistral:latest"]


def test_pulling_with_ollama_down_says_how_to_start_it(open_page: OpenPage, no_ollama: str) -> None:
    at = open_page()
    assert not [s for s in at.selectbox if s.label != "Knowledge base"]  # no model list: a text field instead
    assert widget(at.text_input, "Ollama model").value == "llama2"
    assert any(f"Ollama is not reachable at {plain_markdown(no_ollama)}" in c for c in texts(at.caption))

    widget(at.button, "Pull").click().run()
    assert texts(at.main.warning) == ["Type the name of a model to pull, e.g. llama2."]

    widget(at.text_input, "Model to pull").set_value("llama2")
    widget(at.button, "Pull").click().run()
    assert not at.exception and not at.success
    assert f"Ollama is not running at `{no_ollama}`: start it with `ollama serve`" in at.error[0].value


def test_a_damaged_settings_file_can_be_deleted_from_the_page(
    open_page: OpenPage, data_dir: Path, no_ollama: str
) -> None:
    path = settings_file(data_dir)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    at = open_page()
    assert "is not valid settings" in at.error[0].value and "delete it to use the defaults" in at.error[0].value
    widget(at.button, f"Delete `{path}` and use the environment and defaults").click().run()
    assert not at.exception and not at.error
    assert not path.exists()
    assert widget(at.number_input, "Sources per question (top-k)").value == Settings.from_env().top_k


def test_an_ollama_host_that_is_not_an_http_url_is_refused(open_page: OpenPage, data_dir: Path, no_ollama: str) -> None:
    at = open_page()
    widget(at.text_input, "Ollama host").set_value("file:///etc/passwd")
    save(at)
    error = at.error[0].value
    assert "is not an http(s) URL" in error and "OLLAMA_HOST" in error and "Ollama host" in error
    assert "Nothing was saved: the app keeps using the previous settings." in texts(at.main.caption)
    assert not settings_file(data_dir).exists()


def test_the_log_level_declared_in_config_is_on_the_page_and_saved(
    open_page: OpenPage, data_dir: Path, no_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_LOG_LEVEL", raising=False)
    at = open_page()
    level = widget(at.radio, "Log level")
    assert level.options == ["DEBUG", "INFO", "WARNING", "ERROR"] and level.value == "WARNING"
    assert level.help == "How much the app writes to its log (the terminal that runs it)"
    level.set_value("DEBUG")
    save(at)
    assert texts(at.success) == ["Saved: applies to the next question"]
    assert json.loads(settings_file(data_dir).read_text()) == {"log_level": "DEBUG"}
    assert Settings.load().log_level == "DEBUG"

    settings_file(data_dir).unlink()
    monkeypatch.setenv("RAG_LOG_LEVEL", "error")
    assert widget(open_page().radio, "Log level").value == "ERROR"  # the environment's, when nothing is saved


def test_every_editable_setting_has_the_widget_declared_for_it(
    open_page: OpenPage, no_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.config import EDITABLE, FIELDS

    monkeypatch.setenv("RAG_BACKEND", "openai")  # the model as its declared text field, not Ollama's list
    at = open_page()
    kinds = {
        "radio": at.radio,
        "slider": at.slider,
        "number": at.number_input,
        "area": at.text_area,
        "text": at.text_input,
        "password": at.text_input,
        "toggle": at.toggle,
    }
    settings = Settings.load()
    for name in EDITABLE:
        spec = FIELDS[name]
        assert spec.page is not None
        current = getattr(settings, name)
        assert widget(kinds[spec.widget], spec.page.label).value == ("" if current is None else current), name


def test_an_api_key_is_created_shown_once_and_revoked_after_a_confirmation(
    open_page: OpenPage, data_dir: Path, no_ollama: str
) -> None:
    from rag.api_keys import ApiKeys

    at = open_page()
    assert "No key yet." in texts(at.main.caption)
    widget(at.text_input, "Name of a new key").set_value("editor")
    widget(at.button, "Create key").click().run()
    assert "Copy the key now: it is not shown again." in texts(at.success)
    [secret] = [c.value for c in at.code if c.value.startswith("rag-")]
    keys = ApiKeys.in_data_dir(data_dir)
    assert keys.verify(secret) is not None  # the key shown is the one the API accepts
    listed = next(d.value for d in at.dataframe if "Key" in d.value.columns)
    assert list(listed["Name"]) == ["editor"] and list(listed["Key"]) == [secret[:12] + "…"]
    at.run()
    assert not [c for c in at.code if c.value.startswith("rag-")]  # shown once

    widget(at.button, "Revoke").click().run()
    assert any("Revoke editor? Programs using it are refused at once." in w.value for w in at.warning)
    assert keys.verify(secret) is not None  # not before the confirmation
    widget(at.button, "Yes, revoke").click().run()
    assert not at.exception, at.exception
    assert "Revoked editor." in texts(at.success)
    assert keys.verify(secret) is None and not keys.list()[0].active


def test_the_api_served_beside_the_app_is_a_switch_that_starts_it(
    open_page: OpenPage, data_dir: Path, no_ollama: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from rag.api_keys import ApiKeys
    from ui_common import api_beside_app

    port = free_port()
    monkeypatch.setenv("RAG_API_PORT", str(port))
    at = open_page()
    switch = widget(at.toggle, "Serve the HTTP API beside the app")
    assert switch.value is False
    switch.set_value(True)
    widget(at.text_input, "Prices per model (OpenAI-compatible backend)").set_value("gpt-4o-mini=0.15/0.60")
    save(at)
    saved = json.loads(settings_file(data_dir).read_text())
    assert saved == {"api_beside_app": True, "model_prices": "gpt-4o-mini=0.15/0.60"}
    url = f"http://127.0.0.1:{port}"
    assert f"HTTP API: `{url}/v1`, described at `{url}/docs`" in texts(at.sidebar.caption)
    _, key = ApiKeys.in_data_dir(data_dir).create("script")
    try:
        models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert models.json()["data"][0]["id"] == "default"
    finally:
        server = api_beside_app("127.0.0.1", port, str(data_dir), None)  # type: ignore[arg-type]  # the app's (cached)
        assert not isinstance(server, str)
        server.stop()
        api_beside_app.clear()
