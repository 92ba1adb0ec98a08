"""Plain text, Markdown and CSV/TSV: decoding (UTF-8, BOM-marked Unicode, or a legacy guess, reported)."""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
from pathlib import Path

from rag.errors import LoaderError
from rag.loaders.common import empty, reason, tidy
from rag.schema import LoadedDocument, Section

_BOMS: list[tuple[bytes, str]] = [
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one.
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
]


def not_text(name: str) -> LoaderError:
    return LoaderError(
        f"{name} does not look like text (binary data?): check that it is the right file; "
        "if it is text, save it as UTF-8 and upload it again."
    )


def bom_encoding(data: bytes) -> str | None:
    """The Unicode encoding the data's byte-order mark names, or None when it has none."""
    return next((encoding for bom, encoding in _BOMS if data.startswith(bom)), None)


def looks_binary(data: bytes) -> bool:
    if bom_encoding(data) is not None:  # UTF-16/32 text is full of NUL bytes
        return False
    if b"\x00" in data:
        return True
    sample = data[:65536]
    control = sum(1 for b in sample if (b < 32 and b not in b"\t\n\r\f\x1b") or b == 127)
    return control / len(sample) > 0.1


def _unprintable_share(text: str) -> float:
    sample = text[:65536]
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if c not in "\t\n\r\f" and unicodedata.category(c) in ("Cc", "Co", "Cn"))
    return bad / len(sample)


def _encoding_label(encoding: str) -> str:
    name = codecs.lookup(encoding).name  # canonical, e.g. "cp1252", "iso8859-1"
    if re.fullmatch(r"cp125\d", name):
        return "windows-" + name[2:]
    return name.upper()


def decode(data: bytes, name: str) -> tuple[str, list[str]]:
    """UTF-8 (or a BOM-marked Unicode encoding) first; else the best legacy guess, with a warning."""
    if (encoding := bom_encoding(data)) is not None:
        try:
            return data.decode(encoding), []
        except UnicodeDecodeError:
            text = data.decode(encoding, errors="replace")
            label = _encoding_label(encoding)
            return text, [f"is marked as {label} but has invalid bytes; they were replaced with '\ufffd'"]
    if looks_binary(data):
        raise not_text(name)
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    for encoding in legacy_candidates(data):
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            continue
        if _unprintable_share(text) > 0.05:  # decodable but full of control characters: not prose
            raise not_text(name)
        return text, [f"decoded as {_encoding_label(encoding)} (not UTF-8)"]
    raise not_text(name)  # unreachable in practice: latin-1 decodes any bytes


def legacy_candidates(data: bytes) -> list[str]:
    """Encodings to try, best first, for bytes that are not UTF-8.

    charset_normalizer alone misreads short Western text (b"caf\\xe9" comes back as Urdu cp1006),
    so windows-1252, the most common legacy encoding, wins whenever it fits as well as the best guess.
    It still loses to e.g. cp1251 for Russian or cp1250 for Czech, where it fits worse or not at all.
    """
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(data[:262_144]))  # a sample: whole files take seconds
    candidates = ["cp1252", "latin_1"]  # latin-1 decodes any bytes: the last resort
    if matches:
        least_chaos = min(m.chaos for m in matches)
        calm = [m for m in matches if m.chaos <= least_chaos + 0.01]
        coherence = max(m.coherence for m in calm)
        western = any("cp1252" in m.could_be_from_charset and m.coherence >= coherence - 0.05 for m in calm)
        if not western:
            candidates.insert(0, max(calm, key=lambda m: m.coherence).encoding)
    return candidates


def load_text(data: bytes, name: str) -> LoadedDocument:
    text, warnings = decode(data, name)
    kind = "markdown" if Path(name).suffix.lower() in (".md", ".markdown") else "text"
    # Indentation matters in Markdown and code blocks: keep spaces, only fix line ends and controls.
    section = Section(text=tidy(text, collapse_spaces=False))
    title = ""
    if kind == "markdown":  # the first top-level heading
        title = next((ln[2:].strip() for ln in section.text.split("\n") if ln.startswith("# ")), "")
    return LoadedDocument(name=name, kind=kind, sections=[section], warnings=warnings, title=title)


# The Sniffer's quote-and-delimiter regex is quadratic in its sample: 32 KB of '",' took 10 s (64 KB, the old
# sample, ~40 s), 4 KB takes 0.2 s at worst. A few KB hold dozens of rows, enough to tell the delimiter.
SNIFF_CHARS = 4096


def _sniff_sample(text: str) -> str:
    """The first SNIFF_CHARS characters, cut after the last whole line in them (a cut row misleads the sniffer)."""
    sample = text[:SNIFF_CHARS]
    end = sample.rfind("\n")
    return sample[: end + 1] if len(text) > SNIFF_CHARS and end > 0 else sample


def load_csv(data: bytes, name: str) -> LoadedDocument:
    text, warnings = decode(data, name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(_sniff_sample(text), delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to guess: commas are the common case
        dialect = csv.excel
    try:
        rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(v.strip() for v in row)]
    except csv.Error as exc:
        raise LoaderError(
            f"{name} could not be read as CSV ({reason(exc)}): check that it is comma-separated text "
            "(export it again as 'CSV UTF-8'), or save it as .txt to index it as plain text."
        ) from exc
    if not rows:
        raise empty(name)
    header = [" ".join(h.split()) or f"column {i}" for i, h in enumerate(rows[0], start=1)]
    if len(rows) == 1:
        warnings.append("has a header row but no data rows")
        return LoadedDocument(name=name, kind="csv", sections=[Section(text="; ".join(header))], warnings=warnings)
    lines: list[str] = []
    for row in rows[1:]:
        # "col: value" pairs make every line understandable on its own after chunking.
        pairs = [
            f"{header[i] if i < len(header) else f'column {i + 1}'}: {' '.join(value.split())}"
            for i, value in enumerate(row)
            if value.strip()
        ]
        lines.append("; ".join(pairs))
    return LoadedDocument(name=name, kind="csv", sections=[Section(text="\n".join(lines))], warnings=warnings)
