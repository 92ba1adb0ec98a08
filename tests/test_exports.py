"""A saved conversation exported as Markdown (to read) and JSON (every record, read back typed)."""

from __future__ import annotations

import json
from pathlib import Path

from rag.conversations import ConversationStore, StoredMessage
from rag.exports import conversation_json, conversation_markdown, export_file_name
from tests.test_conversations import filled


def test_export_markdown(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = filled(store)
    md = conversation_markdown(store.get(cid))
    assert md.startswith("# What grew?\n")
    assert "**You:** What grew?" in md
    assert "**Assistant:** Revenue grew [1]." in md
    assert "[1] file.pdf, page 3 (score 0.72)" in md
    assert "[2] notes.md (score 0.50)" in md
    assert "They discussed revenue." in md
    assert "The answer stream broke" in md
    assert md.index("What grew?") < md.index("file.pdf") < md.index("And then?")
    assert store.get(cid).created_at in md


def test_export_json_round_trips(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = filled(store)
    data = json.loads(conversation_json(store.get(cid)))
    c = store.get(cid)
    assert data["id"] == cid and data["title"] == "What grew?"
    assert data["summary"] == "They discussed revenue." and data["summarized_through"] == 2
    assert data["settings"] == {"top_k": 2}
    assert [m["seq"] for m in data["messages"]] == [1, 2, 3, 4]
    assert [StoredMessage.from_dict(m) for m in data["messages"]] == c.messages
    cited = data["messages"][1]["sources"][0]
    assert {k: cited[k] for k in ("source", "page", "score", "text")} == {
        "source": "file.pdf",
        "page": 3,
        "score": 0.7213,
        "text": "Revenue grew 12%.",
    }


def test_feedback_and_the_line_that_answers_are_exported(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = filled(store)
    store.set_feedback(cid, 2, "down", "The figure is from the wrong year.")
    md = conversation_markdown(store.get(cid))
    assert "*Feedback:* not helpful: The figure is from the wrong year." in md
    data = json.loads(conversation_json(store.get(cid)))
    assert (data["messages"][1]["feedback"], data["messages"][1]["feedback_comment"]) == (
        "down",
        "The figure is from the wrong year.",
    )


def test_an_export_names_its_knowledge_base_and_is_named_after_its_title(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite3")
    cid = filled(store)
    c = store.get(cid)
    assert "*Knowledge base:* contracts 2024" in conversation_markdown(c, "contracts 2024")
    assert "Knowledge base" not in conversation_markdown(c)  # not known: not said
    assert json.loads(conversation_json(c, "contracts 2024"))["knowledge_base"] == "contracts 2024"
    assert export_file_name(c, "md") == "What grew.md"
    store.rename(cid, "Q3: revenue / costs <draft> " + "x" * 80)
    name = export_file_name(store.get(cid), "json")
    assert name.startswith("Q3 revenue costs draft x") and name.endswith("x.json")
    assert len(name) == 60 + len(".json") and not set(name) & set('/\\:<>"|?*')
    store.rename(cid, "???")
    assert export_file_name(store.get(cid), "md") == "conversation.md"
