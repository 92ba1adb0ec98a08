"""OpenAI's wire format, as the HTTP API (rag/api.py) reads and writes it: the chat request's body, the question
in its messages, and a turn (rag/turn.py) as a `chat.completion` or as `chat.completion.chunk` events
(server-sent), with this API's own fields: `sources` (the passages cited) and `conversation` (the saved one)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.api_errors import ApiError
from rag.schema import Message as ChatTurnMessage
from rag.turn import Turn

# -- the request -------------------------------------------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        if any(part.type != "text" for part in self.content):
            kinds = sorted({part.type for part in self.content if part.type != "text"})
            raise ApiError(400, f"Only text content is answered here, not {', '.join(kinds)}: send the text alone.")
        return "".join(part.text or "" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; fields not listed (temperature, max_tokens, …) are accepted and left to the knowledge
    base's settings, as in the app. `conversation` and `documents` are this API's own."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description="A knowledge base, as GET /v1/models lists them.")
    messages: list[ChatMessage] = Field(min_length=1, description="The last one is the question (role user).")
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, description="Only 1: one answer per question.")
    conversation: str | None = Field(
        None,
        description="Continue this saved conversation (an id from a previous answer's `conversation`): only the "
        "last message is read, the conversation has its own history. Without it, a new conversation is saved "
        "holding the earlier messages of the request.",
    )
    documents: list[str] | None = Field(
        None, description="Search only these documents (names or ids, as GET /v1/documents lists them)."
    )


def question_and_history(messages: Sequence[ChatMessage]) -> tuple[str, list[ChatTurnMessage]]:
    """The question (the last message, from the user) and the conversation before it (user and assistant
    messages; the client's system messages are not used: the knowledge base's system prompt holds the sources)."""
    last = messages[-1]
    if last.role != "user":
        raise ApiError(400, f"The last message must be the question, with role user (it is {last.role}).")
    question = last.text().strip()
    if not question:
        raise ApiError(400, "The question (the last message) is empty: send some text.")
    earlier = [
        ChatTurnMessage(m.role, m.text()) for m in messages[:-1] if m.role in ("user", "assistant") and m.text().strip()
    ]
    return question, earlier


# -- the answer --------------------------------------------------------------------------------------------


def passage(hit: Any) -> dict[str, Any]:
    """A retrieved passage as JSON: its file, page, score and text."""
    chunk = hit.chunk
    return {"file": chunk.source, "page": chunk.page, "score": round(hit.score, 4), "passage": chunk.text}


def references(turn: Turn) -> str:
    """The sources as numbered lines after the answer, so a client that shows only the text still shows them."""
    sources = turn.answer.sources if turn.answer is not None else []
    if not sources:
        return ""
    lines = [
        f"[{i}] {s.chunk.source}" + ("" if s.chunk.page is None else f", page {s.chunk.page}")
        for i, s in enumerate(sources, 1)
    ]
    return "\n\nSources:\n" + "\n".join(lines)


def sources_field(turn: Turn) -> list[dict[str, Any]]:
    """The `sources` field: the passages the answer cites, numbered as [1], [2] in its text."""
    sources = turn.answer.sources if turn.answer is not None else []
    return [{"index": i, **passage(s)} for i, s in enumerate(sources, 1)]


def usage_field(turn: Turn) -> dict[str, int]:
    """OpenAI's `usage` field; a figure the backend did not report counts 0."""
    usage = turn.answer.usage if turn.answer is not None else None
    prompt = (usage.prompt_tokens if usage else None) or 0
    completion = (usage.completion_tokens if usage else None) or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(turn: Turn, answer_id: str, model: str) -> dict[str, Any]:
    """A turn that ended, as a `chat.completion` (the answer whole, for a request that does not stream)."""
    text = (turn.saved.content if turn.saved is not None else turn.text.strip()) + references(turn)
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage_field(turn),
        "sources": sources_field(turn),
        "conversation": turn.conversation_id,
    }


def chunk(answer_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """A `chat.completion.chunk` of a streamed answer (the last one gets this API's fields added)."""
    return {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def chunk_event(answer_id: str, model: str, created: int, delta: dict[str, Any], finish: str | None = None) -> str:
    """A `chat.completion.chunk` event of a streamed answer, as server-sent bytes."""
    return sse(chunk(answer_id, model, created, delta, finish))


def sse(event: Mapping[str, Any]) -> str:
    """An event as a server-sent `data:` line."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
