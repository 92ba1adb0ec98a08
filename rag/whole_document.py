"""Whole-document answers: summaries, "list every …", "how many …", "what does each section say about …".

Top-k passages cannot answer these: the answer is spread over the whole document. Here the model reads every
chunk of the chosen documents, in order, a part at a time (map: notes of what in that part bears on the
question, with its pages), then combines the notes into one answer (reduce), citing the pages. A part is as
much as fits the model's window beside the instructions and the note's reserve; notes that do not fit one
reduce are combined in rounds.

Before it starts, `plan` says how many model calls it takes and about how long, from the measured speed of
the active backend (rag/speed.py). Running it yields progress ("part 12 of 40") and then the answer as it is
written; stopping it (closing the iterator) keeps what is done: the notes of the parts read so far.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from rag.backends.base import GenerationOptions, LLMBackend, StopSignal, is_stopped
from rag.errors import RagError
from rag.left_out import asks_for_every_item, left_out, not_in_answer
from rag.schema import Chunk, Message, Usage
from rag.speed import METER, Speed, SpeedMeter, timed_complete

logger = logging.getLogger(__name__)

NOTE_TOKENS = 256  # the most a part's note may take (a long list in one part is cut: smaller parts then)
OVERHEAD_TOKENS = 48  # the chat template's own tokens around the messages, beyond the counted texts
MIN_PART_TOKENS = 100  # a window with less room than this for the document's text is too small
NOTE_SHARE = 0.5  # of a note's reserve that a note takes on average, for the time estimate
NOTHING = "NOTHING"
LABEL_ROOM = "part 100 of 100, a document with a long name.pdf, pages 1000–1000"  # room for a part's label

# The instructions come after the text, as its last words: small models follow what they read last (the
# built-in 135M model, given them before the text, wrote a paragraph about the document instead of its items).
MAP_ASK = (
    "From the text above ({label}): {question} Answer with a short bulleted list of what the text says about "
    f"it, copying names and figures exactly. If the text says nothing about it, answer only: {NOTHING}"
)
REDUCE_ASK = (
    "From the notes above: {question} Keep every item of the notes (for a list or a count, all of them), each "
    "with the pages its note names, like (pages 3–4). Say nothing the notes do not say."
)
_LOOP = re.compile(r"(\b[^\n]{8,300}?)(?:[,;]?[ \t]*\1)+")  # a phrase twice or more in a row
ALSO_NOTED = "Also named in the notes of the parts read, not in the answer above:"
# Questions that ask about a whole document rather than a passage of it.
_WHOLE_QUESTION = re.compile(
    r"\b(?:summari[sz]e|summary|overview|outline|list (?:all|every|each)|all (?:the )?\w+ (?:mentioned|listed|named)"
    r"|every|each (?:section|chapter|part)|how many|count(?: of)?|throughout|whole document|entire document)\b",
    re.IGNORECASE,
)


class WholeDocumentError(RagError):
    """A whole-document answer cannot be made as asked."""


def asks_for_whole_document(question: str) -> bool:
    """Does the question ask about all of a document (a summary, every item, a count)?"""
    return bool(_WHOLE_QUESTION.search(question))


@dataclass(frozen=True)
class Part:
    """Consecutive chunks of one document, read in one model call."""

    number: int  # 1-based, over all the chosen documents
    name: str
    doc_id: str
    chunks: tuple[Chunk, ...]

    @property
    def first_page(self) -> int | None:
        return self.chunks[0].page

    @property
    def last_page(self) -> int | None:
        return self.chunks[-1].page

    @property
    def pages(self) -> str:
        first, last = self.first_page, self.last_page
        if first is None or last is None:
            return ""
        return f"page {first}" if first == last else f"pages {first}–{last}"

    @property
    def text(self) -> str:
        """The chunks as the model reads them (its label names the pages: page markers inside the text made the
        built-in model write markers instead of notes)."""
        return "\n".join(chunk.text for chunk in self.chunks)

    @property
    def label(self) -> str:
        return f"{self.name}, {self.pages}" if self.pages else self.name


@dataclass(frozen=True)
class Plan:
    question: str
    parts: tuple[Part, ...]
    map_calls: int
    reduce_calls: int
    prompt_tokens: int  # all calls together
    answer_tokens: int  # the reserve of all calls together
    seconds: float  # the estimate, from `speed`
    speed: Speed
    # A question for every item: a part's note that leaves out a line about it is followed by a second look at
    # those lines alone (a small model given three items lists two). Calls the estimate cannot foresee.
    second_look: bool = False

    @property
    def calls(self) -> int:
        return self.map_calls + self.reduce_calls

    def describe(self) -> str:
        minutes = self.seconds / 60
        took = f"about {math.ceil(minutes)} min" if minutes >= 1.5 else f"about {max(1, round(self.seconds))} s"
        again = f"; up to {self.map_calls} more to look again at lines a note leaves out" if self.second_look else ""
        return (
            f"{len(self.parts)} parts: {self.calls} model calls ({self.map_calls} to read, {self.reduce_calls} to "
            f"combine{again}), {took} at this model's measured speed"
        )


@dataclass(frozen=True)
class Note:
    part: Part
    text: str
    usage: Usage

    @property
    def empty(self) -> bool:
        return _says_nothing(self.text)


def _says_nothing(note: str) -> bool:
    return not note.strip() or note.strip().upper().startswith(NOTHING)


N = TypeVar("N", int, float)


def _added(first: Usage, second: Usage) -> Usage:
    """Two calls' usage as one (a figure either call lacks stays unknown)."""

    def total(a: N | None, b: N | None) -> N | None:
        return None if a is None or b is None else a + b

    return Usage(
        prompt_tokens=total(first.prompt_tokens, second.prompt_tokens),
        completion_tokens=total(first.completion_tokens, second.completion_tokens),
        seconds=total(first.seconds, second.seconds),
    )


@dataclass(frozen=True)
class Progress:
    """A step done: `stage` "read" (a part, with its note) or "combine" (a round of notes), `done` of `total`."""

    stage: str
    done: int
    total: int
    note: Note | None = None
    seconds_left: float | None = None

    def describe(self) -> str:
        what = "part" if self.stage == "read" else "combining notes, step"
        left = f" · about {_duration(self.seconds_left)} left" if self.seconds_left else ""
        return f"{what} {self.done} of {self.total}{left}"


TokenCount = Callable[[str], int]
Document = tuple[str, str, Sequence[Chunk]]  # doc_id, name, its chunks


def make_parts(
    documents: Sequence[tuple[str, str, Sequence[Chunk]]], budget_tokens: int, count: TokenCount
) -> list[Part]:
    """Each document's chunks in order, cut into parts of at most `budget_tokens` (a chunk larger than that
    alone is a part of its own, cut to fit by the model call). `documents`: (doc_id, name, chunks)."""
    parts: list[Part] = []
    for doc_id, name, chunks in documents:
        current: list[Chunk] = []
        used = 0
        for chunk in sorted(chunks, key=lambda c: c.position):
            size = count(chunk.text) + 4
            if current and used + size > budget_tokens:
                parts.append(Part(len(parts) + 1, name, doc_id, tuple(current)))
                current, used = [], 0
            current.append(chunk)
            used += size
        if current:
            parts.append(Part(len(parts) + 1, name, doc_id, tuple(current)))
    return parts


@dataclass
class WholeDocumentAnswer:
    """Iterate: `Progress` values while the parts are read and the notes combined, then the answer's text in
    pieces (str). Afterwards: `text`, `notes`, `stopped` (closed before the end), `usage` of all calls."""

    plan: Plan
    backend: LLMBackend
    temperature: float = 0.2
    meter: SpeedMeter = METER
    stop: StopSignal | None = None  # set from another thread: the model call under way ends at once, no more follow
    notes: list[Note] = field(default_factory=list)
    text: str = ""
    finished: bool = False
    prompt_tokens: int = 0
    answer_tokens: int = 0
    seconds: float = 0.0

    def __iter__(self) -> Generator[Progress | str, None, None]:
        total_reads = len(self.plan.parts)
        try:
            for part in self.plan.parts:
                note = self._read(part)
                if self._stopped:  # the note of a call cut short is not the part's: the parts read before are kept
                    return
                self.notes.append(note)
                self._count(note.usage)
                left = self._seconds_left(total_reads - part.number)
                yield Progress("read", part.number, total_reads, note, left)
            kept = [n for n in self.notes if not n.empty]
            if not kept:
                self.text = (
                    "None of the parts read holds anything about this question: the documents do not seem to cover "
                    "it. (Every part was read.)"
                )
                yield self.text
                self.finished = True
                return
            if len(kept) == 1:  # one part holds it all: its note is the answer (a combining call adds nothing)
                self.text = f"{kept[0].text}\n\n(from {kept[0].part.label})"
                yield self.text
                self.finished = True
                return
            notes = [(n.part.label, n.text) for n in kept]
            rounds = 0
            while len(notes) > 1 and not self._fits(notes):
                rounds += 1
                notes = list(self._combine_round(notes))
                if self._stopped:
                    return
                yield Progress("combine", rounds, max(rounds, self.plan.reduce_calls - 1))
            yield from self._final(notes)
            if self._stopped:
                return
            if self.plan.second_look:  # a list or a count: what the notes name and the combined answer dropped
                dropped = not_in_answer(self.plan.question, [(n.part.label, n.text) for n in kept], self.text)
                if dropped:
                    more = "\n\n" + ALSO_NOTED + "\n" + "\n".join(f"- {line} ({label})" for label, line in dropped)
                    self.text += more
                    yield more
            self.finished = True
        finally:
            if not self.finished:
                self.text = self.partial()

    @property
    def _stopped(self) -> bool:
        return is_stopped(self.stop)

    def partial(self) -> str:
        """What a stopped run has: the notes of the parts read so far, with their pages."""
        read = len(self.notes)
        total = len(self.plan.parts)
        if not read:
            return f"Stopped before any part was read (of {total})."
        last = self.notes[-1].part
        head = f"Stopped after part {read} of {total} (read up to {last.label}). What the parts read so far found:"
        found = [f"{n.part.label}:\n{n.text}" for n in self.notes if not n.empty]
        return "\n\n".join([head, *(found or ["nothing about the question."])])

    # -- steps ---------------------------------------------------------------------------------------

    def _read(self, part: Part) -> Note:
        """A part's note; for a question about every item, with a second look at the lines it left out."""
        text, usage = timed_complete(
            self.backend, _map_messages(self.plan, part), NOTE_TOKENS, self.meter, stop=self.stop
        )
        text = tidy_note(text)
        if self.plan.second_look:
            missed = left_out(self.plan.question, part.text, "" if _says_nothing(text) else text)
            if missed:
                logger.info("part %d: a second look at %d lines its note left out", part.number, len(missed))
                again, more = timed_complete(
                    self.backend,
                    _map_messages(self.plan, part, "\n".join(missed)),
                    NOTE_TOKENS,
                    self.meter,
                    stop=self.stop,
                )
                usage = _added(usage, more)
                if not _says_nothing(again):
                    text = tidy_note(again if _says_nothing(text) else f"{text}\n{again}")
        return Note(part, text, usage)

    def _final(self, notes: Sequence[tuple[str, str]]) -> Iterator[str]:
        messages = _reduce_messages(self.plan.question, notes)
        options = GenerationOptions(self.backend.context_window, NOTE_TOKENS * 2, self.temperature, self.stop)
        prompt_tokens = self.backend.count_tokens(messages)
        stream = self.backend.stream(messages, options)
        pieces = iter(stream)
        try:
            for piece in pieces:
                self.text += piece
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        if stream.usage is not None:
            self.meter.record(self.backend, prompt_tokens, stream.usage)
            self._count(stream.usage)
        self.text = tidy_note(self.text)  # a small model loops on a list's last line: each line once

    def _combine_round(self, notes: Sequence[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        """Notes in groups that fit one call, each group combined into one note."""
        group: list[tuple[str, str]] = []
        for note in notes:
            if group and not self._fits([*group, note]):
                yield self._combined(group)
                group = []
            group.append(note)
        if group:
            yield self._combined(group)

    def _combined(self, group: Sequence[tuple[str, str]]) -> tuple[str, str]:
        if len(group) == 1:
            return group[0]
        text, usage = timed_complete(
            self.backend, _reduce_messages(self.plan.question, group), NOTE_TOKENS * 2, self.meter, stop=self.stop
        )
        self._count(usage)
        return (f"{group[0][0]} to {group[-1][0]}", text.strip())

    def _fits(self, notes: Sequence[tuple[str, str]]) -> bool:
        needed = self.backend.count_tokens(_reduce_messages(self.plan.question, notes)) + OVERHEAD_TOKENS
        return needed + NOTE_TOKENS * 2 <= self.backend.context_window

    def _count(self, usage: Usage) -> None:
        self.prompt_tokens += usage.prompt_tokens or 0
        self.answer_tokens += usage.completion_tokens or 0
        self.seconds += usage.seconds or 0.0

    def _seconds_left(self, parts_left: int) -> float | None:
        speed = self.meter.speed(self.backend) or self.plan.speed
        if not self.notes:
            return None
        average_prompt = self.prompt_tokens / len(self.notes)
        average_note = self.answer_tokens / len(self.notes)
        per_part = speed.seconds(round(average_prompt), round(average_note))
        return parts_left * per_part + self.plan.reduce_calls * speed.seconds(round(average_prompt), NOTE_TOKENS)


def plan(
    question: str,
    documents: Sequence[Document],
    backend: LLMBackend,
    speed: Speed,
    max_part_tokens: int | None = None,
) -> Plan:
    """How the documents are read for `question`: parts that fit the window, the calls, and the time."""
    if not question.strip():
        raise WholeDocumentError("Ask a question to answer from the whole document (e.g. 'Summarize it').")
    if not documents:
        raise WholeDocumentError(
            "Choose the documents to read whole (Search only these documents, or --doc NAME): reading every "
            "document of the knowledge base for one question would take too long."
        )
    count = _text_counter(backend)
    frame = backend.count_tokens(_map_messages_for(question, LABEL_ROOM, "")) + OVERHEAD_TOKENS
    budget = backend.context_window - NOTE_TOKENS - frame
    if budget < MIN_PART_TOKENS:
        raise WholeDocumentError(
            f"The model's window ({backend.context_window} tokens) leaves no room for a part of the document beside "
            "the instructions: raise the context window (Settings, or RAG_CONTEXT_WINDOW)."
        )
    parts = make_parts(documents, min(budget, max_part_tokens or budget), count)
    if not parts:
        raise WholeDocumentError("The chosen documents have no text to read.")
    part_tokens = [frame + sum(count(c.text) + 4 for c in p.chunks) for p in parts]
    per_reduce = max(2, (backend.context_window - 2 * NOTE_TOKENS - frame) // max(int(NOTE_TOKENS * NOTE_SHARE), 1))
    reduce_calls, pending = 0, len(parts)
    while pending > 1:  # rounds of combining until one call holds every note (one part's note is the answer)
        calls = math.ceil(pending / per_reduce)
        reduce_calls += calls
        if calls <= 1:
            break
        pending = calls
    note_tokens = int(NOTE_TOKENS * NOTE_SHARE)
    reduce_prompt = frame + min(len(parts), per_reduce) * note_tokens
    seconds = sum(speed.seconds(t, note_tokens) for t in part_tokens) + reduce_calls * speed.seconds(
        reduce_prompt, NOTE_TOKENS
    )
    return Plan(
        question=question,
        parts=tuple(parts),
        map_calls=len(parts),
        reduce_calls=reduce_calls,
        prompt_tokens=sum(part_tokens) + reduce_calls * reduce_prompt,
        answer_tokens=len(parts) * NOTE_TOKENS + reduce_calls * NOTE_TOKENS * 2,
        seconds=seconds,
        speed=speed,
        second_look=asks_for_every_item(question),
    )


def _text_counter(backend: LLMBackend) -> TokenCount:
    empty = backend.count_tokens([Message("user", "")])
    return lambda text: max(1, backend.count_tokens([Message("user", text)]) - empty)


def _map_messages_for(question: str, label: str, text: str) -> list[Message]:
    return [Message("user", f"{text}\n\n" + MAP_ASK.format(label=label, question=question))]


def _map_messages(plan: Plan, part: Part, text: str | None = None) -> list[Message]:
    """The call that reads `part` (or `text`, some of its lines, for a second look)."""
    label = f"part {part.number} of {len(plan.parts)}, {part.label}"
    return _map_messages_for(plan.question.strip(), label, part.text if text is None else text)


def _reduce_messages(question: str, notes: Sequence[tuple[str, str]]) -> list[Message]:
    body = "\n\n".join(f"Notes from {label}:\n{text}" for label, text in notes)
    return [Message("user", f"{body}\n\n" + REDUCE_ASK.format(question=question.strip()))]


def tidy_note(text: str) -> str:
    """A note without the lines a small model repeats (it loops on a list's last item), and with a phrase it
    repeats over and over inside a line ("a fine instrument of brass, a fine instrument of brass, …") once."""
    kept = []
    used: set[str] = set()
    text = _LOOP.sub(_once, text)
    for line in text.strip().split("\n"):
        key = " ".join(line.lower().split()).lstrip("-*•0123456789.) ")
        if line.strip() and key not in used:
            used.add(key)
            kept.append(line.rstrip())
    return "\n".join(kept)


def _once(loop: re.Match[str]) -> str:
    """A phrase of words repeated in a row, once (a row of equal figures stays as it is)."""
    phrase = loop.group(1)
    return phrase if len(re.findall(r"[^\W\d_]{2,}", phrase)) >= 3 else loop.group(0)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return f"{math.ceil(seconds / 60)} min" if seconds >= 90 else f"{max(1, round(seconds))} s"
