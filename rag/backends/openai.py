"""Any OpenAI-compatible model server: vLLM, TGI, llama.cpp's servers, LM Studio, LiteLLM and other gateways.

llama2-family models get Meta's exact chat format as a plain prompt through `/v1/completions` (the
server's own chat template would alter it, as Ollama's does); other models go through
`/v1/chat/completions` and the server's template. Both are streamed as server-sent events.

Plain httpx rather than the official `openai` client: httpx is already a dependency (through the Ollama
client), the two endpoints and their event stream are a few lines, and owning the HTTP layer lets every
failure be mapped to our own errors (with the server's own words) and retried by our one `retrying`
policy, where the `openai` client would add its own retries, timeouts and exception tree on top.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

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

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"  # llama_cpp.server's and vLLM's default port
CONNECT_TIMEOUT = 10.0
# How servers word "the prompt does not fit" (vLLM, OpenAI, llama.cpp, TGI), so it is not reported as a bad request.
_TOO_LONG = (
    "context length",
    "context window",
    "maximum context",
    "too long",
    "exceed",
    "max_model_len",
    "input validation error",
)


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        context_window: int = 4096,
        api_key: str | None = None,
        timeout: float = 300.0,
        retry_delay: float = 0.5,
        client: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retry_delay = retry_delay
        self._context_window = context_window
        self._has_key = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
        self._headers = headers
        self.completions = is_llama2_chat(model)  # the exact Llama 2 prompt through /v1/completions

    @property
    def context_window(self) -> int:
        return self._context_window

    def render(self, messages: Sequence[Message]) -> str:
        return render_for_server(messages, self.completions)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """A conservative estimate (the API has no tokenizer endpoint), corrected by the `prompt_tokens`
        the server reported for earlier prompts of this model, as for Ollama."""
        estimated = estimate_prompt_tokens(messages, self.completions)
        return math.ceil(estimated * token_correction(self.base_url, self.model))

    def request(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """The endpoint and JSON body a generation sends."""
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "stream": True,
            # The final event then carries the server's token counts (OpenAI, vLLM, llama.cpp).
            "stream_options": {"include_usage": True},
        }
        if self.completions:
            body["prompt"] = self.render(messages) if rendered is None else rendered
            return "/completions", body
        body["messages"] = [{"role": m.role, "content": m.content} for m in messages]
        return "/chat/completions", body

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        path, body = self.request(messages, options, rendered)
        final: dict[str, Any] = {}
        started = time.perf_counter()
        first_at: list[float] = []
        retried = [0]

        def finish() -> Usage:
            usage = final.get("usage") or {}
            prompt_tokens = usage.get("prompt_tokens")
            if prompt_tokens:
                estimated = estimate_prompt_tokens(messages, self.completions)
                learn_token_ratio(self.base_url, self.model, prompt_tokens / estimated)
            ended = time.perf_counter()
            first = first_at[0] if first_at else None
            # A server that reports no usage in streams (llama-cpp-python's) still sends one event per
            # generated token: their number is the completion's length. Its prompt count stays unknown (None).
            completion_tokens = usage.get("completion_tokens", final.get("token_events"))
            return Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                seconds=round(ended - started, 3),
                time_to_first_token=None if first is None else round(first - started, 3),
                prompt_seconds=None if first is None else round(first - started, 3),
                generation_seconds=None if first is None else round(ended - first, 3),
                retries=retried[0],
            )

        def start() -> Iterator[str]:
            if options.stopped:
                return iter(())
            if options.stop is None:
                return self._pieces(self._client, path, body, final, first_at, options)
            # A client of its own, whose connection the stop shuts down (the server may be silent for minutes).
            client = httpx.Client(timeout=self._client.timeout, transport=stoppable_transport(options.stop))
            return self._closing(client, self._pieces(client, path, body, final, first_at, options))

        return TokenStream(retrying(start, base_delay=self.retry_delay, retried=retried), finish)

    @staticmethod
    def _closing(client: httpx.Client, pieces: Iterator[str]) -> Iterator[str]:
        with client:
            yield from pieces

    def _pieces(
        self,
        client: httpx.Client,
        path: str,
        body: dict[str, Any],
        final: dict[str, Any],
        first_at: list[float],
        options: GenerationOptions,
    ) -> Iterator[str]:
        url = self.base_url + path
        finished = False
        try:
            with client.stream("POST", url, json=body, headers=self._headers) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._http_error(response.status_code, _server_message(response))
                for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, `event:` lines and `: keep-alive` comments
                    data = line[len("data:") :].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    event = json.loads(data)
                    if "error" in event:  # some servers report a failure inside a 200 stream
                        raise self._http_error(_status_of(event["error"]), _message_of(event["error"]))
                    if event.get("usage"):
                        final["usage"] = event["usage"]
                    for choice in event.get("choices") or []:
                        piece = choice.get("text") if self.completions else (choice.get("delta") or {}).get("content")
                        if piece is not None and not choice.get("finish_reason"):
                            final["token_events"] = final.get("token_events", 0) + 1
                        if piece:
                            if not first_at:
                                first_at.append(time.perf_counter())
                            yield piece
                        if choice.get("finish_reason"):
                            final["finish_reason"] = choice["finish_reason"]
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if options.stopped:
                return
            raise BackendUnavailable(
                f"No model server answers at {self.base_url}: start one (e.g. `python -m llama_cpp.server "
                "--model FILE.gguf --port 8000`, or `vllm serve MODEL`), or set RAG_OPENAI_BASE_URL to where it "
                "runs (with the /v1 suffix)."
            ) from exc
        except (httpx.TransportError, httpx.StreamError) as exc:  # the connection broke after the request went
            if options.stopped:  # the stop shut it: the answer ends with what arrived
                return
            if not first_at:
                raise BackendUnavailable(
                    f"The model server at {self.base_url} closed the connection ({type(exc).__name__}); retrying."
                ) from exc
            raise StreamInterrupted(
                f"The connection to the model server at {self.base_url} broke during the answer "
                f"({type(exc).__name__}): check that the server is still running and ask again."
            ) from exc
        except ValueError as exc:  # not JSON: a proxy's error page, or not an OpenAI-compatible server
            raise BackendError(
                f"{self.base_url} did not answer like an OpenAI-compatible server ({exc}): check "
                "RAG_OPENAI_BASE_URL (it usually ends with /v1)."
            ) from exc
        if not finished and not final.get("finish_reason") and not options.stopped:
            if not final:
                self._diagnose_silence(url, body)
            raise StreamInterrupted(
                f"The model server at {self.base_url} ended the answer without finishing it; ask again."
            )

    def _diagnose_silence(self, url: str, body: dict[str, Any]) -> None:
        """A stream that closed without a single event: llama-cpp-python's server does that when the request
        fails after it has sent its 200 (a prompt longer than its window). Asked again without streaming, for
        one token, a server says why in its error response; that error is raised."""
        probe = {k: v for k, v in body.items() if k != "stream_options"} | {"stream": False, "max_tokens": 1}
        for attempt in range(2):  # the first may meet the pooled connection the failed stream left broken
            try:
                response = self._client.post(url, json=probe, headers=self._headers)
                break
            except httpx.TransportError:
                if attempt:
                    return
        if response.status_code >= 400:
            raise self._http_error(response.status_code, _server_message(response))

    def _http_error(self, status: int, message: str) -> BackendError:
        where = f"The model server at {self.base_url}"
        if status in (401, 403):
            how = (
                "check RAG_OPENAI_API_KEY (or the API key in the settings)"
                if self._has_key
                else "it needs an API key: set RAG_OPENAI_API_KEY (or the API key in the settings)"
            )
            return BackendError(f"{where} refused the API key ({status}: {message}): {how}.")
        if status == 404:
            return ModelNotFound(
                f"{where} has no model {self.model!r} or no such endpoint ({message}): set RAG_MODEL to a model "
                f"it serves (`curl {self.base_url}/models` lists them) and check that RAG_OPENAI_BASE_URL ends "
                "with /v1."
            )
        if status in (400, 413, 422) and any(words in message.lower() for words in _TOO_LONG):
            return BackendError(
                f"{where} says the prompt is too long for the model ({message}): set the context window "
                "(RAG_CONTEXT_WINDOW or the settings) to the server's (e.g. vLLM's --max-model-len, "
                "llama.cpp's --n_ctx), or lower top-k."
            )
        if status == 429 or status >= 500:
            return BackendUnavailable(f"{where} is busy or failing ({status}: {message}); retrying may help.")
        return BackendError(f"{where} refused the request ({status}: {message}).")


def _server_message(response: httpx.Response) -> str:
    """The error text in whichever shape the server uses: OpenAI's {"error": {"message"}}, FastAPI's
    {"detail"}, TGI's {"error": "..."}, or plain text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        if "error" in body:
            return _message_of(body["error"])
        if "detail" in body:
            return str(body["detail"])[:300]
        if "message" in body:
            return str(body["message"])[:300]
    return str(body)[:300]


def _message_of(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]


def _status_of(error: Any) -> int:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) and 400 <= code < 600 else 500
