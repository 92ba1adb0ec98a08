"""Which documents does a question name? "Tarnwell's lantern sales in Q3 2023", "the 2022 annual report".

A knowledge base of filings holds several nearly identical documents (one company, four quarters; five
companies, one form): the same words occur in all of them, and passage search alone picks the sibling as
often as the right one. Each document has a card (its title and file name); a question's words are
matched against the cards, each word weighing how rare it is among them (BM25's idf over documents), so
"6W" or "2018" that name one document weigh far more than "report" that every card has. Retrieval then
draws candidates from the named documents too and adds their score to the fusion (rag/retrieval.py).

People also name a company by a short form its card does not spell: "CaMa" for Caldera Marine, "QnQ"
for Quill & Quarry. A capitalised question word that no card holds counts as the card words it
abbreviates when it is made of their beginnings, in order ("Ca" + "Ma"; "Q" + "n" or "&" for "and" + "Q"),
or the card word written in capitals that it begins: a file name glues words ("Zem" → ZEMRESORTS).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

from rag.keyword_index import WORD, YEAR

_QUARTER = re.compile(r"^(?:q([1-4])|([1-4])q)$|(?<=\d)q([1-4])$|^q([1-4])(?=\d)")
# "the second quarter of 2023", "its 3rd fiscal quarter", "fourth-quarter results": a period is named in words
# as often as by code.
_SPELLED_QUARTER = re.compile(
    r"\b(first|second|third|fourth|1st|2nd|3rd|4th)[\s-]+(?:fiscal[\s-]+)?quarter\b", re.IGNORECASE
)
_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
NAMED_SHARE = 0.5  # a document scoring at least this share of the best one is named by the question
# A short form is 3-8 characters, written with a capital ("CAMA", "QnQ", "Q&Q", "Cama"), and covers 2+ card
# words, or begins a card word written in capitals, where a file name glues words ("ZEM" → ZEMRESORTS).
_SHORT_FORM = re.compile(r"\b[A-Za-z]*[A-Z][A-Za-z]*(?:&[A-Za-z]+)*\b")
SHORT_FORM_LETTERS = (3, 8)
_TOKEN = re.compile(r"[^\s'’]+")  # a word with its attached code letters: FY2022, 10-K, 2023Q4
_CONNECTORS = ("n", "&")  # "and" inside a short form: QnQ, Q&Q
# The legal form on a card ("6W Company", "Halvard Co.", "VeskoCo, Inc.") names no document: a question's
# "a company like this" must not pick the filings of the companies whose names end in "Company".
LEGAL_FORMS = frozenset(
    "company companies co corp corporation inc incorporated plc ltd limited llc lp nv sa ag se".split()  # noqa: SIM905
)


def card_terms(text: str) -> set[str]:
    """The words of a title, a file name or a question, lower-cased, with the years and quarters inside
    codes spelled out: "FY2024" → fy2024, 2024; "2023Q4" → 2023q4, 2023, q4; "4Q" → q4. A question's
    quarters written in words count too (`spelled_quarters`)."""
    terms: set[str] = set()
    for word in WORD.findall(text.lower()):
        terms.add(word)
        if word.isalpha() or word.isdigit():
            continue
        terms.update(YEAR.findall(word))
        for match in _QUARTER.finditer(word):
            terms.add("q" + next(g for g in match.groups() if g))
    return terms


def spelled_quarters(question: str) -> set[str]:
    """The quarters a question names in words, as card terms: "the second quarter of 2023" → {q2}."""
    return {f"q{_ORDINALS[m.group(1).lower()]}" for m in _SPELLED_QUARTER.finditer(question)}


def name_words(question: str) -> str:
    """The words of a question that can name a document: its names (capitalised: "Halvard", "TARNWELL",
    "Corbelle University") and codes ("6W", "FY2022", "10-Q"), or all of them when it is written without
    capitals. "What river is near the school?" names no "Village school"; "the law" no "Russian state law"."""
    tokens = _TOKEN.findall(question)
    if not any(c.isupper() for c in question):
        return question
    return " ".join(t for t in tokens if t[0].isupper() or any(c.isdigit() for c in t))


def abbreviated_words(short: str, words: Sequence[str]) -> tuple[str, ...]:
    """The consecutive `words` that `short` abbreviates by their beginnings, in order and each at least
    once, ("cama", [caldera, marine, company]) → (caldera, marine); () when it abbreviates none.
    A connector letter ("n" in "qnq") may stand for "and" between two words."""
    short = short.lower()

    def cover(at: int, word: int) -> int:  # how many words from `word` on spell short[at:], 0 if none can
        if word == len(words) or not words[word] or short[at] != words[word][0]:
            return 0
        prefix = 0
        while prefix < len(words[word]) and at + prefix < len(short) and short[at + prefix] == words[word][prefix]:
            prefix += 1
            rest = at + prefix
            if rest == len(short):
                return 1
            more = cover(rest, word + 1)
            if not more and short[rest] in _CONNECTORS and rest + 1 < len(short):
                more = cover(rest + 1, word + 1)
            if more:
                return 1 + more
        return 0

    for start in range(len(words)):
        covered = cover(0, start)
        if covered >= 2:
            return tuple(words[start : start + covered])
    return ()


def begun_words(short: str, glued: Iterable[str]) -> set[str]:
    """The glued capitals words that `short` begins and does not spell whole: ("Vesko", {veskoco}) → {veskoco}."""
    start = short.lower()
    return {word for word in glued if word.startswith(start) and len(word) > len(start)}


def _rest(word: str, short: str) -> str:
    return word[len(short) :]


@dataclass(frozen=True)
class DocumentCard:
    doc_id: str
    text: str  # title and file name


class DocumentRouter:
    """Scores documents against a question by the rarity-weighted words their cards share with it."""

    def __init__(
        self, cards: Sequence[DocumentCard], text_frequency: Callable[[list[str]], Mapping[str, int]] | None = None
    ) -> None:
        """`text_frequency`: phrase → how many of the documents' texts hold it (the knowledge base's keyword
        index), to tell a name ("Corbelle", "Halvard") from a word many documents use ("French", "war")."""
        self._text_frequency = text_frequency
        self._in_texts: dict[str, int] = {}  # phrase → documents whose text holds it (a router lives one generation)
        self._cards = [(card.doc_id, card_terms(card.text)) for card in cards]
        self._words = [WORD.findall(card.text.lower()) for card in cards]
        # The cards by the first letters of each two of their words side by side: a short form spells two words
        # or more, so only a card with its first letter followed by another of its letters can be abbreviated
        # by it (the others are not tried: 0.1 s a question over 500 cards).
        self._by_initials: dict[tuple[str, str], set[int]] = {}
        for card, words in enumerate(self._words):
            for a, b in pairwise(words):
                self._by_initials.setdefault((a[0], b[0]), set()).add(card)
        # Words written in capitals, whose own words cannot be told apart ("ZEMRESORTS", "VESKOCO", "BRIGHTLANE"),
        # and the cards that hold each.
        self._glued: dict[str, set[int]] = {}
        for card, doc in enumerate(cards):
            for word in WORD.findall(doc.text):
                if word.isalpha() and word.isupper():
                    self._glued.setdefault(word.lower(), set()).add(card)
        self._vocabulary = set().union(*(terms for _, terms in self._cards))
        self._cards_with: dict[str, list[int]] = {}  # term → the cards that hold it: a question scores only those
        for card, (_, terms) in enumerate(self._cards):
            for term in terms:
                self._cards_with.setdefault(term, []).append(card)
        total = len(self._cards)
        frequency: dict[str, int] = {}
        for _, terms in self._cards:
            for term in terms:
                frequency[term] = frequency.get(term, 0) + 1
        self._idf = {t: math.log(1 + (total - n + 0.5) / (n + 0.5)) for t, n in frequency.items()}

    def scores(self, question: str, stopwords: Iterable[str] = ()) -> dict[str, float]:
        """Each matching document's score divided by the best one's (1.0 for the best); empty when no card
        shares a word with the question or there is only one document to choose from."""
        if len(self._cards) < 2:
            return {}
        stop = set(stopwords) | LEGAL_FORMS
        words = (card_terms(name_words(question)) | spelled_quarters(question)) - stop
        shorts = self._short_forms(question, stop)
        # A word that begins a glued name must itself be a name: "America" begins AMERICANTIMBERWORKS, but
        # every filing that sells in North America says it.
        begun = {short: self._begun(short) for short in shorts}  # short → card → the glued words it begins
        beginnings = [short.lower() for short in shorts if begun[short]]
        names = self._rare_in_texts(beginnings) if beginnings else set()
        # ... and end where a word begins: ZEM|RESORTS, VESKO|CO, but not AMERICA|NTIMBERWORKS.
        rests = {
            _rest(word, short.lower())
            for short in shorts
            if short.lower() in names
            for glued in begun[short].values()
            for word in glued
        }
        words_in_texts = self._in_any_text(sorted(rests - LEGAL_FORMS)) | (rests & LEGAL_FORMS)
        spelled: dict[int, set[str]] = {}  # card → its words a short form of the question spells
        for short in shorts:
            low = short.lower()
            for card in set().union(*(self._by_initials.get((low[0], letter), ()) for letter in set(low[1:]))):
                spelled.setdefault(card, set()).update(abbreviated_words(short, self._words[card]))
            if low in names:
                for card, glued in begun[short].items():
                    spelled.setdefault(card, set()).update(w for w in glued if _rest(w, low) in words_in_texts)
        abbreviates = any(spelled.values())  # a short form in the question spells some card's words
        sharing = set(spelled).union(*(self._cards_with.get(word, ()) for word in words))
        raw: dict[str, float] = {}
        for card in sorted(sharing):  # in the cards' order
            doc_id, terms = self._cards[card]
            raw[doc_id] = sum(self._idf[t] for t in sorted((words & terms) | spelled.get(card, set())))  # one order
        best = max(raw.values(), default=0.0)
        if best <= 0 or not (abbreviates or self._names_a_document(question)):
            return {}
        return {doc_id: score / best for doc_id, score in raw.items() if score > 0}

    def _begun(self, short: str) -> dict[int, set[str]]:
        """card → the glued capitals words of its card that `short` begins and does not spell whole."""
        begun: dict[int, set[str]] = {}
        for word in begun_words(short, self._glued):
            for card in self._glued[word]:
                begun.setdefault(card, set()).add(word)
        return begun

    def _names_a_document(self, question: str) -> bool:
        """Whether the question holds a name: words of a card, side by side in the question
        ("Caldera Marine", "Halvard", "2018"), that few documents' texts hold (at most a quarter of them).
        "French" is on the card of "French and Corsair War", but a question about "the French colony" of
        Carlsonville does not name that article: a dozen articles say "French"."""
        if self._text_frequency is None:
            return True
        phrases = self._card_phrases(question)
        if not phrases:
            return False
        if self._rare_in_texts(phrases):
            return True
        # Other companies' filings name a bank or a customer ("Velmont Crest Bank, as agent"), but a question
        # that also names the period of that company's filing ("Velmont … the first quarter of 2021") names it.
        words = {word for phrase in phrases for word in phrase.split()}
        periods = {word for word in words if YEAR.fullmatch(word) or _QUARTER.fullmatch(word)}
        periods |= spelled_quarters(question)
        names = words - periods
        return any(terms & periods and terms & names for _, terms in self._cards)

    def _rare_in_texts(self, phrases: list[str]) -> set[str]:
        """The phrases that the texts of at most a quarter of the documents hold."""
        rare_enough = max(1, len(self._cards) // 4)
        return {phrase for phrase, n in self._texts_holding(phrases).items() if n <= rare_enough}

    def _in_any_text(self, words: list[str]) -> set[str]:
        """The words that some document's text holds."""
        return {word for word, n in self._texts_holding(words).items() if n > 0}

    def _texts_holding(self, phrases: list[str]) -> dict[str, int]:
        """How many documents' texts hold each phrase (1 each when the router has no text frequencies)."""
        if self._text_frequency is None:
            return dict.fromkeys(phrases, 1)
        unknown = [phrase for phrase in phrases if phrase not in self._in_texts]
        if unknown:
            self._in_texts.update(self._text_frequency(unknown))
        return {phrase: self._in_texts[phrase] for phrase in phrases}

    def _card_phrases(self, question: str) -> list[str]:
        """Runs of consecutive question words that name (see `name_words`) and are on some card."""
        eligible = set(WORD.findall(name_words(question).lower())) - LEGAL_FORMS
        phrases: list[str] = []
        run: list[str] = []
        for word in [*WORD.findall(question.lower()), ""]:
            on_card = sorted(card_terms(word) & self._vocabulary) if word in eligible else []
            if on_card:  # the word, or the year or quarter inside it ("FY2022" → 2022)
                run.append(word if word in self._vocabulary else on_card[0])
                continue
            if run:
                phrases.append(" ".join(run))
                run = []
        return list(dict.fromkeys(phrases))

    def _short_forms(self, question: str, stopwords: set[str]) -> list[str]:
        """The question's capitalised words that could be short forms: no card holds them as they are."""
        low, high = SHORT_FORM_LETTERS
        return [
            word
            for word in _SHORT_FORM.findall(question)
            if low <= len(word) <= high and word.lower() not in self._vocabulary and word.lower() not in stopwords
        ]

    def named(self, question: str, stopwords: Iterable[str] = (), limit: int = 3) -> list[tuple[str, float]]:
        """The documents the question names (score ≥ NAMED_SHARE of the best), best first, at most `limit`;
        none when the words fit most documents alike (they name no one document)."""
        ranked = sorted(self.scores(question, stopwords).items(), key=lambda pair: -pair[1])
        named = [(doc_id, score) for doc_id, score in ranked if score >= NAMED_SHARE]
        if len(named) > max(1, len(self._cards) // 2):
            return []
        return named[:limit]
