"""Ollama through the official client. llama2-family models get Meta's exact chat format through
`/api/generate` with `raw: true`; other models go through `/api/chat`. `num_ctx` is always set."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rag.backends.base import (
    GenerationOptions,
    TokenStream,
    estimate_prompt_tokens,
    learn_token_ratio,
    render_for_server,
    retrying,
    stoppable_transport,
    token_correction,
)
from rag.errors import BackendError, BackendUnavailable, ModelNotFound, StreamInterrupted
from rag.prompts import is_llama2_chat
from rag.schema import Message, Usage


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
        self._timeout, self._headers = timeout, headers or {}
        self.raw_llama2 = is_llama2_chat(model)

    @property
    def context_window(self) -> int:
        return self._context_window

    def render(self, messages: Sequence[Message]) -> str:
        return render_for_server(messages, self.raw_llama2)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Ollama cannot tokenize without generating: a conservative estimate (~3 bytes a token), scaled by
        what the server reported for earlier prompts of this model (`prompt_eval_count`)."""
        return math.ceil(estimate_prompt_tokens(messages, self.raw_llama2) * token_correction(self.host, self.model))

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

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        final: dict[str, Any] = {}
        started = time.perf_counter()
        first_at: list[float] = []
        retried = [0]
        ollama_options = {
            "num_ctx": options.context_window,
            "num_predict": options.max_tokens,
            "temperature": options.temperature,
        }

        def start() -> Iterator[str]:
            import ollama

            if options.stopped:
                return iter(())
            client = self._client
            if options.stop is not None:  # a client of its own, whose connection the stop shuts down
                client = ollama.Client(
                    host=self.host,
                    timeout=self._timeout,
                    headers=self._headers,
                    transport=stoppable_transport(options.stop),
                )
            if self.raw_llama2:
                chunks: Iterator[Any] = client.generate(
                    model=self.model,
                    prompt=self.render(messages) if rendered is None else rendered,
                    raw=True,
                    stream=True,
                    options=ollama_options,
                )
            else:
                chunks = client.chat(
                    model=self.model,
                    messages=[{"role": m.role, "content": m.content} for m in messages],
                    stream=True,
                    options=ollama_options,
                )
            return self._pieces(chunks, final, first_at, started, options, client)

        def finish() -> Usage:
            if final.get("prompt_eval_count"):
                estimated = estimate_prompt_tokens(messages, self.raw_llama2)
                learn_token_ratio(self.host, self.model, final["prompt_eval_count"] / estimated)
            return Usage(
                prompt_tokens=final.get("prompt_eval_count"),
                completion_tokens=final.get("eval_count"),
                seconds=round(time.perf_counter() - started, 3),
                time_to_first_token=round(first_at[0] - started, 3) if first_at else None,
                prompt_seconds=_ns_to_s(final.get("prompt_eval_duration")),
                generation_seconds=_ns_to_s(final.get("eval_duration")),
                retries=retried[0],
            )

        return TokenStream(retrying(start, base_delay=self.retry_delay, retried=retried), finish)

    def _pieces(
        self,
        chunks: Iterator[Any],
        final: dict[str, Any],
        first_at: list[float],
        started: float,
        options: GenerationOptions,
        client: Any,
    ) -> Iterator[str]:
        import httpx

        try:
            yield from self._read(chunks, final, first_at)
        except (ConnectionError, httpx.HTTPError, BackendError):
            if not options.stopped:  # else the stop shut the connection: the answer ends with what arrived
                raise
        finally:
            if client is not self._client:
                client.close()
        if not final and not options.stopped:
            raise StreamInterrupted(f"Ollama at {self.host} ended the answer without finishing it; ask again.")

    def _read(self, chunks: Iterator[Any], final: dict[str, Any], first_at: list[float]) -> Iterator[str]:
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


def _ns_to_s(nanoseconds: int | None) -> float | None:
    return None if nanoseconds is None else round(nanoseconds / 1e9, 3)
