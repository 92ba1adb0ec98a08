"""Editions: a question's "latest" / "earliest" / "previous", resolved against each document's own numbers and dates."""

from __future__ import annotations

from rag.retrieval.editions import edition_of, latest_date, resolve, time_reference


def test_a_question_asks_for_an_edition_by_its_place_in_time() -> None:
    assert time_reference("What was revenue in the latest quarter?") == "latest"
    assert time_reference("In the most recent report, how many inspections were done?") == "latest"
    assert time_reference("Which features did the newest release add?") == "latest"
    assert time_reference("What changed in the last release?") == "latest"
    assert time_reference("In the earliest accident, what failed?") == "earliest"
    assert time_reference("What did the release before the latest deprecate?") == "previous"
    assert time_reference("What was the previous edition's budget?") == "previous"
    assert time_reference("What is the boiling point of water?") is None
    assert time_reference("Who signed on the last page?") is None  # a page, not an edition
    assert time_reference("What did the crew do prior to the collision?") is None


def test_dates_are_read_in_the_forms_documents_print_them() -> None:
    assert latest_date("For the quarterly period ended July 1, 2023") == (2023, 7, 1)
    assert latest_date("Created: 12-Sep-2022  Post-History: 01-Oct-2022") == (2022, 10, 1)
    assert latest_date("Published March 2021; see also the 2019 edition") == (2021, 3, 0)
    assert latest_date("Filed 2020-11-30") == (2020, 11, 30)
    assert latest_date("no date here, only 42 and 3.14") == (0, 0, 0)


def test_a_series_is_ordered_by_its_numbers_as_numbers() -> None:
    notes = [
        edition_of(f"d{n}", "", f"Tool {version} Release Notes.txt", "")
        for n, version in enumerate(("1.17.0", "2.4.0", "1.9.0", "2.0.0"))
    ]
    relevance = {e.doc_id: 1.0 for e in notes}
    assert resolve("latest", notes, relevance) == "d1"  # 2.4.0
    assert resolve("previous", notes, relevance) == "d3"  # 2.0.0
    assert resolve("earliest", notes, relevance) == "d2"  # 1.9.0, not 1.17.0


def test_documents_of_no_series_are_ordered_by_the_dates_they_print() -> None:
    docs = [
        edition_of("a", "Inspection of the north depot", "north.pdf", "Report published 14 May 2019. Findings ..."),
        edition_of("b", "Inspection of the south depot", "south.pdf", "Report published 2 February 2022. Findings"),
        edition_of("c", "Gardening tips", "garden.pdf", "Written in 2024."),
    ]
    # Only the documents the question is about count: the gardening tips are newer, but not relevant.
    assert resolve("latest", docs, {"a": 1.0, "b": 0.9, "c": 0.2}, share=0.6) == "b"
    assert resolve("earliest", docs, {"a": 0.8, "b": 1.0}, share=0.6) == "a"
    assert resolve("latest", docs, {"a": 1.0}) is None  # one document: nothing to choose between


def test_every_edition_of_the_series_counts_however_its_passages_scored() -> None:
    notes = [edition_of(f"d{n}", "", f"Tool {v} Release Notes.txt", "") for n, v in enumerate(("1.0", "2.0", "3.0"))]
    assert resolve("latest", notes, {"d0": 1.0}) == "d2"  # the newest one's passages did not match at all


def test_a_numbered_collection_is_a_series_only_of_the_members_the_question_is_about() -> None:
    """Proposals numbered alike ("PEP 665", "PEP 751", "PEP 3333") are named like a series, but "the most recent
    lock file proposal" asks among the lock file proposals: the highest-numbered proposal of all is about
    something else."""
    peps = [edition_of(f"p{n}", "", f"PEP {n}.txt", "") for n in (8, 257, 665, 751, 3333, 484, 20, 440)]
    about_lock_files = {"p665": 0.9, "p751": 1.0, "p3333": 0.2, "p8": 0.3}
    assert resolve("latest", peps, about_lock_files, share=0.6) == "p751"
    assert resolve("earliest", peps, about_lock_files, share=0.6) == "p665"
    # A question about most of them ("the latest release") still orders the whole series.
    notes = [edition_of(f"d{n}", "", f"Tool {v} Release Notes.txt", "") for n, v in enumerate(("1.0", "2.0", "3.0"))]
    assert resolve("latest", notes, {"d0": 1.0, "d1": 0.9, "d2": 0.7}, share=0.6) == "d2"
