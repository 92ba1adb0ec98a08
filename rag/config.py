"""Settings, resolved once at the edge (CLI, app) and passed in. The only module that reads the environment."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from rag.errors import SettingsError
from rag.prompts import DEFAULT_SYSTEM_PROMPT

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_CORPUS_DIR = PROJECT_ROOT / "docs_corpus"
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OPENAI_BASE_URL = "http://127.0.0.1:8000/v1"  # llama_cpp.server's and vLLM's default port
DEFAULT_CHROMA_COLLECTION = "chunks"

BackendChoice = Literal["auto", "ollama", "embedded", "openai"]
BACKENDS: tuple[BackendChoice, ...] = ("auto", "ollama", "embedded", "openai")
HistoryStrategy = Literal["summarize", "drop"]
HISTORY_STRATEGIES: tuple[HistoryStrategy, ...] = ("summarize", "drop")
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


def force_offline() -> None:
    """No code path may reach a model hub or a telemetry endpoint: set before those libraries load."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["ANONYMIZED_TELEMETRY"] = "False"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    corpus_dir: Path = DEFAULT_CORPUS_DIR
    backend: BackendChoice = "auto"
    model: str = "llama2"  # the Ollama model
    ollama_host: str = DEFAULT_OLLAMA_HOST
    gguf_path: Path | None = None  # None: the packaged SmolLM2-135M-Instruct
    # Ollama behind a proxy that wants credentials: a bearer token, or a whole header "Name: value".
    ollama_token: str = field(default="", repr=False)
    # Any OpenAI-compatible server (vLLM, TGI, llama.cpp, LiteLLM…), used when backend is "openai".
    openai_base_url: str = DEFAULT_OPENAI_BASE_URL
    openai_api_key: str = field(default="", repr=False)
    # Chroma as a server (`chroma run`); empty: Chroma embedded in the data directory.
    chroma_url: str = ""
    chroma_token: str = field(default="", repr=False)  # a bearer token, or a whole header "Name: value"
    chroma_collection: str = DEFAULT_CHROMA_COLLECTION
    context_window: int = 4096  # Llama 2's window; sent as num_ctx
    max_answer_tokens: int = 512
    temperature: float = 0.2
    # Chosen on squad-dev (README, "Retrieval"): up to 12 passages of ~600 characters, fused dense +
    # keyword, within ~4,000 characters of context, put the answer in the prompt most often.
    top_k: int = 12
    context_chars: int = 4000  # the most passage text given to the model per question
    chunk_size: int = 600  # characters
    chunk_overlap: int = 100
    # Sources scoring below this cosine similarity are not shown to the model; when none is left the app
    # says the documents do not cover the question instead of asking the model (README, "Not in your documents").
    min_score: float = 0.2
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    # When old turns no longer fit the window: fold them into a running summary, or drop the oldest.
    history_strategy: HistoryStrategy = "summarize"
    request_timeout: float = 300.0
    embedding_batch_size: int | None = None  # texts per forward pass at most; None: a token budget for the device
    max_pages_per_file: int = DEFAULT_MAX_PAGES
    max_chunks_per_file: int = DEFAULT_MAX_CHUNKS
    max_upload_files: int = DEFAULT_MAX_UPLOAD_FILES
    max_upload_mb: int = DEFAULT_MAX_UPLOAD_MB

    def __post_init__(self) -> None:
        # Types first: a value from settings.json or a page may be any JSON type, and "12" or 12.5 for top-k
        # would otherwise fail far away (a TypeError on every page) instead of here, with the setting named.
        for f in fields(self):
            value = getattr(self, f.name)
            problem = _type_problem(f.name, value)
            if problem:
                raise SettingsError(f"Setting {f.name} must be {problem}, not {_shown(value)}: fix or reset it.")
            if f.name in _FLOATS and type(value) is int:
                object.__setattr__(self, f.name, float(value))  # 1 in JSON means 1.0
        if self.backend not in BACKENDS:
            raise SettingsError(f"Unknown backend {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        if not self.model.strip():
            raise SettingsError("The model name is empty: set RAG_MODEL (e.g. llama2) or pass --model.")
        if not _is_http_url(self.ollama_host):
            # The whole prompt goes there: only a plain http(s) URL, never a file: or other scheme.
            raise SettingsError(
                f"Ollama host {self.ollama_host!r} is not an http(s) URL: set OLLAMA_HOST (or the Ollama host on "
                f"the Settings page) to something like {DEFAULT_OLLAMA_HOST}."
            )
        if self.context_window < 512:
            raise SettingsError(f"Context window {self.context_window} is too small: use at least 512 tokens.")
        if self.context_window > MAX_CONTEXT_WINDOW:
            raise SettingsError(
                f"Context window {self.context_window} is too large: use at most {MAX_CONTEXT_WINDOW:,} tokens "
                "(no local model has a larger window, and Ollama reserves memory for all of it)."
            )
        if not 16 <= self.max_answer_tokens <= self.context_window // 2:
            raise SettingsError(
                f"Max answer tokens {self.max_answer_tokens} must be between 16 and half the context "
                f"window ({self.context_window // 2})."
            )
        if not 0.0 <= self.temperature <= 2.0:
            raise SettingsError(f"Temperature {self.temperature} must be between 0 and 2.")
        if not 1 <= self.top_k <= 50:
            raise SettingsError(f"top-k {self.top_k} must be between 1 and 50.")
        if not 200 <= self.context_chars <= 100_000:
            raise SettingsError(f"Context size {self.context_chars} must be between 200 and 100,000 characters.")
        if not 100 <= self.chunk_size <= 8000:
            raise SettingsError(f"Chunk size {self.chunk_size} must be between 100 and 8000 characters.")
        if not 0 <= self.chunk_overlap < self.chunk_size // 2:
            raise SettingsError(
                f"Chunk overlap {self.chunk_overlap} must be at least 0 and less than half the chunk size."
            )
        if self.history_strategy not in HISTORY_STRATEGIES:
            raise SettingsError(
                f"Unknown history strategy {self.history_strategy!r}: use one of {', '.join(HISTORY_STRATEGIES)}."
            )
        if not -1.0 <= self.min_score <= 1.0:
            raise SettingsError(f"Minimum score {self.min_score} must be between -1 and 1.")
        if not self.system_prompt.strip():
            raise SettingsError("The system prompt is empty: write one or reset it to the default.")
        if len(self.system_prompt) > MAX_PROMPT_CHARS:
            raise SettingsError(
                f"The system prompt has {len(self.system_prompt):,} characters: keep it under "
                f"{MAX_PROMPT_CHARS:,} (it is sent with every question and must leave room for the passages)."
            )
        for name in _STRS - {"system_prompt"}:
            if len(getattr(self, name)) > MAX_SETTING_CHARS:
                raise SettingsError(f"Setting {name} is longer than {MAX_SETTING_CHARS:,} characters: fix or reset it.")
        if not 1.0 <= self.request_timeout <= 3600.0:
            raise SettingsError(
                f"Request timeout {self.request_timeout} must be between 1 and 3600 seconds: set RAG_REQUEST_TIMEOUT."
            )
        if self.embedding_batch_size is not None and not 1 <= self.embedding_batch_size <= 4096:
            raise SettingsError(f"Embedding batch size {self.embedding_batch_size} must be between 1 and 4096.")
        for name, var, most in _CAPS:
            value = getattr(self, name)
            if not 1 <= value <= most:
                raise SettingsError(f"{var}={value} must be between 1 and {most:,}: fix or unset it.")
        if not _is_http_url(self.openai_base_url):
            raise SettingsError(
                f"OpenAI base URL {self.openai_base_url!r} is not an http(s) URL: set RAG_OPENAI_BASE_URL to "
                f"something like {DEFAULT_OPENAI_BASE_URL}."
            )
        if self.chroma_url and not _is_http_url(self.chroma_url):
            raise SettingsError(
                f"Chroma URL {self.chroma_url!r} is not an http(s) URL: set RAG_CHROMA_URL to something like "
                "http://127.0.0.1:8000, or leave it empty for Chroma inside the data directory."
            )
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,61}[a-zA-Z0-9]", self.chroma_collection):
            raise SettingsError(
                f"Chroma collection name {self.chroma_collection!r} is not valid: use 3-63 letters, digits, "
                "dots, dashes or underscores, starting and ending with a letter or digit."
            )
        for name, value in (("RAG_OLLAMA_TOKEN", self.ollama_token), ("RAG_CHROMA_TOKEN", self.chroma_token)):
            if "\n" in value or "\r" in value:
                raise SettingsError(f"{name} holds a line break: give the token (or `Name: value`) on one line.")
        if self.gguf_path is not None and self.gguf_path.suffix.lower() != ".gguf":
            raise SettingsError(f"{self.gguf_path} is not a .gguf file: point RAG_GGUF_PATH at a GGUF model.")

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with the given fields changed (None values are ignored); validated like the original."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then environment variables, then what the user saved on the settings page."""
        base = cls.from_env(env)
        path = settings_file(base.data_dir)
        saved = read_saved(path)
        try:
            return base.with_overrides(**saved)
        except SettingsError as exc:  # a bound, or saved values that do not fit together or with the environment
            raise SettingsError(
                f"{path}: {exc} Change it on the Settings page, or delete the file to use the defaults."
            ) from None

    def editable(self) -> dict[str, Any]:
        """The fields the settings page edits, as JSON-ready values."""
        values = {name: getattr(self, name) for name in EDITABLE}
        values["gguf_path"] = None if self.gguf_path is None else str(self.gguf_path)
        return values

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        names = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for var, name in ENV_VARS.items():
            raw = env.get(var, "").strip()
            if not raw or name not in names:
                continue
            values[name] = _parse(name, var, raw)
        return cls(**values)


EDITABLE = (
    "backend",
    "ollama_host",
    "ollama_token",
    "model",
    "gguf_path",
    "openai_base_url",
    "openai_api_key",
    "chroma_url",
    "chroma_token",
    "chroma_collection",
    "temperature",
    "max_answer_tokens",
    "context_window",
    "top_k",
    "context_chars",
    "chunk_size",
    "chunk_overlap",
    "min_score",
    "system_prompt",
    "history_strategy",
)
SETTINGS_FILE = "settings.json"


def settings_file(data_dir: Path) -> Path:
    return data_dir / SETTINGS_FILE


def read_saved(path: Path) -> dict[str, Any]:
    """Saved settings, typed; a missing file is no overrides, a damaged one says how to fix it."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
        raise SettingsError(f"{path} is not valid settings ({exc}): fix it or delete it to use the defaults.") from exc
    values = {k: v for k, v in raw.items() if k in EDITABLE}
    for name, value in values.items():
        # Paths are strings in JSON (an empty one or null: the built-in model).
        problem = "a file path (text)" if name == "gguf_path" and not isinstance(value, str | None) else None
        problem = problem or (None if name in _PATHS else _type_problem(name, value))
        if problem:
            raise SettingsError(
                f"{path}: setting {name} must be {problem}, not {_shown(value)}: change it on the Settings page, "
                "or fix or delete the file to use the defaults."
            )
    if values.get("gguf_path"):
        values["gguf_path"] = _path(values["gguf_path"], f"{path}: setting gguf_path")
    elif "gguf_path" in values:
        del values["gguf_path"]
    return values


def save_settings(settings: Settings, env: Mapping[str, str] | None = None) -> Path:
    """Write, atomically, the editable fields that differ from the environment's values.

    Fields left as the environment has them are not frozen into the file, so changing OLLAMA_HOST or
    RAG_MODEL later still takes effect for them.
    """
    path = settings_file(settings.data_dir)
    base = Settings.from_env(env).editable()
    changed = {k: v for k, v in settings.editable().items() if base.get(k) != v}
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(path, json.dumps(changed, indent=2, ensure_ascii=False).encode("utf-8"))
    return path


def _write_atomically(path: Path, data: bytes) -> None:
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


ENV_VARS: dict[str, str] = {
    "RAG_DATA_DIR": "data_dir",
    "RAG_CORPUS_DIR": "corpus_dir",
    "RAG_BACKEND": "backend",
    "RAG_MODEL": "model",
    "OLLAMA_HOST": "ollama_host",
    "RAG_OLLAMA_TOKEN": "ollama_token",
    "RAG_OPENAI_BASE_URL": "openai_base_url",
    "RAG_OPENAI_API_KEY": "openai_api_key",
    "RAG_CHROMA_URL": "chroma_url",
    "RAG_CHROMA_TOKEN": "chroma_token",
    "RAG_CHROMA_COLLECTION": "chroma_collection",
    "RAG_GGUF_PATH": "gguf_path",
    "RAG_CONTEXT_WINDOW": "context_window",
    "RAG_MAX_ANSWER_TOKENS": "max_answer_tokens",
    "RAG_TEMPERATURE": "temperature",
    "RAG_TOP_K": "top_k",
    "RAG_CONTEXT_CHARS": "context_chars",
    "RAG_CHUNK_SIZE": "chunk_size",
    "RAG_CHUNK_OVERLAP": "chunk_overlap",
    "RAG_REQUEST_TIMEOUT": "request_timeout",
    "RAG_MIN_SCORE": "min_score",
    "RAG_HISTORY": "history_strategy",
    "RAG_MAX_PAGES": "max_pages_per_file",
    "RAG_MAX_CHUNKS": "max_chunks_per_file",
    "RAG_MAX_UPLOAD_FILES": "max_upload_files",
    "RAG_MAX_UPLOAD_MB": "max_upload_mb",
}
# name, variable, upper bound: generous for a big machine, yet finite, so a typo cannot switch a limit off.
_CAPS: tuple[tuple[str, str, int], ...] = (
    ("max_pages_per_file", "RAG_MAX_PAGES", 100_000),
    ("max_chunks_per_file", "RAG_MAX_CHUNKS", 1_000_000),
    ("max_upload_files", "RAG_MAX_UPLOAD_FILES", 100_000),
    ("max_upload_mb", "RAG_MAX_UPLOAD_MB", 102_400),
)
MAX_PROMPT_CHARS = 50_000
MAX_SETTING_CHARS = 2_000  # URLs, names, tokens

_INTS = {
    "context_window", "max_answer_tokens", "top_k", "context_chars", "chunk_size", "chunk_overlap",
    "max_pages_per_file", "max_chunks_per_file", "max_upload_files", "max_upload_mb",
}  # fmt: skip
_FLOATS = {"temperature", "request_timeout", "min_score"}
_PATHS = {"data_dir", "corpus_dir", "gguf_path"}
_STRS = {
    "backend", "model", "ollama_host", "ollama_token", "openai_base_url", "openai_api_key", "chroma_url",
    "chroma_token", "chroma_collection", "system_prompt", "history_strategy",
}  # fmt: skip


def _type_problem(name: str, value: object) -> str | None:
    """What the setting should be when ``value`` is not of its type, else None."""
    if name in _INTS or (name == "embedding_batch_size" and value is not None):
        # bool is an int subclass and 12.0 a float: neither is a count a person meant.
        return None if type(value) is int else "a whole number"
    if name in _FLOATS:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a number"
    if name in _PATHS:
        ok = isinstance(value, Path) or (name == "gguf_path" and value is None)
        return None if ok else "a file path"
    if name in _STRS:
        return None if isinstance(value, str) else "text"
    return None


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


def _path(raw: str, where: str) -> Path:
    try:
        return Path(raw).expanduser()
    except RuntimeError as exc:  # "~someone" with no such user
        raise SettingsError(f"{where}: {raw!r} is not a usable path ({exc}): fix it.") from None


def _parse(name: str, var: str, raw: str) -> Any:
    try:
        if name in _INTS:
            return int(raw)
        if name in _FLOATS:
            return float(raw)
    except ValueError:
        kind = "a whole number" if name in _INTS else "a number"
        raise SettingsError(f"{var}={raw!r} is not {kind}: fix or unset it.") from None
    if name in _PATHS:
        return _path(raw, var)
    if name in ("backend", "history_strategy"):
        return raw.lower()
    if name in ("ollama_host", "chroma_url", "openai_base_url"):
        return normalize_host(raw).rstrip("/")
    return raw


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


def _is_http_url(url: str) -> bool:
    return re.fullmatch(r"https?://[^\s/]+(/\S*)?", url) is not None
