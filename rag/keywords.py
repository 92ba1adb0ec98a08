"""Query text → the terms of a keyword (BM25) search.

Questions are mostly function words ("what", "was", "the"): they match nearly every chunk, cost time in
the index and carry no evidence, so they are dropped before searching.
"""

from __future__ import annotations

import re

# English function words and question words (the usual IR stop list, plus question phrasing).
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each either else ever few for
    from further had has have having he her here hers herself him himself his how however i if in
    into is it its itself just let me more most much must my myself no nor not now of off on once
    only or other ought our ours ourselves out over own per same shall she should so some such than
    that the their theirs them themselves then there these they this those through to too under
    until up upon us very was we were what when where which while who whom whose why will with
    within without would yet you your yours yourself yourselves tell explain describe give name list
    many called named known kind type
    """.split()  # noqa: SIM905 (a word list reads better as text)
)

_WORD = re.compile(r"\w+", re.UNICODE)


YEAR = re.compile(r"(?:19|20)\d\d")  # a year inside a code: FY2018, 2023Q4


def query_terms(text: str) -> list[str]:
    """The distinct content words of a query, lower-cased, in order of appearance; a year inside a code
    ("FY2018") is searched for on its own too, as documents write "fiscal 2018"."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(text.casefold()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        seen.setdefault(word, None)
        if not (word.isalpha() or word.isdigit()):
            for year in YEAR.findall(word):
                seen.setdefault(year, None)
    return list(seen)
