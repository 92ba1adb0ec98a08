"""What the backends share (rag.backends.base): the retry policy, and `complete_with` on a scripted backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from rag.backends.base import GenerationOptions, TokenStream, complete_with, retrying
from rag.errors import BackendUnavailable, ModelNotFound
from rag.schema import Message, Usage


def test_retrying_backs_off_exponentially_and_gives_up() -> None:
    delays: list[float] = []

    def start() -> Iterator[str]:
        raise BackendUnavailable("down")

    retried = [0]
    with pytest.raises(BackendUnavailable):
        list(retrying(start, attempts=4, base_delay=0.5, sleep=delays.append, retried=retried))
    assert delays == [0.5, 1.0, 2.0] and retried == [3]


def test_retrying_never_retries_a_missing_model() -> None:
    calls: list[int] = []

    def start() -> Iterator[str]:
        calls.append(1)
        raise ModelNotFound("pull it")

    with pytest.raises(ModelNotFound):
        list(retrying(start, sleep=lambda _: None))
    assert calls == [1]


# -- complete_with -----------------------------------------------------------------------------------


class ScriptedBackend:
    """Just enough of an LLMBackend: records what stream() was asked for."""

    name = "fake"
    model = "fake-model"
    context_window = 2048

    def __init__(self, pieces: Sequence[str]) -> None:
        self.pieces = list(pieces)
        self.requests: list[tuple[list[Message], GenerationOptions]] = []

    def render(self, messages: Sequence[Message]) -> str:
        return "\n".join(m.content for m in messages)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.render(messages).split())

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        self.requests.append((list(messages), options))
        pieces: Iterator[str] = iter(self.pieces)
        return TokenStream(pieces, lambda: Usage(completion_tokens=len(self.pieces)))


def test_complete_with_joins_the_stream_with_the_backend_window() -> None:
    backend = ScriptedBackend(["Ottawa", ", capital", " of Canada"])
    complete = complete_with(backend, max_tokens=40, temperature=0.2)
    messages = [Message("system", "s"), Message("user", "u")]
    assert complete(messages) == "Ottawa, capital of Canada"
    assert backend.requests == [(messages, GenerationOptions(context_window=2048, max_tokens=40, temperature=0.2))]
    assert complete_with(backend)(messages) == "Ottawa, capital of Canada"
    assert backend.requests[-1][1] == GenerationOptions(2048, 96, 0.0)
