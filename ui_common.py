"""Streamlit glue shared by the pages: heavy parts built once per process, the start-up of each run, the sidebar.

Heavy objects (embedding model, Chroma store, llama.cpp model, saved conversations) are cached with
`st.cache_resource` and shared by every browser session; they are thread-safe. Per-user state lives in
`st.session_state`. app.py calls `start()` once a run, before the page; the pages read its engine with
`require_engine()` (or `started()`, the Settings page, which also works when the engine cannot start).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import streamlit as st

from rag.api import RunningServer
from rag.api_keys import ApiKeys
from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaStatus, probe_ollama
from rag.check import CheckReport, check
from rag.config import DEFAULT_CHROMA_COLLECTION, Settings, auth_headers
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.engine import Engine, choose_backend, embedded_gguf
from rag.errors import DamagedKnowledgeBase, RagError, SettingsError
from rag.formatting import plain_markdown, plural, safe_markdown, safe_markdown_blocks
from rag.logs import configure_logging
from rag.store import Store

logger = logging.getLogger(__name__)

STARTUP = "app_startup"  # st.session_state: this run's start-up, handed by app.py to the page it runs


@st.cache_resource(show_spinner="Loading the embedding model…")
def shared_embedder() -> Embedder:
    return Embedder()


@st.cache_resource(show_spinner="Opening the knowledge base…")
def shared_store(
    data_dir: str, chroma_url: str = "", chroma_token: str = "", collection: str = DEFAULT_CHROMA_COLLECTION
) -> Store:
    return Store(Path(data_dir), chroma_url, auth_headers(chroma_token), collection)


@st.cache_resource(show_spinner="Checking the knowledge base…")
def startup_check(_store: Store, place: str) -> CheckReport | None:
    """`rag check`, read-only, once per process and knowledge base (`place` keys the cache: the store itself is
    not hashable); None when the check itself failed (logged: the app still works)."""
    try:
        return check(_store, wait=5.0)  # a writer (the CLI) busy for longer: no verdict rather than a slow start
    except DamagedKnowledgeBase:  # Chroma's files unreadable (opened on first use): the page says what to run
        raise
    except Exception:  # a diagnostic must never keep the app from starting
        logger.exception("The start-up check of the knowledge base in %s failed", place)
        return None


@st.cache_resource(show_spinner="Loading the built-in model…", max_entries=2)
def shared_embedded_llm(gguf: str | None, context_window: int) -> EmbeddedBackend:
    return EmbeddedBackend(Path(gguf) if gguf else None, context_window)


def get_store(settings: Settings) -> Store:
    """The shared store for these settings; a new Chroma URL, token or collection opens another one."""
    chroma = (settings.chroma_url, settings.chroma_token, settings.chroma_collection)
    if chroma == ("", "", DEFAULT_CHROMA_COLLECTION):
        return shared_store(str(settings.data_dir))  # Streamlit keys the cache by the arguments as passed
    return shared_store(str(settings.data_dir), *chroma)


@st.cache_resource
def shared_conversations(data_dir: str) -> ConversationStore:
    return ConversationStore.in_data_dir(Path(data_dir))


def get_conversations(settings: Settings) -> ConversationStore:
    return shared_conversations(str(settings.data_dir))


@st.cache_resource
def shared_api_keys(data_dir: str) -> ApiKeys:
    return ApiKeys.in_data_dir(Path(data_dir))


def get_api_keys(settings: Settings) -> ApiKeys:
    return shared_api_keys(str(settings.data_dir))


@st.cache_resource(show_spinner="Starting the HTTP API…")
def api_beside_app(host: str, port: int, data_dir: str, _engine: Engine) -> RunningServer | str:
    """The HTTP API in a thread of this process, sharing the app's parts (started once per host, port and data
    folder); or why it could not start."""
    from rag.api import Engines, create_app, serve_in_thread

    try:
        app = create_app(Engines(load_settings, seed=_engine), shared_api_keys(data_dir), _engine.settings)
        return serve_in_thread(app, host, port)
    except RagError as exc:
        logger.warning("%s", exc)
        return str(exc)


@st.cache_data(ttl=10, show_spinner=False)
def ollama_status(host: str, token: str = "") -> OllamaStatus:
    """Probed at most every 10 s, so starting Ollama is noticed without a restart."""
    return probe_ollama(host, timeout=1.5, headers=auth_headers(token))


def load_settings() -> Settings:
    """Environment, then the saved settings file; read on every run so changes apply at once."""
    return Settings.load()


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    store = get_store(settings)
    embedder = shared_embedder()

    def make_embedded(s: Settings) -> EmbeddedBackend:
        gguf = embedded_gguf(s)
        return shared_embedded_llm(None if gguf is None else str(gguf), s.context_window)

    status = ollama_status(settings.ollama_host, settings.ollama_token) if settings.backend == "auto" else None
    choice = choose_backend(settings, status, make_embedded)
    engine = Engine(
        settings, store=store, embedder=embedder, chosen=choice, conversations=get_conversations(settings)
    )
    startup_check(store, _place(settings))
    if settings.api_beside_app:
        api_beside_app(settings.api_host, settings.api_port, str(settings.data_dir), engine)
    if "corpus_checked" not in st.session_state:
        with st.spinner("First start: indexing the default knowledge base…"):
            engine.ensure_default_corpus()
        st.session_state.corpus_checked = True
    return engine


@dataclass(frozen=True)
class Startup:
    """What this run's start-up gave: settings and engine, or the error that stopped it (then what it could)."""

    settings: Settings | None  # None: the settings could not be read (the environment or settings.json)
    engine: Engine | None  # None: the engine could not start
    error: Exception | None = None


def start() -> Startup:
    """The start-up every page shares (app.py calls it once a run): the settings, the engine with its shared
    parts, the default knowledge base on a first start, the sidebar. A failure is kept, not shown: app.py
    shows it, or the Settings page, where it is fixed."""
    startup: Startup
    try:
        settings = load_settings()
    except SettingsError as exc:
        startup = Startup(None, None, exc)
    else:
        try:
            engine = get_engine(settings)
            sidebar(engine)
        except Exception as exc:  # e.g. a Chroma server that is down, a data folder it cannot write
            startup = Startup(settings, None, exc)
        else:
            startup = Startup(settings, engine)
    st.session_state[STARTUP] = startup
    return startup


def started() -> tuple[Startup, bool]:
    """This run's start-up, and whether app.py showed its error. app.py starts the app before the page and hands
    the start-up over (taken once, so a page never reads an earlier run's); a page run on its own (Streamlit's
    test runner re-runs a page file alone) starts it itself."""
    startup = st.session_state.pop(STARTUP, None)
    if isinstance(startup, Startup):
        return startup, True
    startup = start()
    st.session_state.pop(STARTUP, None)
    return startup, False


def require_engine() -> Engine:
    """The engine of this run's start-up; when there is none, the page stops (after saying why, unless app.py
    did already)."""
    startup, shown = started()
    if startup.engine is None:
        if not shown and startup.error is not None:
            explain_failed_start(startup.error)
        st.stop()
    return startup.engine


def explain_failed_start(exc: Exception) -> None:
    """Why the app could not start, and where to fix it."""
    show_startup_error(exc)
    st.caption("Fix it on the Settings page (or in the environment), then reload this page.")


def show_startup_error(exc: Exception) -> None:
    """Why the app could not start: our message says what to do; anything else is said plainly, traced in the log."""
    if isinstance(exc, RagError):  # e.g. a settings file it cannot use, a Chroma server that is down
        show_error(exc)
    else:
        show_unexpected(exc, "opening the knowledge base", "Check the data folder and the settings, then reload.")


def sidebar(engine: Engine) -> None:
    """Which model answers and why, and the knowledge base's size (below the pages' navigation)."""
    choice = engine.chosen
    with st.sidebar:
        st.caption("Answering with")
        (st.warning if choice.fallback else st.info)(plain_markdown(choice.reason))  # it holds settings values
        if (remote := remote_model_host(engine.settings, choice.fallback)) is not None:
            st.warning(
                f"The model runs on another machine: your questions and passages are sent to {plain_markdown(remote)}. "
                "Use a host on this machine (Settings) to keep them here.",
                icon=":material/public:",
            )
        docs = engine.documents()
        st.caption(f"Knowledge base: {plural(len(docs), 'document')} · {plural(engine.store.chunk_count(), 'chunk')}")
        settings = engine.settings
        if settings.api_beside_app:
            api = api_beside_app(settings.api_host, settings.api_port, str(settings.data_dir), engine)
            if isinstance(api, str):
                st.warning(f"The HTTP API is not running: {safe_markdown(api)}", icon=":material/api:")
            else:
                v1, described = plain_markdown(f"{api.url}/v1"), plain_markdown(f"{api.url}/docs")
                st.caption(f"HTTP API: {v1}, described at {described}")
        report = startup_check(engine.store, _place(engine.settings))
        if report is not None and not report.ok:
            st.warning(
                f"The knowledge base is inconsistent ({plural(len(report.problems), 'problem')} found when the app "
                f"started: {', '.join(dict.fromkeys(p.kind for p in report.problems))}). Run "
                "`python -m rag check --repair`, then ingest again any file it names.",
                icon=":material/warning:",
            )


def _place(settings: Settings) -> str:
    return f"{settings.data_dir}|{settings.chroma_url}|{settings.chroma_collection}"


def remote_model_host(settings: Settings, fallback: bool) -> str | None:
    """The model server's URL when the prompt (question, passages, history) leaves this machine, else None."""
    if settings.backend == "openai":
        url = settings.openai_base_url
    elif settings.backend == "ollama" or (settings.backend == "auto" and not fallback):
        url = settings.ollama_host
    else:
        return None  # the embedded model runs inside the app
    return None if is_loopback_url(url) else url


def is_loopback_url(url: str) -> bool:
    """True when `url` names this machine (localhost, 127.0.0.0/8, ::1)."""
    try:
        host = (urlsplit(url).hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def escape_markdown(text: str) -> str:
    """For names shown in labels (which Streamlit renders as markdown): a file name stays a name, a URL in it
    stays text (no link, see rag.formatting)."""
    return plain_markdown(text)


def render_markdown(text: str) -> None:
    """A model answer: its formatting kept, no image loaded, no link, code blocks as code."""
    for block in safe_markdown_blocks(text):
        if block.code:
            st.code(block.text, language=block.language or None)
        elif block.text.strip():
            st.markdown(block.text)


def show_error(exc: RagError) -> None:
    st.error(safe_markdown(str(exc)), icon=":material/error:")


def show_unexpected(exc: BaseException, doing: str, what_to_do: str) -> None:
    """A failure the app has no message for (e.g. sqlite3's "database is locked"): said plainly, with what to
    do, instead of a stack trace; the trace goes to the log (the terminal running `streamlit run`)."""
    logger.error("Unexpected error while %s", doing, exc_info=exc)
    detail = f"{type(exc).__name__}: {exc}"
    st.error(
        f"Something went wrong while {doing} ({safe_markdown(detail)}). {what_to_do} "
        "The details are in the terminal that runs the app.",
        icon=":material/error:",
    )
