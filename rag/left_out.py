"""What a note or an answer leaves out, found without a model call.

A question for every item (a list, a count) must lose none, and a small model loses some twice over: reading a
part, it lists two of a room's three items or misspells one; combining thirty notes, it keeps a few and loops
on others. `left_out` finds the lines of a part that its note does not mention (rag/whole_document.py then
reads them again), and `not_in_answer` what the notes name that the combined answer dropped (listed after it).
A line is mentioned by its names, word for word ("Penrose compass", not "Penrose barometer"), or, without
names, by one of its own words.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from rag.answer_line import candidate_lines
from rag.keyword_index import STOPWORDS, query_terms

# Questions that ask for every item (a list, a count): a note that leaves one out makes the answer wrong.
_EVERY_ITEM = re.compile(r"\b(?:list|lists|listed|every|all|each|how many|count|enumerate|name the)\b", re.IGNORECASE)
# Words of such a question that say "all of them" rather than what the items are (as `_words` gives them).
_ENUMERATING_WORDS = frozenset({"every", "count", "enumerate", "list", "listed", "mentioned"})
_WORD = re.compile(r"[^\W_]+")
MAX_NAME_WORDS = 6  # a name's words looked for in a row (a longer run of capitals is cut)
_SENTENCE_START = re.compile(r"[.!?]\s+$")  # just before a word that opens a sentence
_CLAUSE = re.compile(r"[,;]\s*|\s+(?:and|or)\s+")  # where a sentence that lists items goes on to the next
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")
REPEATED_SHARE = 0.4  # a word in this share of a part's lines (and in two or more) is the part's, not a line's


def asks_for_every_item(question: str) -> bool:
    """Does the question ask for every item (a list, a count), where a note must leave none out?"""
    return bool(_EVERY_ITEM.search(question))


def _base(word: str) -> str:
    """A word without its plural ending, so that "instruments" in a note matches "instrument" in the text."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _words(text: str) -> set[str]:
    return {_base(w) for w in query_terms(text)}


def not_in_answer(question: str, notes: Sequence[tuple[str, str]], answer: str) -> list[tuple[str, str]]:
    """What the notes ((label, text) of each) name and the answer leaves out, with the label of the first note
    that names it.

    A note's line is read clause by clause (a note may list items in one sentence: "the X telescope, the Y
    compass and …"): a clause the answer does not mention (`_Text.mentions`: half of its names, word for word)
    gives its missing names; a line with no names at all is looked for by its words and given whole. A small
    model combining thirty items keeps some and loops on others; these are what it dropped."""
    asked = {w for w in _words(question) if w not in _ENUMERATING_WORDS}
    said = _Text(answer)
    dropped: dict[str, tuple[str, str]] = {}  # each name once, with the first part that names it
    for label, note in notes:
        for raw in note.split("\n"):
            line = _BULLET.sub("", raw).strip()
            own = _words(line) - asked
            if not line or line.endswith(":") or not any(not w.isdigit() for w in own):
                continue  # a note's own framing ("The text says:") or a bare number
            missing: list[str] = []
            named = False
            for clause in _CLAUSE.split(line):
                names = _name_phrases(clause, own, skip_first=False)
                named = named or bool(names)
                if names and not said.mentions(names, own):
                    missing += [text for key, text in names.items() if key not in said.phrases]
            if not named and not own & said.words:
                missing = [line]
            for text in missing:
                dropped.setdefault(text.casefold(), (label, text))
    return list(dropped.values())


class _Text:
    """A note or an answer, as the lines it may mention look for themselves in it."""

    def __init__(self, text: str) -> None:
        self.words = _words(text)
        sequence = [_base(w.casefold()) for w in _WORD.findall(text)]
        self.phrases = {
            tuple(sequence[i : i + n]) for n in range(1, MAX_NAME_WORDS + 1) for i in range(len(sequence) - n + 1)
        }

    def mentions(self, names: Collection[tuple[str, ...]], own: set[str]) -> bool:
        """At least half of the line's names, word for word ("Northe spectroscope" is not the Northey one, nor
        "Penrose barometer" the Penrose compass), or, for a line without names, one of its own words."""
        if names:
            return 2 * sum(name in self.phrases for name in names) >= len(names)
        return bool(own & self.words)


def _name_phrases(line: str, own: set[str], skip_first: bool) -> dict[tuple[str, ...], str]:
    """The names in a line, as `_words` spells their words, with their text: each run of capitalised words
    (beyond stop words) with the lower-case word right after it ("Penrose compass"), where the run holds one of
    the line's own words. A word that opens a sentence inside the line is no name (its capital is the
    sentence's), nor the line's first word with `skip_first`."""
    tokens = list(_WORD.finditer(line))[1 if skip_first else 0 :]
    phrases: dict[tuple[str, ...], str] = {}
    run: list[re.Match[str]] = []

    def close() -> None:
        kept = run[:MAX_NAME_WORDS]
        key = tuple(_base(t.group().casefold()) for t in kept)
        if own & set(key):
            phrases.setdefault(key, line[kept[0].start() : kept[-1].end()])
        run.clear()

    for i, token in enumerate(tokens):
        word = token.group()
        opens_sentence = not run and _SENTENCE_START.search(line, 0, token.start()) is not None
        if word[0].isupper() and word.casefold() not in STOPWORDS and not opens_sentence:
            run.append(token)
            continue
        if run:
            if not line[tokens[i - 1].end() : token.start()].strip() and word.islower() and word not in STOPWORDS:
                run.append(token)
            close()
    if run:
        close()
    return phrases


def left_out(question: str, part_text: str, note: str) -> list[str]:
    """The lines of a part (sentences, table rows) that bear on the question and that its note does not mention.

    A line's own words are those that are neither the question's nor repeated across the part's lines (in "In
    this room stands the Harwick barometer", the part repeats "room" and "stands": the line's own words are
    "harwick" and "barometer"). The note mentions a line as `_Text.mentions` says (its names word for word, or
    one of its own words); a line whose own words are none, or numbers only, counts as mentioned.
    A line bears on the question when it holds one of the question's words (beyond "every", "all", …), or when
    it shares two words with a line the note mentions: the items of a list are written alike, and the one left
    out need not repeat the question's words."""
    asked = {w for w in _words(question) if w not in _ENUMERATING_WORDS}
    lines = [part_text[s:e] for s, e in candidate_lines(part_text)]
    if not lines:
        return []
    words = [_words(line) for line in lines]
    seen_in: dict[str, int] = {}
    for found in words:
        for w in found:
            seen_in[w] = seen_in.get(w, 0) + 1
    repeated = {w for w, n in seen_in.items() if n >= 2 and n >= REPEATED_SHARE * len(lines)}
    noted = _Text(note)

    def mentioned(line: str, own: set[str]) -> bool:
        if not any(not w.isdigit() for w in own):  # a number alone ("Room 1") names no item
            return True
        return noted.mentions(_name_phrases(line, own, skip_first=True), own)

    owns = [found - asked - repeated for found in words]
    in_note = [mentioned(line, own) for line, own in zip(lines, owns, strict=True)]
    alike_to = [found for found, own, yes in zip(words, owns, in_note, strict=True) if yes and own & noted.words]
    missed = []
    for line, found, yes in zip(lines, words, in_note, strict=True):
        if not yes and (found & asked or any(len(found & other) >= 2 for other in alike_to)):
            missed.append(line)
    return missed
