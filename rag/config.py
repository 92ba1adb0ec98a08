"""Settings, resolved once at the edge (CLI, app) and passed in. The only module that reads the environment.

Every setting is declared once, as a field of `Settings` made with `setting(...)`: its type, default,
bounds, environment variable, help text, the words messages use for it and, when people may change it
in the browser, its widget on the Settings page. From that one declaration come the environment parsing
(`Settings.from_env`), the checks and their messages (pydantic, strict, then `_explain`), what
settings.json may hold (`EDITABLE`, `read_saved`, `save_settings`) and the page's widgets
(pages/settings.py draws `FIELDS[name].page`).
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from rag.errors import SettingsError
from rag.profiles import ProfileName
from rag.prompts import DEFAULT_SYSTEM_PROMPT

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_CORPUS_DIR = PROJECT_ROOT / "docs_corpus"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"  # llama_cpp.server's and vLLM's default port
DEFAULT_CHROMA_COLLECTION = "chunks"

BackendName = Literal["auto", "ollama", "embedded", "openai"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
HistoryStrategy = Literal["summarize", "drop"]
Rerank = Literal["off", "sentences"]
RERANKS: tuple[Rerank, ...] = ("off", "sentences")
HISTORY_STRATEGIES: tuple[HistoryStrategy, ...] = get_args(HistoryStrategy)
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
WatchMode = Literal["off", "on"]
DEFAULT_KB = "default"  # the knowledge base of the data folder itself (every data folder made before there were more)
MAX_KB_NAME_CHARS = 60
# The largest window of the open models people run locally (Llama 3.1, Qwen 2.5, Mistral Nemo: 128k tokens).
# It goes to Ollama as num_ctx, which allocates a KV cache that size up front: a typo such as 4096000
# would ask for hundreds of GB instead of failing here with a message.
MAX_CONTEXT_WINDOW = 131_072
# Limits on what one file and one upload may cost (README, "Limits"); each is a setting (environment only,
# so that nobody reaching the browser page can lift them). A file over a limit fails with a message, the
# rest of its batch still goes in.
DEFAULT_MAX_PAGES = 2_000  # a PDF's pages: ~3 s a page by OCR on 2 cores, and the largest real reports are < 1,000
DEFAULT_MAX_CHUNKS = 20_000  # a file's chunks: ~20 min of embedding at ~17 chunks/s, ~12 MB of text
DEFAULT_MAX_UPLOAD_FILES = 500  # files in one upload
DEFAULT_MAX_UPLOAD_MB = 1_024  # megabytes in one upload (Streamlit itself refuses a file over 200 MB)
DEFAULT_API_PORT = 8502  # next to the app's 8501
DEFAULT_API_MAX_REQUEST_KB = 1_024  # a question with a long history fits; a pasted book does not
# What reading one file may cost (README, "Limits"): each file is parsed in a worker process that is stopped past
# these. The largest real documents measured here read in a few seconds (a 1,000-page filing: ~3 s) and under
# 500 MB; a scan read by OCR gets the time again for each page (OCR takes up to a minute a page on a busy CPU).
DEFAULT_PARSE_SECONDS = 120
DEFAULT_PARSE_MEMORY_MB = 2_048
DEFAULT_CHUNK_SIZE = 600
MAX_PROMPT_CHARS = 50_000
MAX_SETTING_CHARS = 2_000  # URLs, names, tokens: every other text setting
SETTINGS_FILE = "settings.json"


def force_offline() -> None:
    """No code path may reach a model hub or a telemetry endpoint: set before those libraries load."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


# -- the declaration of one field ---------------------------------------------------------------------

Kind = Literal["int", "float", "bool", "path", "choice", "text"]
WidgetKind = Literal["text", "password", "area", "number", "slider", "radio", "toggle"]


@dataclass(frozen=True)
class Widget:
    """How the Settings page edits a field; a field without one is not editable there (nor in settings.json)."""

    label: str
    kind: WidgetKind | None = None  # None: from the type (number, slider, radio; text, or password for a secret)
    step: float | None = None
    placeholder: str = ""
    captions: tuple[str, ...] = ()  # a radio's words under each choice, in the order of the choices


@dataclass(frozen=True)
class FieldSpec:
    """What `setting` declared about a field, completed from the model (name, kind, choices, default, help)."""

    env: str | None  # its environment variable; None: not read from the environment
    says: str | None  # how messages name it ("top-k"); None: by its variable ("RAG_MAX_PAGES=0")
    unit: str  # of its bounds in messages: "tokens", "characters", "seconds"
    why: str  # why a bound is where it is: a value past it is then "too small" / "too large", with this
    ge: float | None
    le: float | None
    url: bool  # an http(s) URL: "host:port" is completed; empty only where the default is empty
    secret: bool  # kept out of repr, typed into a password field, one line
    page: Widget | None
    per_kb: bool = False  # belongs to a knowledge base (saved in its own settings.json), not to the whole app
    name: str = ""
    kind: Kind = "text"
    choices: tuple[str, ...] = ()
    default: Any = None
    help: str = ""

    @property
    def widget(self) -> WidgetKind:
        if self.page is not None and self.page.kind is not None:
            return self.page.kind
        by_kind: dict[Kind, WidgetKind] = {"int": "number", "float": "slider", "choice": "radio", "bool": "toggle"}
        return by_kind.get(self.kind, "password" if self.secret else "text")


def setting(
    default: Any,
    *,
    env: str | None = None,
    says: str | None = None,
    unit: str = "",
    why: str = "",
    ge: float | None = None,
    le: float | None = None,
    max_length: int | None = None,
    url: bool = False,
    secret: bool = False,
    help: str = "",
    page: Widget | None = None,
    per_kb: bool = False,
) -> Any:
    """One row of the table: pydantic enforces the type (strictly), bounds and length; the rest is kept on
    the field (`FIELDS`) for the environment, the messages, settings.json and the page. `per_kb`: each
    knowledge base has its own value (chunking, retrieval, system prompt, profile)."""
    info = Field(default, ge=ge, le=le, max_length=max_length, description=help or None, repr=not secret)
    info.metadata.append(FieldSpec(env, says, unit, why, ge, le, url, secret, page, per_kb))
    return info


# -- the table ----------------------------------------------------------------------------------------


class Settings(BaseModel):
    """Every setting the app and the CLI read: defaults, then environment variables, then settings.json."""

    model_config = ConfigDict(
        frozen=True, strict=True, extra="forbid", allow_inf_nan=False, str_max_length=MAX_SETTING_CHARS
    )

    # One field a setting, one argument a fact (see `setting`): the type and default, bounds, the environment
    # variable, the words messages use, help text, and the widget when the Settings page edits it.
    data_dir: Path = setting(
        DEFAULT_DATA_DIR, env="RAG_DATA_DIR",
        help="The app's data folder: the knowledge base 'default' and the others (in kbs/), settings.json.",
    )  # fmt: skip
    kb: str = setting(
        DEFAULT_KB, env="RAG_KB", says="knowledge base", max_length=MAX_KB_NAME_CHARS,
        help="The knowledge base commands and new app sessions open (`python -m rag kb list`).",
    )  # fmt: skip
    # Set by rag/kb.py when it opens a knowledge base other than 'default' (its own folder in kbs/); None: the
    # data folder itself, where the knowledge base 'default' lives. Never from the environment or a file.
    kb_folder: Path | None = setting(None, help="The folder of the open knowledge base (none: the data folder).")
    corpus_dir: Path = setting(
        DEFAULT_CORPUS_DIR, env="RAG_CORPUS_DIR", help="The default knowledge base indexed on first start."
    )
    backend: BackendName = setting(
        "auto", env="RAG_BACKEND", says="backend",
        page=Widget("Backend", captions=(
            "Ollama when it runs and has the model; otherwise the built-in model (the sidebar says why).",
            "Always Ollama: a question fails with a message when it is not running.",
            "llama.cpp inside the app on a GGUF file: no server needed.",
            "Any OpenAI-compatible server (vLLM, TGI, llama.cpp, LiteLLM…) at the URL below; never falls back.",
        )),
    )  # fmt: skip
    model: str = setting(
        "llama2", env="RAG_MODEL", page=Widget("Model"),
        help="The model's name as the server knows it (`ollama list`, or `curl BASE_URL/models`).",
    )  # fmt: skip
    ollama_host: str = setting(
        DEFAULT_OLLAMA_HOST, env="OLLAMA_HOST", says="Ollama host", url=True,
        help="Where `ollama serve` listens.", page=Widget("Ollama host"),
    )  # fmt: skip
    gguf_path: Path | None = setting(
        None, env="RAG_GGUF_PATH", page=Widget("GGUF file (embedded backend)"),
        help="A GGUF model for the embedded backend; none: the packaged SmolLM2-135M-Instruct.",
    )  # fmt: skip
    # Ollama behind a proxy that wants credentials: a bearer token, or a whole header "Name: value".
    ollama_token: str = setting(
        "", env="RAG_OLLAMA_TOKEN", secret=True, page=Widget("Ollama proxy token (optional)"),
        help="For an Ollama behind a proxy that checks credentials: a bearer token, or a whole header "
        "`Name: value`. Sent with every request to the Ollama host.",
    )  # fmt: skip
    # Any OpenAI-compatible server (vLLM, TGI, llama.cpp, LiteLLM…), used when backend is "openai".
    openai_base_url: str = setting(
        DEFAULT_OPENAI_BASE_URL, env="RAG_OPENAI_BASE_URL", says="OpenAI base URL", url=True,
        page=Widget("OpenAI-compatible server (openai backend)"),
        help="The server's base URL, usually ending with /v1, e.g. http://gpu-box:8000/v1 for vLLM or "
        "llama.cpp's server.",
    )  # fmt: skip
    openai_api_key: str = setting(
        "", env="RAG_OPENAI_API_KEY", secret=True, page=Widget("API key (openai backend)"),
        help="Sent as `Authorization: Bearer …`; empty for a server without keys. Saved in settings.json.",
    )  # fmt: skip
    # Chroma as a server (`chroma run`); empty: Chroma embedded in the data directory.
    chroma_url: str = setting(
        "", env="RAG_CHROMA_URL", says="Chroma URL", url=True,
        page=Widget("Chroma server URL", placeholder="empty: Chroma inside the data folder"),
        help="A Chroma server shared by a team (`chroma run --path DIR --host 0.0.0.0 --port 8000`), e.g. "
        "http://kb-server:8000. The document list and keyword index stay in this app's data folder.",
    )  # fmt: skip
    chroma_token: str = setting(
        "", env="RAG_CHROMA_TOKEN", secret=True, page=Widget("Chroma token (optional)"),
        help="For a server behind a proxy that checks credentials: a bearer token, or a whole header `Name: value`.",
    )  # fmt: skip
    chroma_collection: str = setting(
        DEFAULT_CHROMA_COLLECTION, env="RAG_CHROMA_COLLECTION", page=Widget("Chroma collection"),
        help="The Chroma collection of this knowledge base.",
    )  # fmt: skip
    context_window: int = setting(
        4096, env="RAG_CONTEXT_WINDOW", says="Context window", unit="tokens", ge=512, le=MAX_CONTEXT_WINDOW,
        why="no local model has a larger window, and Ollama reserves memory for all of it",
        help="Sent to Ollama as num_ctx, and the prompt is fitted inside it. Llama 2: 4096.",
        page=Widget("Context window (tokens)", step=512),
    )  # fmt: skip
    max_answer_tokens: int = setting(
        512, env="RAG_MAX_ANSWER_TOKENS", says="Max answer tokens", ge=16,  # and at most half the window
        help="At most half the context window; the rest holds the sources and the conversation.",
        page=Widget("Max answer tokens", step=64),
    )  # fmt: skip
    temperature: float = setting(
        0.2, env="RAG_TEMPERATURE", says="Temperature", ge=0.0, le=2.0,
        help="0: always the most likely words; higher: more varied answers.",
        page=Widget("Temperature", step=0.05),
    )  # fmt: skip
    # Chosen on squad-dev (README, "Retrieval"): up to 12 passages of ~600 characters, fused dense +
    # keyword, within ~4,000 characters of context, put the answer in the prompt most often.
    top_k: int = setting(
        12, env="RAG_TOP_K", says="top-k", ge=1, le=50, help="The most passages given to the model per question.",
        page=Widget("Sources per question (top-k)"), per_kb=True,
    )  # fmt: skip
    context_chars: int = setting(
        4000, env="RAG_CONTEXT_CHARS", says="Context size", unit="characters", ge=200, le=100_000,
        help="At most this much of your documents goes into each prompt (about 3.3 characters a token).",
        page=Widget("Context budget (characters)", step=500), per_kb=True,
    )  # fmt: skip
    chunk_size: int = setting(
        DEFAULT_CHUNK_SIZE, env="RAG_CHUNK_SIZE", says="Chunk size", unit="characters", ge=100, le=8000,
        help="Characters per chunk (new ingests, or a re-index).", page=Widget("Chunk size (characters)", step=50),
        per_kb=True,
    )  # fmt: skip
    chunk_overlap: int = setting(
        100, env="RAG_CHUNK_OVERLAP", says="Chunk overlap", unit="characters", ge=0,  # and under half a chunk
        help="Characters shared by neighbouring chunks (new ingests, or a re-index).",
        page=Widget("Chunk overlap (characters)", step=10), per_kb=True,
    )  # fmt: skip
    min_score: float = setting(
        0.2, env="RAG_MIN_SCORE", says="Minimum score", ge=-1.0, le=1.0, page=Widget("Minimum score", step=0.05),
        help="The cosine a passage needs to be given to the model, unless it holds half of the question's words.",
        per_kb=True,
    )  # fmt: skip
    profile: ProfileName = setting(
        "auto", env="RAG_PROFILE", says="domain profile",
        help="Domain knowledge for retrieval: auto (finance when your documents hold financial statements, "
        "contracts when they hold agreements), none, finance (a glossary of financial metrics; the statements "
        "that print them preferred) or contracts (a question about when an agreement was made is given its opening;"
        " one about a clause, such as governing law or renewal, the passages worded as that clause).",
        page=Widget("Domain profile", captions=(
            "finance or contracts, from what the documents hold", "general retrieval only",
            "financial metrics and statements always", "an agreement's opening and the clause asked about",
        )), per_kb=True,
    )  # fmt: skip
    # Measured on the suite (README, "Retrieval across domains"): a small gain on long contracts for about a
    # second per question on this machine, so it is the user's choice.
    rerank: Rerank = setting(
        "off", env="RAG_RERANK", says="reranking",
        help="off, or sentences: the best 20 passages are also judged by their sentence closest to the question "
        "(slower: the sentences are embedded at question time; helps most in long documents).",
        page=Widget("Reranking", captions=(
            "fused scores only (fastest)", "each passage's sentence closest to the question counts too",
        )), per_kb=True,
    )  # fmt: skip
    system_prompt: str = setting(
        DEFAULT_SYSTEM_PROMPT, says="The system prompt", max_length=MAX_PROMPT_CHARS,
        why="it is sent with every question and must leave room for the passages",
        help="The numbered sources are added after it, so the model can cite them as [1], [2], …",
        page=Widget("System prompt", kind="area"), per_kb=True,
    )  # fmt: skip
    whole_part_tokens: int = setting(
        1024, env="RAG_WHOLE_PART_TOKENS", says="Whole-document part size", unit="tokens", ge=100,
        le=MAX_CONTEXT_WINDOW, why="a part must fit the model's window beside the instructions",
        help="Whole-document answers read the documents this many tokens at a time (less where the window is "
        "smaller). Small models keep track of small parts; larger parts take fewer model calls.",
        page=Widget("Whole-document answers: part size (tokens)", step=256),
    )  # fmt: skip
    history_strategy: HistoryStrategy = setting(
        "summarize", env="RAG_HISTORY", says="history strategy",
        help="When old turns no longer fit the window: fold them into a running summary, or drop the oldest.",
        page=Widget("When a conversation outgrows the context window", captions=(
            "fold older turns into a running summary the model keeps seeing",
            "forget the oldest turns",
        )),
    )  # fmt: skip
    request_timeout: float = setting(
        300.0, env="RAG_REQUEST_TIMEOUT", says="Request timeout", unit="seconds", ge=1.0, le=3600.0,
        help="How long a model server may take to answer.",
    )  # fmt: skip
    embedding_batch_size: int | None = setting(
        None, says="Embedding batch size", ge=1, le=4096,
        help="Texts per forward pass at most; none: a token budget for the device.",
    )  # fmt: skip
    # Limits (README, "Limits"), from the environment only: upper bounds generous for a big machine, yet
    # finite, so that a typo cannot switch a limit off.
    max_pages_per_file: int = setting(
        DEFAULT_MAX_PAGES, env="RAG_MAX_PAGES", ge=1, le=100_000, help="The most pages a PDF may have."
    )
    max_chunks_per_file: int = setting(
        DEFAULT_MAX_CHUNKS, env="RAG_MAX_CHUNKS", ge=1, le=1_000_000, help="The most chunks one file may make."
    )
    max_upload_files: int = setting(
        DEFAULT_MAX_UPLOAD_FILES, env="RAG_MAX_UPLOAD_FILES", ge=1, le=100_000, help="The most files in one upload."
    )
    max_upload_mb: int = setting(
        DEFAULT_MAX_UPLOAD_MB, env="RAG_MAX_UPLOAD_MB", ge=1, le=102_400, help="The most megabytes in one upload."
    )
    parse_seconds: int = setting(
        DEFAULT_PARSE_SECONDS, env="RAG_PARSE_SECONDS", ge=1, le=86_400,
        help="The most seconds reading one file may take (a scan read by OCR: each page); then it is stopped.",
    )  # fmt: skip
    parse_memory_mb: int = setting(
        DEFAULT_PARSE_MEMORY_MB, env="RAG_PARSE_MEMORY_MB", ge=256, le=1_048_576,
        help="The most memory reading one file may use, in megabytes; then it is stopped.",
    )  # fmt: skip
    # Sources of a knowledge base (rag/sources.py, rag/sync.py, rag/web.py): folders kept in sync, web pages.
    watch: WatchMode = setting(
        "off", env="RAG_WATCH", says="folder watching",
        help="While the app runs, sync a knowledge base a few seconds after files change in its folders "
        "(`python -m rag sync --watch` does the same from a terminal).",
        page=Widget("Keep folder sources in sync", captions=(
            "sync when you press Sync now (or run `python -m rag sync`)",
            "watch the folders and sync after their changes settle",
        )),
    )  # fmt: skip
    url_allow: str = setting(
        "", env="RAG_URL_ALLOW", says="Allowed private addresses",
        page=Widget("Web pages: private addresses allowed", placeholder="e.g. intranet.example, 10.0.0.0/8"),
        help="Web pages on this machine or a private network (127.0.0.1, 10.x, 192.168.x, …) are refused, so that "
        "a page cannot lead the app to your router or local services. List the host names, addresses or networks "
        "to allow, separated by commas.",
    )  # fmt: skip
    log_level: LogLevel = setting(
        "WARNING", env="RAG_LOG_LEVEL", says="log level",
        help="How much the app writes to its log (the terminal that runs it)",
        page=Widget("Log level", captions=(
            "everything, to find a problem", "what the app does", "fallbacks and problems", "failures only",
        )),
    )  # fmt: skip
    # The HTTP API (`python -m rag serve`, or beside the app). Where it listens and what it lets in come from the
    # environment only, as the limits do: nobody reaching the app's page can open it to the network.
    api_host: str = setting(
        "127.0.0.1", env="RAG_API_HOST", says="API host",
        help="The address the HTTP API listens on: 127.0.0.1 is this machine only; 0.0.0.0 every network.",
    )  # fmt: skip
    api_port: int = setting(
        DEFAULT_API_PORT, env="RAG_API_PORT", says="API port", ge=1, le=65_535, help="The HTTP API's port."
    )
    api_loopback_without_key: bool = setting(
        False, env="RAG_API_LOOPBACK_WITHOUT_KEY",
        help="Let requests from this machine in without an API key. Behind a reverse proxy on this machine every "
        "request comes from it: keep this off then.",
    )  # fmt: skip
    api_max_request_kb: int = setting(
        DEFAULT_API_MAX_REQUEST_KB, env="RAG_API_MAX_REQUEST_KB", ge=1, le=1_048_576,
        help="The largest request the HTTP API reads, in KB (uploads: RAG_MAX_UPLOAD_MB).",
    )  # fmt: skip
    api_concurrency: int = setting(
        2, env="RAG_API_CONCURRENCY", ge=1, le=64,
        help="Answers the HTTP API generates at once; four times as many wait, the rest are told to retry (429).",
    )  # fmt: skip
    api_beside_app: bool = setting(
        False, env="RAG_API_BESIDE_APP", page=Widget("Serve the HTTP API beside the app"),
        help="Start the HTTP API (as `python -m rag serve` does) inside the app, at RAG_API_HOST:RAG_API_PORT; "
        "turning it off takes a restart of the app.",
    )  # fmt: skip
    model_prices: str = setting(
        "", env="RAG_MODEL_PRICES", says="Model prices",
        page=Widget(
            "Prices per model (OpenAI-compatible backend)", placeholder="gpt-4o-mini=0.15/0.60, mixtral=0.24/0.24"
        ),
        help="What the server charges per million tokens, prompt/answer, as MODEL=PROMPT/ANSWER separated by commas; "
        "the Usage page adds up the cost of the answers it gave.",
    )  # fmt: skip

    # -- checks beyond one field's type, bounds and length ---------------------------------------------

    @model_validator(mode="wrap")
    @classmethod
    def _explained(cls, values: Any, handler: ModelWrapValidatorHandler[Settings]) -> Settings:
        """Pydantic's findings as one SettingsError naming the setting (a wrong type before a bound)."""
        try:
            return handler(values)
        except ValidationError as exc:
            errors = sorted(exc.errors(), key=lambda e: not _is_type_error(e))
            raise SettingsError(_explain(errors[0])) from None

    @model_validator(mode="after")
    def _fits_together(self) -> Settings:
        """What a field's declaration cannot say alone: URLs, one-line secrets, fields that must fit together."""
        for spec in FIELDS.values():
            value = getattr(self, spec.name)
            if spec.url and (value or spec.default) and not _is_http_url(value):
                example = f"something like {spec.default}" if spec.default else "an http(s) URL, or leave it empty"
                raise SettingsError(f"{spec.says} {value!r} is not an http(s) URL: set {_where(spec)} to {example}.")
            if spec.secret and ("\n" in value or "\r" in value):
                raise SettingsError(f"{_named(spec)} holds a line break: give it on one line (set {_where(spec)}).")
        if not self.model.strip():
            raise SettingsError(
                f"The model name is empty: set {_where(FIELDS['model'])} (e.g. llama2) or pass --model."
            )
        if self.max_answer_tokens > self.context_window // 2:
            raise SettingsError(
                f"Max answer tokens {self.max_answer_tokens} must be between 16 and half the context "
                f"window ({self.context_window // 2})."
            )
        if not self.chunk_overlap < self.chunk_size // 2:
            raise SettingsError(
                f"Chunk overlap {self.chunk_overlap} must be at least 0 and less than half the chunk size."
            )
        if not self.system_prompt.strip():
            raise SettingsError("The system prompt is empty: write one or reset it to the default.")
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]", self.chroma_collection):
            raise SettingsError(
                f"Chroma collection name {self.chroma_collection!r} is not valid: use 3-63 letters, digits, "
                "dots, dashes or underscores, starting and ending with a letter or digit."
            )
        parse_prices(self.model_prices)  # raises SettingsError saying how to write them
        if problem := kb_name_problem(self.kb):
            raise SettingsError(f"Knowledge base name {self.kb!r} {problem}: set {_where(FIELDS['kb'])} or --kb.")
        for item in url_allow_items(self.url_allow):
            if not _allowed_address(item):
                raise SettingsError(
                    f"Allowed private addresses: {item!r} is not a host name, an IP address or a network such as "
                    f"10.0.0.0/8: fix {_where(FIELDS['url_allow'])}."
                )
        if self.gguf_path is not None and self.gguf_path.suffix.lower() != ".gguf":
            raise SettingsError(
                f"{self.gguf_path} is not a .gguf file: set {_where(FIELDS['gguf_path'])} to a GGUF model."
            )
        return self

    # -- where values come from --------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then the environment variables that are set (an empty one counts as unset)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for spec in FIELDS.values():
            if spec.env and (raw := env.get(spec.env, "").strip()):
                values[spec.name] = _from_text(spec, raw, spec.env)
        return cls(**values)

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, kb_folder: Path | None = None, data_dir: Path | None = None
    ) -> Settings:
        """Defaults, then environment variables, then what the user saved on the settings page.

        `kb_folder`: the folder of a knowledge base other than 'default' (rag/kb.py finds it by name). Its own
        settings.json holds its chunking, retrieval, system prompt and profile (fields declared `per_kb`); the
        data folder's settings.json gives the rest. Without it, the data folder's file gives every field, as
        for the knowledge base 'default', whose folder it is. `data_dir` stands for RAG_DATA_DIR."""
        base = cls.from_env(env).with_overrides(data_dir=data_dir)
        app_file = settings_file(base.data_dir)
        saved = read_saved(app_file)
        files = [(app_file, saved)]
        if kb_folder is not None:
            own_file = settings_file(kb_folder)
            own = {name: value for name, value in read_saved(own_file).items() if FIELDS[name].per_kb}
            files = [(app_file, {n: v for n, v in saved.items() if not FIELDS[n].per_kb}), (own_file, own)]
        settings = base if kb_folder is None else base.with_overrides(kb_folder=kb_folder)
        for path, values in files:
            try:
                settings = settings.with_overrides(**values)
            except SettingsError as exc:  # a bound, or saved values that do not fit together or with the environment
                raise SettingsError(
                    f"{path}: {exc} Change it on the Settings page, or delete the file to use the defaults."
                ) from None
        return settings

    @property
    def kb_dir(self) -> Path:
        """The open knowledge base's folder: its registry, vectors, conversations, sources and own settings."""
        return self.kb_folder if self.kb_folder is not None else self.data_dir

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields changed (None values are ignored); validated like the original."""
        return self._with({k: v for k, v in changes.items() if v is not None})

    def edited(self, values: Mapping[str, Any]) -> Settings:
        """A copy with what the Settings page's widgets hold: text read as from the environment (trimmed, a URL
        completed; an empty path: none), decimals rounded to the sliders' two places; validated."""
        changes: dict[str, Any] = {}
        for name, value in values.items():
            spec = FIELDS[name]
            if isinstance(value, str) and spec.widget != "area":
                text = value.strip()
                label = spec.page.label if spec.page else name
                value = _from_text(spec, text, label) if text or spec.kind != "path" else None
            elif isinstance(value, float):
                value = round(value, 2)
            changes[name] = value
        return self._with(changes)

    @property
    def prices(self) -> dict[str, ModelPrice]:
        """The prices per model, per million tokens (RAG_MODEL_PRICES)."""
        return parse_prices(self.model_prices)

    def editable(self) -> dict[str, Any]:
        """The fields the settings page edits, as JSON-ready values."""
        values = {name: getattr(self, name) for name in EDITABLE}
        return {name: str(v) if isinstance(v, Path) else v for name, v in values.items()}

    def _with(self, changes: Mapping[str, Any]) -> Settings:
        return type(self)(**{**dict(self), **changes})


def _completed(name: str, info: FieldInfo) -> FieldSpec:
    spec = next(m for m in info.metadata if isinstance(m, FieldSpec))
    annotation = info.annotation
    if get_origin(annotation) in (Union, UnionType):  # X | None
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    kinds: dict[Any, Kind] = {int: "int", float: "float", bool: "bool", Path: "path"}
    kind: Kind = "choice" if get_origin(annotation) is Literal else kinds.get(annotation, "text")
    choices = get_args(annotation) if kind == "choice" else ()
    return replace(spec, name=name, kind=kind, choices=choices, default=info.default, help=info.description or "")


FIELDS: dict[str, FieldSpec] = {name: _completed(name, info) for name, info in Settings.model_fields.items()}
EDITABLE: tuple[str, ...] = tuple(name for name, spec in FIELDS.items() if spec.page is not None)
ENV_VARS: dict[str, str] = {spec.env: name for name, spec in FIELDS.items() if spec.env}


# -- settings.json ------------------------------------------------------------------------------------


def settings_file(data_dir: Path) -> Path:
    return data_dir / SETTINGS_FILE


def read_saved(path: Path) -> dict[str, Any]:
    """Saved settings, typed; a missing file is no overrides, a damaged one says how to fix it.

    Only the fields the page edits are read; an empty path (or null) leaves the environment's.
    """
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise SettingsError(f"{path} is not valid settings ({exc}): fix it or delete it to use the defaults.") from exc
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in EDITABLE:
            continue
        spec = FIELDS[name]
        if spec.kind == "path" and isinstance(value, str | None):  # paths are text in JSON
            if not value:
                continue
            value = _path(value, f"{path}: setting {name}")
        problem = _type_problem(spec, value)
        if problem:
            raise SettingsError(
                f"{path}: setting {name} must be {problem}, not {_shown(value)}: change it on the Settings page, "
                "or fix or delete the file to use the defaults."
            )
        values[name] = value
    return values


def save_settings(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """Write, atomically, the editable fields that differ from the environment's values; returns the data
    folder's settings.json.

    Fields left as the environment has them are not frozen into the file, so changing OLLAMA_HOST or
    RAG_MODEL later still takes effect for them. For a knowledge base in its own folder (`kb_folder`), its
    own fields go to its settings.json and the app's to the data folder's, whose values of the knowledge
    base 'default' stay as they are.
    """
    path = settings_file(settings.data_dir)
    base = Settings.from_env(env).editable()
    changed = {k: v for k, v in settings.editable().items() if base.get(k) != v}
    if settings.kb_folder is not None:
        own = {k: v for k, v in changed.items() if FIELDS[k].per_kb}
        kept = {k: v for k, v in _saved_json(path).items() if k in EDITABLE and FIELDS[k].per_kb}
        changed = kept | {k: v for k, v in changed.items() if not FIELDS[k].per_kb}
        own_path = settings_file(settings.kb_folder)
        own_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(own_path, json.dumps(own, indent=2, ensure_ascii=False).encode("utf-8"))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(changed, indent=2, ensure_ascii=False).encode("utf-8"))
    return path


def _saved_json(path: Path) -> dict[str, Any]:
    """The file's values as JSON, untyped (read_saved has checked them when the settings were loaded)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return raw if isinstance(raw, dict) else {}


def write_atomically(path: Path, data: bytes) -> None:
    """The old file or the new one, never a mix, even after a power cut or with two pages saving at once.

    A unique temporary file in the same folder (a fixed name would be shared by two writers; another
    folder may be another file system, where a rename is not atomic), flushed to disk before the rename
    (else the rename can reach the disk first and leave an empty file). mkstemp creates it readable by
    its owner only, which suits a file that may hold keys and tokens.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # the rename itself is durable once the folder is flushed (not possible on every OS)
        folder = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(folder)
    except OSError:
        pass
    finally:
        os.close(folder)


# -- messages -----------------------------------------------------------------------------------------

_NOT_TYPE_ERRORS = {"greater_than_equal", "less_than_equal", "string_too_long"}


def _is_type_error(error: ErrorDetails) -> bool:
    if error["type"] == "literal_error":
        return not isinstance(error["input"], str)  # a word not among the choices is a value, not a type
    return error["type"] not in _NOT_TYPE_ERRORS


def _explain(error: ErrorDetails) -> str:
    """A pydantic error on one field as a sentence that names the setting and says what it may be."""
    name, value = str(error["loc"][0]) if error["loc"] else "", error["input"]
    spec = FIELDS.get(name)
    if spec is None:
        return f"There is no setting {name!r}: see the README for the settings there are."
    if error["type"] in ("greater_than_equal", "less_than_equal"):
        return _out_of_bounds(spec, value)
    if error["type"] == "string_too_long":
        most = (error.get("ctx") or {}).get("max_length", MAX_SETTING_CHARS)
        why = f" ({spec.why})" if spec.why else ""
        return f"{_named(spec)} has {len(value):,} characters: use at most {most:,}{why}."
    if not _is_type_error(error):
        where = f" (set {_where(spec)})" if _where(spec) else ""
        return f"Unknown {spec.says or name} {value!r}: use one of {', '.join(spec.choices)}{where}."
    return f"Setting {name} must be {_kind_words(spec)}, not {_shown(value)}: fix or reset it."


def _out_of_bounds(spec: FieldSpec, value: float) -> str:
    if not spec.says:  # named by its variable
        return f"{spec.env or spec.name}={value} must be {_range(spec)}: fix or unset it."
    where = _where(spec)
    fix = f": set {where}." if where else "."
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.why and spec.le is not None and value > spec.le:
        return f"{spec.says} {value} is too large: use at most {_number(spec.le)}{unit} ({spec.why}){fix}"
    if spec.why and spec.ge is not None and value < spec.ge:
        return f"{spec.says} {value} is too small: use at least {_number(spec.ge)}{unit}{fix}"
    return f"{spec.says} {value} must be {_range(spec)}{fix}"


def _range(spec: FieldSpec) -> str:
    unit = f" {spec.unit}" if spec.unit else ""
    lo, hi = spec.ge, spec.le
    if lo is not None and hi is not None:
        return f"between {_number(lo)} and {_number(hi)}{unit}"
    return f"at least {_number(lo)}{unit}" if lo is not None else f"at most {_number(hi or 0)}{unit}"


def _named(spec: FieldSpec) -> str:
    return spec.says or f"Setting {spec.name}"


def _where(spec: FieldSpec) -> str:
    """Where a person sets the field: its variable, and its place on the Settings page."""
    places = [spec.env] if spec.env else []
    if spec.page is not None:
        places.append(f'"{spec.page.label}" on the Settings page')
    return " or ".join(places)


def _kind_words(spec: FieldSpec) -> str:
    if spec.kind == "choice":
        return f"one of {', '.join(spec.choices)}"
    words = {"int": "a whole number", "float": "a number", "bool": "true or false", "path": "a file path"}
    return words.get(spec.kind, "text")


def _number(x: float) -> str:
    """2, 0.5, 4096, 100,000: thousands separated from five digits on."""
    shown: float = int(x) if float(x).is_integer() else x
    return f"{shown:,}" if abs(shown) >= 10_000 else str(shown)


def _shown(value: object) -> str:
    """A value as the person wrote it, kind included ('12' (text)), cut short."""
    kinds = {
        str: "text",
        bool: "true/false",
        int: "a whole number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    text = repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    kind = "null" if value is None else kinds.get(type(value), type(value).__name__)
    return f"{text} ({kind})"


@functools.cache
def _bare_type(name: str) -> TypeAdapter[Any]:
    """The field's type alone, as strict as the model, without its bounds."""
    return TypeAdapter(
        Settings.model_fields[name].annotation or Any, config=ConfigDict(strict=True, allow_inf_nan=False)
    )


def _type_problem(spec: FieldSpec, value: object) -> str | None:
    """What a saved value should be when it is not of the field's type, else None (bounds are checked later)."""
    if spec.kind == "path" and not isinstance(value, Path):
        return "a file path (text)"
    if spec.kind == "choice" and isinstance(value, str):
        return None  # an unknown word is reported with the choices when the settings are built
    try:
        _bare_type(spec.name).validate_python(value)
    except ValidationError:
        return _kind_words(spec)
    return None


# -- text from the environment or a page ----------------------------------------------------------------


def _from_text(spec: FieldSpec, raw: str, where: str) -> Any:
    """A value written as text (`where`: the variable or the page's label) as the field's type."""
    try:
        if spec.kind == "int":
            return int(raw)
        if spec.kind == "float":
            return float(raw)
        if spec.kind == "bool":
            return {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                    "off": False}[raw.lower()]  # fmt: skip
    except (ValueError, KeyError):
        words = "1, true, yes or on; 0, false, no or off" if spec.kind == "bool" else _kind_words(spec)
        raise SettingsError(f"{where}={raw!r} is not {words}: fix or unset it.") from None
    if spec.kind == "path":
        return _path(raw, where)
    if spec.kind == "choice":
        return next((c for c in spec.choices if c.lower() == raw.lower()), raw)
    if spec.url:
        return normalize_host(raw).rstrip("/")
    return raw


def _path(raw: str, where: str) -> Path:
    try:
        return Path(raw).expanduser()
    except RuntimeError as exc:  # "~someone" with no such user
        raise SettingsError(f"{where}: {raw!r} is not a usable path ({exc}): fix it.") from None


@dataclass(frozen=True)
class ModelPrice:
    """What a model server charges, per million tokens."""

    prompt: float
    completion: float


def parse_prices(text: str) -> dict[str, ModelPrice]:
    """ "gpt-4o-mini=0.15/0.60, mixtral=0.24/0.24" → {model: ModelPrice}; a wrong entry says how to write it."""
    prices: dict[str, ModelPrice] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(.+?)\s*=\s*([0-9]*\.?[0-9]+)\s*/\s*([0-9]*\.?[0-9]+)", entry)
        if match is None:
            raise SettingsError(
                f"Model prices: {entry!r} is not MODEL=PROMPT/ANSWER (prices per million tokens, e.g. "
                "gpt-4o-mini=0.15/0.60); separate models with commas (RAG_MODEL_PRICES or the Settings page)."
            )
        prices[match.group(1).strip()] = ModelPrice(float(match.group(2)), float(match.group(3)))
    return prices


def kb_name_problem(name: str) -> str | None:
    """Why a knowledge base cannot be called `name` (words for a message), or None when it can."""
    if not name.strip():
        return "is empty"
    if name != name.strip():
        return "begins or ends with a space"
    if len(name) > MAX_KB_NAME_CHARS:
        return f"is longer than {MAX_KB_NAME_CHARS} characters"
    if any(c in name for c in "/\\") or any(not c.isprintable() for c in name):
        return "holds a slash, a backslash or an invisible character"
    return None


def url_allow_items(value: str) -> list[str]:
    """The host names, addresses and networks of the `url_allow` setting, lower-cased."""
    return [item.strip().lower() for item in value.split(",") if item.strip()]


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*\.?")


def _allowed_address(item: str) -> bool:
    try:
        ipaddress.ip_network(item, strict=False)
        return True
    except ValueError:
        return _HOST_NAME.fullmatch(item) is not None


def normalize_host(host: str) -> str:
    """Ollama accepts "host:port" as well as a URL; its client wants a URL."""
    host = host.strip()
    return f"http://{host}" if host and "://" not in host else host


def auth_headers(value: str) -> dict[str, str]:
    """The HTTP header a token setting stands for: a whole header ("X-Api-Key: abc") as given, else a bearer
    token ("abc" → "Authorization: Bearer abc"), the form most reverse proxies and gateways check."""
    value = value.strip()
    if not value:
        return {}
    header = re.fullmatch(r"([A-Za-z][A-Za-z0-9-]*):\s*(\S.*)", value)
    if header:
        return {header.group(1): header.group(2)}
    return {"Authorization": f"Bearer {value}"}


# A host is a name, an IPv4 address or a bracketed IPv6 one, with an optional user and port; the rest of the URL
# holds none of the characters that Markdown or HTML would read as a link, an image or a tag.
_URL_NETLOC = re.compile(r"(?:[A-Za-z0-9._~%!$&'*+,;=:-]+@)?(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
_URL_UNSAFE = re.compile(r"[\s<>\[\]()`\"'{}|\\^]")


def _is_http_url(url: str) -> bool:
    scheme, _, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return (
        scheme.lower() in ("http", "https")
        and _URL_NETLOC.fullmatch(netloc) is not None
        and not _URL_UNSAFE.search(path)
        and not (slash == "" and "?" in netloc)
    )
