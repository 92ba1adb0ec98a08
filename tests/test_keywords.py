"""Query text → keyword search terms."""

from __future__ import annotations

from rag.keywords import query_terms


def test_function_words_are_dropped_and_content_words_kept_in_order() -> None:
    assert query_terms("What was the price of oil in March of 1974?") == ["price", "oil", "march", "1974"]
    assert query_terms("Who is who? WHO") == []  # nothing left to search for by keyword


def test_terms_are_case_folded_unique_and_keep_digits_and_accents() -> None:
    assert query_terms("Zürich zürich ZÜRICH in 3 B") == ["zürich", "3"]
