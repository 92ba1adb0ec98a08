"""A saved conversation as a file a person keeps: Markdown to read, JSON with every record."""

from __future__ import annotations

import json
import re
from dataclasses import asdict

from rag.conversations import Conversation, SavedSource

_UNSAFE_IN_FILE_NAMES = re.compile(r"[^\w\- ]+")
FILE_NAME_CHARS = 60


def conversation_markdown(c: Conversation, knowledge_base: str | None = None) -> str:
    """The conversation as Markdown: the knowledge base it searched, the documents it is limited to (and
    whether it reads them whole), the summary, each message, what an answer searched and its sources."""
    lines = [f"# {c.title or 'Untitled conversation'}", "", f"Started {c.created_at} · last message {c.updated_at}"]
    if knowledge_base:
        lines += ["", f"*Knowledge base:* {knowledge_base}"]
    if c.doc_filter:
        chosen = ", ".join(d.name for d in c.doc_filter)
        lines += ["", f"*{'Reads these documents whole' if c.whole_document else 'Searches only'}:* {chosen}"]
    if c.summary:
        lines += ["", f"## Summary of messages 1–{c.summarized_through}", "", c.summary]
    if c.messages:
        lines += ["", "## Conversation"]
    for m in c.messages:
        speaker = "You" if m.role == "user" else "Assistant"
        lines += ["", f"**{speaker}:** {m.content}"]
        if m.error:
            lines += ["", f"*The answer failed: {m.error}*"]
        if m.standalone_query:
            lines += ["", f"*Searched for:* {m.standalone_query}"]
        if m.searched_only:
            lines += ["", f"*Searched only:* {', '.join(m.searched_only)}"]
        if m.sources:
            lines += ["", "Sources:", ""]
            lines += [f"- [{i}] {_source_line(s)}" for i, s in enumerate(m.sources, start=1)]
        if m.feedback is not None:
            verdict = "helpful" if m.feedback == "up" else "not helpful"
            said = f": {m.feedback_comment}" if m.feedback_comment else ""
            lines += ["", f"*Feedback:* {verdict}{said}"]
    return "\n".join(lines) + "\n"


def conversation_json(c: Conversation, knowledge_base: str | None = None) -> str:
    """Every field and record (StoredMessage.from_dict reads a message back), and the knowledge base."""
    record = asdict(c) | ({"knowledge_base": knowledge_base} if knowledge_base else {})
    return json.dumps(record, indent=2, ensure_ascii=False)


def export_file_name(c: Conversation, extension: str) -> str:
    """A file name a person recognises in their downloads: the conversation's title, cut short, in characters
    every system accepts ("conversation" when nothing of the title is left)."""
    stem = " ".join(_UNSAFE_IN_FILE_NAMES.sub(" ", c.title).split())[:FILE_NAME_CHARS].strip()
    return f"{stem or 'conversation'}.{extension}"


def _source_line(source: SavedSource) -> str:
    page = f", page {source.page}" if source.page is not None else ""
    if source.last_page not in (None, source.page):
        page = f", pages {source.page}–{source.last_page}"
    if source.rank_score is not None:
        score = f" (ranked {source.rank_score:.2f}: {source.ranked_by or 'the ranking score'})"
    else:
        score = f" (score {source.score:.2f})" if source.score else ""
    line = f" — “{' '.join(source.line.split())}”" if source.line else ""
    return f"{source.source}{page}{score}{line}"
