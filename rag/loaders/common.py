"""What every loader shares: messages, text tidying, the LoaderError helpers."""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass

from rag.config import DEFAULT_CHUNK_SIZE, DEFAULT_MAX_CHUNKS, DEFAULT_MAX_PAGES
from rag.errors import LoaderError

LONG_RUN = 10_000  # a run of non-space characters longer than this cannot be split at word boundaries
REASON_MAX = 160  # keep library messages short enough to read in a toast

LONG_RUN_RE = re.compile(rf"\S{{{LONG_RUN + 1},}}")
SPACES_RE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
BLANK_LINES_RE = re.compile(r"\n{3,}")
HYPHEN_BREAK_RE = re.compile(r"([a-z])-\n([a-z])")  # "exam-\nple" -> "example", lower-case only
# Control characters (NUL, C0 except tab/newline, DEL, C1) break tokenizers and the vector store.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def empty(name: str) -> LoaderError:
    return LoaderError(f"{name} is empty: there is nothing to index.")


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    said = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return said if len(said) <= REASON_MAX else said[: REASON_MAX - 1] + "…"


def tidy(text: str, *, collapse_spaces: bool) -> str:
    """Light normalisation: LF line ends, no control characters, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL_RE.sub("", text)
    if collapse_spaces:
        # Extracted text (PDF, Word, HTML) has layout spacing, not meaningful indentation.
        text = "\n".join(SPACES_RE.sub(" ", line).strip() for line in text.split("\n"))
    else:
        text = "\n".join(line.rstrip() for line in text.split("\n"))
    return BLANK_LINES_RE.sub("\n\n", text).strip()


def count(items: list[int], noun: str) -> str:
    return f"1 {noun}" if len(items) == 1 else f"{len(items)} {noun}s"


def pages(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return shown + (", …" if len(numbers) > 10 else "")


# -- what one file may hold, counted while it is read -----------------------------------------------------

# A paragraph or table row per this many of a chunk's characters at most: real documents have a few per chunk
# (empty spacing paragraphs included), so a file with more is refused as soon as it has them, not parsed whole.
BLOCKS_PER_CHUNK = 50
# Text beyond max_chunks x chunk_size always makes more chunks than allowed; the margin covers the spaces that
# tidying takes out, so a file just under the chunk limit is still read to the end (and counted exactly).
CHARS_MARGIN = 1.25


@dataclass(frozen=True)
class ReadLimits:
    """How much one file may hold (RAG_MAX_PAGES, and RAG_MAX_CHUNKS as text): checked while it is read, so a
    file over a limit stops being read at once instead of being parsed whole and refused after."""

    max_pages: int = DEFAULT_MAX_PAGES
    max_chunks: int = DEFAULT_MAX_CHUNKS
    chunk_size: int = DEFAULT_CHUNK_SIZE

    @property
    def max_chars(self) -> int:
        return int(self.max_chunks * self.chunk_size * CHARS_MARGIN)

    @property
    def max_blocks(self) -> int:
        return self.max_chunks * BLOCKS_PER_CHUNK


# Every loader is called as load(data, name): the limits of the file being read are set beside the call.
READ_LIMITS: ContextVar[ReadLimits] = ContextVar("READ_LIMITS", default=ReadLimits())  # noqa: B039 (frozen)


class TextBudget:
    """What a loader has read of one file so far, against READ_LIMITS: raises LoaderError the moment the file
    holds more text, or more paragraphs and rows, than a file may."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.limits = READ_LIMITS.get()
        self.chars = 0
        self.blocks = 0

    def add(self, text: str, blocks: int = 1) -> None:
        self.chars += len(text)
        self.blocks += blocks
        limits = self.limits
        if self.chars > limits.max_chars:
            raise LoaderError(
                f"{self.name} holds over {limits.max_chars:,} characters of text, more than the "
                f"{limits.max_chunks:,} chunks a file may make (at {limits.chunk_size:,} characters a chunk), so "
                "it was not read further: split it into smaller files, or raise RAG_MAX_CHUNKS."
            )
        if self.blocks > limits.max_blocks:
            raise LoaderError(
                f"{self.name} holds over {limits.max_blocks:,} paragraphs or table rows, more than a file of "
                f"{limits.max_chunks:,} chunks may have, so it was not read further: split it into smaller files, "
                "or raise RAG_MAX_CHUNKS."
            )
