from __future__ import annotations

import itertools

from rag.chunking import chunk_document, chunk_id
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
    assert all(c.source == "manual.pdf" and c.doc_id == "abc123" for c in chunks)
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
