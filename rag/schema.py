"""Small typed values passed between the stages of the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Section:
    """A piece of a loaded file with its page (1-based; None when the format has no pages)."""

    text: str
    page: int | None = None


@dataclass(frozen=True)
class LoadedDocument:
    """A file turned into text sections, before chunking."""

    name: str
    kind: str  # "pdf", "docx", "markdown", "text", "html", "csv"
    sections: list[Section]
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as it is embedded and stored."""

    id: str
    doc_id: str
    text: str
    source: str
    page: int | None
    position: int


@dataclass(frozen=True)
class RetrievedChunk:
    """A chunk returned by retrieval, with its relevance score (higher is better, cosine in [-1, 1])."""

    chunk: Chunk
    score: float


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float | None = None
    time_to_first_token: float | None = None

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens or not self.seconds:
            return None
        generating = self.seconds - (self.time_to_first_token or 0.0)
        return self.completion_tokens / generating if generating > 0 else None


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[RetrievedChunk]
    usage: Usage
    backend: str
    model: str
