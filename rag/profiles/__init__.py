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

ProfileName = Literal["auto", "none", "finance", "contracts"]
PROFILE_NAMES: tuple[ProfileName, ...] = ("auto", "none", "finance", "contracts")


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

    def opening(self, question: str) -> bool:
        """Whether the question asks what a document states at its opening (its opening then comes first)."""
        ...


class NoProfile:
    name = "none"

    def expand(self, question: str) -> Expansion:
        return NO_EXPANSION

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        return False

    def opening(self, question: str) -> bool:
        return False


# phrase → documents whose text holds it (the knowledge base's keyword index)
TextFrequency = Callable[[Sequence[str]], Mapping[str, int]]


def choose_profile(name: ProfileName, text_frequency: TextFrequency) -> Profile:
    """The profile the setting names; with "auto", those whose documents the knowledge base holds (together when
    it holds several kinds: filings with agreements attached, agreements with financial statements)."""
    from rag.profiles.contracts import ContractsProfile, holds_contracts
    from rag.profiles.finance import FinanceProfile, holds_financial_statements

    if name == "finance":
        return FinanceProfile()
    if name == "contracts":
        return ContractsProfile()
    if name == "none":
        return NoProfile()
    held: list[Profile] = []
    if holds_financial_statements(text_frequency):
        held.append(FinanceProfile())
    if holds_contracts(text_frequency):
        held.append(ContractsProfile())
    return held[0] if len(held) == 1 else Profiles(tuple(held)) if held else NoProfile()


class Profiles:
    """Several profiles at once: the first expansion any of them makes, and what any of them prefers or opens."""

    def __init__(self, profiles: tuple[Profile, ...]) -> None:
        self.profiles = profiles
        self.name = " + ".join(p.name for p in profiles)

    def expand(self, question: str) -> Expansion:
        return next((e for p in self.profiles if (e := p.expand(question))), NO_EXPANSION)

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        return any(p.preferred(chunk, expansion) for p in self.profiles)

    def opening(self, question: str) -> bool:
        return any(p.opening(question) for p in self.profiles)
