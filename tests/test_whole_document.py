"""Whole-document answers with the real built-in model: every chunk read in order (map), the notes combined
(reduce), the plan said before it starts, and a stop that keeps what was read."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from rag.backends.base import StopSignal
from rag.backends.embedded import EmbeddedBackend
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.schema import Chunk
from rag.speed import Speed, SpeedMeter
from rag.store import Store
from rag.whole_document import (
    Progress,
    WholeDocumentAnswer,
    WholeDocumentError,
    asks_for_whole_document,
    plan,
    tidy_note,
)
from tests.documents import text_pdf

# 30 named items over 12 pages: three on odd pages, two on even ones.
ITEMS = [
    "Harwick barometer", "Tolland sextant", "Marlow chronometer", "Ashby telescope", "Penrose compass",
    "Quinton astrolabe", "Fenwick hygrometer", "Dunmore theodolite", "Carrow microscope", "Elsworth planimeter",
    "Greyling anemometer", "Hollis pantograph", "Ingram orrery", "Jessop quadrant", "Kendal sundial",
    "Lowther gyroscope", "Merrow galvanometer", "Northey spectroscope", "Oakham pendulum", "Pelham altimeter",
    "Radley odometer", "Selby metronome", "Thorne barograph", "Upton tellurion", "Varley ammeter",
    "Whitby armillary", "Yarrow heliograph", "Ainslie voltmeter", "Bexley calorimeter", "Corbin hydrometer",
]  # fmt: skip
QUESTION = "List every instrument in the collection."
FIXED_SPEED = Speed(prompt_tokens_per_second=200.0, answer_tokens_per_second=40.0)


def collection_pages() -> list[str]:
    pages, k = [], 0
    for page in range(12):
        items = ITEMS[k : k + (3 if page % 2 == 0 else 2)]
        k += len(items)
        stands = " ".join(f"In this room stands the {item}, a fine instrument of brass." for item in items)
        pages.append(f"Room {page + 1} of the collection. {stands} Visitors may not touch the cases.")
    assert k == len(ITEMS)
    return pages


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[str, str, list[Chunk]]:
    folder = tmp_path_factory.mktemp("whole")
    store = Store(folder / "kb")
    pdf = text_pdf(folder / "collection.pdf", collection_pages())
    [result] = Ingestor(store, embedder, 600, 100).ingest_paths([pdf])
    assert result.doc_id is not None
    return result.doc_id, "collection.pdf", store.chunks_of(result.doc_id)


def test_questions_about_a_whole_document_are_recognised() -> None:
    for question in ("Summarize this report", "List every risk factor", "How many stores were opened?",
                     "What does each section say about pricing?", "Give me an overview"):  # fmt: skip
        assert asks_for_whole_document(question), question
    for question in ("What was revenue in Q3?", "Who signed the agreement?"):
        assert not asks_for_whole_document(question), question


def test_the_plan_reads_every_chunk_in_order_in_parts_that_fit(
    collection: tuple[str, str, list[Chunk]], embedded_llm: EmbeddedBackend
) -> None:
    doc_id, name, chunks = collection
    whole = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, FIXED_SPEED, max_part_tokens=150)
    read = [c.id for part in whole.parts for c in part.chunks]
    assert read == [c.id for c in sorted(chunks, key=lambda c: c.position)]  # every chunk, once, in order
    assert whole.map_calls == len(whole.parts) > 1 and whole.reduce_calls == 1
    assert all(part.pages.startswith("page") for part in whole.parts)
    text = whole.describe()
    assert f"{whole.calls} model calls" in text and "measured speed" in text
    # A list question may look again at what a note leaves out: the plan says so, a summary's does not.
    assert f"; up to {whole.map_calls} more to look again at lines a note leaves out)" in text
    summary = plan("Summarize it.", [(doc_id, name, chunks)], embedded_llm, FIXED_SPEED, max_part_tokens=150)
    assert not summary.second_look and "leaves out" not in summary.describe()
    bigger = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, FIXED_SPEED)
    assert len(bigger.parts) < len(whole.parts) and bigger.seconds < whole.seconds  # fewer calls, less overhead
    slower = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, Speed(100.0, 20.0), max_part_tokens=150)
    assert slower.seconds > whole.seconds


def test_a_plan_needs_documents_and_a_question(
    collection: tuple[str, str, list[Chunk]], embedded_llm: EmbeddedBackend
) -> None:
    with pytest.raises(WholeDocumentError, match="Choose the documents"):
        plan(QUESTION, [], embedded_llm, FIXED_SPEED)
    with pytest.raises(WholeDocumentError, match="Ask a question"):
        plan("  ", [collection], embedded_llm, FIXED_SPEED)


def test_a_looping_note_is_kept_once_per_line() -> None:
    assert tidy_note("- Ashby telescope\n- Penrose compass\n- Ashby telescope\n2. Penrose compass\n") == (
        "- Ashby telescope\n- Penrose compass"
    )


def test_a_phrase_looped_inside_a_line_is_kept_once_and_equal_figures_stay() -> None:
    looped = "- Ashby telescope, a fine instrument of brass, a fine instrument of brass, a fine instrument of brass"
    assert tidy_note(looped) == "- Ashby telescope, a fine instrument of brass"
    assert tidy_note("Q1 1,000.00 1,000.00 1,000.00") == "Q1 1,000.00 1,000.00 1,000.00"


def progress_of(run: WholeDocumentAnswer) -> Iterator[Progress]:
    for event in run:
        if isinstance(event, Progress):
            yield event


@pytest.mark.slow
def test_every_item_of_a_list_spread_over_twelve_pages_is_in_the_notes(
    collection: tuple[str, str, list[Chunk]], embedded_llm: EmbeddedBackend
) -> None:
    doc_id, name, chunks = collection
    meter = SpeedMeter()
    whole = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, meter.measure(embedded_llm), max_part_tokens=100)
    run = WholeDocumentAnswer(whole, embedded_llm, meter=meter)
    seen = list(progress_of(run))
    reads = [p for p in seen if p.stage == "read"]
    assert [p.done for p in reads] == list(range(1, len(whole.parts) + 1))
    assert reads[0].describe().startswith(f"part 1 of {len(whole.parts)}")
    assert len(run.notes) == len(whole.parts) and all(n.text.strip() for n in run.notes)
    # The map outputs name every item, each in the note of the part that holds it: the built-in model lists two
    # of a room's three, and the second look at the line its note left out brings the third.
    for note in run.notes:
        given = "\n".join(c.text for c in note.part.chunks)
        held = [item for item in ITEMS if item in given]
        assert held and [item for item in held if item.casefold() not in note.text.casefold()] == [], note
    # The answer names every item too: the combining call drops and repeats items, and what it dropped from the
    # notes follows it, each with its page.
    assert run.finished and meter.speed(embedded_llm) is not None
    assert [item for item in ITEMS if item.casefold() not in run.text.casefold()] == []


@pytest.mark.slow
def test_stopping_midway_keeps_the_parts_read(
    collection: tuple[str, str, list[Chunk]], embedded_llm: EmbeddedBackend
) -> None:
    doc_id, name, chunks = collection
    whole = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, FIXED_SPEED, max_part_tokens=100)
    run = WholeDocumentAnswer(whole, embedded_llm)
    events = iter(run)
    for event in events:
        if isinstance(event, Progress) and event.done == 2:
            break
    events.close()  # what a click elsewhere, Ctrl-C or the Stop button does
    assert not run.finished and len(run.notes) == 2
    assert run.text.startswith(f"Stopped after part 2 of {len(whole.parts)}")
    first_two = " ".join(c.text for n in run.notes for c in n.part.chunks)
    assert any(item.split()[0] in run.text for item in ITEMS if item in first_two)


@pytest.mark.slow
def test_a_stop_from_another_thread_ends_the_run_with_the_parts_read_and_no_more_calls(
    collection: tuple[str, str, list[Chunk]], embedded_llm: EmbeddedBackend
) -> None:
    """The app's Stop: set from the page's thread while the run reads on in its own; the call under way ends at once
    (rag.backends.embedded), a note it cut short is not kept as its part's, and no further call is made (no
    combining call: its time would be the model's answer to nobody)."""
    doc_id, name, chunks = collection
    meter = SpeedMeter()
    whole = plan(QUESTION, [(doc_id, name, chunks)], embedded_llm, meter.measure(embedded_llm), max_part_tokens=100)
    stop = StopSignal()
    run = WholeDocumentAnswer(whole, embedded_llm, meter=meter, stop=stop)
    first_read, stop_set = threading.Event(), threading.Event()

    def read() -> None:
        for event in run:
            if isinstance(event, Progress) and event.done == 1:
                first_read.set()
                stop_set.wait(120)

    reader = threading.Thread(target=read)
    reader.start()
    assert first_read.wait(300)
    stop.set()
    stop_set.set()
    reader.join(300)
    assert not reader.is_alive()
    assert not run.finished and len(run.notes) == 1
    assert run.text.startswith(f"Stopped after part 1 of {len(whole.parts)}")
    assert run.prompt_tokens == run.notes[0].usage.prompt_tokens  # the calls counted: part 1's alone
