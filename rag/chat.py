"""One chat turn end to end: retrieve, fit the prompt into the window, stream the answer with its sources."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.llm import GenerationOptions, LLMBackend
from rag.prompts import PromptPlan, plan_prompt
from rag.retrieval import Retriever
from rag.schema import Answer, Message, RetrievedChunk, Usage


@dataclass(frozen=True)
class PreparedTurn:
    question: str
    plan: PromptPlan
    prompt: str  # exactly what the backend sends
    retrieved: list[RetrievedChunk]  # everything retrieval returned, before the budget
    retrieval_seconds: float

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.plan.sources


def prepare_turn(
    question: str,
    history: Sequence[Message],
    *,
    retriever: Retriever,
    backend: LLMBackend,
    system_prompt: str,
    top_k: int,
    max_answer_tokens: int,
    doc_ids: Sequence[str] | None = None,
) -> PreparedTurn:
    started = time.perf_counter()
    retrieved = retriever.search(question, top_k, doc_ids)
    retrieval_seconds = time.perf_counter() - started
    plan = plan_prompt(
        system_prompt=system_prompt,
        question=question,
        history=history,
        sources=retrieved,
        count_tokens=backend.count_tokens,
        budget=backend.context_window - max_answer_tokens,
    )
    return PreparedTurn(question, plan, backend.render(plan.messages), retrieved, retrieval_seconds)


class AnswerStream:
    """Iterate for the answer's text as it is generated; then `answer` holds the whole turn."""

    def __init__(self, prepared: PreparedTurn, backend: LLMBackend, options: GenerationOptions) -> None:
        self.prepared = prepared
        self.backend_name = backend.name
        self.model = backend.model
        self._tokens = backend.stream(prepared.plan.messages, options)
        self.text = ""
        self.answer: Answer | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.prepared.sources

    def __iter__(self) -> Iterator[str]:
        for piece in self._tokens:
            self.text += piece
            yield piece
        self.answer = Answer(
            text=self.text.strip(),
            sources=self.sources,
            usage=self._tokens.usage or Usage(),
            backend=self.backend_name,
            model=self.model,
        )

    def collect(self) -> Answer:
        for _ in self:
            pass
        assert self.answer is not None
        return self.answer
