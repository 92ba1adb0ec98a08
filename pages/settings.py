"""Settings page: which model answers, generation, retrieval and the system prompt, saved to settings.json; and
the HTTP API's keys (kept in api_keys.sqlite3).

The retrieval settings, the chunking, the domain profile and the system prompt belong to the knowledge base the
tab works in (its own settings.json); the rest is the app's, shared by every knowledge base."""

from __future__ import annotations

from typing import Any, NoReturn

import streamlit as st

from rag.config import EDITABLE, FIELDS, Settings, Widget, save_settings, settings_file
from rag.engine import BUILT_IN_MODEL, OllamaStatus, PullProgress, model_installed, pull_model
from rag.errors import RagError, SettingsError
from rag.formatting import human_size, plural, safe_markdown
from ui_common import (
    escape_markdown,
    get_api_keys,
    load_settings,
    ollama_status,
    show_error,
    show_startup_error,
    started,
)

FLASH = "settings_page_flash"
NEW_KEY = "settings_new_api_key"  # a key just created: shown once, then forgotten
REVOKE = "settings_revoke_api_key"  # the key awaiting confirmation


# -- helpers ------------------------------------------------------------------------------------------


def flash(section: str, message: str) -> NoReturn:
    """Rerun (so the sidebar and the model list see the change) and then show `message` in `section`."""
    st.session_state[f"{FLASH}_{section}"] = message
    st.rerun()


def show_flash(section: str) -> None:
    message = st.session_state.pop(f"{FLASH}_{section}", None)
    if message:
        st.success(message, icon="✅")


def field_widget(name: str, current: Any, where: Any = st, **shown: Any) -> Any:
    """The widget rag.config declares for a setting, showing `current`; returns what it holds.

    `where` is the page or a column; `shown` goes to Streamlit as it is (a height, a placeholder, …).
    """
    spec = FIELDS[name]
    page = spec.page or Widget(name)
    options: dict[str, Any] = {"help": spec.help or None}
    if spec.widget == "radio":
        captions = {"captions": list(page.captions)} if page.captions else {}
        return where.radio(page.label, spec.choices, index=spec.choices.index(current), **options | captions | shown)
    if page.step is not None:
        options["step"] = page.step
    if spec.widget == "slider":
        return where.slider(page.label, spec.ge, spec.le, current, **options | shown)
    if spec.widget == "number":
        return where.number_input(page.label, min_value=spec.ge, max_value=spec.le, value=current, **options | shown)
    if spec.widget == "area":
        return where.text_area(page.label, current, **options | shown)
    if spec.widget == "toggle":
        return where.toggle(page.label, value=bool(current), **options | shown)
    options["type"] = "password" if spec.widget == "password" else "default"
    options["placeholder"] = page.placeholder or None
    return where.text_input(page.label, "" if current is None else str(current), **options | shown)


def from_form(settings: Settings, values: dict[str, Any]) -> Settings:
    """The settings the form describes, validated; an empty GGUF path means the built-in model."""
    new = settings.edited(values)
    if new.gguf_path is not None and not new.gguf_path.is_file():
        raise SettingsError(
            f"GGUF file {new.gguf_path} not found: give the full path to a .gguf file (e.g. "
            f"llama-2-7b-chat.Q4_K_M.gguf), or leave it empty for the built-in {BUILT_IN_MODEL}."
        )
    return new


def model_field(current: str, status: OllamaStatus) -> str:
    """A list of the installed models when Ollama answers, else a free text field."""
    if not status.reachable:
        st.caption(
            f"Ollama is not reachable at {escape_markdown(status.host)}: type the model name, or start it with "
            "`ollama serve` to choose from the installed models (checked every 10 s)."
        )
        return st.text_input("Ollama model", current).strip()
    options = list(status.models)
    selected = next((m for m in options if model_installed(current, [m])), None)
    if selected is None:
        options.insert(0, current)
        selected = current
        note = f" {escape_markdown(repr(current))} is not installed: pull it below, or pick another."
    else:
        note = ""
    host = escape_markdown(status.host)
    st.caption(f"Ollama is reachable at {host} with {plural(len(status.models), 'model')}.{note}")
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
        save_settings(load_settings().with_overrides(system_prompt=FIELDS["system_prompt"].default))
    except (RagError, OSError) as exc:
        st.session_state[f"{FLASH}_reset_error"] = safe_markdown(str(exc))
    else:
        st.session_state[f"{FLASH}_reset"] = "System prompt reset to the default: applies to the next question"


def pull(settings: Settings, name: str) -> None:
    """`ollama pull` with a progress bar; on success the model list is re-read."""
    host = settings.ollama_host
    bar = st.progress(0.0, text=f"Asking Ollama at {escape_markdown(host)} for {escape_markdown(name)}…")
    shown = 0.0
    last = PullProgress("")
    try:
        for update in pull_model(settings, name):
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

st.title("Settings")

startup, _ = started()  # its error is shown here, where it is fixed
if startup.settings is None:  # the settings themselves cannot be read: say why, offer to drop the file
    assert isinstance(startup.error, SettingsError)
    recover_from_bad_settings(startup.error)
    st.stop()
settings = startup.settings
if startup.error is not None:  # e.g. a GGUF file that has gone, a Chroma server that is down: fixed here
    show_startup_error(startup.error)

saved_at = settings_file(settings.data_dir)
st.caption(
    f"Saved in {escape_markdown(str(saved_at))}{'' if saved_at.exists() else ' (nothing saved yet)'}. Saved settings "
    "override environment variables (RAG_MODEL, OLLAMA_HOST, …); delete the file to go back to them and the defaults."
)
KB_NAME = escape_markdown(repr(settings.kb))
OWN_FILE = (
    f" (saved in {escape_markdown(str(settings_file(settings.kb_folder)))})" if settings.kb_folder is not None else ""
)

status = ollama_status(settings.ollama_host, settings.ollama_token)
edits: dict[str, Any] = {}


def edit(name: str, where: Any = st, **shown: Any) -> None:
    edits[name] = field_widget(name, getattr(settings, name), where, **shown)


with st.form("settings"):
    st.subheader("Model")
    edit("backend")
    edit("ollama_host")
    edit("ollama_token")
    if settings.backend == "openai":
        edit("model")
    else:
        edits["model"] = model_field(settings.model, status)
    edit("openai_base_url")
    edit("openai_api_key")
    edit("gguf_path", placeholder=f"empty: the built-in {BUILT_IN_MODEL}")
    st.caption(
        f"Empty: the built-in {BUILT_IN_MODEL}, a tiny model that follows the format but not the facts. "
        "For real answers point it at a chat model such as llama-2-7b-chat.Q4_K_M.gguf."
    )

    st.subheader("Generation")
    edit("temperature")
    left, right = st.columns(2)
    edit("max_answer_tokens", left)
    edit("context_window", right)

    st.subheader(f"Retrieval in the knowledge base {KB_NAME}")
    st.caption(
        f"These settings, the domain profile and the system prompt belong to the knowledge base {KB_NAME}{OWN_FILE}; "
        "switch knowledge base in the sidebar to change another's."
    )
    left, right = st.columns(2)
    edit("top_k", left)
    edit("context_chars", right)
    left, right = st.columns(2)
    edit("chunk_size", left)
    edit("chunk_overlap", right)
    st.caption(
        "A new chunk size or overlap applies to new documents; the Documents page then offers to re-index the "
        "others in place."
    )
    edit("min_score")
    st.caption(
        "Sources below this similarity are not shown to the model. Separately, when no source is close in "
        "meaning and none holds the question's rarer words, the app says your documents do not cover the "
        "question instead of asking the model."
    )
    edit("profile")
    edit("rerank")

    st.subheader("Where the vectors live")
    edit("chroma_url")
    left, right = st.columns(2)
    edit("chroma_collection", left)
    edit("chroma_token", right)
    st.caption(
        "A collection belongs to one data folder: another app with its own data folder is refused and told to "
        "use a collection of its own. Documents are not copied when you switch: ingest them again."
    )

    st.subheader("Conversation")
    edit("history_strategy")

    st.subheader("HTTP API and usage")
    edit("api_beside_app")
    st.caption(
        f"Listens on {settings.api_host}:{settings.api_port} (RAG_API_HOST, RAG_API_PORT); keys below. Or run it "
        "alone: `python -m rag serve`."
    )
    edit("model_prices")

    st.subheader("Folder and web sources")
    edit("watch")
    edit("url_allow")

    st.subheader(f"System prompt of the knowledge base {KB_NAME}")
    edit("system_prompt", height=320, label_visibility="collapsed")

    if others := [name for name in EDITABLE if name not in edits]:  # declared in rag/config.py, placed nowhere above
        st.subheader("Other settings")
        for name in others:
            edit(name)
    submitted = st.form_submit_button("Save settings", type="primary")

if submitted:
    try:
        new = from_form(settings, edits)
        save_settings(new)
    except SettingsError as exc:
        show_error(exc)
        st.caption("Nothing was saved: the app keeps using the previous settings.")
    except OSError as exc:
        st.error(
            f"Could not write {escape_markdown(f'{saved_at} ({exc})')}: check that the folder is writable.", icon="⚠️"
        )
    else:
        flash("save", "Saved: applies to the next question")
show_flash("save")

st.button(
    "Reset system prompt to default",
    on_click=reset_system_prompt,
    disabled=settings.system_prompt == FIELDS["system_prompt"].default,
    help="Saves at once; other changes in the form stay as typed until you save them.",
)
show_flash("reset")
if reset_error := st.session_state.pop(f"{FLASH}_reset_error", None):
    st.error(reset_error, icon="⚠️")

st.subheader("Pull a model")
st.caption(
    f"Downloads a model from ollama.com into Ollama at {escape_markdown(settings.ollama_host)}, like `ollama pull` "
    "(llama2, the 7B chat model, is about 3.8 GB)."
)
left, right = st.columns([4, 1], vertical_alignment="bottom")
pull_name = left.text_input("Model to pull", placeholder="e.g. llama2 or llama2:13b").strip()
if right.button("Pull", width="stretch"):
    if pull_name:
        pull(settings, pull_name)
    else:
        st.warning("Type the name of a model to pull, e.g. llama2.")
show_flash("pull")


# -- API keys ---------------------------------------------------------------------------------------------


def api_keys_section(settings: Settings) -> None:
    """Create, list and revoke the HTTP API's keys; a new key is shown once."""
    keys = get_api_keys(settings)
    st.subheader("HTTP API keys")
    st.caption(
        f"Programs calling the HTTP API (`python -m rag serve`, http://{settings.api_host}:{settings.api_port}/v1) "
        "send a key as `Authorization: Bearer …`. A key is shown once, when it is created: only its hash is kept."
    )
    if secret := st.session_state.pop(NEW_KEY, None):
        st.success("Copy the key now: it is not shown again.", icon=":material/key:")
        st.code(secret, language=None)
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    name = left.text_input("Name of a new key", placeholder="who or what uses it, e.g. editor", key="api_key_name")
    if right.button("Create key", width="stretch"):
        try:
            _, secret = keys.create(name)
        except RagError as exc:
            show_error(exc)
        else:
            st.session_state[NEW_KEY] = secret
            st.rerun()
    listed = keys.list()
    if not listed:
        st.caption("No key yet.")
        return
    st.dataframe(
        [
            {
                "Name": k.name,
                "Key": k.shown,
                "Created": k.created_at,
                "Last used": k.last_used_at or "—",
                "Revoked": k.revoked_at or "—",
            }
            for k in listed
        ],
        hide_index=True,
    )
    active = [k.name for k in listed if k.active]
    if not active:
        return
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    chosen = left.selectbox("Key to revoke", active, key="api_key_revoke_pick")
    if st.session_state.get(REVOKE) != chosen:
        right.button("Revoke", width="stretch", on_click=st.session_state.update, args=({REVOKE: chosen},))
        return
    st.warning(f"Revoke {escape_markdown(chosen)}? Programs using it are refused at once.", icon=":material/key_off:")
    yes, cancel, _ = st.columns([1, 1, 4])
    cancel.button("Cancel", key="api_key_revoke_cancel", on_click=st.session_state.pop, args=(REVOKE, None))
    if yes.button("Yes, revoke", type="primary", key="api_key_revoke_yes"):
        st.session_state.pop(REVOKE, None)
        try:
            keys.revoke(chosen)
        except RagError as exc:
            show_error(exc)
        else:
            flash("keys", f"Revoked {chosen}.")


api_keys_section(settings)
show_flash("keys")
