"""A deterministic stand-in for the model where it is a plain `Complete` callable (follow-ups, summaries)."""

from __future__ import annotations

from rag.schema import Message


class FakeModel:
    """A deterministic `Complete`: records every call and returns the next scripted reply ("" when out)."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls: list[list[Message]] = []

    def __call__(self, messages: list[Message]) -> str:
        self.calls.append(list(messages))
        return self.replies.pop(0) if self.replies else ""
