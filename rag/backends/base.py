"""What every LLM backend shares: the protocol (render the exact prompt, count its tokens, stream the
answer), the retry policy, the token estimate for servers that cannot tokenize, and `complete_with`.

The backends, one module each: `rag.backends.ollama`, `rag.backends.embedded` (llama.cpp),
`rag.backends.openai` (any OpenAI-compatible server).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from rag.errors import BackendError, StreamInterrupted
from rag.prompts import render_llama2, strip_bos
from rag.schema import Message, Usage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationOptions:
    context_window: int
    max_tokens: int
    temperature: float
    # Set from another thread to end the generation early (a person stopped the answer): the backend stops as soon
    # as it can (llama.cpp in the middle of reading the prompt; a server at its next piece) and the stream ends
    # quietly with what had arrived.
    stop: StopSignal | None = None

    @property
    def stopped(self) -> bool:
        return is_stopped(self.stop)


class StopSignal:
    """A stop asked from another thread. Besides `is_set`, it is a byte in memory (`address`: 1 once set) that C
    code can watch without Python: llama.cpp reads it between the steps of its computation (rag.backends.embedded),
    where a Python callback would take the interpreter's lock at every step. A server's stream registers what ends
    it (`when_set`: its connection shut)."""

    def __init__(self) -> None:
        self._byte = ctypes.create_string_buffer(2)  # b"\x00\x00": strlen 0; set: b"\x01\x00", strlen 1
        self._lock = threading.Lock()
        self._actions: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._lock:
            self._byte[0] = b"\x01"
            actions, self._actions = self._actions, []
        for action in actions:
            try:
                action()
            except Exception:  # a stop must not fail: what could not be ended ends at its next piece
                logger.exception("a stop action failed")

    def is_set(self) -> bool:
        return self._byte[0] != b"\x00"

    def when_set(self, action: Callable[[], None]) -> None:
        """Run `action` when the stop is set (now, if it is already)."""
        with self._lock:
            if not self.is_set():
                self._actions.append(action)
                return
        action()

    @property
    def address(self) -> int:
        return ctypes.addressof(self._byte)


def is_stopped(stop: StopSignal | None) -> bool:
    """Whether a stop was given and has been set."""
    return stop is not None and stop.is_set()


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

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        """Stream the answer to `messages`. `rendered`: what `render(messages)` returned, when the caller
        has it already (the planned turn), so that the prompt is rendered once and sent as it was shown."""
        ...


Complete = Callable[[list[Message]], str]
"""Runs the model on these messages and returns the whole reply text."""


def complete_with(backend: LLMBackend, max_tokens: int = 96, temperature: float = 0.0) -> Complete:
    """A `Complete` that streams from `backend` and joins the pieces (the model is loaded on first call)."""

    def complete(messages: list[Message]) -> str:
        options = GenerationOptions(backend.context_window, max_tokens, temperature)
        return "".join(backend.stream(messages, options))

    return complete


# -- retries ---------------------------------------------------------------------------------------


def retrying(
    start: Callable[[], Iterator[str]],
    attempts: int = 3,
    base_delay: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    retried: list[int] | None = None,
) -> Iterator[str]:
    """Start a stream, retrying transient failures before the first piece with exponential backoff.

    A missing model is never retried. Once the answer has started, a failure is raised as
    StreamInterrupted: re-sending would repeat text the user has already seen. `retried`, when given, counts
    the retries in its first item (for the answer's usage).
    """
    for attempt in range(attempts):
        try:
            pieces = start()
            first = next(pieces, None)
        except BackendError as exc:
            if not exc.transient or attempt == attempts - 1:
                raise
            delay = base_delay * 2**attempt
            if retried is not None:
                retried[0] += 1
            logger.warning("model request failed (%s): retry %d of %d in %.1f s", exc, attempt + 1, attempts - 1, delay)
            sleep(delay)
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


# -- token estimate, for servers that cannot tokenize (Ollama, OpenAI-compatible) ------------------


def render_for_server(messages: Sequence[Message], llama2: bool) -> str:
    """What a model server reads: the exact Llama 2 prompt when it is sent raw (`llama2`, without the BOS the
    runtime adds), else the chat request's messages, shown as JSON."""
    if llama2:
        return strip_bos(render_llama2(messages))
    return json.dumps([{"role": m.role, "content": m.content} for m in messages], ensure_ascii=False, indent=1)


def estimate_prompt_tokens(messages: Sequence[Message], llama2: bool) -> int:
    """A conservative token count for a server without a tokenizer endpoint (the chat template's own
    tokens are allowed for as a few characters per message)."""
    text = render_llama2(messages) if llama2 else "".join(m.content + "\n\n\n\n" for m in messages)
    return estimate_tokens(text)


def estimate_tokens(text: str) -> int:
    """Llama-family tokenizers average ~4 bytes a token on English; 3 keeps a safety margin."""
    return math.ceil(len(text.encode("utf-8")) / 3) + 8


# Observed tokens per estimated token, by (host, model). The estimate starts conservative (1.0) and is
# lowered towards what the server reports, with a margin, never below MIN_CORRECTION: a prompt whose
# prefix the server had cached reports fewer tokens than it holds, and must not make the estimate overflow.
_CORRECTIONS: dict[tuple[str, str], float] = {}
_CORRECTIONS_LOCK = threading.Lock()
CORRECTION_MARGIN = 1.05
MIN_CORRECTION = 0.8


def token_correction(host: str, model: str) -> float:
    return _CORRECTIONS.get((host, model), 1.0)


def learn_token_ratio(host: str, model: str, observed: float) -> None:
    with _CORRECTIONS_LOCK:
        seen = _CORRECTIONS.get((host, model))
        wanted = max(MIN_CORRECTION, observed * CORRECTION_MARGIN)
        # The largest ratio seen wins: a correction only ever makes the estimate safer than what was observed.
        _CORRECTIONS[(host, model)] = wanted if seen is None else max(seen, wanted)


# -- a server's stream that a stop ends at once -------------------------------------------------------------


class _Sockets:
    """The sockets one answer's client opened; `shut` ends them (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._shut = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.append(sock)
            if not self._shut:
                return
        _shut_down(sock)

    def shut(self) -> None:
        with self._lock:
            self._shut = True
            opened = list(self._open)
        for sock in opened:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


def stoppable_transport(stop: StopSignal) -> Any:
    """An httpx transport for one answer whose connection `stop` shuts down.

    While a server reads a long prompt it sends nothing, not even its response's headers (Ollama writes them with
    the first word), and the thread reading the answer waits in the socket: closing the client from another thread
    does not wake it (on Linux, a read blocked on a socket another thread closes goes on waiting), shutting the
    socket down does. The server sees its client gone and stops generating. httpx hands out a connection's socket
    only with the response, so its connection pool is made here with a network backend that keeps each socket."""
    import httpcore
    import httpx

    sockets = _Sockets()

    class KeepingSockets(httpcore.SyncBackend):
        def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
            stream = super().connect_tcp(*args, **kwargs)
            sockets.add(stream.get_extra_info("socket"))
            return stream

    transport = httpx.HTTPTransport()
    # httpx (0.28, pinned) takes no network backend: its pool is replaced by one made as it makes it, with ours.
    transport._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=KeepingSockets())
    stop.when_set(sockets.shut)
    return transport
