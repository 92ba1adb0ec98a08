"""Settings page: which model answers, generation, retrieval and the system prompt, saved to settings.json."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import streamlit as st

from rag.backends.embedded import SMOLLM2_NAME
from rag.backends.ollama import OllamaBackend, OllamaStatus, PullProgress, model_installed
from rag.config import (
    BACKENDS,
    HISTORY_STRATEGIES,
    MAX_CONTEXT_WINDOW,
    Settings,
    auth_headers,
    normalize_host,
    save_settings,
    settings_file,
)
from rag.errors import RagError, SettingsError
from rag.formatting import human_size, plural, safe_markdown
from rag.prompts import DEFAULT_SYSTEM_PROMPT
from ui_common import escape_markdown, get_engine, load_settings, ollama_status, show_error, sidebar

BACKEND_HELP = {
    "auto": "Ollama when it runs and has the model; otherwise the built-in model (the sidebar says why).",
    "ollama": "Always Ollama: a question fails with a message when it is not running.",
    "embedded": "llama.cpp inside the app on a GGUF file: no server needed.",
    "openai": "Any OpenAI-compatible server (vLLM, TGI, llama.cpp, LiteLLM…) at the URL below; never falls back.",
}
FLASH = "settings_page_flash"


# -- helpers ------------------------------------------------------------------------------------------


def flash(section: str, message: str) -> NoReturn:
    """Rerun (so the sidebar and the model list see the change) and then show `message` in `section`."""
    st.session_state[f"{FLASH}_{section}"] = message
    st.rerun()


def show_flash(section: str) -> None:
    message = st.session_state.pop(f"{FLASH}_{section}", None)
    if message:
        st.success(message, icon="✅")


def from_form(settings: Settings, values: dict[str, Any], gguf: str) -> Settings:
    """The settings the form describes, validated; an empty GGUF path means the built-in model.

    `dataclasses.replace` rather than `with_overrides`, which ignores None and so could not clear the path.
    """
    gguf_path = Path(gguf.strip()).expanduser() if gguf.strip() else None
    new = replace(settings, gguf_path=gguf_path, **values)  # runs Settings' validation
    if gguf_path is not None and not gguf_path.is_file():
        raise SettingsError(
            f"GGUF file {gguf_path} not found: give the full path to a .gguf file (e.g. "
            f"llama-2-7b-chat.Q4_K_M.gguf), or leave it empty for the built-in {SMOLLM2_NAME}."
        )
    return new


def model_field(current: str, status: OllamaStatus) -> str:
    """A list of the installed models when Ollama answers, else a free text field."""
    if not status.reachable:
        st.caption(
            f"Ollama is not reachable at {status.host}: type the model name, or start it with `ollama serve` "
            "to choose from the installed models (checked every 10 s)."
        )
        return st.text_input("Ollama model", current).strip()
    options = list(status.models)
    selected = next((m for m in options if model_installed(current, [m])), None)
    if selected is None:
        options.insert(0, current)
        selected = current
        note = f" {current!r} is not installed: pull it below, or pick another."
    else:
        note = ""
    st.caption(f"Ollama is reachable at {status.host} with {plural(len(status.models), 'model')}.{note}")
    choice = st.selectbox(
        "Ollama model",
        options,
        index=options.index(selected),
        format_func=lambda m: m if m in status.models else f"{m} (not installed)",
        accept_new_options=True,
        help="Type a name to use a model not in the list (pull it first).",
    )
    return (choice or current).strip()


def reset_system_prompt() -> None:
    """A button callback: runs before the page, so the text area is drawn with the default."""
    try:
        save_settings(replace(load_settings(), system_prompt=DEFAULT_SYSTEM_PROMPT))
    except (RagError, OSError) as exc:
        st.session_state[f"{FLASH}_reset_error"] = safe_markdown(str(exc))
    else:
        st.session_state[f"{FLASH}_reset"] = "System prompt reset to the default: applies to the next question"


def pull_model(host: str, name: str, token: str = "") -> None:
    """`ollama pull` with a progress bar; on success the model list is re-read."""
    bar = st.progress(0.0, text=f"Asking Ollama at {escape_markdown(host)} for {escape_markdown(name)}…")
    shown = 0.0
    last = PullProgress("")
    try:
        for update in OllamaBackend(host, name, headers=auth_headers(token)).pull():
            last = update
            if update.fraction is not None:
                shown = min(1.0, update.fraction)
            detail = f" · {human_size(update.completed or 0)} of {human_size(update.total)}" if update.total else ""
            # Ollama's own words: shown as text (a status cannot bring an image or a link into the page)
            status_text = escape_markdown(update.status)
            bar.progress(1.0 if update.status == "success" else shown, text=f"{status_text}{detail}")
    except RagError as exc:
        bar.empty()
        show_error(exc)
        return
    ollama_status.clear()
    if last.status == "success":
        flash("pull", f"Pulled {name}: choose it as the Ollama model above and save.")  # reruns: the list shows it
    else:
        stopped = escape_markdown(repr(last.status or "no reply"))
        st.warning(f"Ollama stopped after {stopped} without confirming the download: try again.")


def recover_from_bad_settings(exc: SettingsError) -> None:
    """The saved file (or an environment variable) is unusable: say so, and offer to drop the file."""
    show_error(exc)
    try:
        path = settings_file(Settings.from_env().data_dir)
    except SettingsError:
        return  # an environment variable is wrong: the message above names it
    if path.exists():
        st.button(
            f"Delete `{path}` and use the environment and defaults",
            on_click=lambda: path.unlink(missing_ok=True),
        )


# -- the page -----------------------------------------------------------------------------------------

st.set_page_config(page_title="Settings", page_icon="⚙️", layout="wide")
st.title("Settings")

try:
    settings = load_settings()
except SettingsError as exc:
    recover_from_bad_settings(exc)
    st.stop()

try:
    engine = get_engine(settings)
except RagError as exc:  # e.g. a GGUF file that has gone: this page is where to fix it
    show_error(exc)
else:
    sidebar(engine)

saved_at = settings_file(settings.data_dir)
st.caption(
    f"Saved in `{saved_at}`{'' if saved_at.exists() else ' (nothing saved yet)'}. Saved settings override "
    "environment variables (RAG_MODEL, OLLAMA_HOST, …); delete the file to go back to them and the defaults."
)

status = ollama_status(settings.ollama_host, settings.ollama_token)
with st.form("settings"):
    st.subheader("Model")
    backend = st.radio(
        "Backend",
        BACKENDS,
        index=BACKENDS.index(settings.backend),
        captions=[BACKEND_HELP[b] for b in BACKENDS],
    )
    host = st.text_input("Ollama host", settings.ollama_host, help="Where `ollama serve` listens.")
    ollama_token = st.text_input(
        "Ollama proxy token (optional)",
        settings.ollama_token,
        type="password",
        help="For an Ollama behind a proxy that checks credentials: a bearer token, or a whole header "
        "`Name: value`. Sent with every request to the Ollama host.",
    )
    if settings.backend == "openai":
        model = st.text_input(
            "Model", settings.model, help="The model's name as the server knows it (`curl BASE_URL/models`)."
        ).strip()
    else:
        model = model_field(settings.model, status)
    openai_base_url = st.text_input(
        "OpenAI-compatible server (openai backend)",
        settings.openai_base_url,
        help="Its base URL, usually ending with /v1, e.g. http://gpu-box:8000/v1 for vLLM or llama.cpp's server.",
    )
    openai_api_key = st.text_input(
        "API key (openai backend)",
        settings.openai_api_key,
        type="password",
        help="Sent as `Authorization: Bearer …`; empty for a server without keys. Saved in settings.json.",
    )
    gguf = st.text_input(
        "GGUF file (embedded backend)",
        "" if settings.gguf_path is None else str(settings.gguf_path),
        placeholder=f"empty: the built-in {SMOLLM2_NAME}",
    )
    st.caption(
        f"Empty: the built-in {SMOLLM2_NAME}, a tiny model that follows the format but not the facts. "
        "For real answers point it at a chat model such as llama-2-7b-chat.Q4_K_M.gguf."
    )

    st.subheader("Generation")
    temperature = st.slider(
        "Temperature", 0.0, 2.0, float(settings.temperature), step=0.05,
        help="0: always the most likely words; higher: more varied answers.",
    )
    left, right = st.columns(2)
    max_answer_tokens = left.number_input(
        "Max answer tokens", min_value=16, value=settings.max_answer_tokens, step=64,
        help="At most half the context window; the rest holds the sources and the conversation.",
    )
    context_window = right.number_input(
        "Context window (tokens)", min_value=512, max_value=MAX_CONTEXT_WINDOW, value=settings.context_window,
        step=512,
        help="Sent to Ollama as num_ctx, and the prompt is fitted inside it. Llama 2: 4096.",
    )

    st.subheader("Retrieval")
    left, right = st.columns(2)
    top_k = left.number_input("Sources per question (top-k)", min_value=1, max_value=50, value=settings.top_k)
    context_chars = right.number_input(
        "Context budget (characters)", min_value=200, max_value=100_000, value=settings.context_chars, step=500,
        help="At most this much of your documents goes into each prompt (about 3.3 characters a token).",
    )
    left, right = st.columns(2)
    chunk_size = left.number_input(
        "Chunk size (characters)", min_value=100, max_value=8000, value=settings.chunk_size, step=50
    )
    chunk_overlap = right.number_input("Chunk overlap (characters)", min_value=0, value=settings.chunk_overlap, step=10)
    st.caption("Used for new ingests only; re-upload a document to re-chunk it.")
    min_score = st.slider("Minimum score", -1.0, 1.0, float(settings.min_score), step=0.05)
    st.caption(
        "Sources below this similarity are not shown to the model. Separately, when no source is close in "
        "meaning and none holds the question's rarer words, the app says your documents do not cover the "
        "question instead of asking the model."
    )

    st.subheader("Where the vectors live")
    chroma_url = st.text_input(
        "Chroma server URL",
        settings.chroma_url,
        placeholder="empty: Chroma inside the data folder",
        help="A Chroma server shared by a team (`chroma run --path DIR --host 0.0.0.0 --port 8000`), e.g. "
        "http://kb-server:8000. The document list and keyword index stay in this app's data folder.",
    )
    left, right = st.columns(2)
    chroma_collection = left.text_input("Chroma collection", settings.chroma_collection)
    chroma_token = right.text_input(
        "Chroma token (optional)",
        settings.chroma_token,
        type="password",
        help="For a server behind a proxy that checks credentials: a bearer token, or a whole header `Name: value`.",
    )
    st.caption(
        "A collection belongs to one data folder: another app with its own data folder is refused and told to "
        "use a collection of its own. Documents are not copied when you switch: ingest them again."
    )

    st.subheader("Conversation")
    history_strategy = st.radio(
        "When a conversation outgrows the context window",
        HISTORY_STRATEGIES,
        index=HISTORY_STRATEGIES.index(settings.history_strategy),
        format_func=lambda s: {
            "summarize": "summarize: fold older turns into a running summary the model keeps seeing",
            "drop": "drop oldest: forget the oldest turns",
        }[s],
    )

    st.subheader("System prompt")
    system_prompt = st.text_area(
        "System prompt", settings.system_prompt, height=320, label_visibility="collapsed",
        help="The numbered sources are added after it, so the model can cite them as [1], [2], …",
    )
    submitted = st.form_submit_button("Save settings", type="primary")

if submitted:
    values: dict[str, Any] = {
        "backend": backend,
        "ollama_host": normalize_host(host),
        "ollama_token": ollama_token.strip(),
        "model": model,
        "openai_base_url": normalize_host(openai_base_url).rstrip("/"),
        "openai_api_key": openai_api_key.strip(),
        "chroma_url": normalize_host(chroma_url).rstrip("/"),
        "chroma_token": chroma_token.strip(),
        "chroma_collection": chroma_collection.strip(),
        "temperature": round(float(temperature), 2),
        "max_answer_tokens": int(max_answer_tokens),
        "context_window": int(context_window),
        "top_k": int(top_k),
        "context_chars": int(context_chars),
        "chunk_size": int(chunk_size),
        "chunk_overlap": int(chunk_overlap),
        "min_score": round(float(min_score), 2),
        "system_prompt": system_prompt,
        "history_strategy": history_strategy,
    }
    try:
        new = from_form(settings, values, gguf)
        save_settings(new)
    except SettingsError as exc:
        show_error(exc)
        st.caption("Nothing was saved: the app keeps using the previous settings.")
    except OSError as exc:
        st.error(f"Could not write {escape_markdown(f'{saved_at} ({exc})')}: check that the folder is writable.",
                 icon="⚠️")
    else:
        flash("save", "Saved: applies to the next question")
show_flash("save")

st.button(
    "Reset system prompt to default",
    on_click=reset_system_prompt,
    disabled=settings.system_prompt == DEFAULT_SYSTEM_PROMPT,
    help="Saves at once; other changes in the form stay as typed until you save them.",
)
show_flash("reset")
if reset_error := st.session_state.pop(f"{FLASH}_reset_error", None):
    st.error(reset_error, icon="⚠️")

st.subheader("Pull a model")
st.caption(
    f"Downloads a model from ollama.com into Ollama at {settings.ollama_host}, like `ollama pull` "
    "(llama2, the 7B chat model, is about 3.8 GB)."
)
left, right = st.columns([4, 1], vertical_alignment="bottom")
pull_name = left.text_input("Model to pull", placeholder="e.g. llama2 or llama2:13b").strip()
if right.button("Pull", width="stretch"):
    if pull_name:
        pull_model(settings.ollama_host, pull_name, settings.ollama_token)
    else:
        st.warning("Type the name of a model to pull, e.g. llama2.")
show_flash("pull")
