"""The running summary: old turns of a conversation folded into a short summary the prompt carries.

The model is a plain callable (`Complete`): `rag.backends.base.complete_with(backend)` adapts any
`LLMBackend`, and tests pass a deterministic fake. The prompts are module constants (data).

Whatever the model writes is checked: an unusable reply gives an extractive summary, and a number or name
the user gave that the model's summary drops is appended: a small model must never make memory worse
than none.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from rag.backends.base import Complete
from rag.errors import PromptError
from rag.followup import ROLE_LABELS, SPECIAL_TOKENS, names_in
from rag.formatting import shorten
from rag.schema import Message

logger = logging.getLogger(__name__)

# -- prompts (data) ----------------------------------------------------------------------------------

SUMMARY_SYSTEM = (
    "Update the running summary of the conversation with these turns; keep every fact, name and number "
    "the user gave or asked about; at most {max_words} words. Output only the summary."
)
SUMMARY_USER_TEMPLATE = "Summary so far:\n{summary}\n\nNew turns:\n{turns}\n\nUpdated summary:"
NO_SUMMARY_YET = "(none)"

FALLBACK_LABELS = {"user": "User asked", "assistant": "Assistant answered"}
FALLBACK_CHARS = 200  # of each turn, in the extractive summary


def summary_messages(
    previous_summary: str, turns: Sequence[Message], max_words: int = 120, max_input_chars: int = 6000
) -> list[Message]:
    """The exact messages of the summary call."""
    if max_words < 1:
        raise ValueError(f"max_words must be positive, got {max_words}")
    shown = [m for m in turns if m.role in ROLE_LABELS and m.content.strip()]
    per_message = max(200, max_input_chars // max(1, len(shown)))
    lines = [f"{ROLE_LABELS[m.role]}: {shorten(' '.join(m.content.split()), per_message)}" for m in shown]
    user = SUMMARY_USER_TEMPLATE.format(summary=previous_summary.strip() or NO_SUMMARY_YET, turns="\n".join(lines))
    return [Message("system", SUMMARY_SYSTEM.format(max_words=max_words)), Message("user", user)]


def summarize(
    previous_summary: str,
    turns: Sequence[Message],
    complete: Complete,
    max_words: int = 120,
    max_input_chars: int = 6000,
) -> str:
    """The new running summary: `previous_summary` updated with `turns` by the model (one call).

    Facts are never silently lost: when the reply is unusable (empty, an echo of the prompt, or the
    prompt does not fit the model's window) the summary is extractive (`fallback_summary`); when the
    model's summary drops a number or a name the user gave (or that the previous summary held), the
    sentence that carried it is appended.
    """
    if not any(m.role in ROLE_LABELS and m.content.strip() for m in turns):
        return previous_summary.strip()
    try:
        reply = complete(summary_messages(previous_summary, turns, max_words, max_input_chars))
    except PromptError as exc:
        logger.info("summary prompt does not fit the model's window (%s)", exc)
        reply = ""
    summary = clean_summary(reply, max_words)
    if not summary:
        logger.info("model summary unusable (%r): falling back to an extractive summary", reply[:80])
        return fallback_summary(previous_summary, turns)
    missing = missing_facts(summary, previous_summary, turns)
    if missing:
        logger.info("model summary dropped facts: %d sentences appended", len(missing))
    return "\n".join([summary, *missing])


def fallback_summary(previous_summary: str, turns: Sequence[Message]) -> str:
    """Deterministic and extractive: the previous summary, then "User asked: …" / "Assistant answered: …"
    with the first 200 characters of each turn."""
    lines = [previous_summary.strip()] if previous_summary.strip() else []
    for m in turns:
        if m.role in FALLBACK_LABELS and m.content.strip():
            lines.append(f"{FALLBACK_LABELS[m.role]}: {shorten(' '.join(m.content.split()), FALLBACK_CHARS)}")
    return "\n".join(lines)


_SUMMARY_LABEL = re.compile(
    r"^\s*(?:\*\*)?(?:updated |new |running |conversation )?summary(?: so far)?\s*:(?:\*\*)?\s*", re.IGNORECASE
)
_PROMPT_LABELS = {"summary so far:", "new turns:", "updated summary:", NO_SUMMARY_YET}


def clean_summary(reply: str, max_words: int) -> str:
    """The summary in a model's reply, without labels or echoed prompt headings, cut to `max_words`
    words; "" when nothing usable is left."""
    text = SPECIAL_TOKENS.sub("", reply)
    lines = [_SUMMARY_LABEL.sub("", ln).strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and ln.lower() not in _PROMPT_LABELS]
    words = " ".join(lines).split()
    if len(words) < 2:
        return ""
    if len(words) > max_words:
        return " ".join(words[:max_words]) + " …"
    return "\n".join(lines)


def missing_facts(summary: str, previous_summary: str, turns: Sequence[Message]) -> list[str]:
    """Sentences holding a number or name the user gave (or the previous summary held) that `summary`
    lacks, each as a line to append ("User said: …")."""
    lowered = summary.lower()
    sources = [("", previous_summary)] + [("User said: ", m.content) for m in turns if m.role == "user"]
    lines: list[str] = []
    for label, text in sources:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", text):
            names = names_in(sentence)
            absent = [n for n in names if not re.search(rf"(?<!\w){re.escape(n.lower())}(?!\w)", lowered)]
            line = label + shorten(" ".join(sentence.split()), FALLBACK_CHARS)
            if absent and line not in lines:
                lines.append(line)
    return lines
