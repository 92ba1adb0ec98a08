"""What bounds the HTTP API's requests (rag/api.py): how many answers are generated at once and how many wait
(`AnswerSlots`, RAG_API_CONCURRENCY), and how large a body may be (`BodyLimit`, RAG_API_MAX_REQUEST_KB; uploads:
RAG_MAX_UPLOAD_MB), refused with 413 before it is read whole."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api_errors import ApiError

# -- answers at once ---------------------------------------------------------------------------------------


class AnswerSlots:
    """At most `running` answers generated at once, `waiting` more queued for up to `wait_s`; beyond that a
    request is told at once to come back (429), and one that waited too long is told the server is busy (503)."""

    def __init__(self, running: int, waiting: int, wait_s: float) -> None:
        self.running, self.waiting, self.wait_s = running, waiting, wait_s
        self._free = threading.Semaphore(running)
        self._lock = threading.Lock()
        self._admitted = 0

    def take(self) -> None:
        with self._lock:
            if self._admitted >= self.running + self.waiting:
                raise ApiError(
                    429,
                    f"{self._admitted} questions are being answered or waiting (at most {self.running} at once, "
                    f"{self.waiting} waiting): retry in a few seconds, or raise RAG_API_CONCURRENCY if the model "
                    "server answers several at once.",
                    "rate_limit_error",
                    "busy",
                    {"Retry-After": "5"},
                )
            self._admitted += 1
        if not self._free.acquire(timeout=self.wait_s):
            with self._lock:
                self._admitted -= 1
            raise ApiError(
                503,
                f"The model stayed busy for {self.wait_s:.0f} s with earlier questions: retry in a moment.",
                "server_error",
                "busy",
                {"Retry-After": "10"},
            )

    def give_back(self) -> None:
        self._free.release()
        with self._lock:
            self._admitted -= 1


# -- request size ------------------------------------------------------------------------------------------


class RequestTooLarge(StarletteHTTPException):
    """A body past its limit. An HTTPException, so that FastAPI passes it on as it is while it reads a body (any
    other exception there becomes a 400 "error parsing the body")."""

    def __init__(self, limit: int, what: str) -> None:
        super().__init__(413, f"{what} is larger than {_size(limit)}")
        self.limit, self.what = limit, what


class BodyLimit:
    """ASGI middleware: a body over its limit is refused with 413 before it is read whole — by its
    Content-Length at once, or, sent in chunks without one, as soon as it passes the limit."""

    def __init__(self, app: ASGIApp, limits: Callable[[Scope], tuple[int, str]]) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limits(scope)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await too_large_response(RequestTooLarge(limit, what)).__call__(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLarge(limit, what)
            return message

        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except RequestTooLarge as exc:
            if started:
                raise
            await too_large_response(exc).__call__(scope, receive, send)


def too_large_response(exc: RequestTooLarge) -> JSONResponse:
    """The 413 answered for a body past its limit, with what to do instead."""
    hint = (
        "upload fewer or smaller files at once (RAG_MAX_UPLOAD_MB)"
        if exc.what == "An upload"
        else "send a shorter request: a long conversation is better continued with `conversation` (its saved "
        "history stays on the server) than sent whole (RAG_API_MAX_REQUEST_KB)"
    )
    return ApiError(413, f"{exc.what} is larger than {_size(exc.limit)}: {hint}.", code="request_too_large").response()


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:,.0f} MB" if n >= 1024 * 1024 else f"{n / 1024:,.0f} KB"
