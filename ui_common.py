"""Streamlit glue shared by the pages: heavy parts built once per process, the start-up of each run, the sidebar.

Heavy objects (embedding model, Chroma store, llama.cpp model, saved conversations) are cached with
`st.cache_resource` and shared by every browser session; they are thread-safe. Per-user state lives in
`st.session_state`. app.py calls `start()` once a run, before the page; the pages read its engine with
`require_engine()` (or `started()`, the Settings page, which also works when the engine cannot start).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import streamlit as st

from rag.api import RunningServer
from rag.api_keys import ApiKeys
from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaStatus, probe_ollama
from rag.check import CheckReport, check
from rag.config import DEFAULT_CHROMA_COLLECTION, DEFAULT_KB, Settings, auth_headers
from rag.conversations import ConversationStore
from rag.embeddings import Embedder
from rag.engine import Engine, choose_backend, embedded_gguf, retrieval_options
from rag.errors import DamagedKnowledgeBase, RagError, SettingsError
from rag.formatting import plain_markdown, plural, safe_markdown, safe_markdown_blocks
from rag.kb import KnowledgeBase, KnowledgeBases, index_folders, index_location
from rag.logs import configure_logging
from rag.retrieval import RetrievalOptions, Retriever
from rag.sources import SourceKind, SourceStore, SyncReport
from rag.store import Store
from rag.sync import FolderWatcher, SyncProgressCallback, sync_sources, watched_paths

logger = logging.getLogger(__name__)

STARTUP = "app_startup"  # st.session_state: this run's start-up, handed by app.py to the page it runs
KB = "knowledge_base"  # st.session_state: the name of the knowledge base this browser tab works in
KB_FLASH = "knowledge_base_flash"  # a message shown once in the sidebar after a change of knowledge base
KB_PENDING_DELETE = "knowledge_base_pending_delete"
# Per-tab state that belongs to one knowledge base: forgotten when the tab switches to another.
KB_BOUND_STATE = (
    "conversation_id", "pending", "confirm_delete", "new_conversation_doc_filter", "doc_filter_new",
    "documents_results", "documents_upload_stopped", "documents_pending_delete", "documents_preview_pick",
    "documents_delete_pick",
)  # fmt: skip


@st.cache_resource(show_spinner="Loading the embedding model…")
def shared_embedder() -> Embedder:
    return Embedder()


@st.cache_resource(show_spinner="Opening the knowledge base…")
def shared_store(
    data_dir: str, chroma_url: str = "", chroma_token: str = "", collection: str = DEFAULT_CHROMA_COLLECTION
) -> Store:
    return Store(Path(data_dir), chroma_url, auth_headers(chroma_token), collection)


@st.cache_resource(max_entries=16)
def shared_retriever(_store: Store, store_key: int, options: RetrievalOptions) -> Retriever:
    """The store's retriever for these options, shared by every session and run (`store_key`: the store's
    identity; the options are hashed by their fields). It keeps what questions reuse: every vector, the document
    cards, the profile; built per run, each question read them again. Warmed in the background, so that the
    first question does not wait for it."""
    retriever = Retriever(_store, shared_embedder(), options)
    threading.Thread(target=_warm, args=(retriever,), name="rag-warm-retrieval", daemon=True).start()
    return retriever


def _warm(retriever: Retriever) -> None:
    try:
        retriever.warm()
    except Exception:  # the first question builds what is missing; a store closed meanwhile is not an error
        logger.debug("Warming retrieval failed", exc_info=True)


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


class _Closable(Protocol):
    def close(self) -> None: ...


Shared = TypeVar("Shared", bound=_Closable)


class _Opened(Generic[Shared]):
    """What a cached function opened, by the arguments it was called with (Streamlit keys its cache by the
    arguments as passed), the first one a folder: to close them when their folder goes (a knowledge base deleted, a
    re-index's old index). SQLite and Chroma keep their files open as long as they are, so their disk space would
    come back only when the app stops. The next call with the same arguments opens them anew."""

    def __init__(self, cached: Any, what: str) -> None:
        self._cached = cached
        self._what = what
        self._opened: dict[tuple[str, ...], Shared] = {}
        self._lock = threading.Lock()

    def get(self, *args: str) -> Shared:
        opened: Shared = self._cached(*args)
        with self._lock:
            self._opened[args] = opened
        return opened

    def release(self, folders: Sequence[Path]) -> list[Shared]:
        """Close what was opened on these folders; returns what was closed."""
        wanted = {str(folder) for folder in folders}
        with self._lock:
            released = [(args, opened) for args, opened in self._opened.items() if args[0] in wanted]
            for args, _opened in released:
                del self._opened[args]
        for args, opened in released:
            self._cached.clear(*args)
            try:
                opened.close()
            except Exception:  # its files are gone already: what is left to let go of goes with the process
                logger.warning("Closing the %s of %s failed", self._what, args[0], exc_info=True)
        return [opened for _args, opened in released]


_stores: _Opened[Store] = _Opened(shared_store, "store")


def get_store(settings: Settings) -> Store:
    """The shared store of the settings' knowledge base (the index that serves: a re-index opens the new one); a
    new Chroma URL, token or collection opens another one."""
    location = index_location(settings)
    chroma = (settings.chroma_url, settings.chroma_token, location.collection)
    if chroma == ("", "", DEFAULT_CHROMA_COLLECTION):
        return _stores.get(str(location.folder))
    return _stores.get(str(location.folder), *chroma)


def release_stores(folders: Sequence[Path]) -> None:
    """Close the shared stores of these index folders (a re-index's old index, a knowledge base deleted), and
    forget their retrievers (which keep every vector of the store in memory)."""
    for store in _stores.release(folders):
        with _RETRIEVERS_LOCK:
            made_with = _retriever_options.pop(id(store), set())
        for options in made_with:
            shared_retriever.clear(store, id(store), options)


_retriever_options: dict[int, set[RetrievalOptions]] = {}  # id(store) → the options its shared retrievers have
_RETRIEVERS_LOCK = threading.Lock()


def get_retriever(store: Store, options: RetrievalOptions) -> Retriever:
    """The shared retriever of this store for these options."""
    with _RETRIEVERS_LOCK:
        _retriever_options.setdefault(id(store), set()).add(options)
    return shared_retriever(store, id(store), options)


@st.cache_resource
def shared_conversations(data_dir: str) -> ConversationStore:
    return ConversationStore.in_data_dir(Path(data_dir))


_conversations: _Opened[ConversationStore] = _Opened(shared_conversations, "saved conversations")


def get_conversations(settings: Settings) -> ConversationStore:
    """The saved conversations of the settings' knowledge base (each has its own)."""
    return _conversations.get(str(settings.kb_dir))


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


def catalog() -> KnowledgeBases:
    """The knowledge bases of the data folder, read as they are now (another tab or the CLI may change them)."""
    return KnowledgeBases(Settings.load())


def current_kb(knowledge_bases: KnowledgeBases) -> str:
    """The knowledge base this tab works in: its choice in the sidebar, else RAG_KB's (else 'default'). One
    deleted or renamed elsewhere falls back to RAG_KB's, with a note in the sidebar."""
    chosen = st.session_state.get(KB)
    if chosen is not None and knowledge_bases.find(chosen) is None:
        st.session_state[KB_FLASH] = (
            f"The knowledge base {chosen!r} is gone (deleted or renamed elsewhere): showing "
            f"{knowledge_bases.settings.kb!r}."
        )
        switch_kb(knowledge_bases.settings.kb)
        chosen = None
    return str(chosen or knowledge_bases.settings.kb)


def switch_kb(name: str) -> None:
    """Work in another knowledge base: its documents, conversations and settings from the next run on."""
    if st.session_state.get(KB) != name:
        for key in KB_BOUND_STATE:
            st.session_state.pop(key, None)
        for key in [k for k in st.session_state if str(k).startswith("doc_filter_")]:
            st.session_state.pop(key, None)
    st.session_state[KB] = name


def load_settings() -> Settings:
    """Environment, then the saved settings files (the app's, and the current knowledge base's own); read on
    every run so changes apply at once."""
    knowledge_bases = catalog()
    return knowledge_bases.settings_for(current_kb(knowledge_bases))


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
    retriever = get_retriever(store, retrieval_options(settings))
    engine = Engine(
        settings,
        store=store,
        embedder=embedder,
        chosen=choice,
        conversations=get_conversations(settings),
        retriever=retriever,
    )
    startup_check(store, _place(settings))
    if settings.api_beside_app:
        api_beside_app(settings.api_host, settings.api_port, str(settings.data_dir), engine)
    if "corpus_checked" not in st.session_state:
        with st.spinner("First start: indexing the default knowledge base…"):
            engine.ensure_default_corpus()
        st.session_state.corpus_checked = True
    folder_watcher(str(settings.data_dir)).run_while(settings.watch == "on")
    return engine


def engine_for(settings: Settings) -> Engine:
    """An engine for another knowledge base (the folder watcher's), on the shared parts; it never answers."""
    return Engine(settings, store=get_store(settings), embedder=shared_embedder(), conversations=None)


def sync_kb(
    settings: Settings,
    engine: Engine | None = None,
    on_progress: SyncProgressCallback | None = None,
    kinds: Sequence[SourceKind] = ("folder", "files", "web"),
) -> SyncReport:
    """Sync the sources of the settings' knowledge base (rag/sync.py) into its shared store."""
    engine = engine or engine_for(settings)
    return sync_sources(settings, engine.store, engine.ingestor, on_progress, kinds)


@st.cache_resource
def folder_watcher(data_dir: str) -> FolderWatcher:
    """One watcher of the folder sources of every knowledge base in the data folder, for the whole process (the
    setting "Keep folder sources in sync" turns it on and off)."""
    knowledge_bases = KnowledgeBases(Settings.load().with_overrides(data_dir=Path(data_dir)))

    def folders() -> dict[str, list[Path]]:
        watched: dict[str, list[Path]] = {}
        for kb in knowledge_bases.list():
            sources = SourceStore(kb.folder)
            try:
                watched[kb.name] = watched_paths(sources.sources())
            finally:
                sources.close()
        return watched

    def sync(name: str) -> SyncReport:
        return sync_kb(knowledge_bases.settings_for(name), kinds=("folder", "files"))

    return FolderWatcher(folders, sync)


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
        except Exception as exc:  # e.g. a Chroma server that is down, a data folder it cannot write
            startup = Startup(settings, None, exc)
        else:
            startup = Startup(settings, engine)
    st.session_state[STARTUP] = startup
    return startup


def started() -> tuple[Startup, bool]:
    """This run's start-up, and whether app.py showed its error; the sidebar drawn. app.py starts the app before
    the page and hands the start-up over (taken once, so a page never reads an earlier run's); a page run on its
    own (Streamlit's test runner re-runs a page file alone) starts it itself. The sidebar's widgets are made here,
    in the page's run: made in app.py's, they would change identity between a session's first run and the next
    (the page is known only then), and the first click on one would be lost."""
    startup = st.session_state.pop(STARTUP, None)
    shown = isinstance(startup, Startup)
    if not isinstance(startup, Startup):
        startup = start()
        st.session_state.pop(STARTUP, None)
    if startup.engine is not None:
        try:
            sidebar(startup.engine)
        except RagError as exc:  # e.g. the knowledge base's files unreadable: said, the page still opens
            with st.sidebar:
                show_error(exc)
    elif startup.settings is not None:  # the engine failed in this knowledge base: another can still be chosen
        with st.sidebar:
            knowledge_base_picker(startup.settings)
    return startup, shown


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
    """The knowledge base this tab works in (switch, create, rename, delete), which model answers and why, and
    the knowledge base's size (below the pages' navigation)."""
    choice = engine.chosen
    with st.sidebar:
        knowledge_base_picker(engine.settings)
        st.caption("Answering with")
        (st.warning if choice.fallback else st.info)(plain_markdown(choice.reason))  # it holds settings values
        if (remote := remote_model_host(engine.settings, choice.fallback)) is not None:
            st.warning(
                f"The model runs on another machine: your questions and passages are sent to {plain_markdown(remote)}. "
                "Use a host on this machine (Settings) to keep them here.",
                icon=":material/public:",
            )
        docs = engine.documents()
        st.caption(
            f"Knowledge base {plain_markdown(repr(engine.settings.kb))}: {plural(len(docs), 'document')} · "
            f"{plural(engine.store.chunk_count(), 'chunk')}"
        )
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


def knowledge_base_picker(settings: Settings) -> None:
    """Switch between knowledge bases; create, rename and delete them (delete asks first)."""
    knowledge_bases = KnowledgeBases(settings)
    names = [kb.name for kb in knowledge_bases.list()]
    if message := st.session_state.pop(KB_FLASH, None):
        st.info(plain_markdown(message), icon=":material/info:")
    current = settings.kb if settings.kb in names else names[0]
    chosen = st.selectbox(
        "Knowledge base",
        names,
        index=names.index(current),
        key=f"kb_pick_{current}",  # a new key after each switch: the box shows the knowledge base in use
        help="Each knowledge base has its own documents, sources, conversations and retrieval settings.",
    )
    if chosen != current:
        switch_kb(chosen)
        st.rerun()
    with st.expander("Manage knowledge bases", icon=":material/library_books:"):
        new_name = st.text_input("New knowledge base", key="kb_new_name", placeholder="e.g. Project Apollo")
        if st.button("Create", key="kb_create", icon=":material/add:"):
            _change_kb(lambda: knowledge_bases.create(new_name), "Created and opened the knowledge base {!r}.")
        if settings.kb_folder is None:
            st.caption("'default' is the data folder itself: it keeps its name and cannot be deleted.")
            return
        renamed = st.text_input("Rename this knowledge base", settings.kb, key=f"kb_rename_{settings.kb}")
        if st.button("Rename", key="kb_rename"):
            _change_kb(lambda: knowledge_bases.rename(settings.kb, renamed), "Renamed the knowledge base to {!r}.")
        if st.session_state.get(KB_PENDING_DELETE) != settings.kb:
            if st.button("Delete this knowledge base", key="kb_delete", icon=":material/delete:"):
                st.session_state[KB_PENDING_DELETE] = settings.kb
                st.rerun()
            return
        st.warning(
            f"Delete the knowledge base {plain_markdown(repr(settings.kb))} with all its documents, sources and "
            "conversations? This cannot be undone (export it first to keep a copy).",
            icon=":material/delete:",
        )
        yes, cancel = st.columns(2)
        if cancel.button("Cancel", key="kb_delete_cancel"):
            st.session_state.pop(KB_PENDING_DELETE, None)
            st.rerun()
        if yes.button("Yes, delete", key="kb_delete_yes", type="primary"):
            st.session_state.pop(KB_PENDING_DELETE, None)
            name = settings.kb
            try:
                folders = index_folders(settings)
                knowledge_bases.delete(name)
            except RagError as exc:
                show_error(exc)
                return
            release_stores(folders)
            _conversations.release([settings.kb_dir])
            switch_kb(DEFAULT_KB)
            st.session_state[KB_FLASH] = f"Deleted the knowledge base {name!r}."
            st.rerun()


def _change_kb(change: Callable[[], KnowledgeBase], done: str) -> None:
    """Create or rename a knowledge base, then work in it; a refusal (a name in use, an empty name) is said."""
    try:
        kb = change()
    except RagError as exc:
        show_error(exc)
        return
    switch_kb(kb.name)
    st.session_state[KB_FLASH] = done.format(kb.name)
    st.rerun()


def _place(settings: Settings) -> str:
    location = index_location(settings)
    return f"{location.folder}|{settings.chroma_url}|{location.collection}"


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
