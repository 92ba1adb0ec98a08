"""What bounds the HTTP API's requests: the answers generated at once and waiting, and the size of a body
(refused with 413 before it is read whole, by its Content-Length or, sent in chunks, as it passes the limit)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from rag.api_errors import ApiError
from rag.api_limits import AnswerSlots, BodyLimit, RequestTooLarge, too_large_response

TOO_LONG_REQUEST = (
    "The request is larger than 1 KB: send a shorter request: a long conversation is better continued with "
    "`conversation` (its saved history stays on the server) than sent whole (RAG_API_MAX_REQUEST_KB)."
)


def test_beyond_the_running_and_waiting_answers_a_request_is_told_at_once_to_come_back() -> None:
    slots = AnswerSlots(running=1, waiting=0, wait_s=30)
    slots.take()
    with pytest.raises(ApiError) as refused:
        slots.take()  # at once: nothing waits 30 s
    error = refused.value
    assert (error.status, error.kind, error.code, error.headers) == (
        429,
        "rate_limit_error",
        "busy",
        {"Retry-After": "5"},
    )
    assert error.message == (
        "1 questions are being answered or waiting (at most 1 at once, 0 waiting): retry in a few seconds, or "
        "raise RAG_API_CONCURRENCY if the model server answers several at once."
    )
    slots.give_back()
    slots.take()  # its slot is free again
    slots.give_back()


def test_a_request_that_waited_too_long_is_told_the_server_is_busy_and_leaves_the_queue() -> None:
    slots = AnswerSlots(running=1, waiting=1, wait_s=0.05)
    slots.take()
    for _ in range(2):  # the one that gave up waiting left its place: the next one waits too, it is not refused
        with pytest.raises(ApiError) as busy:
            slots.take()
        error = busy.value
        assert (error.status, error.kind, error.code, error.headers) == (
            503, "server_error", "busy", {"Retry-After": "10"}
        )  # fmt: skip
        assert error.message == "The model stayed busy for 0 s with earlier questions: retry in a moment."
    slots.give_back()


def test_a_body_too_large_says_how_large_it_may_be_and_what_to_do_instead() -> None:
    assert RequestTooLarge(1024, "The request").detail == "The request is larger than 1 KB"
    assert RequestTooLarge(2 * 1024 * 1024, "An upload").status_code == 413
    upload = too_large_response(RequestTooLarge(2 * 1024 * 1024, "An upload"))
    assert upload.status_code == 413
    assert bytes(upload.body).decode() == (
        '{"error":{"message":"An upload is larger than 2 MB: upload fewer or smaller files at once '
        '(RAG_MAX_UPLOAD_MB).","type":"invalid_request_error","code":"request_too_large"}}'
    )


@pytest.fixture
def limited() -> tuple[TestClient, list[bytes]]:
    """A bare ASGI app that reads its bodies whole, behind a limit of 1 KB (nothing in between turns the refusal
    into a response: the middleware answers it); `read` holds the bodies the app read."""
    read: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        read.append(body)
        await PlainTextResponse("read")(scope, receive, send)

    def limits(scope: Scope) -> tuple[int, str]:
        return 1024, "The request"

    return TestClient(BodyLimit(app, limits)), read  # no lifespan: not entered


def test_a_body_within_its_limit_is_read(limited: tuple[TestClient, list[bytes]]) -> None:
    client, read = limited
    response = client.post("/", content=b"x" * 1024)
    assert (response.status_code, response.text, read) == (200, "read", [b"x" * 1024])


def test_a_body_over_its_content_length_limit_is_refused_before_it_is_read(
    limited: tuple[TestClient, list[bytes]],
) -> None:
    client, read = limited
    response = client.post("/", content=b"x" * 1025)
    assert response.status_code == 413
    assert response.json() == {
        "error": {"message": TOO_LONG_REQUEST, "type": "invalid_request_error", "code": "request_too_large"}
    }
    assert read == []


def test_a_body_sent_in_chunks_is_refused_once_it_passes_its_limit(limited: tuple[TestClient, list[bytes]]) -> None:
    client, read = limited

    def chunks() -> Iterator[bytes]:
        yield b"x" * 1000
        yield b"x" * 1000

    response = client.post("/", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["message"] == TOO_LONG_REQUEST
    assert read == []
