"""What a note or an answer leaves out: the lines a second look reads again, the names listed after an answer."""

from __future__ import annotations

from rag.left_out import asks_for_every_item, left_out, not_in_answer
from tests.test_whole_document import QUESTION, collection_pages


def test_a_question_for_every_item_is_told_apart_from_a_summary() -> None:
    for question in ("List every risk factor", "How many stores were opened?", "Name all the suppliers"):
        assert asks_for_every_item(question), question
    for question in ("Summarize this report", "Give me an overview", "What does it say about pricing?"):
        assert not asks_for_every_item(question), question


def test_the_lines_a_note_leaves_out_are_those_about_the_question_it_does_not_name() -> None:
    part = collection_pages()[0]  # "Room 1 of the collection." then three instruments, then the visitors' rule
    everything = "- Harwick barometer\n- Tolland sextant\n- Marlow chronometer"
    assert left_out(QUESTION, part, everything) == []
    # The plural or another case in the note still names the line; the room's number and the rule for
    # visitors are not items of the question.
    assert left_out(QUESTION, part, "- harwick barometers\n- MARLOW chronometer") == [
        "In this room stands the Tolland sextant, a fine instrument of brass."
    ]
    assert len(left_out(QUESTION, part, "")) == 3
    # A name is copied exactly or the line counts as left out.
    assert left_out(QUESTION, part, "- Harwick barometer\n- Tolland sextant\n- Marlo chronometer") == [
        "In this room stands the Marlow chronometer, a fine instrument of brass."
    ]
    assert left_out("Who may touch the cases?", part, "") == ["Visitors may not touch the cases."]
    # A line cut off before the question's word ("instrument") is still an item: it is written like those noted.
    cut = "In this room stands the Harwick barometer, a fine instrument.\nIn this room stands the Marlow chronometer"
    assert left_out(QUESTION, cut, "- Harwick barometer") == ["In this room stands the Marlow chronometer"]
    assert left_out(QUESTION, cut, "- Harwick barometer\n- Marlow chronometer") == []


def test_what_the_combined_answer_drops_from_the_notes_is_found_with_the_note_that_names_it() -> None:
    first, second = "collection.pdf, page 1", "collection.pdf, page 2"
    notes = [
        (first, "The text says:\n- Harwick barometer\n- Tolland sextant\n- 3"),
        (second, "The Ashby telescope and the Penrose compass stand here.\n- nothing else of brass"),
    ]
    answer = "1. Harwick barometer (page 1)\n2. Tolland Sextant\n3. Ashby telescope (page 2)\n4. Penrose barometer"
    # The framing line and a bare number are no items; a "Penrose barometer" is not the Penrose compass, and a
    # line without names is looked for by its words.
    assert not_in_answer(QUESTION, notes, answer) == [
        (second, "Penrose compass"),
        (second, "nothing else of brass"),
    ]
    assert not_in_answer(QUESTION, notes, answer + "\n5. Penrose compass, all brass") == []
    # A clause the answer mentions by half its names is kept: the country beside the capital asked for is no item.
    assert not_in_answer("List every capital.", [("canada.md", "- Ottawa is the capital of Canada.")], "Ottawa.") == []
