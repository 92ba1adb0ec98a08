from __future__ import annotations

import itertools

from rag.chunking import chunk_document, chunk_id, doc_of
from rag.schema import LoadedDocument, Section


def doc(*sections: Section, kind: str = "text") -> LoadedDocument:
    return LoadedDocument("manual.pdf", kind, list(sections), pages=len(sections))


def test_chunks_keep_source_page_and_order_with_stable_ids() -> None:
    page1 = "\n\n".join(f"Paragraph {i} about the first topic, with enough words to matter." for i in range(20))
    page2 = "A short second page."
    chunks = chunk_document(doc(Section(page1, 1), Section(page2, 2)), "abc123", chunk_size=300, chunk_overlap=50)

    assert len(chunks) > 3
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert [c.id for c in chunks] == [chunk_id("abc123", i) for i in range(len(chunks))]
    assert all(c.source == "manual.pdf" and c.doc_id == "abc123" and doc_of(c.id) == "abc123" for c in chunks)
    assert all(len(c.text) <= 300 for c in chunks)
    assert chunks[-1].page == 2 and chunks[-1].text == page2
    assert {c.page for c in chunks[:-1]} == {1}  # a chunk never spans two pages
    again = chunk_document(doc(Section(page1, 1), Section(page2, 2)), "abc123", chunk_size=300, chunk_overlap=50)
    assert again == chunks


def test_overlap_repeats_context_between_neighbours() -> None:
    text = " ".join(f"word{i}" for i in range(400))
    chunks = chunk_document(doc(Section(text)), "d", chunk_size=200, chunk_overlap=60)
    for left, right in itertools.pairwise(chunks):
        assert left.text.split()[-1] in right.text.split()[:15]


def test_splits_prefer_paragraphs_and_sentences_over_words() -> None:
    text = "First sentence is here. Second sentence follows it. " * 10 + "\n\n" + "Next paragraph. " * 5
    chunks = chunk_document(doc(Section(text)), "d", chunk_size=250, chunk_overlap=0)
    assert all(c.text.endswith(".") for c in chunks)


def test_markdown_splits_at_headings() -> None:
    md = "# Intro\n\n" + "Intro text. " * 15 + "\n\n## Details\n\n" + "Detail text. " * 15
    chunks = chunk_document(doc(Section(md), kind="markdown"), "d", chunk_size=220, chunk_overlap=0)
    assert any(c.text.startswith("## Details") for c in chunks)


def test_a_huge_line_without_spaces_is_cut_at_fixed_size() -> None:
    chunks = chunk_document(doc(Section("x" * 5000)), "d", chunk_size=1000, chunk_overlap=0)
    assert [len(c.text) for c in chunks] == [1000] * 5


def test_blank_sections_give_no_chunks() -> None:
    assert chunk_document(doc(Section("   \n\n  ")), "d", 500, 50) == []


def test_a_table_is_split_between_rows_and_every_piece_repeats_its_header() -> None:
    header = "Net sales by category\nThree Months Ended\nJuly 1, 2023 June 25, 2022"
    rows = [f"Product {i} {1000 + i:,} {2000 + i:,}" for i in range(40)]
    table = Section("\n".join(rows), 7, "Net sales by category", table_header=header)
    chunks = chunk_document(doc(table, kind="pdf"), "d", chunk_size=300, chunk_overlap=50)
    assert len(chunks) > 3
    assert all(c.text.startswith(header + "\n") for c in chunks)
    assert all(len(c.text) <= 300 for c in chunks)
    kept = [line for c in chunks for line in c.text.split("\n")[3:]]
    assert kept == rows  # every row once, whole, in order (no overlap inside tables)


def test_a_group_of_rows_stays_with_its_label() -> None:
    """A product's name on a line of its own, then its US, international and worldwide rows."""
    header = "REPORTED SALES ($MM)\nFOURTH QUARTER\n2022 2021 Reported"
    groups = [
        [f"PRODUCT {chr(65 + i)}", f"US {900 + i} 899 1.4%", f"Intl {800 + i} 890 -7.2%", f"WW 1,{700 + i} 1,789 -2.8%"]
        for i in range(12)
    ]
    table = Section("\n".join(row for group in groups for row in group), 16, "Sales", table_header=header)
    chunks = chunk_document(doc(table, kind="pdf"), "d", chunk_size=400, chunk_overlap=50)
    assert len(chunks) >= 3
    for chunk in chunks:
        rows = chunk.text.split("\n")[3:]
        assert rows[0].startswith("PRODUCT") and len(rows) % 4 == 0  # whole groups, each under its label
    assert [row for c in chunks for row in c.text.split("\n")[3:]] == [row for group in groups for row in group]


def test_a_group_longer_than_a_chunk_repeats_its_label_in_each_piece() -> None:
    rows = ["Cash flows from operating activities:"] + [f"Item {i} {1000 + i:,} {2000 + i:,}" for i in range(30)]
    table = Section("\n".join(rows), 60, "Cash flows", table_header="Years ended\n2023 2022")
    chunks = chunk_document(doc(table, kind="pdf"), "d", chunk_size=200, chunk_overlap=0)
    assert len(chunks) > 2
    assert all(c.text.split("\n")[2] == "Cash flows from operating activities:" for c in chunks)
    items = [row for c in chunks for row in c.text.split("\n")[3:]]
    assert items == rows[1:]  # every row once, in order


def test_every_chunk_has_a_header_with_title_file_heading_and_page() -> None:
    loaded = LoadedDocument(
        "TRNW_2023Q3_10Q.pdf",
        "pdf",
        [Section("Lanterns 39,669 40,665\nStoves 6,840 7,382", 5, "Net sales by category", table_header="2023 2022")],
        pages=9,
        title="Tarnwell Inc. Form 10-Q",
    )
    (chunk,) = chunk_document(loaded, "d", chunk_size=600, chunk_overlap=0)
    assert chunk.header == "Tarnwell Inc. Form 10-Q · TRNW_2023Q3_10Q.pdf · Net sales by category · page 5"
    assert chunk.indexed_text == chunk.header + "\n" + chunk.text
    assert "Tarnwell" not in chunk.text  # the model sees the header once, in the source label


def test_markdown_chunks_name_the_heading_they_fall_under() -> None:
    md = "# User guide\n\n" + "Intro. " * 3 + "\n\n## Installing\n\n" + "Run the installer and wait. " * 20
    loaded = LoadedDocument("guide.md", "markdown", [Section(md)], title="User guide")
    chunks = chunk_document(loaded, "d", chunk_size=200, chunk_overlap=0)
    assert chunks[0].header == "User guide · guide.md"  # the title is not repeated as the heading
    assert chunks[-1].header == "User guide · guide.md · Installing"


def test_the_title_is_left_out_when_it_only_repeats_the_file_name() -> None:
    loaded = LoadedDocument("oil_crisis.txt", "text", [Section("The crisis began in October.")], title="Oil crisis")
    assert chunk_document(loaded, "d", 600, 0)[0].header == "oil_crisis.txt"
