"""What every loader shares: messages, text tidying, the LoaderError helpers."""

from __future__ import annotations

import re

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
