"""OpenAI's wire format as the HTTP API reads and writes it: the question in a request's messages, and a turn as a
`chat.completion` or as server-sent `chat.completion.chunk` events, with its sources and conversation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.api_errors import ApiError
from rag.api_openai import (
    ChatCompletionRequest,
    ChatMessage,
    chunk_event,
    completion,
    passage,
    question_and_history,
    references,
    sources_field,
    sse,
    usage_field,
)
from rag.config import Settings
from rag.conversations import Conversation
from rag.engine import Engine
from rag.schema import Answer, Chunk, RetrievedChunk, Usage
from rag.schema import Message as ChatTurnMessage
from rag.turn import Turn

CITED = [
    RetrievedChunk(Chunk("c1", "d1", "Tomatoes are watered at dawn.", "garden.md", None, 0), 0.812345),
    RetrievedChunk(Chunk("c2", "d2", "The offsite is in Lisbon.", "plans.pdf", 3, 5), 0.5),
]


def test_the_question_is_the_last_message_and_the_conversation_before_it_its_user_and_assistant_turns() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "default",
            "messages": [
                {"role": "system", "content": "Be brief."},  # the knowledge base's system prompt is used instead
                {"role": "user", "content": [{"type": "text", "text": "When are "}, {"type": "text", "text": "they?"}]},
                {"role": "assistant", "content": "  "},  # blank: left out
                {"role": "assistant", "content": "At dawn."},
                {"role": "user", "content": "  And the roses?  "},
            ],
        }
    )
    question, earlier = question_and_history(body.messages)
    assert question == "And the roses?"
    assert earlier == [ChatTurnMessage("user", "When are they?"), ChatTurnMessage("assistant", "At dawn.")]


@pytest.mark.parametrize(
    ("messages", "said"),
    [
        (
            [{"role": "assistant", "content": "Hi"}],
            "The last message must be the question, with role user (it is assistant).",
        ),
        ([{"role": "user", "content": " "}], "The question (the last message) is empty: send some text."),
        (
            [{"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": "What is this?"}]}],
            "Only text content is answered here, not image_url: send the text alone.",
        ),
    ],
)
def test_a_request_without_a_text_question_is_refused_with_what_to_send(
    messages: list[dict[str, object]], said: str
) -> None:
    with pytest.raises(ApiError) as refused:
        question_and_history([ChatMessage.model_validate(m) for m in messages])
    assert (refused.value.status, refused.value.message) == (400, said)


@pytest.fixture
def turn(tmp_path: Path) -> Turn:
    """A turn as it stands once answered (not run: its answer set as the model's run sets it)."""
    engine = Engine(Settings(data_dir=tmp_path))
    conversation = Conversation("conv-1", "Garden", "2026-12-08T00:00:00Z", "2026-12-08T00:00:00Z", "", 0, {})
    turn = Turn(engine, conversation, "When are the tomatoes watered?", [], "api", "stopped")
    turn.text = " At dawn [1]; the offsite is in Lisbon [2]. "
    turn.answer = Answer(turn.text, CITED, Usage(prompt_tokens=120, completion_tokens=None), "test", "test-model")
    return turn


def test_an_answer_lists_its_sources_after_its_text_and_in_the_sources_field(turn: Turn) -> None:
    assert references(turn) == "\n\nSources:\n[1] garden.md\n[2] plans.pdf, page 3"
    assert passage(CITED[0]) == {"file": "garden.md", "page": None, "score": 0.8123, "passage": CITED[0].chunk.text}
    assert sources_field(turn) == [
        {"index": 1, "file": "garden.md", "page": None, "score": 0.8123, "passage": "Tomatoes are watered at dawn."},
        {"index": 2, "file": "plans.pdf", "page": 3, "score": 0.5, "passage": "The offsite is in Lisbon."},
    ]
    assert usage_field(turn) == {"prompt_tokens": 120, "completion_tokens": 0, "total_tokens": 120}


def test_a_whole_answer_is_a_chat_completion(turn: Turn) -> None:
    body = completion(turn, "chatcmpl-1", "default")
    assert isinstance(body.pop("created"), int)
    assert body == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "default",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "At dawn [1]; the offsite is in Lisbon [2]." + references(turn),
                },
                "finish_reason": "stop",
            }
        ],
        "usage": usage_field(turn),
        "sources": sources_field(turn),
        "conversation": "conv-1",
    }


def test_a_turn_without_an_answer_has_no_sources_and_no_usage(tmp_path: Path) -> None:
    conversation = Conversation("conv-2", "", "2026-12-08T00:00:00Z", "2026-12-08T00:00:00Z", "", 0, {})
    turn = Turn(Engine(Settings(data_dir=tmp_path)), conversation, "Why?", [], "api", "stopped")
    assert (references(turn), sources_field(turn)) == ("", [])
    assert usage_field(turn) == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def test_a_streamed_piece_is_a_server_sent_chunk_event_with_its_text_as_written() -> None:
    event = chunk_event("chatcmpl-1", "default", 1765152000, {"content": "Café ☕"})
    assert event == (
        'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1765152000, "model": "default", '
        '"choices": [{"index": 0, "delta": {"content": "Café ☕"}, "finish_reason": null}]}\n\n'
    )
    last = json.loads(chunk_event("chatcmpl-1", "default", 1, {}, "stop")[len("data: ") :])
    assert last["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert sse({"a": "ü"}) == 'data: {"a": "ü"}\n\n'
