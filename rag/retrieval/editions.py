"""Which edition a question means: "the latest report", "the most recent release", "the earliest accident",
"the release before the latest", "last year's plan", "last quarter's filing".

Collections often hold several editions of one kind of document: a company's quarterly filings, a
product's release notes, an agency's yearly reports. A question then names an edition by its place in time
rather than by its title. Each document's place is read from the document itself, in this order:

- its **numbers**, when it belongs to a series: documents whose titles and file names are the same but for
  their numbers ("Release Notes 2.4.0" and "Release Notes 1.17.0"; "Report MO-2010-201" and "MO-2013-204")
  are ordered by those numbers, compared as numbers (1.17 < 2.4), a year first where there is one;
- else its **dates**: the latest date printed in its title, file name or opening text (a cover's "For the
  quarterly period ended July 1, 2023", a report's "Published March 2022", a header's "Created: 12-Sep-2022").

A question may also name the period it is about ("Q2 2023", "the second quarter of 2023", "FY2022", "fiscal
2023"): `asked_period` reads it, and `covered_period` reads the period a document reports on from its cover
("For the quarterly period ended July 2, 2023", "for the fiscal year ended January 1, 2023"), so that
filings saved under any name are told apart by what they print.

`time_reference` reads what the question asks for; `resolve` picks the edition among the documents the
question is about (those it names, else those whose passages it matched best). "Last year's" (quarter's,
month's) is the latest edition of a period before the current one, as of today: the edition a series labels
with last year's number, or the latest one dated before this year; "this year's" is the latest.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

# (year, quarter) a question names or a document reports on; quarter 0: a whole (fiscal) year.
Period = tuple[int, int]
TimeReference = Literal["latest", "earliest", "previous", "last year", "last quarter", "last month"]

_LATEST = re.compile(r"\b(?:latest|most[\s-]+recent(?:ly)?|newest|most[\s-]+current)\b", re.I)
# "the last release" is the latest; "the last page", "the last step", "the last years of the war", "the last
# three chapters" are not editions.
_NOT_AN_EDITION = (
    r"names?|steps?|pages?|lines?|words?|sentences?|paragraphs?|sections?|chapters?|parts?|rows?|columns?|items?"
    r"|entry|entries|times?|years?|months?|weeks?|days?|decades?|centur(?:y|ies)|hours?|minutes?|seconds?|moments?"
    r"|few|several|two|three|four|five|six|seven|eight|nine|ten|\d+"
)
_LAST_ONE = re.compile(rf"\b(?:the|its|their|our|this)\s+last\s+(?!(?:{_NOT_AN_EDITION})\b)\w", re.I)
_EARLIEST = re.compile(r"\b(?:earliest|oldest|first[\s-]+ever)\b", re.I)
_PREVIOUS = re.compile(
    r"\b(?:previous|prior(?!\s+to\b)|preceding|penultimate|second[\s-]+(?:latest|most[\s-]+recent|newest))\b"
    r"|\bbefore\s+the\s+(?:latest|most\s+recent|newest|last)\b",
    re.I,
)
# "last year's plan", "last fiscal quarter's filing": the period before the current one (a possessive only:
# "compared with last year" asks for no edition). "this year's report", "the current quarter's" is the latest.
_LAST_PERIOD = re.compile(r"\b(?:last|past)\s+(?:(?:fiscal|calendar)\s+)?(year|quarter|month)['’]s\b", re.I)
_THIS_PERIOD = re.compile(r"\b(?:this|current)\s+(?:(?:fiscal|calendar)\s+)?(?:year|quarter|month)['’]s\b", re.I)

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = (
    r"(jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_YEAR = r"((?:19|20)\d\d)"
_DATES = (
    # 2023-07-01, 2023/07/01
    (re.compile(rf"(?<!\d){_YEAR}[-/](\d{{1,2}})[-/](\d{{1,2}})(?!\d)"), ("y", "m", "d")),
    # July 1, 2023; Jul. 1 2023
    (re.compile(rf"\b{_MONTH}\s+(\d{{1,2}}),?\s+{_YEAR}\b", re.I), ("M", "d", "y")),
    # 1 July 2023; 12-Sep-2022
    (re.compile(rf"(?<!\d)(\d{{1,2}})[\s-]+{_MONTH}[\s,-]+{_YEAR}\b", re.I), ("d", "M", "y")),
    # July 2023
    (re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b", re.I), ("M", "y")),
    # a year alone: FY2023, 2023Q4, "Annual Report 2021"
    (re.compile(rf"(?<!\d){_YEAR}(?!\d)"), ("y",)),
)
# A period a document reports on, as its cover says: "quarterly period ended July 2, 2023", "fiscal year ended
# 31 March 2019". A bare "period ended" says neither a quarter nor a year: not read.
_PERIOD_END = re.compile(
    rf"\b(quarterly\s+period|quarter|(?:three|six|nine)\s+months|half[\s-]+year|(?:fiscal\s+)?year|twelve\s+months|"
    rf"5[23]\s+weeks)\s+ended:?\s+"
    rf"(?:{_MONTH}\s+(\d{{1,2}}),?\s+{_YEAR}|(\d{{1,2}})\s+{_MONTH},?\s+{_YEAR})",
    re.I,
)
# A fiscal period that ends in the first days of a month (52-53-week years: "year ended January 1, 2023") is
# named after the period before: its end is read this many days earlier.
PERIOD_END_SLACK = 15
_ORDINAL_QUARTERS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
# A half year is named by its last quarter: the first half's figures are in the report of the second quarter (or
# a half-year report), the second half's in the year's.
_HALF_QUARTERS = {"1": 2, "first": 2, "2": 4, "second": 4}
# A fiscal year: FY2022, FY 2022, FY'22, FY22, fiscal 2022, fiscal year 2022 (two digits only after "FY").
_FISCAL_YEAR = r"(?:FY\s*'?(?P<fy>\d\d(?:\d\d)?)|fiscal(?:\s+year)?\s+(?P<fy4>(?:19|20)\d\d))"
# A year after a quarter: four digits, two after an apostrophe, or a fiscal year ("Q2'23", "Q2 of FY2024");
# "Q4 10 new stores" names no year.
_YEAR_AFTER = rf"(?:of\s+|in\s+)?(?:{_FISCAL_YEAR}|'?(?P<y>(?:19|20)\d\d)|'(?P<yy>\d\d))(?!\d)"
_ASKED = (
    # Q2 2023, Q2'2023, Q22023, Q2'23, Q2 of FY2024, Q2 FY23
    re.compile(rf"\bQ(?P<q>[1-4])\s*{_YEAR_AFTER}", re.I),
    # the second quarter of 2023, the 2nd fiscal quarter of fiscal 2023
    re.compile(rf"\b(?P<nth>first|second|third|fourth|1st|2nd|3rd|4th)\s+(?:fiscal\s+)?quarter\s+{_YEAR_AFTER}", re.I),
    # 2023Q2, 2023 Q2
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)\s*Q(?P<q>[1-4])\b", re.I),
    # H1 2023, H1 FY2024, H1'23, 1H 2023, 1H23, the first half of (fiscal) 2023
    re.compile(rf"\b(?:H(?P<h>[12])|(?P<hh>[12])H)\s*{_YEAR_AFTER}", re.I),
    re.compile(r"\b(?P<hh>[12])H(?P<yy>\d\d)\b", re.I),
    re.compile(rf"\b(?P<half>first|second)\s+half\s+(?:of\s+)?(?:the\s+)?{_YEAR_AFTER}", re.I),
    re.compile(rf"\b{_FISCAL_YEAR}(?!\d)", re.I),
)
_NUMBER = re.compile(r"\d+")
# How much of a document's opening is read for its dates: the cover, not the history it recounts.
COVER_CHARS = 1500


@dataclass(frozen=True)
class Edition:
    """A document's place among its kind."""

    doc_id: str
    series: str  # its title and file name with every number blanked: editions of one series share it
    numbers: tuple[int, ...]  # the numbers of its title and file name, a year first when there is one
    date: tuple[int, int, int]  # the latest (year, month, day) printed on it; (0, 0, 0) when none
    period: Period | None = None  # the period it reports on, as its cover says (`covered_period`)


def time_reference(question: str) -> TimeReference | None:
    """The edition the question asks for by its place in time, if any."""
    if _PREVIOUS.search(question):
        return "previous"
    if match := _LAST_PERIOD.search(question):
        unit = match.group(1).lower()
        return "last year" if unit == "year" else "last quarter" if unit == "quarter" else "last month"
    if _LATEST.search(question) or _LAST_ONE.search(question) or _THIS_PERIOD.search(question):
        return "latest"
    if _EARLIEST.search(question):
        return "earliest"
    return None


def asked_period(question: str) -> Period | None:
    """The period a question names (the latest, when it compares several: "FY2023 vs FY2022" → FY2023), if any.
    Two-digit years are of this century."""
    asked: list[Period] = []
    taken: list[tuple[int, int]] = []  # the spans of quarters read: "Q2 of FY2024" is not FY2024 as well
    for pattern in _ASKED:
        for match in pattern.finditer(question):
            if any(start < match.end() and match.start() < end for start, end in taken):
                continue
            taken.append(match.span())
            found = {k: v for k, v in match.groupdict().items() if v is not None}
            year = found.get("y") or found.get("fy") or found.get("fy4") or found["yy"]
            half = found.get("h") or found.get("hh") or found.get("half")
            if "q" in found:
                quarter = int(found["q"])
            elif half:
                quarter = _HALF_QUARTERS[half.lower()]
            else:
                quarter = _ORDINAL_QUARTERS.get(found.get("nth", "").lower(), 0)
            asked.append((int(year) + (2000 if len(year) == 2 else 0), quarter))
    # A year reaches past its quarters: "FY2023 and Q4 of FY2023" is about FY2023.
    return max(asked, key=lambda p: (p[0], p[1] or 5)) if asked else None


def covered_period(cover: str) -> Period | None:
    """The period a document reports on, from the first "… ended <date>" of its cover that says a quarter or a
    year; None when it says neither."""
    for match in _PERIOD_END.finditer(cover):
        kind, month, day, year, day2, month2, year2 = match.groups()
        try:
            end = date(int(year or year2), _MONTHS[(month or month2).lower().rstrip(".")], int(day or day2))
        except (KeyError, ValueError):
            continue
        named = end - timedelta(days=PERIOD_END_SLACK)
        quarterly = re.match(r"quarter|three|six|nine|half", kind, re.I) is not None  # not a year, twelve months
        return (named.year, (named.month - 1) // 3 + 1 if quarterly else 0)
    return None


def period_matches(covered: Period, asked: Period) -> bool:
    """A document of the period asked for; a year's report also answers for its fourth quarter."""
    return covered == asked or (covered == (asked[0], 0) and asked[1] == 4)


def edition_of(doc_id: str, title: str, name: str, opening: str, cover: str = "") -> Edition:
    """A document's place among its kind; `opening` is its first passage, `cover` its first few (for the
    period it reports on)."""
    label = f"{title} {name.rsplit('.', 1)[0]}"
    series = _NUMBER.sub("#", re.sub(r"[\W_]+", " ", label.lower())).strip()
    numbers = [int(n) for n in _NUMBER.findall(label)]
    years = [n for n in numbers if 1900 <= n <= 2099]
    ordered = ([years[0]] if years else []) + [n for n in numbers if not years or n != years[0]]
    dates = latest_date(f"{label}\n{opening[:COVER_CHARS]}")
    return Edition(doc_id, series, tuple(ordered), dates, covered_period(cover[: 2 * COVER_CHARS]))


def latest_date(text: str) -> tuple[int, int, int]:
    """The latest (year, month, day) written in the text ((0, 0, 0) when none); a month or day not given is 0."""
    best = (0, 0, 0)
    for pattern, parts in _DATES:
        for match in pattern.finditer(text):
            found = dict(zip(parts, match.groups(), strict=True))
            year = int(found["y"])
            month = _MONTHS.get(found["M"].lower().rstrip("."), 0) if "M" in found else int(found.get("m", 0))
            day = int(found.get("d", 0))
            if not 1900 <= year <= 2099 or not 0 <= month <= 12 or not 0 <= day <= 31:
                continue
            best = max(best, (year, month, day))
    return best


def resolve(
    reference: TimeReference,
    editions: Sequence[Edition],
    relevance: Mapping[str, float],
    share: float = 0.0,
    today: date | None = None,
) -> str | None:
    """The document the reference picks (`relevance`: doc id → how much the question is about it, the best
    1.0): among the editions of the most relevant document's series when it has several, else among the
    documents at least `share` as relevant as the best, ordered by the dates they print. "Last year's" and
    the like count from `today` (None: the latest)."""
    by_id = {e.doc_id: e for e in editions}
    relevant = [by_id[d] for d in relevance if d in by_id]
    if not relevant:
        return None
    best = max(relevant, key=lambda e: relevance[e.doc_id])
    top = relevance[best.doc_id]
    family = [e for e in editions if e.series == best.series]
    # A numbered collection of different subjects ("PEP 665", "PEP 751") is named like a series: when the
    # question is about some of its members only ("the most recent lock file proposal"), those are the series.
    about = [e for e in family if relevance.get(e.doc_id, 0.0) >= share * top]
    if share > 0 and len(about) >= 2 and len(about) < len(family) / 2:
        family = about
    numbered = len(family) >= 2 and len({e.numbers for e in family}) == len(family)
    # Numbers order a series when they carry a year ("Plan 2024", "MO-2013-204") or when its members print no
    # dates (release notes "1.17.0", "2.4.0"); files numbered as someone saved them ("scan-07.pdf",
    # "filing-3.pdf") that print dates are ordered by those dates.
    by_numbers = numbered and (all(_labelled_year(e) for e in family) or any(e.date == (0, 0, 0) for e in family))
    if by_numbers:
        ordered = sorted(family, key=lambda e: e.numbers)
    else:
        dated = [e for e in relevant if e.date != (0, 0, 0) and relevance[e.doc_id] >= share * top]
        if len(dated) < 2:
            return None
        ordered = sorted(dated, key=lambda e: e.date)
    if reference.startswith("last ") and today is not None:
        cutoff = _period_start(today, reference.removeprefix("last "))
        before = [e for e in ordered if (end := _period_end(e, by_numbers)) is not None and end < cutoff]
        return before[-1].doc_id if before else None
    if reference == "latest" or reference.startswith("last "):
        return ordered[-1].doc_id
    if reference == "earliest":
        return ordered[0].doc_id
    return ordered[-2].doc_id


def _period_start(today: date, unit: str) -> tuple[int, int, int]:
    """The first day of the current year, quarter or month, as (year, month, day)."""
    if unit == "year":
        return (today.year, 1, 1)
    if unit == "quarter":
        return (today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    return (today.year, today.month, 1)


def _period_end(edition: Edition, by_numbers: bool) -> tuple[int, int, int] | None:
    """The last day an edition speaks of, as far as it says: the end of the year a series labels it with
    ("Plan 2024", "2023 Annual Report"), else the latest date it prints (a month or day not given: its end);
    None when neither is known."""
    if by_numbers and (year := _labelled_year(edition)):
        return (year, 12, 31)
    if edition.date == (0, 0, 0):
        return None
    year, month, day = edition.date
    return (year, month or 12, day or 31)


def _labelled_year(edition: Edition) -> int | None:
    """The year an edition's title or file name labels it with (`edition_of` puts it first), if any."""
    first = edition.numbers[0] if edition.numbers else 0
    return first if 1900 <= first <= 2099 else None
