"""The steps of a chat turn: retrieve once, fit the prompt into the window, stream the answer with its sources.

rag/session.py runs them in order for a conversation and saves the result.
"""

from __future__ import annotations

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
class Retrieval:
    """What one search of the knowledge base found for a turn (done once per turn, whatever follows)."""

    query: str  # what was searched for (a follow-up rewritten to stand alone)
    selected: list[RetrievedChunk]  # past the evidence gate, the threshold and the size limit
    seconds: float
    knowledge_base_empty: bool


@dataclass(frozen=True)
class PreparedTurn:
    question: str
    plan: PromptPlan
    prompt: str  # exactly what the backend sends
    retrieval: Retrieval
    summary_update: SummaryUpdate | None = None

    @property
    def sources(self) -> list[RetrievedChunk]:
        return self.plan.sources

    @property
    def retrieved(self) -> list[RetrievedChunk]:
        """What retrieval selected (evidence, threshold, size), before the token budget."""
        return self.retrieval.selected

    @property
    def search_query(self) -> str:
        return self.retrieval.query

    @property
    def decline(self) -> str | None:
        """The plain reply given instead of calling the model when no source is relevant."""
        if self.retrieval.knowledge_base_empty:
            return EMPTY_KNOWLEDGE_BASE
        return None if self.sources else NOTHING_RELEVANT


def retrieve(
    retriever: Retriever,
    query: str,
    *,
    top_k: int,
    min_score: float = -1.0,
    context_chars: int = 100_000,
    doc_ids: Sequence[str] | None = None,
) -> Retrieval:
    result = retriever.retrieve(query, top_k=top_k, min_score=min_score, max_chars=context_chars, doc_ids=doc_ids)
    return Retrieval(query, result.selected, result.seconds, knowledge_base_empty=result.knowledge_base_empty)


def plan_turn(
    question: str,
    history: Sequence[Message],
    retrieval: Retrieval,
    *,
    backend: LLMBackend,
    system_prompt: str,
    max_answer_tokens: int,
    summary: str = "",
) -> PreparedTurn:
    """Fit the system prompt, the retrieved passages, the summary, the history and the question into the
    backend's window minus the answer's reserve."""
    plan = plan_prompt(
        system_prompt=system_prompt,
        question=question,
        history=history,
        sources=retrieval.selected,
        count_tokens=backend.count_tokens,
        budget=backend.context_window - max_answer_tokens,
        summary=summary,
    )
    return PreparedTurn(question, plan, backend.render(plan.messages), retrieval)


class AnswerStream:
    """Iterate for the answer's text as it is generated; then `answer` holds the whole turn.

    When no source is relevant the model is not called: the reply says so plainly, with no citation to
    invent. If the backend fails mid-way, `text` keeps what had arrived.
    """

    def __init__(self, prepared: PreparedTurn, backend: LLMBackend, options: GenerationOptions) -> None:
        self.prepared = prepared
        self.backend_name = backend.name
        self.model = backend.model
        # The prompt planned (and shown in the inspector) is the one sent: rendered once.
        self._tokens = None if prepared.decline else backend.stream(prepared.plan.messages, options, prepared.prompt)
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
