"""The line that answers: in each source, the sentence or table row that best matches the question.

No model call: each candidate line is scored by the shipped encoder's cosine with the question plus its share
of the question's keyword weight (rare words weigh more, as the keyword index weighs them), so a table row
that names the asked-for item ("iPhone 39,669 40,665") wins even where the encoder sees little likeness.
Shown first in the source's one-line summary, so a figure can be checked without opening anything, and
marked in the opened source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.conversations import SavedSource
from rag.embeddings import Embedder
from rag.keyword_index import query_terms
from rag.loaders.layout import classify_line, is_data_row

if TYPE_CHECKING:
    from rag.retrieval import RetrievalResult
    from rag.schema import RetrievedChunk
    from rag.store import Store

# A line's keyword share counts this much beside its cosine: measured on the tests' questions, the row that
# holds the figure asked for has a cosine barely above its neighbours' (0.02-0.05) and a keyword share
# 0.3-0.6 higher.
KEYWORD_WEIGHT = 0.6
MIN_ALNUM = 3  # a candidate line needs this many letters or digits
MAX_LINE_CHARS = 400  # a longer "sentence" (no full stops) is cut into pieces of about this size
MIN_TABLE_ROWS = 2  # rows with figures that make a passage a table
_SENTENCE_LIKE = re.compile(r"^(?:\S+\s+){5,}.*[.!?]$")  # six words or more, ending as a sentence does
_HEADING = re.compile(r"^\s*#{1,6}\s")  # a Markdown heading line (Word and HTML headings are given so)
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"“(\[]?[A-Z0-9])")

Coverage = Callable[[Sequence[str]], list[float]]
"""The share of the question's keyword weight each text holds (`Store.keyword_coverage` for the question)."""


@dataclass(frozen=True)
class AnswerLine:
    text: str
    start: int  # characters [start, end) of the passage
    end: int
    score: float


def candidate_lines(passage: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of prose and each table row of a passage, in order. In a table, the lines
    above its rows name its columns and title (periods, "Three Months Ended"), not an answer: only its rows
    and whole sentences count there."""
    lines = passage.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    rows = [bool(line.strip()) and is_data_row(classify_line(line)) for line in lines]
    table = sum(rows) >= MIN_TABLE_ROWS
    spans: list[tuple[int, int]] = []
    prose_start: int | None = None
    for line, start, row in zip(lines, starts, rows, strict=True):
        end = start + len(line)
        if table and not row:
            if _SENTENCE_LIKE.search(line.strip()):
                spans.extend(_sentences(passage, start, end))
            continue
        if row or not line.strip() or _HEADING.match(line):  # a heading bounds prose and answers nothing
            if prose_start is not None:
                spans.extend(_sentences(passage, prose_start, start))
                prose_start = None
            if row:
                spans.append((start, end))
        elif prose_start is None:
            prose_start = start
    if prose_start is not None:
        spans.extend(_sentences(passage, prose_start, len(passage)))
    return [(s, e) for s, e in spans if sum(ch.isalnum() for ch in passage[s:e]) >= MIN_ALNUM]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of text[start:end] (lines of prose joined: a sentence may wrap), trimmed of spaces."""
    spans = []
    at = start
    for match in _SENTENCE_END.finditer(text, start, end):
        spans.append((at, match.start()))
        at = match.end()
    spans.append((at, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        while e - s > MAX_LINE_CHARS:  # a list or a run-on line: in pieces that end at a space
            cut = text.rfind(" ", s, s + MAX_LINE_CHARS)
            cut = cut if cut > s else s + MAX_LINE_CHARS
            out.append((s, cut))
            s = cut + 1
        if e > s:
            out.append((s, e))
    return out


def answer_lines(
    question: str, passages: Sequence[str], embedder: Embedder, coverage: Coverage | None = None
) -> list[AnswerLine | None]:
    """The best line of each passage for the question (None for a passage with no line worth marking), in
    one batch through the encoder."""
    spans = [candidate_lines(p) for p in passages]
    texts = [p[s:e] for p, found in zip(passages, spans, strict=True) for s, e in found]
    if not texts or not question.strip():
        return [None for _ in passages]
    query = embedder.embed_query(question)
    vectors = embedder.embed_documents(texts)
    cosines = np.asarray(vectors, dtype=np.float32) @ np.asarray(query, dtype=np.float32)
    shares = coverage(texts) if coverage is not None else [0.0] * len(texts)
    best: list[AnswerLine | None] = []
    at = 0
    for passage, found in zip(passages, spans, strict=True):
        scored = [
            AnswerLine(passage[s:e], s, e, float(cosines[at + k]) + KEYWORD_WEIGHT * shares[at + k])
            for k, (s, e) in enumerate(found)
        ]
        at += len(found)
        best.append(max(scored, key=lambda line: line.score) if scored else None)
    return best


def keyword_coverage(store: Store, question: str) -> Coverage:
    """The question's keyword shares as the knowledge base weighs its words (rarer words weigh more)."""
    terms = query_terms(question)
    return lambda texts: store.keyword_coverage(terms, texts)


# What each ranking stage's score is, as the sources under an answer name it.
RANKED_BY = {
    "candidates": "meaning and keywords fused",
    "focus": "meaning and keywords fused",
    "focus+": "meaning and keywords fused, raised for the document the question points to",
    "prefer": "meaning and keywords fused, with the profile's preference",
    "rerank": "meaning and keywords fused, then each passage's sentence closest to the question",
}


@dataclass(frozen=True)
class Ranking:
    """The score that put each passage in its place (chunk id → score) and what that score is."""

    scores: dict[str, float]
    stage: str  # the stage whose ranking it is ("" when retrieval ranked nothing)
    label: str  # in words, e.g. "meaning and keywords fused"


def ranking_scores(result: RetrievalResult) -> Ranking:
    """chunk id → the score that ranked it: the last ranking stage's (meaning and keywords fused, with the
    document-focus and profile boosts), not the cosine the passages carry."""
    ranked = [stage for stage in result.stages if stage.stage != "select"]
    if not ranked:
        return Ranking({}, "", "")
    last = ranked[-1]
    key = "focus+" if last.stage == "focus" and last.note else last.stage
    return Ranking(dict(last.ranking), last.stage, RANKED_BY.get(key, last.stage))


def checkable_sources(
    question: str,
    sources: Sequence[RetrievedChunk],
    ranking: Ranking | Mapping[str, float],
    embedder: Embedder | None,
    coverage: Coverage | None = None,
) -> list[SavedSource]:
    """The sources as an answer saves them, in the order the model read them: each with the score that ranked
    it (and what that score is) and the line that answers (none without an `embedder`)."""
    scores, label = (ranking.scores, ranking.label) if isinstance(ranking, Ranking) else (ranking, "")
    texts = [s.chunk.text for s in sources]
    lines = answer_lines(question, texts, embedder, coverage) if embedder is not None else [None for _ in texts]
    return [
        replace(
            SavedSource.of(s),
            rank_score=scores.get(s.chunk.id),
            ranked_by=label if s.chunk.id in scores else "",
            line=line.text if line is not None else "",
        )
        for s, line in zip(sources, lines, strict=True)
    ]
