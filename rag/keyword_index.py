"""The keyword index: query text → terms, the FTS5 table of chunk texts, and BM25 scored in memory.

One owner for the whole keyword contract:

- **terms**: a question is mostly function words ("what", "was", "the"); they match nearly every chunk, cost
  time and carry no evidence, so `query_terms` drops them (STOPWORDS) before searching.
- **the table**: `chunk_text`, an SQLite FTS5 table in the registry's database (rag/store.py), so a
  document's registry status also governs its keyword rows: both are visible only once the document is
  `ready`, and purged together. FTS5 is the persisted, transactional truth; its tokenizer (TOKENIZER) is
  declared here once, for the table and for the stemming of queries.
- **the generation**: a counter in the registry's `meta` table, bumped in the same transaction as every
  change to the set of ready documents (by any process), so that every process's in-memory index knows
  when to catch up.
- **BM25 in memory**: FTS5 scores every row that contains any query term; with 100,000 passages an
  OR-query of everyday words touches tens of thousands of rows and takes 30-200 ms. `KeywordIndex` holds
  the same postings as numpy arrays and scores them in a millisecond or two, with FTS5's own tokenizer
  (each distinct word is stemmed by SQLite itself) and FTS5's BM25 formula, so it ranks as FTS5 would. It
  mirrors the rows of ready documents only, so it never shows a half-indexed or deleted document.

The Store owns the transactions and the locks: the writing methods here run inside the caller's
transaction and never commit.
"""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.schema import HEADER_SEPARATOR, Chunk

# -- the persisted index (SQLite FTS5) ------------------------------------------------------------------

TABLE = "chunk_text"
TOKENIZER = "porter unicode61 remove_diacritics 2"
_TABLE_DDL = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5(
    text, chunk_id UNINDEXED, doc_id UNINDEXED, source UNINDEXED, page UNINDEXED, position UNINDEXED,
    tokenize = '{TOKENIZER}'
)
"""
NO_PAGE = -1  # the page of a chunk that has none (Chroma's metadata cannot hold None; the rows say the same)
GENERATION_KEY = "keyword_generation"  # in the registry's `meta` table
# 2: rows hold the chunk header with the text (document title, file, heading, page); rebuilt on open.
VERSION = "2"
VERSION_KEY = "keyword_index"  # in `meta`: the VERSION the rows were written by

# -- query terms ------------------------------------------------------------------------------------------

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
    many called named known kind type according
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
WORD = re.compile(r"[^\W_]+")  # a word as FTS5's unicode61 tokenizer splits text: letters and digits
YEAR = re.compile(r"(?:19|20)\d\d")  # a year inside a code: FY2018, 2023Q4
_QUERY_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The distinct content words of a query, lower-cased, in order of appearance; a year inside a code
    ("FY2018") is searched for on its own too, as documents write "fiscal 2018"."""
    seen: dict[str, None] = {}
    for word in _QUERY_WORD.findall(text.casefold()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        seen.setdefault(word, None)
        if not (word.isalpha() or word.isdigit()):
            for year in YEAR.findall(word):
                seen.setdefault(year, None)
    return list(seen)


# -- BM25 in memory -----------------------------------------------------------------------------------------

K1 = 1.2  # FTS5's bm25() defaults
B = 0.75
MAX_SEGMENTS = 8  # merged into one beyond this, or when half the rows are deleted
_SQL_BATCH = 500  # bound parameters per IN (...) list
_BUILD_BATCH = 10_000  # rows tokenized at a time (one segment each): bounds the memory of a first build
_STEMMER = "bm25_stemmer"


def create_table(db: sqlite3.Connection) -> None:
    """The FTS5 table (for the registry's migrations: inside their transaction)."""
    db.execute(_TABLE_DDL)


def table_exists(db: sqlite3.Connection) -> bool:
    """Is the FTS5 table there? (A damaged registry may have lost it: `rag check --repair` fills it again.)"""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)).fetchone() is not None


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


@dataclass(frozen=True, eq=False)
class KeywordQuery:
    """One query's terms scored against one state of the index (synced and stemmed once): rank it any number
    of times (the whole knowledge base, then the documents a question names) without touching the database.
    Immutable: usable from any thread."""

    term_ids: tuple[int, ...]  # the distinct terms FTS5's tokenizer keeps, in order
    weights: Mapping[int, float]  # term → its inverse document frequency (≥ 0), for coverage
    scores: np.ndarray  # row → BM25 score of the query (0: no term)
    chunk_ids: np.ndarray  # row → chunk id
    docs: np.ndarray  # row → document number
    doc_numbers: Mapping[str, int]  # doc_id → document number (only ever grows)
    live_rows: int
    postings: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # per term: its live rows and its count in each
    lengths: np.ndarray = field(default_factory=lambda: _EMPTY_TFS)  # row → tokens in the passage
    alive: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # row → live at query time
    row_of: Mapping[str, int] = field(default_factory=dict)  # live chunk id → its row

    def coverage(self, chunk_ids: Sequence[str]) -> list[float] | None:
        """Each passage's share of the query's weight, as `KeywordIndex.coverage` measures it on its text, from
        the postings (the rows hold the same text, tokenized once): no passage is read or tokenized again. None
        when a passage is not among the live rows of this query (read since, or of a document not ready)."""
        rows = [self.row_of.get(cid, -1) for cid in chunk_ids]
        if any(row < 0 for row in rows):
            return None
        total = sum(self.weights.values())
        if total == 0:
            return [0.0] * len(rows)
        wanted = np.asarray(rows, dtype=np.int64)
        shares = np.zeros(len(rows), dtype=np.float64)
        for term_id, (term_rows, _) in zip(self.term_ids, self.postings, strict=True):
            weight = self.weights.get(term_id, 0.0)
            if weight > 0 and len(term_rows):
                # A term's rows ascend (`_live_postings`): a binary search each, where `np.isin` sorted the
                # rows of an everyday word again (3-8 ms a question at 100,000 passages).
                at = np.minimum(np.searchsorted(term_rows, wanted), len(term_rows) - 1)
                shares += weight * (term_rows[at] == wanted)
        return [float(share) / total for share in shares]

    def ranking(self, k: int, doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the k best rows of ready documents matching any term, best first."""
        if k <= 0 or self.live_rows == 0 or not self.term_ids or (doc_ids is not None and not doc_ids):
            return []
        scores = self.scores
        if doc_ids is None:
            hits = np.flatnonzero(scores > 0)
        else:  # only the documents' own rows looked at (a tenth of a millisecond, not a copy of every score)
            rows = np.sort(np.concatenate([self._rows_of(d) for d in dict.fromkeys(doc_ids)]))
            hits = rows[scores[rows] > 0]
        if len(hits) > k:
            hits = hits[np.argpartition(-scores[hits], k - 1)[:k]]
        hits = hits[np.argsort(-scores[hits], kind="stable")]
        return [(str(self.chunk_ids[r]), float(scores[r])) for r in hits]

    def passages_in(self, doc_id: str) -> int:
        """How many passages the document has (live at query time)."""
        return len(self._rows_of(doc_id))

    def _rows_of(self, doc_id: str) -> np.ndarray:
        number = self.doc_numbers.get(doc_id)
        return _EMPTY_ROWS if number is None else np.flatnonzero((self.docs == number) & self.alive)

    def ranking_within(self, doc_id: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the k best passages of one document, scored with the document as the
        collection: a word's rarity and a passage's length are measured among its own passages. The words that
        say what the document is about (its parties, its subject) occur in most of its passages and do not count
        there (unlike FTS5, which gives them a token weight), so what the question asks of it ("the date",
        "notice", "renewal") ranks; a passage holding none of the other words is not ranked."""
        number = self.doc_numbers.get(doc_id)
        if k <= 0 or number is None or not self.postings:
            return []
        members = self._rows_of(doc_id)
        live: list[tuple[np.ndarray, np.ndarray]] = []
        for rows, tfs in self.postings:  # live rows only, ascending
            # The document's rows found in the term's by binary search: a document's few hundred passages, where
            # looking up the document of every row holding an everyday word read most of the collection.
            at = np.minimum(np.searchsorted(rows, members), max(len(rows) - 1, 0))
            inside = at[rows[at] == members] if len(rows) else at[:0]
            live.append((rows[inside], tfs[inside]))
        total = len(members)
        if total == 0 or not any(len(rows) for rows, _ in live):
            return []
        avg_length = float(self.lengths[members].mean()) or 1.0
        scores: dict[int, float] = {}
        for rows, tfs in live:
            if len(rows) == 0:
                continue
            idf = math.log((total - len(rows) + 0.5) / (len(rows) + 0.5))
            if idf <= 0:  # in most of its passages: within it, the word tells none of them apart
                continue
            norm = K1 * (1 - B + B * self.lengths[rows] / avg_length)
            for row, score in zip(rows.tolist(), (idf * tfs * (K1 + 1) / (tfs + norm)).tolist(), strict=True):
                scores[row] = scores.get(row, 0.0) + score
        best = sorted(scores.items(), key=lambda pair: -pair[1])[:k]
        return [(str(self.chunk_ids[r]), float(score)) for r, score in best]


class KeywordIndex:
    """The keyword index of one registry connection: its FTS5 rows, its generation, and BM25 in memory over
    the rows of ready documents. The caller serialises use and owns the transactions."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._generation: str | None = None
        self._term_of_word: dict[str, int] = {}  # lower-cased word → term id (-1: no token)
        self._terms: dict[str, int] = {}  # stemmed term → term id
        self._segments: list[_Segment] = []
        self._chunk_id = np.zeros(0, dtype=object)  # per row: the chunk's id
        self._doc = np.zeros(0, dtype=np.int32)  # per row: the document's number
        self._rowid = np.zeros(0, dtype=np.int64)  # per row: its rowid in FTS5
        self._by_rowid: tuple[np.ndarray, np.ndarray] | None = None  # live rows' rowids sorted, and their rows
        self._row_of: dict[str, int] | None = None  # live rows' chunk ids → row; a new dict after each change
        self._length = np.zeros(0, dtype=np.float32)  # per row: tokens in the passage
        self._alive = np.zeros(0, dtype=bool)
        self._doc_numbers: dict[str, int] = {}
        self._doc_rows: dict[str, np.ndarray] = {}  # version key → rows
        self._stemmer_ready = False

    # -- the persisted rows (inside the caller's write transaction) -------------------------------

    def insert(self, chunks: Sequence[Chunk]) -> None:
        """Rows for these chunks (not searched before their document is ready and the generation bumped)."""
        self._db.executemany(
            f"INSERT INTO {TABLE}(text, chunk_id, doc_id, source, page, position) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (c.indexed_text, c.id, c.doc_id, c.source, NO_PAGE if c.page is None else c.page, c.position)
                for c in chunks
            ],
        )

    def rows(self, doc_id: str) -> list[tuple[str, str, str, str, int, int]]:
        """A document's rows as stored: (text, chunk id, doc id, source, page, position), by position."""
        return [
            (str(t), str(c), str(d), str(s), int(p), int(n))
            for t, c, d, s, p, n in self._db.execute(
                f"SELECT text, chunk_id, doc_id, source, page, position FROM {TABLE} WHERE doc_id = ?"
                " ORDER BY position",
                (doc_id,),
            )
        ]

    def delete(self, doc_id: str) -> None:
        """Every row of a document."""
        self._db.execute(f"DELETE FROM {TABLE} WHERE doc_id = ?", (doc_id,))

    def bump_generation(self) -> None:
        """Tell every process's in-memory index that the set of ready documents changed."""
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, '1')"
            " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
            (GENERATION_KEY,),
        )

    def generation(self) -> str:
        """Changes whenever the set of ready documents does ("0" before the first change)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (GENERATION_KEY,)).fetchone()
        return str(row[0]) if row else "0"

    def is_current(self) -> bool:
        """Were the rows written by this version of the index? (Else `rebuild` them.)"""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
        return row is not None and str(row[0]) == VERSION

    def rebuild(self, documents: Iterable[Sequence[Chunk]]) -> None:
        """Every row again, from the chunks of each ready document (knowledge bases made before the index or
        by an older version of it)."""
        self._db.execute(f"DELETE FROM {TABLE}")
        for chunks in documents:
            self.insert(chunks)
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (VERSION_KEY, VERSION))
        self.bump_generation()

    def row_count(self) -> int:
        """Rows, including any of documents not yet ready."""
        return int(self._db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """A document's chunks as its rows hold them, in order. A row holds the chunk's header and text as they
        were embedded (`indexed_text`)."""
        rows = self._db.execute(
            f"SELECT chunk_id, doc_id, source, page, position, text FROM {TABLE} WHERE doc_id = ? ORDER BY position",
            (doc_id,),
        )
        return [_chunk_of_row(*row) for row in rows]

    def counts(self) -> dict[str, int]:
        """doc_id → rows under it, whatever the document's status."""
        return {str(d): int(n) for d, n in self._db.execute(f"SELECT doc_id, COUNT(*) FROM {TABLE} GROUP BY doc_id")}

    # -- queries ----------------------------------------------------------------------------------

    def query(self, words: Sequence[str]) -> KeywordQuery:
        """The query scored against the ready documents as they are now (caught up first)."""
        self.sync()
        alive = self._alive
        live_rows = int(alive.sum())
        avg_length = (float(self._length[alive].mean()) or 1.0) if live_rows else 1.0
        scores = np.zeros(len(alive), dtype=np.float32)
        term_ids = self._query_term_ids(words)
        weights: dict[int, float] = {}
        postings = []
        for term_id in term_ids:
            rows, tfs = self._live_postings(term_id)
            postings.append((rows, tfs))
            idf = math.log((live_rows - len(rows) + 0.5) / (len(rows) + 0.5))
            weights[term_id] = max(idf, 0.0)
            if len(rows) == 0:
                continue
            idf = idf if idf > 0 else 1e-6  # as FTS5: a term in most rows still counts a little
            norm = K1 * (1 - B + B * self._length[rows] / avg_length)
            scores[rows] += idf * tfs * (K1 + 1) / (tfs + norm)
        # Catching up replaces the arrays of chunk ids and documents, never changes them: this query keeps its own.
        return KeywordQuery(
            tuple(term_ids), weights, scores, self._chunk_id, self._doc, self._doc_numbers, live_rows,
            tuple(postings), self._length, alive.copy(), self._live_row_of(),
        )  # fmt: skip

    def passages(self, chunk_ids: Sequence[str]) -> dict[str, Chunk]:
        """The chunks of ready documents among these ids, as their rows hold them (`chunks_of`), each read by its
        rowid: a lookup in SQLite, where reading them back from Chroma costs a round trip through its
        segments. Ids not among the live rows are left out."""
        self.sync()
        row_of = self._live_row_of()
        rowids = [int(self._rowid[row_of[cid]]) for cid in dict.fromkeys(chunk_ids) if cid in row_of]
        found: dict[str, Chunk] = {}
        for start in range(0, len(rowids), _SQL_BATCH):
            batch = rowids[start : start + _SQL_BATCH]
            for row in self._db.execute(
                f"SELECT chunk_id, doc_id, source, page, position, text FROM {TABLE}"
                f" WHERE rowid IN ({', '.join('?' * len(batch))})",
                batch,
            ):
                chunk = _chunk_of_row(*row)
                found[chunk.id] = chunk
        return found

    def _live_row_of(self) -> dict[str, int]:
        """Live chunk id → its row (built once per change of the ready documents: 10 ms at 100,000 rows)."""
        if self._row_of is None:
            live = np.flatnonzero(self._alive)
            self._row_of = dict(zip(self._chunk_id[live].tolist(), live.tolist(), strict=True))
        return self._row_of

    def search(self, words: Sequence[str], k: int, doc_ids: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the k best rows of ready documents matching any word, best first."""
        return self.query(words).ranking(k, doc_ids)

    def document_frequency(self, phrases: Sequence[str]) -> dict[str, int]:
        """phrase → how many ready documents hold it, word for word (as FTS5 stems them), in their passages
        or headers. A phrase is words of letters and digits ("caldera marine", "2022").

        From the postings in memory: a word's documents exactly, and for a phrase of several words, the
        documents holding all of them; only a phrase whose words meet in some document is asked of FTS5, which
        knows their order (counting the documents of an everyday word in FTS5 took 0.1-0.2 s at 100,000 rows)."""
        self.sync()
        frequency = {}
        for phrase in phrases:
            words = WORD.findall(phrase.lower())
            terms = [t for t in self._term_ids(words) if t >= 0]
            holding = self._documents_holding(set(terms))
            if len(terms) < 2 or not holding:
                frequency[phrase] = holding
                continue
            # Only the matching rows' ids: reading each one's document from the table costs 3-4 times as much.
            found = self._db.execute(f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH ?", ('"' + " ".join(words) + '"',))
            rows = self._live_rows_of(np.fromiter((rowid for (rowid,) in found), dtype=np.int64))
            frequency[phrase] = len(np.unique(self._doc[rows]))
        return frequency

    def _live_rows_of(self, rowids: np.ndarray) -> np.ndarray:
        """The rows, live in memory, of these FTS5 rowids (rows of documents not ready are left out)."""
        if self._by_rowid is None:
            live = np.flatnonzero(self._alive)
            order = np.argsort(self._rowid[live])
            self._by_rowid = (self._rowid[live][order], live[order])
        known, rows = self._by_rowid
        at = np.minimum(np.searchsorted(known, rowids), max(len(known) - 1, 0))
        return rows[at[known[at] == rowids]] if len(known) else _EMPTY_ROWS

    def _documents_holding(self, terms: set[int]) -> int:
        """How many ready documents hold every one of the terms (0 for none)."""
        if not terms:
            return 0
        held = np.ones(len(self._doc_numbers), dtype=bool)
        for term_id in terms:
            rows, _ = self._live_postings(term_id)
            mine = np.zeros(len(self._doc_numbers), dtype=bool)
            mine[self._doc[rows]] = True
            held &= mine
        return int(held.sum())

    def coverage(self, query: KeywordQuery, texts: Sequence[str]) -> list[float]:
        """For each text, the share of the query's weight that it contains, each term weighing its inverse
        document frequency in this knowledge base: a rare name the text shares counts far more than an
        everyday word, and a term the knowledge base never mentions weighs most (and is never matched)."""
        total = sum(query.weights.values())
        if total == 0:
            return [0.0] * len(texts)
        shares = []
        for text in texts:
            present = set(self._term_ids(WORD.findall(text.lower())))
            shares.append(sum(w for t, w in query.weights.items() if t in present) / total)
        return shares

    def _query_term_ids(self, words: Sequence[str]) -> list[int]:
        """The distinct terms of a query that FTS5's tokenizer keeps."""
        return list(dict.fromkeys(t for t in self._term_ids(words) if t >= 0))

    def _live_postings(self, term_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ready documents containing the term, in ascending order, and its frequency in each. (Rows
        ascend within a segment's term, and each segment's rows follow the earlier ones': rows are numbered in
        the order they are added, and compacting keeps that order.)"""
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
        generation = self.generation()
        if generation == self._generation:
            return
        ready = {
            _version(doc_id, ingested_at, chunks, name): doc_id
            for doc_id, ingested_at, chunks, name in self._db.execute(
                "SELECT doc_id, ingested_at, chunks, name FROM documents WHERE status = 'ready'"
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
        self._by_rowid = None
        self._row_of = None

    def _add_documents(self, versions: dict[str, str]) -> None:
        chunk_ids: list[str] = []
        docs: list[int] = []
        texts: list[str] = []
        rowids: list[int] = []
        doc_ids = list(versions)
        for start in range(0, len(doc_ids), _SQL_BATCH):
            batch = doc_ids[start : start + _SQL_BATCH]
            rows = self._db.execute(
                f"SELECT rowid, chunk_id, doc_id, text FROM {TABLE}"
                f" WHERE doc_id IN ({', '.join('?' * len(batch))}) ORDER BY rowid",
                batch,
            )
            for rowid, chunk_id, doc_id, text in rows:
                rowids.append(rowid)
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
        self._rowid = np.concatenate([self._rowid, np.asarray(rowids, dtype=np.int64)])
        self._length = np.concatenate([self._length, *lengths])
        self._alive = np.concatenate([self._alive, np.ones(len(texts), dtype=bool)])
        for doc_id, version in versions.items():
            number = self._doc_numbers.get(doc_id)
            self._doc_rows[version] = first + np.flatnonzero(doc_array == number) if number is not None else _EMPTY_ROWS

    def _index_rows(self, texts: Sequence[str], first: int) -> np.ndarray:
        """One segment for these rows (numbered from `first`); returns their lengths in tokens."""
        words = [WORD.findall(text.lower()) for text in texts]
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
        self._rowid = self._rowid[keep]
        self._alive = np.ones(int(keep.sum()), dtype=bool)
        self._doc_rows = {version: new_row[rows_of] for version, rows_of in self._doc_rows.items()}

    # -- FTS5's tokenizer, one distinct word at a time --------------------------------------------

    def _term_ids(self, words: Iterable[str]) -> list[int]:
        lowered = [w for word in words for w in WORD.findall(word.lower())]
        self._learn(lowered)
        return [self._term_of_word[w] for w in lowered]

    def _learn(self, words: Iterable[str]) -> None:
        """Stem every word not seen before, by FTS5 itself (a temporary table with the same tokenizer)."""
        new = list(dict.fromkeys(w for w in words if w not in self._term_of_word))
        if not new:
            return
        if not self._stemmer_ready:
            self._db.execute(
                f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_STEMMER} USING fts5(w, tokenize = '{TOKENIZER}')"
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


def _chunk_of_row(chunk_id: str, doc_id: str, source: str, page: int, position: int, text: str) -> Chunk:
    """A chunk as its row holds it: the header is the text's first line when that line names the chunk's file,
    as every header does (chunks made before headers have none)."""
    first, newline, rest = str(text).partition("\n")
    has_header = bool(newline) and str(source) in first.split(HEADER_SEPARATOR)
    return Chunk(
        id=str(chunk_id),
        doc_id=str(doc_id),
        text=rest if has_header else str(text),
        source=str(source),
        page=None if int(page) == NO_PAGE else int(page),
        position=int(position),
        header=first if has_header else "",
    )


def _version(doc_id: str, ingested_at: str, chunks: int, name: str) -> str:
    """A document's rows are re-read when it is re-indexed, even under the same id, or renamed (its chunks'
    headers, which the rows hold, name it)."""
    return f"{doc_id}|{ingested_at}|{chunks}|{name}"
