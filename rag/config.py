"""Settings, resolved once at the edge (CLI, app) and passed in. The only module that reads the environment."""

from __future__ import annotations

import json
import os
import re
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

    def __post_init__(self) -> None:
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
        return base.with_overrides(**read_saved(settings_file(base.data_dir)))

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
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{path} is not valid settings ({exc}): fix it or delete it to use the defaults.") from exc
    values = {k: v for k, v in raw.items() if k in EDITABLE}
    if values.get("gguf_path"):
        values["gguf_path"] = Path(values["gguf_path"]).expanduser()
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
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(changed, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


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
}

_INTS = {"context_window", "max_answer_tokens", "top_k", "context_chars", "chunk_size", "chunk_overlap"}
_FLOATS = {"temperature", "request_timeout", "min_score"}
_PATHS = {"data_dir", "corpus_dir", "gguf_path"}


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
        return Path(raw).expanduser()
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
