"""Page text → sections: tables found with their title and column headers, prose split at headings."""

from __future__ import annotations

from rag.loaders.layout import (
    Line,
    classify_line,
    is_data_row,
    is_heading,
    is_period_line,
    page_sections,
    running_lines,
)

CASH_FLOW_PAGE = """Table of Contents
6W Company and Subsidiaries
Consolidated Statement of Cash Flows
Years ended December 31
(Millions) 2018 2017 2016
Cash Flows from Operating Activities
Net income including noncontrolling interest $ 5,363 $ 4,869 $ 5,058
Depreciation and amortization 1,488 1,544 1,474
Company pension and postretirement contributions (370) (967) (383)
Cash Flows from Investing Activities
Purchases of property, plant and equipment (PP&E) (1,577) (1,373) (1,420)
Proceeds from sale of PP&E and other assets 262 49 58
The accompanying Notes to Consolidated Financial Statements are an integral part of this statement.
60""".split("\n")  # noqa: SIM905 (a page of text reads better as text)


def test_a_statement_becomes_one_table_with_its_title_and_periods() -> None:
    sections, heading = page_sections(CASH_FLOW_PAGE, 60, "", frozenset({"Table of Contents"}))
    tables = [s for s in sections if s.table_header]
    assert len(tables) == 1
    table = tables[0]
    assert "Consolidated Statement of Cash Flows" in table.table_header
    assert "(Millions) 2018 2017 2016" in table.table_header
    assert table.heading == "Consolidated Statement of Cash Flows"
    rows = table.text.split("\n")
    # Row-group labels stay with their rows, the first one too: it does not name every row of the table.
    assert rows[0] == "Cash Flows from Operating Activities"
    assert "Operating Activities" not in table.table_header
    assert rows[1].startswith("Net income including noncontrolling interest")
    assert "Purchases of property, plant and equipment (PP&E) (1,577) (1,373) (1,420)" in rows
    assert "Cash Flows from Investing Activities" in rows
    assert all(s.page == 60 for s in sections)
    prose = [s for s in sections if not s.table_header]
    assert any("integral part of this statement" in s.text for s in prose)
    assert not any(s.text == "60" or "Table of Contents" in s.text for s in sections)  # page number, running line
    assert heading == "Consolidated Statement of Cash Flows"  # in force on the next page


def test_dates_name_columns_and_a_caption_ending_with_a_colon_titles_the_table() -> None:
    lines = [
        "Domestic Segment",
        "Selected financial data for the Domestic segment was as follows ($ in millions):",
        "Three Months Ended Six Months Ended",
        "July 29, 2023 July 30, 2022 July 29, 2023 July 30, 2022",
        "Revenue $ 8,890 $ 9,569 $ 17,691 $ 19,463",
        "Gross profit $ 2,052 $ 2,109 $ 4,044 $ 4,279",
    ]
    sections, _ = page_sections(lines, 17, "", frozenset())
    table = next(s for s in sections if s.table_header)
    assert table.table_header.split("\n") == lines[1:4]
    assert table.text.split("\n") == lines[4:]
    assert table.heading == "Domestic Segment"


def test_prose_is_split_at_headings_that_carry_over_pages() -> None:
    lines = [
        "Item 7. Management's Discussion and Analysis",
        "Revenue grew because more customers bought more products in every region we serve this year.",
        "Liquidity and Capital Resources",
        "We hold enough cash to meet our obligations for the next twelve months and beyond them.",
    ]
    sections, heading = page_sections(lines, 3, "Earlier Heading", frozenset())
    assert [s.heading for s in sections] == [
        "Item 7. Management's Discussion and Analysis",
        "Liquidity and Capital Resources",
    ]
    assert sections[1].text.startswith("Liquidity and Capital Resources\nWe hold enough cash")
    assert heading == "Liquidity and Capital Resources"
    more, _ = page_sections(["The facility renews every year."], 4, heading, frozenset())
    assert more[0].heading == "Liquidity and Capital Resources"


def test_line_classes() -> None:
    assert is_data_row(_line("Lanterns 39,669 40,665"))
    assert is_data_row(_line("Revenue % change (7.1)% (13.1)%"))
    assert not is_data_row(_line("(Millions) 2018 2017 2016"))  # years name columns
    assert not is_data_row(_line("Years ended December 31"))
    assert not is_data_row(_line("Online revenue of $2.8 billion decreased in the second quarter of fiscal 2024."))
    assert is_period_line("Three Months Ended")
    assert is_period_line("July 29, 2023 July 30, 2022")
    assert is_heading("Consolidated Statements of Cash Flows")
    assert is_heading("ITEM 1A. RISK FACTORS")
    assert not is_heading("Income")  # one word: a wrapped column label
    assert not is_heading("We sell products in many countries.")
    assert not is_heading("Twelve Months Ended June 30, 2023")


def test_running_lines_are_those_at_the_edges_of_many_pages() -> None:
    pages = [["Table of Contents", f"Body {i}", "Middle", "More text", "Middle 2", "Footer", "x"] for i in range(5)]
    running = running_lines(pages)
    assert "Table of Contents" in running
    assert "Footer" in running
    assert "Body 0" not in running
    assert "More text" not in running  # on every page, but in the middle: a table's column header, say
    tables = [["FOURTH QUARTER TWELVE MONTHS", f"Product {i} 1,234 5,678", "Other 12 34"] for i in range(5)]
    assert "FOURTH QUARTER TWELVE MONTHS" not in running_lines(tables)  # column headers atop every page


def _line(text: str) -> Line:
    return classify_line(text)
