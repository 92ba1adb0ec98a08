"""The contracts profile: what an agreement states at its opening.

An agreement says when it was made, and between whom, in its first lines ("This Agreement is entered into as of
July 1, 2017, by and between …"). A question asking for that date names the agreement by its subject and its
parties, words every clause of it repeats, so its clauses compete on them and the preamble, which says little
else, ranks far down within its document (on the suite's contracts the passage with the date ranked 20th to
90th). With this profile on, a question asking when the agreement was made, signed or took effect has the
opening of the document it is about among its first passages.

The same holds for the clauses a contract review asks about (the categories of the usual review checklists:
governing law, renewal, notice, term, termination, assignment, exclusivity, non-competition, liability,
indemnification, insurance, audit, confidentiality, payment): the question names the agreement by words
every clause repeats, and the clause that answers it reads like the others. A question asking about one of
these has its document's passages that carry the clause's own wording preferred ("governed by", "laws of the
State of", "successive … periods", "days' prior written notice").
"""

from __future__ import annotations

import re
from collections.abc import Set

from rag.profiles import NO_EXPANSION, Expansion, TextFrequency
from rag.schema import Chunk

# Phrases of the boilerplate every agreement carries: two of them in the knowledge base mean it holds contracts.
_CONTRACT_PHRASES = ("in witness whereof", "entire agreement", "governing law", "hereinafter referred to as")
_DATE = re.compile(r"\b(?:when|date)\b", re.IGNORECASE)
# When it was made, not when it ends: "signed", "executed", "entered into", "dated", "effective", "the date of".
_MADE = re.compile(
    r"\b(?:sign(?:ed)?|execut(?:ed|ion)|entered\s+into|dated|effective|takes?\s+effect|made|date\s+of\s+(?:the|this))\b",
    re.IGNORECASE,
)


# A review checklist's clauses: what a question about one says, and the wording of the clause itself.
CLAUSES: dict[str, tuple[str, str]] = {
    "governing-law": (
        r"\bgovern(?:s|ed|ing)?\b.*\blaws?\b|\blaws?\b.*\bgovern|\bjurisdiction|\bconstrued\b|\bgoverning law",
        r"\bgoverned\s+by\b|\bgoverning\s+law\b|\bconstrued\s+(?:and\s+\w+\s+)?(?:in\s+accordance\s+with|under)\b"
        r"|\blaws\s+of\s+the\s+(?:state|commonwealth|province)\b",
    ),
    "renewal": (
        r"\brenew(?:s|ed|al|ing)?\b|\bextend(?:s|ed)?\b.{0,40}\bterm\b",
        r"\brenew(?:s|ed|al|able)?\b|\bsuccessive\b|\bautomatically\s+(?:be\s+)?extended\b",
    ),
    "notice": (
        r"\bnotice\b",
        r"\b(?:days?|months?|years?)['’]?\)?\s+(?:prior\s+|advance\s+)?(?:written\s+)?notice\b|\bprior\s+written\s+notice\b"
        r"|\bnotice\s+of\s+(?:its|their|such)\s+(?:intent|election|decision)",
    ),
    "term": (
        r"\bexpir(?:e|es|ation)\b|\binitial\s+term\b|\bhow\s+long\b.*\b(?:agreement|contract)\b",
        r"\b(?:initial\s+)?term\s+of\s+this\s+(?:agreement|contract)\b|\bshall\s+(?:expire|terminate\s+on)\b"
        r"|\bcontinue\s+in\s+(?:full\s+)?(?:force|effect)\b",
    ),
    "termination": (
        r"\bterminat(?:e|ion)\b|\bcancel\b",
        r"\bmay\s+terminate\b|\bright\s+to\s+terminate\b|\btermination\s+(?:for|upon|of\s+this)\b",
    ),
    "assignment": (r"\bassign(?:ment|ed|s)?\b|\btransfer\b", r"\bassign(?:ment|ed|s)?\b"),
    "exclusivity": (r"\bexclusiv", r"\bexclusiv"),
    "non-compete": (
        r"\bcompet(?:e|ing|ition)\b",
        r"\bnon-?compet|\bshall\s+not\s+(?:directly\s+or\s+indirectly\s+)?compete\b",
    ),
    "liability": (r"\bliab(?:le|ility)\b", r"\blimitation\s+of\s+liability\b|\bliable\s+for\b|\bin\s+no\s+event\b"),
    "indemnification": (r"\bindemni", r"\bindemni"),
    "insurance": (r"\binsurance\b|\binsured\b", r"\binsurance\b"),
    "audit": (r"\baudit|\binspect\s+(?:the\s+)?(?:books|records)", r"\baudit|\bbooks\s+and\s+records\b"),
    "confidentiality": (r"\bconfidential", r"\bconfidential"),
    "payment": (r"\bpa(?:y|id|yment)\b|\bfees?\b|\broyalt", r"\bpa(?:y|yable|yment)\b|\bfees?\b|\broyalt"),
}
_CLAUSES = {
    label: (re.compile(asked, re.IGNORECASE), re.compile(worded, re.IGNORECASE))
    for label, (asked, worded) in CLAUSES.items()
}
_LABEL = "clause:"


def clauses_asked(question: str) -> frozenset[str]:
    """The checklist clauses a question asks about."""
    return frozenset(label for label, (asked, _) in _CLAUSES.items() if asked.search(question))


def carries_clause(text: str, labels: Set[str]) -> bool:
    """Whether a passage is worded as each of these clauses (a notice to stop a renewal: notice and renewal)."""
    known = [label for label in labels if label in _CLAUSES]
    return bool(known) and all(_CLAUSES[label][1].search(text) for label in known)


def asks_when_made(question: str) -> bool:
    """Whether the question asks when an agreement was made (signed, dated, in effect from)."""
    return bool(_DATE.search(question) and _MADE.search(question))


def holds_contracts(text_frequency: TextFrequency) -> bool:
    """Whether the knowledge base's documents carry an agreement's boilerplate (two of its phrases)."""
    counts = text_frequency(_CONTRACT_PHRASES)
    return sum(1 for phrase in _CONTRACT_PHRASES if counts.get(phrase, 0) > 0) >= 2


class ContractsProfile:
    """The opening of the agreement in focus for a question about when it was made; the passages worded as the
    clause a question asks about preferred."""

    name = "contracts"

    def expand(self, question: str) -> Expansion:
        if asks_when_made(question):
            return NO_EXPANSION  # the opening answers it
        asked = clauses_asked(question)
        return Expansion(prefer=frozenset(_LABEL + label for label in asked)) if asked else NO_EXPANSION

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        labels = frozenset(p.removeprefix(_LABEL) for p in expansion.prefer if p.startswith(_LABEL))
        return bool(labels) and carries_clause(chunk.text, labels)

    def opening(self, question: str) -> bool:
        return asks_when_made(question)
