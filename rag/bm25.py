"""BM25 over the keyword table (SQLite FTS5), scored in memory so that it stays fast at any size.

FTS5 scores every row that contains any query term: with 100,000 passages, an OR-query of everyday words
touches tens of thousands of rows and takes 30-200 ms. This index holds the same postings as numpy arrays
and scores them in a millisecond or two, with FTS5's own tokenizer (each distinct word is stemmed by
SQLite itself) and FTS5's BM25 formula, so it ranks as FTS5 would.

FTS5 stays the persisted, transactional truth. The index mirrors the rows of ready documents only and
catches up whenever the keyword generation (bumped in the same transaction as every change to the set
of ready documents, by any process) has moved, so it can never show a half-indexed or deleted document.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

K1 = 1.2  # FTS5's bm25() defaults
B = 0.75
GENERATION_KEY = "keyword_generation"
MAX_SEGMENTS = 8  # merged into one beyond this, or when half the rows are deleted
_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps: letters and digits
_SQL_BATCH = 500  # bound parameters per IN (...) list
_BUILD_BATCH = 10_000  # rows tokenized at a time (one segment each): bounds the memory of a first build
_STEMMER = "bm25_stemmer"


@dataclass(frozen=True)
class _Segment:
    """Postings of a set of rows, grouped by term (CSR): rows[starts[i]:starts[i+1]] contain term_ids[i]."""

    term_ids: np.ndarray
    starts: np.ndarray
    rows: np.ndarray
    tfs: np.ndarray

    @classmethod
    def from_triples(cls, term_ids: np.ndarray, rows: np.ndarray, tfs: np.ndarray) -> _Segment:
        order = np.argsort(term_ids, kind="stable")
        terms, counts = np.unique(term_ids[order], return_counts=True)
        starts = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        return cls(terms, starts, rows[order].astype(np.int32), tfs[order].astype(np.float32))

    def postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        i = int(np.searchsorted(self.term_ids, term_id))
        if i == len(self.term_ids) or self.term_ids[i] != term_id:
            return _EMPTY_ROWS, _EMPTY_TFS
        lo, hi = self.starts[i], self.starts[i + 1]
        return self.rows[lo:hi], self.tfs[lo:hi]

    def triples(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.repeat(self.term_ids, np.diff(self.starts)), self.rows, self.tfs


_EMPTY_ROWS = np.zeros(0, dtype=np.int32)
_EMPTY_TFS = np.zeros(0, dtype=np.float32)


class KeywordIndex:
    """In-memory BM25 over the FTS5 table `chunk_text` of the given connection (the caller serialises use)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._generation: str | None = None
        self._term_of_word: dict[str, int] = {}  # lower-cased word → term id (-1: no token)
        self._terms: dict[str, int] = {}  # stemmed term → term id
        self._segments: list[_Segment] = []
        self._chunk_id = np.zeros(0, dtype=object)  # per row: the chunk's id
        self._doc = np.zeros(0, dtype=np.int32)  # per row: the document's number
        self._length = np.zeros(0, dtype=np.float32)  # per row: tokens in the passage
        self._alive = np.zeros(0, dtype=bool)
        self._doc_numbers: dict[str, int] = {}
        self._doc_rows: dict[str, np.ndarray] = {}  # version key → rows
        self._stemmer_ready = False

    # -- queries ----------------------------------------------------------------------------------

    def search(self, words: Sequence[str], k: int, doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the k best rows of ready documents matching any word, best first."""
        self.sync()
        alive = self._alive
        live_rows = int(alive.sum())
        if k <= 0 or live_rows == 0:
            return []
        avg_length = float(self._length[alive].mean()) or 1.0
        scores = np.zeros(len(alive), dtype=np.float32)
        for term_id in self._query_term_ids(words):
            rows, tfs = self._live_postings(term_id)
            if len(rows) == 0:
                continue
            idf = math.log((live_rows - len(rows) + 0.5) / (len(rows) + 0.5))
            idf = idf if idf > 0 else 1e-6  # as FTS5: a term in most rows still counts a little
            norm = K1 * (1 - B + B * self._length[rows] / avg_length)
            scores[rows] += idf * tfs * (K1 + 1) / (tfs + norm)
        if doc_ids is not None:
            wanted = [self._doc_numbers[d] for d in doc_ids if d in self._doc_numbers]
            scores[~np.isin(self._doc, wanted)] = 0
        hits = np.flatnonzero(scores > 0)
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(str(self._chunk_id[r]), float(scores[r])) for r in hits]

    def coverage(self, words: Sequence[str], texts: Sequence[str]) -> list[float]:
        """For each text, the share of the query's weight that it contains, each term weighing its inverse
        document frequency in this knowledge base: a rare name the text shares counts far more than an
        everyday word, and a term the knowledge base never mentions weighs most (and is never matched)."""
        self.sync()
        live_rows = int(self._alive.sum())
        weights = {}
        for term_id in self._query_term_ids(words):
            found = len(self._live_postings(term_id)[0])
            weights[term_id] = max(math.log((live_rows - found + 0.5) / (found + 0.5)), 0.0)
        total = sum(weights.values())
        if total == 0:
            return [0.0] * len(texts)
        shares = []
        for text in texts:
            present = set(self._term_ids(_WORD.findall(text.lower())))
            shares.append(sum(w for t, w in weights.items() if t in present) / total)
        return shares

    def _query_term_ids(self, words: Sequence[str]) -> list[int]:
        """The distinct terms of a query that FTS5's tokenizer keeps."""
        return list(dict.fromkeys(t for t in self._term_ids(words) if t >= 0))

    def _live_postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ready documents containing the term, and its frequency in each."""
        parts = [segment.postings(term_id) for segment in self._segments]
        if not parts:
            return _EMPTY_ROWS, _EMPTY_TFS
        rows = np.concatenate([p[0] for p in parts])
        tfs = np.concatenate([p[1] for p in parts])
        live = self._alive[rows]
        return rows[live], tfs[live]

    # -- keeping up with FTS5 ---------------------------------------------------------------------

    def sync(self) -> None:
        """Catch up with the ready documents of the database, if anything changed since last time."""
        generation = self._read_generation()
        if generation == self._generation and generation is not None:
            return
        ready = {
            _version(doc_id, ingested_at, chunks): doc_id
            for doc_id, ingested_at, chunks in self._db.execute(
                "SELECT doc_id, ingested_at, chunks FROM documents WHERE status = 'ready'"
            )
        }
        for version in set(self._doc_rows) - set(ready):
            self._alive[self._doc_rows.pop(version)] = False
        added = [version for version in ready if version not in self._doc_rows]
        if added:
            self._add_documents({ready[v]: v for v in added})
        dead = len(self._alive) - int(self._alive.sum())
        if len(self._segments) > MAX_SEGMENTS or dead > len(self._alive) // 2:
            self._compact()
        self._generation = generation

    def _read_generation(self) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
        return str(row[0]) if row else None

    def _add_documents(self, versions: dict[str, str]) -> None:
        chunk_ids: list[str] = []
        docs: list[int] = []
        texts: list[str] = []
        doc_ids = list(versions)
        for start in range(0, len(doc_ids), _SQL_BATCH):
            batch = doc_ids[start : start + _SQL_BATCH]
            rows = self._db.execute(
                f"SELECT chunk_id, doc_id, text FROM chunk_text WHERE doc_id IN ({', '.join('?' * len(batch))})"
                " ORDER BY rowid",
                batch,
            )
            for chunk_id, doc_id, text in rows:
                chunk_ids.append(chunk_id)
                docs.append(self._doc_numbers.setdefault(doc_id, len(self._doc_numbers)))
                texts.append(text)
        first = len(self._alive)
        lengths = [
            self._index_rows(texts[start : start + _BUILD_BATCH], first + start)
            for start in range(0, len(texts), _BUILD_BATCH)
        ]
        doc_array = np.asarray(docs, dtype=np.int32)
        self._chunk_id = np.concatenate([self._chunk_id, np.asarray(chunk_ids, dtype=object)])
        self._doc = np.concatenate([self._doc, doc_array])
        self._length = np.concatenate([self._length, *lengths])
        self._alive = np.concatenate([self._alive, np.ones(len(texts), dtype=bool)])
        for doc_id, version in versions.items():
            number = self._doc_numbers.get(doc_id)
            self._doc_rows[version] = first + np.flatnonzero(doc_array == number) if number is not None else _EMPTY_ROWS

    def _index_rows(self, texts: Sequence[str], first: int) -> np.ndarray:
        """One segment for these rows (numbered from `first`); returns their lengths in tokens."""
        words = [_WORD.findall(text.lower()) for text in texts]
        self._learn(w for row in words for w in row)
        term_ids = np.fromiter(
            (self._term_of_word[w] for row in words for w in row), dtype=np.int64, count=sum(map(len, words))
        )
        row_of = np.repeat(np.arange(first, first + len(texts), dtype=np.int64), [len(row) for row in words])
        keep = term_ids >= 0
        term_ids, row_of = term_ids[keep], row_of[keep]
        # One (term, row) pair per distinct term of a row, with its count: the term frequency.
        width = max(len(self._terms), 1)
        pairs, tfs = np.unique(row_of * width + term_ids, return_counts=True)
        if len(pairs):
            self._segments.append(_Segment.from_triples(pairs % width, pairs // width, tfs))
        return np.bincount(row_of - first, minlength=len(texts)).astype(np.float32)

    def _compact(self) -> None:
        """Drop deleted rows and merge the segments into one."""
        keep = self._alive
        new_row = np.cumsum(keep) - 1
        triples = [segment.triples() for segment in self._segments]
        terms = np.concatenate([t[0] for t in triples]) if triples else _EMPTY_ROWS
        rows = np.concatenate([t[1] for t in triples]) if triples else _EMPTY_ROWS
        tfs = np.concatenate([t[2] for t in triples]) if triples else _EMPTY_TFS
        live = keep[rows]
        self._segments = [_Segment.from_triples(terms[live], new_row[rows[live]], tfs[live])] if live.any() else []
        self._chunk_id, self._doc, self._length = self._chunk_id[keep], self._doc[keep], self._length[keep]
        self._alive = np.ones(int(keep.sum()), dtype=bool)
        self._doc_rows = {version: new_row[rows_of] for version, rows_of in self._doc_rows.items()}

    # -- FTS5's tokenizer, one distinct word at a time --------------------------------------------

    def _term_ids(self, words: Iterable[str]) -> list[int]:
        lowered = [w for word in words for w in _WORD.findall(word.lower())]
        self._learn(lowered)
        return [self._term_of_word[w] for w in lowered]

    def _learn(self, words: Iterable[str]) -> None:
        """Stem every word not seen before, by FTS5 itself (a temporary table with the same tokenizer)."""
        new = list(dict.fromkeys(w for w in words if w not in self._term_of_word))
        if not new:
            return
        if not self._stemmer_ready:
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_STEMMER} USING fts5("
                "w, tokenize = 'porter unicode61 remove_diacritics 2')"
            )
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_STEMMER}_terms USING fts5vocab(temp, {_STEMMER}, instance)"
            )
            self._stemmer_ready = True
        self._db.execute("SAVEPOINT stemming")
        try:
            self._db.executemany(f"INSERT INTO temp.{_STEMMER}(rowid, w) VALUES (?, ?)", enumerate(new))
            stems = dict(self._db.execute(f"SELECT doc, term FROM temp.{_STEMMER}_terms WHERE offset = 0"))
            self._db.execute(f"DELETE FROM temp.{_STEMMER}")
        finally:
            self._db.execute("RELEASE stemming")
        for i, word in enumerate(new):
            stem = stems.get(i)
            self._term_of_word[word] = -1 if stem is None else self._terms.setdefault(stem, len(self._terms))


def _version(doc_id: str, ingested_at: str, chunks: int) -> str:
    """A document's rows are re-read when it is re-indexed, even under the same id."""
    return f"{doc_id}|{ingested_at}|{chunks}"
