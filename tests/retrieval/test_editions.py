"""Editions: a question's "latest" / "earliest" / "previous", resolved against each document's own numbers and dates."""

from __future__ import annotations

from datetime import date

from rag.retrieval.editions import (
    asked_period,
    covered_period,
    edition_of,
    latest_date,
    period_matches,
    resolve,
    time_reference,
)


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
    assert time_reference("Which goals did last year's plan set?") == "last year"
    assert time_reference("What was in last fiscal quarter’s filing?") == "last quarter"
    assert time_reference("What did last month's newsletter announce?") == "last month"
    assert time_reference("What does this year's plan aim for?") == "latest"
    assert time_reference("How did sales compare with last year?") is None  # a comparison, not an edition
    assert time_reference("What happened in the last years of the war?") is None


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


def test_last_years_edition_counts_from_today() -> None:
    """A series labelled by years: last year's is the one labelled with last year's number, whatever date its
    cover prints (the 2025 plan is published in January 2026); with no edition of last year, the latest before
    this year; with none before this year, none."""
    plans = [
        edition_of("p24", "Strategic Plan 2024", "plan-2024.pdf", "Published January 2024"),
        edition_of("p25", "Strategic Plan 2025", "plan-2025.pdf", "Published January 2026"),
        edition_of("p26", "Strategic Plan 2026", "plan-2026.pdf", "Published March 2026"),
    ]
    about = {e.doc_id: 1.0 for e in plans}
    assert resolve("last year", plans, about, today=date(2026, 6, 1)) == "p25"
    assert resolve("latest", plans, about, today=date(2026, 6, 1)) == "p26"
    assert resolve("last year", plans, about, today=date(2031, 2, 1)) == "p26"  # the newest held is the last one
    assert resolve("last year", plans, about, today=date(2024, 6, 1)) is None  # nothing before this year
    assert resolve("last year", plans, about) == "p26"  # no date known: the latest


def test_last_quarters_edition_is_the_latest_dated_before_this_quarter() -> None:
    filings = [
        edition_of("q1", "Quarterly report", "acme-a.pdf", "For the quarterly period ended March 31, 2026"),
        edition_of("q2", "Quarterly report", "acme-b.pdf", "For the quarterly period ended June 30, 2026"),
        edition_of("q3", "Quarterly report", "acme-c.pdf", "For the quarterly period ended September 30, 2026"),
    ]
    about = {e.doc_id: 1.0 for e in filings}
    assert resolve("last quarter", filings, about, today=date(2026, 8, 14)) == "q2"
    assert resolve("last quarter", filings, about, today=date(2026, 11, 2)) == "q3"
    assert resolve("last month", filings, about, today=date(2026, 7, 20)) == "q2"


def test_files_numbered_as_they_were_saved_are_ordered_by_the_dates_they_print() -> None:
    """ "scan-1.pdf" … "scan-3.pdf" look like a series, but their numbers say only the order someone saved them
    in: the reports print their dates, and those decide which is the latest."""
    scans = [
        edition_of("s1", "", "scan-1.pdf", "Annual inspection report. Published 12 June 2023."),
        edition_of("s2", "", "scan-2.pdf", "Annual inspection report. Published 3 March 2021."),
        edition_of("s3", "", "scan-3.pdf", "Annual inspection report. Published 20 January 2022."),
    ]
    about = {e.doc_id: 1.0 for e in scans}
    assert resolve("latest", scans, about) == "s1"
    assert resolve("earliest", scans, about) == "s2"
    assert resolve("previous", scans, about) == "s3"
    # A series whose numbers carry its years is ordered by them, whatever dates the covers print.
    plans = [
        edition_of("p1", "Plan 2025", "plan-2025.pdf", "Adopted 5 January 2026."),
        edition_of("p2", "Plan 2026", "plan-2026.pdf", "Adopted 30 December 2025."),
    ]
    assert resolve("latest", plans, {"p1": 1.0, "p2": 1.0}) == "p2"


def test_a_question_names_the_period_it_is_about_in_the_forms_people_write() -> None:
    assert asked_period("As of Q2'2023, is the company spinning off a business?") == (2023, 2)
    assert asked_period("Which region dropped most in Q22023 year over year?") == (2023, 2)
    assert asked_period("What were sales in the second quarter of 2023?") == (2023, 2)
    assert asked_period("Results for 2023Q4") == (2023, 4)
    assert asked_period("Is it capital-intensive based on FY2022 data?") == (2022, 0)
    assert asked_period("What was the margin in fiscal year 2021?") == (2021, 0)
    assert asked_period("Did it grow between FY20 and FY21?") == (2021, 0)  # the latest of a comparison
    assert asked_period("Any drop in cash between FY 2023 and Q2 of FY2024?") == (2024, 2)  # not FY2024 too
    assert asked_period("What share of FY 2023's buybacks came in Q4 of FY2023?") == (2023, 0)
    assert asked_period("How did revenue change in 2022?") is None  # a year alone may be a column of any report
    assert asked_period("How many Q-tips were sold?") is None
    assert asked_period("What was the margin in Q2'23?") == (2023, 2)
    assert asked_period("In Q4 10 new stores opened; where?") is None  # a count, not a year
    assert asked_period("Which items does the fiscal 10-K list?") is None


def test_a_half_year_is_named_by_its_last_quarter() -> None:
    # The first half's figures are in the second quarter's report (or a half-year report), the second half's in
    # the year's: a question about H1 goes to the report of the second quarter.
    assert asked_period("Which debt got the most investment in H1 FY2023?") == (2023, 2)
    assert asked_period("What were 1H23 sales?") == (2023, 2)
    assert asked_period("What was the margin in 2H22?") == (2022, 4)
    assert asked_period("How did orders develop in the first half of 2023?") == (2023, 2)
    assert asked_period("Guidance for the second half of fiscal 2022") == (2022, 4)
    assert asked_period("What happened in the first half of the year?") is None  # no year named
    assert asked_period("Cases of H1N1 in 2009") is None
    assert asked_period("Which H120 model was recalled?") is None


def test_a_document_says_the_period_it_reports_on_on_its_cover() -> None:
    assert covered_period("FORM 10-Q ... For the quarterly period ended July 2, 2023 ... Commission file") == (2023, 2)
    assert covered_period("Condensed statements for the three months ended March 31, 2024") == (2024, 1)
    assert covered_period("Annual report for the fiscal year ended December 31, 2022") == (2022, 0)
    # A 52-53-week year that ends on the first days of January is named after the year before.
    assert covered_period("For the fiscal year ended January 1, 2023") == (2022, 0)
    assert covered_period("Report and accounts for the year ended 31 March 2019") == (2019, 0)
    assert covered_period("Interim report for the six months ended June 30, 2023") == (2023, 2)
    assert covered_period("Half-year report for the half year ended 30 June 2023") == (2023, 2)
    assert covered_period("Results for the nine months ended September 30, 2022") == (2022, 3)
    assert covered_period("For the twelve months ended December 31, 2022") == (2022, 0)
    assert covered_period("For the period ended July 29, 2023") is None  # neither a quarter nor a year
    assert covered_period("Minutes of the meeting of 3 May 2022") is None


def test_a_years_report_answers_for_the_year_and_its_fourth_quarter() -> None:
    assert period_matches((2023, 0), (2023, 0))
    assert period_matches((2023, 0), (2023, 4))
    assert not period_matches((2023, 0), (2023, 2))
    assert not period_matches((2023, 2), (2023, 0))
    assert period_matches((2023, 2), (2023, 2))
    assert not period_matches((2022, 2), (2023, 2))
