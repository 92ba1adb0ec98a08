"""Optional domain knowledge: what a domain's questions mean that neither the embedding model nor BM25 knows.

A profile expands a question with the words its documents use for what it asks ("gross margin" → "cost of
sales", "net sales") and says which passages answer such questions best (the income statement). Retrieval
is general without one; a profile is on when the knowledge base holds that domain's documents (`detect`),
or when the settings say so (`RAG_PROFILE`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from rag.schema import Chunk

ProfileName = Literal["auto", "none", "finance"]
PROFILE_NAMES: tuple[ProfileName, ...] = ("auto", "none", "finance")


@dataclass(frozen=True)
class Expansion:
    """What a profile adds to a question: words searched by keyword and, with the question, as one more
    query vector; and the kinds of passage to prefer (the profile's own labels)."""

    terms: str = ""
    prefer: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.terms or self.prefer)


NO_EXPANSION = Expansion()


class Profile(Protocol):
    name: str

    def expand(self, question: str) -> Expansion:
        """The question's expansion (NO_EXPANSION when it asks nothing the profile knows)."""
        ...

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        """Whether the passage is of a kind the expansion prefers."""
        ...


class NoProfile:
    name = "none"

    def expand(self, question: str) -> Expansion:
        return NO_EXPANSION

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        return False


# phrase → documents whose text holds it (the knowledge base's keyword index)
TextFrequency = Callable[[Sequence[str]], Mapping[str, int]]


def choose_profile(name: ProfileName, text_frequency: TextFrequency) -> Profile:
    """The profile the setting names; with "auto", the one whose documents the knowledge base holds."""
    from rag.profiles.finance import FinanceProfile, holds_financial_statements

    if name == "finance" or (name == "auto" and holds_financial_statements(text_frequency)):
        return FinanceProfile()
    return NoProfile()
