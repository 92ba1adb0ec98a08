"""Finding a passage among a page's words, whatever the loader changed in its text."""

from __future__ import annotations

from rag.alignment import PageTokens, locate, span_on_page, tokens, words_of


def page(text: str) -> PageTokens:
    return PageTokens.of(text.split())


def found_words(passage: str, text: str) -> list[str]:
    words = text.split()
    tokens_ = PageTokens.of(words)
    return [words[i] for i in words_of(tokens_, locate(passage, tokens_).page_tokens)]


def test_tokens_ignore_case_and_punctuation() -> None:
    assert tokens("Revenue: $1,234 (UNAUDITED)") == ["revenue", "1", "234", "unaudited"]


def test_the_passage_is_found_in_order_and_nothing_else() -> None:
    text = "Running header. The quarterly revenue grew to 1,234 million. Unrelated words follow here about the weather."
    assert found_words("The quarterly revenue grew to 1,234 million.", text) == [
        "The", "quarterly", "revenue", "grew", "to", "1,234", "million.",
    ]  # fmt: skip


def test_a_word_broken_across_lines_by_a_hyphen_is_one_word_as_the_loader_made_it() -> None:
    words = ["Another", "paragraph", "with", "exam-", "ple", "hyphenation."]
    tokens_ = PageTokens.of(words)
    located = locate("Another paragraph with example hyphenation.", tokens_)
    assert located.share == 1.0
    assert [words[i] for i in words_of(tokens_, located.page_tokens)] == words


def test_a_lone_common_word_far_away_is_not_highlighted() -> None:
    text = "the start of the page. " + "filler " * 20 + "net income was 5 dollars in the quarter"
    assert found_words("Net income was 5 dollars in the quarter", text)[0] == "net"


def test_a_running_header_dropped_by_the_loader_does_not_stop_the_match() -> None:
    text = "Table rows: iPhone 39,669 40,665 ACME CORP 10-Q Mac 6,840 7,382"
    found = found_words("Table rows: iPhone 39,669 40,665 Mac 6,840 7,382", text)
    assert found[0] == "Table" and found[-1] == "7,382" and "Mac" in found


def test_a_passage_not_on_the_page_is_not_found() -> None:
    located = locate("Nothing of this is printed there at all", page("A page about something else entirely"))
    assert not located.found and not located.page_tokens


def test_a_part_of_the_passage_maps_to_its_words_on_the_page() -> None:
    passage = "First sentence here. The answer is 42 units. Last one."
    words = ("Header " + passage).split()
    tokens_ = PageTokens.of(words)
    located = locate(passage, tokens_)
    start = passage.index("The answer")
    on_page = span_on_page(located, passage, start, start + len("The answer is 42 units."))
    assert [words[i] for i in words_of(tokens_, on_page)] == ["The", "answer", "is", "42", "units."]
