"""How fast the active model reads and writes, measured here: what a long job (a whole-document answer) will
take is said before it starts, from this.

Every model call the app makes through `timed_complete` (and every answer it records) updates the figures of
its backend and model; when there are none yet, `measure` makes one short call to get them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rag.backends.base import GenerationOptions, LLMBackend, StopSignal
from rag.schema import Message, Usage

PROBE_TEXT = (
    "A probe of the model's speed. The quick brown fox jumps over the lazy dog, and the lazy dog sleeps on. "
) * 8
PROBE_ANSWER_TOKENS = 16
WEIGHT_OF_NEW = 0.3  # a new measurement moves the figures this far (the machine's load varies)


@dataclass(frozen=True)
class Speed:
    """Tokens per second reading the prompt and writing the answer, and the fixed cost of a call."""

    prompt_tokens_per_second: float
    answer_tokens_per_second: float
    seconds_per_call: float = 0.0  # request overhead beyond the tokens (a server's round trip)
    calls: int = 1  # how many calls the figures come from

    def seconds(self, prompt_tokens: int, answer_tokens: int) -> float:
        return (
            self.seconds_per_call
            + prompt_tokens / max(self.prompt_tokens_per_second, 1e-6)
            + answer_tokens / max(self.answer_tokens_per_second, 1e-6)
        )


class SpeedMeter:
    """Figures per (backend, model), shared by the whole process (every session, every command)."""

    def __init__(self) -> None:
        self._speeds: dict[tuple[str, str], Speed] = {}
        self._lock = threading.Lock()

    def speed(self, backend: LLMBackend) -> Speed | None:
        with self._lock:
            return self._speeds.get(_key(backend))

    def record(self, backend: LLMBackend, prompt_tokens: int, usage: Usage) -> Speed | None:
        """Learn from one finished call: the prompt's tokens (as counted before sending; a server streaming
        without usage reports none) and the call's usage."""
        reading = usage.prompt_seconds if usage.prompt_seconds is not None else usage.time_to_first_token
        writing = usage.generation_seconds
        if writing is None and usage.seconds is not None and reading is not None:
            writing = usage.seconds - reading
        if not reading or not writing or not usage.completion_tokens or prompt_tokens <= 0:
            return None
        measured = Speed(prompt_tokens / reading, max(usage.completion_tokens - 1, 1) / writing)
        with self._lock:
            seen = self._speeds.get(_key(backend))
            if seen is not None:
                measured = Speed(
                    _blend(seen.prompt_tokens_per_second, measured.prompt_tokens_per_second),
                    _blend(seen.answer_tokens_per_second, measured.answer_tokens_per_second),
                    seen.seconds_per_call,
                    seen.calls + 1,
                )
            self._speeds[_key(backend)] = measured
            return measured

    def measure(self, backend: LLMBackend) -> Speed:
        """The backend's figures; one short call to get them when there are none yet (a second or two)."""
        known = self.speed(backend)
        if known is not None:
            return known
        messages = [Message("system", "Answer in one short sentence."), Message("user", PROBE_TEXT + "Say hello.")]
        timed_complete(backend, messages, PROBE_ANSWER_TOKENS, self)
        return self.speed(backend) or Speed(100.0, 20.0, calls=0)  # a model that wrote nothing: a guess


METER = SpeedMeter()


def timed_complete(
    backend: LLMBackend,
    messages: Sequence[Message],
    max_tokens: int,
    meter: SpeedMeter = METER,
    temperature: float = 0.0,
    stop: StopSignal | None = None,
) -> tuple[str, Usage]:
    """Run the model on `messages` to the end (or until `stop` is set); the figures of its backend learn from the
    call."""
    prompt_tokens = backend.count_tokens(messages)
    options = GenerationOptions(backend.context_window, max_tokens, temperature, stop)
    started = time.perf_counter()
    stream = backend.stream(messages, options)
    pieces: list[str] = []
    first: float | None = None
    for piece in stream:
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    ended = time.perf_counter()
    usage = stream.usage or Usage()
    if usage.prompt_seconds is None and first is not None:  # servers that report no timings: our clock
        usage = Usage(
            prompt_tokens=usage.prompt_tokens or prompt_tokens,
            completion_tokens=usage.completion_tokens or len(pieces),
            seconds=ended - started,
            time_to_first_token=first - started,
            prompt_seconds=first - started,
            generation_seconds=ended - first,
        )
    meter.record(backend, usage.prompt_tokens or prompt_tokens, usage)  # a call stopped before any word: not counted
    return "".join(pieces), usage


def _key(backend: LLMBackend) -> tuple[str, str]:
    return (backend.name, backend.model)


def _blend(old: float, new: float) -> float:
    return old * (1 - WEIGHT_OF_NEW) + new * WEIGHT_OF_NEW
