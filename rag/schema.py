"""Small typed values passed between the stages of the engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Section:
    """A piece of a loaded file with its page (1-based; None when the format has no pages).

    `heading` is the nearest section heading above it ("Consolidated Statements of Cash Flows"). A table
    has its rows in `text` and, in `table_header`, its title and column-header lines (the periods), which
    the chunker repeats atop every chunk of the table so that a figure always travels with its meaning.
    """

    text: str
    page: int | None = None
    heading: str = ""
    table_header: str = ""


@dataclass(frozen=True)
class LoadedDocument:
    """A file turned into text sections, before chunking."""

    name: str
    kind: str  # "pdf", "docx", "markdown", "text", "html", "csv"
    sections: list[Section]
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)
    title: str = ""  # from the file's metadata or its first page; "" when it has none worth showing
    ocr_pages: int = 0  # pages read by OCR (scanned, no text layer)


HEADER_SEPARATOR = " · "  # between the parts of a chunk's header: title · file · heading · page N


@dataclass(frozen=True)
class Chunk:
    """A piece of a document as it is embedded and stored."""

    id: str
    doc_id: str
    text: str
    source: str
    page: int | None
    position: int
    # Where the passage comes from: the document's title, the file name, the nearest heading, the page.
    # Embedded and keyword-indexed with the text (a question naming the company or the statement finds a
    # chunk whose own text says only "39,669"); the model sees it once, in the source's label.
    header: str = ""

    @property
    def indexed_text(self) -> str:
        """What is embedded and keyword-indexed: the header, then the passage."""
        return f"{self.header}\n{self.text}" if self.header else self.text


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
    """Token counts and timings of one answer; None where the backend did not report a figure."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    seconds: float | None = None  # wall time, request to last piece
    time_to_first_token: float | None = None
    prompt_seconds: float | None = None  # reading the prompt (Ollama: prompt_eval_duration)
    generation_seconds: float | None = None  # writing the answer (Ollama: eval_duration)
    retries: int | None = None  # requests tried again after a transient failure before the answer started

    @property
    def tokens_per_second(self) -> float | None:
        if not self.completion_tokens:
            return None
        generating = self.generation_seconds
        if generating is None and self.seconds is not None:
            generating = self.seconds - (self.time_to_first_token or 0.0)
        return self.completion_tokens / generating if generating else None


@dataclass(frozen=True)
class Answer:
    text: str
    sources: list[RetrievedChunk]
    usage: Usage
    backend: str
    model: str
