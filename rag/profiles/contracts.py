"""The contracts profile: what an agreement states at its opening.

An agreement says when it was made, and between whom, in its first lines ("This Agreement is entered into as of
July 1, 2017, by and between …"). A question asking for that date names the agreement by its subject and its
parties, words every clause of it repeats, so its clauses compete on them and the preamble, which says little
else, ranks far down within its document (on the suite's contracts the passage with the date ranked 20th to
90th). With this profile on, a question asking when the agreement was made, signed or took effect has the
opening of the document it is about among its first passages.
"""

from __future__ import annotations

import re

from rag.profiles import NO_EXPANSION, Expansion, TextFrequency
from rag.schema import Chunk

# Phrases of the boilerplate every agreement carries: two of them in the knowledge base mean it holds contracts.
_CONTRACT_PHRASES = ("in witness whereof", "entire agreement", "governing law", "hereinafter referred to as")
_DATE = re.compile(r"\b(?:when|date)\b", re.IGNORECASE)
# When it was made, not when it ends: "signed", "executed", "entered into", "dated", "effective", "the date of".
_MADE = re.compile(
    r"\b(?:sign(?:ed)?|execut(?:ed|ion)|entered\s+into|dated|effective|takes?\s+effect|made|date\s+of\s+(?:the|this))\b",
    re.IGNORECASE,
)


def asks_when_made(question: str) -> bool:
    """Whether the question asks when an agreement was made (signed, dated, in effect from)."""
    return bool(_DATE.search(question) and _MADE.search(question))


def holds_contracts(text_frequency: TextFrequency) -> bool:
    """Whether the knowledge base's documents carry an agreement's boilerplate (two of its phrases)."""
    counts = text_frequency(_CONTRACT_PHRASES)
    return sum(1 for phrase in _CONTRACT_PHRASES if counts.get(phrase, 0) > 0) >= 2


class ContractsProfile:
    """The opening of the agreement in focus for a question about when it was made."""

    name = "contracts"

    def expand(self, question: str) -> Expansion:
        return NO_EXPANSION

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        return False

    def opening(self, question: str) -> bool:
        return asks_when_made(question)
