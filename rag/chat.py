"""One chat turn end to end: retrieve, fit the prompt into the window, stream the answer with its sources."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from rag.backends.base import GenerationOptions, LLMBackend
from rag.prompts import PromptPlan, plan_prompt
from rag.retrieval import Retriever
from rag.schema import Answer, Message, RetrievedChunk, Usage

EMPTY_KNOWLEDGE_BASE = (
    "Your knowledge base is empty, so there is nothing to answer from. Add documents on the Documents page "
    "(or with `python -m rag ingest PATH`) and ask again."
)
NOTHING_RELEVANT = (
    "I could not find anything about this in your documents. Try rephrasing with words the documents use, "
    "or add a document that covers it."
)


@dataclass(frozen=True)
class SummaryUpdate:
    """Older turns folded into the running summary while preparing this turn."""

    summary: str
    folded_messages: int  # how many of the oldest history messages the summary now stands for


@dataclass(frozen=True)
class PreparedTurn:
    question: str
    plan: PromptPlan
    prompt: str  # exactly what the backend sends
    retrieved: list[RetrievedChunk]  # what retrieval selected (evidence, threshold, size), before the token budget
    retrieval_seconds: float
    searched_documents: int  # 0: the knowledge base is empty
    search_query: str = ""  # what retrieval searched for (a follow-up rewritten to stand alone)
    summary_update: SummaryUpdate | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.plan.sources

    @property
    def decline(self) -> str | None:
        """The plain reply given instead of calling the model when no source is relevant."""
        if self.searched_documents == 0:
            return EMPTY_KNOWLEDGE_BASE
        return None if self.sources else NOTHING_RELEVANT


def prepare_turn(
    question: str,
    history: Sequence[Message],
    *,
    retriever: Retriever,
    backend: LLMBackend,
    system_prompt: str,
    top_k: int,
    max_answer_tokens: int,
    min_score: float = -1.0,
    context_chars: int = 100_000,
    doc_ids: Sequence[str] | None = None,
    search_query: str | None = None,
    summary: str = "",
) -> PreparedTurn:
    started = time.perf_counter()
    search_query = search_query or question
    hits = retriever.search(search_query, top_k, doc_ids)
    retrieved = retriever.select(search_query, hits, min_score, context_chars)
    retrieval_seconds = time.perf_counter() - started
    plan = plan_prompt(
        system_prompt=system_prompt,
        question=question,
        history=history,
        sources=retrieved,
        count_tokens=backend.count_tokens,
        budget=backend.context_window - max_answer_tokens,
        summary=summary,
    )
    return PreparedTurn(
        question,
        plan,
        backend.render(plan.messages),
        retrieved,
        retrieval_seconds,
        searched_documents=len(retriever.store.documents()),
        search_query=search_query,
    )


class AnswerStream:
    """Iterate for the answer's text as it is generated; then `answer` holds the whole turn.

    When no source is relevant the model is not called: the reply says so plainly, with no citation to
    invent. If the backend fails mid-way, `text` keeps what had arrived.
    """

    def __init__(self, prepared: PreparedTurn, backend: LLMBackend, options: GenerationOptions) -> None:
        self.prepared = prepared
        self.backend_name = backend.name
        self.model = backend.model
        self._tokens = None if prepared.decline else backend.stream(prepared.plan.messages, options)
        self.text = ""
        self.answer: Answer | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.prepared.sources

    def __iter__(self) -> Iterator[str]:
        pieces: Iterable[str] = self._tokens if self._tokens is not None else [self.prepared.decline or ""]
        for piece in pieces:
            self.text += piece
            yield piece
        usage = self._tokens.usage if self._tokens is not None else None
        self.answer = Answer(
            text=self.text.strip(),
            sources=self.sources,
            usage=usage or Usage(),
            backend=self.backend_name if self._tokens is not None else "none",
            model=self.model if self._tokens is not None else "none",
        )

    def collect(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer
