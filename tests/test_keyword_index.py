"""The keyword index: query terms; the in-memory BM25 ranks as SQLite FTS5 would, and follows every change to
the knowledge base."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import chunk_document
from rag.keyword_index import MAX_SEGMENTS, TABLE, TOKENIZER, WORD, KeywordIndex, query_terms
from rag.loaders import load_bytes
from rag.registry import DocumentRecord
from rag.schema import Chunk
from rag.sqlite import now_iso
from rag.store import Store

CORPUS = Path(__file__).resolve().parent.parent / "docs_corpus"


# -- query terms ---------------------------------------------------------------------------------------------


def test_function_words_are_dropped_and_content_words_kept_in_order() -> None:
    assert query_terms("What was the price of oil in March of 1974?") == ["price", "oil", "march", "1974"]
    assert query_terms("Who is who? WHO") == []  # nothing left to search for by keyword


def test_terms_are_case_folded_unique_and_keep_digits_and_accents() -> None:
    assert query_terms("Zürich zürich ZÜRICH in 3 B") == ["zürich", "3"]


# -- BM25 in memory over the FTS5 table ------------------------------------------------------------------------


def add(store: Store, doc_id: str, texts: list[str], replaces: str | None = None, commit: bool = True) -> None:
    """A document with vectors that do not matter here (keyword search never reads them)."""
    chunks = [Chunk(f"{doc_id}:{i:05d}", doc_id, t, f"{doc_id}.txt", None, i) for i, t in enumerate(texts)]
    store.begin_document(DocumentRecord(doc_id, f"{doc_id}.txt", "text", doc_id, None, len(chunks), 1, now_iso()))
    vectors = np.random.default_rng(0).standard_normal((len(texts), 8)).astype(np.float32)
    store.add_chunks(chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    if commit:
        store.commit_document(doc_id, replaces=replaces)


def fts5_ranking(db_path: Path, words: list[str], k: int) -> list[tuple[str, float]]:
    """What FTS5 itself returns for the same OR-query (scores made positive, as ours)."""
    expression = " OR ".join(f'"{w}"' for w in words)
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT chunk_id, -bm25(chunk_text) AS s FROM chunk_text WHERE chunk_text MATCH ? ORDER BY s DESC LIMIT ?",
            (expression, k),
        ).fetchall()
    return [(cid, float(s)) for cid, s in rows]


def ties_in_id_order(ranking: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Equal scores come in no particular order, in FTS5 as here."""
    return sorted(((cid, round(score, 4)) for cid, score in ranking), key=lambda pair: (-pair[1], pair[0]))


@pytest.fixture
def shipped_corpus_store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "kb")
    for path in sorted(CORPUS.iterdir()):
        doc = load_bytes(path.read_bytes(), path.name)
        chunks = chunk_document(doc, path.stem[:16], 600, 100)
        add(store, path.stem[:16], [c.text for c in chunks])
    return store


@pytest.mark.parametrize(
    "words",
    [
        ["context", "length", "llama"],
        ["quantized", "models", "memory", "laptop"],
        ["retrieval", "augmented", "generation", "citations"],
        ["gpu", "vram", "gguf", "7b"],
        ["upload", "documents", "delete"],
    ],
)
def test_ranks_and_scores_as_fts5_does(shipped_corpus_store: Store, tmp_path: Path, words: list[str]) -> None:
    ours = [(h.chunk.id, h.score) for h in shipped_corpus_store.keyword_query(words, k=10)]
    reference = fts5_ranking(tmp_path / "kb" / "registry.sqlite3", words, 10)
    assert ours, "the shipped corpus mentions every one of these queries"
    assert ties_in_id_order(ours) == ties_in_id_order(reference)


def test_stems_and_case_folding_match_fts5(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "aaaa", ["The Gaskets were REPLACED in Zürich."])
    add(store, "bbbb", ["Nothing relevant here."])
    for words in (["gasket"], ["replacing"], ["zurich"], ["ZÜRICH"]):
        assert [h.chunk.doc_id for h in store.keyword_query(words, k=3)] == ["aaaa"], words


def test_follows_adds_replaces_deletes_and_hides_unfinished_documents(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "old0", ["The meeting is on Monday in the saffron room."])
    assert store.keyword_query(["saffron"], k=3)[0].chunk.doc_id == "old0"  # the index is built now
    add(store, "new0", ["The meeting moved to Friday in the saffron room."], replaces="old0")
    assert [h.chunk.doc_id for h in store.keyword_query(["saffron"], k=3)] == ["new0"]
    add(store, "half", ["A saffron harvest, still being indexed."], commit=False)
    assert [h.chunk.doc_id for h in store.keyword_query(["saffron"], k=3)] == ["new0"]
    store.abort_document("half")
    store.delete_document("new0")
    assert store.keyword_query(["saffron"], k=3) == []


def test_sees_changes_made_by_another_process(tmp_path: Path) -> None:
    app = Store(tmp_path / "kb")
    add(app, "aaaa", ["Lavender grows in dry soil."])
    assert app.keyword_query(["lavender"], k=3)[0].chunk.doc_id == "aaaa"
    cli = Store(tmp_path / "kb")  # e.g. `python -m rag ingest` while the app runs
    add(cli, "bbbb", ["Lavender oil is distilled from the flowers."])
    cli.delete_document("aaaa")
    assert [h.chunk.doc_id for h in app.keyword_query(["lavender"], k=3)] == ["bbbb"]


def test_restricting_to_documents(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "aaaa", ["Basalt is a volcanic rock."])
    add(store, "bbbb", ["Basalt columns form as lava cools."])
    assert [h.chunk.doc_id for h in store.keyword_query(["basalt"], k=5, doc_ids=["bbbb"])] == ["bbbb"]
    assert store.keyword_query(["basalt"], k=5, doc_ids=["zzzz"]) == []
    assert store.keyword_query(["basalt"], k=5, doc_ids=[]) == []


def test_many_changes_are_compacted_without_changing_results(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    for i in range(MAX_SEGMENTS + 4):  # one segment per document, forcing merges
        add(store, f"d{i:03d}", [f"Report {i} on granite quarries.", f"Appendix {i}: marble and granite."])
        assert len(store.keyword_query(["granite"], k=100)) == 2 * (i + 1)
    for i in range(0, MAX_SEGMENTS + 4, 2):
        store.delete_document(f"d{i:03d}")
    hits = store.keyword_query(["granite"], k=100)
    assert sorted({h.chunk.doc_id for h in hits}) == [f"d{i:03d}" for i in range(1, MAX_SEGMENTS + 4, 2)]
    assert store.keyword_query(["marble"], k=1)[0].chunk.text.startswith("Appendix")
    reference = fts5_ranking(tmp_path / "kb" / "registry.sqlite3", ["granite", "quarries"], 100)
    ours = [(h.chunk.id, h.score) for h in store.keyword_query(["granite", "quarries"], k=100)]
    assert ties_in_id_order(ours) == ties_in_id_order(reference)


def test_an_empty_knowledge_base_finds_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    assert store.keyword_query(["anything"], k=5) == []
    index = KeywordIndex(sqlite3.connect(tmp_path / "kb" / "registry.sqlite3"))
    assert index.search(["anything"], 5) == []


def test_a_first_build_in_small_batches_ranks_the_same(
    shipped_corpus_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.keyword_index._BUILD_BATCH", 7)  # many segments, merged once there are too many
    reopened = Store(tmp_path / "kb")
    words = ["quantized", "models", "memory", "laptop"]
    ours = [(h.chunk.id, h.score) for h in reopened.keyword_query(words, k=10)]
    assert ties_in_id_order(ours) == ties_in_id_order(fts5_ranking(tmp_path / "kb" / "registry.sqlite3", words, 10))


def test_the_table_is_declared_once_with_the_tokenizer_the_queries_are_stemmed_with(tmp_path: Path) -> None:
    Store(tmp_path / "kb")
    with sqlite3.connect(tmp_path / "kb" / "registry.sqlite3") as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (TABLE,)).fetchone()
    assert f"tokenize = '{TOKENIZER}'" in sql


def test_one_query_ranks_many_times_and_weighs_coverage_without_catching_up_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "aaaa", ["Basalt is a volcanic rock.", "Granite is not volcanic."])
    add(store, "bbbb", ["Basalt columns form as lava cools."])
    query = store.keyword_search(["basalt", "volcanic"])
    assert query.ranking(5) == store.keyword_ranking(["basalt", "volcanic"], 5)
    assert [cid for cid, _ in query.ranking(5, ["bbbb"])] == ["bbbb:00000"]
    add(store, "cccc", ["Volcanic ash fell.", "No rock here.", "Basalt, volcanic basalt."])
    query = store.keyword_search(["basalt", "volcanic"])
    everywhere = query.ranking(10)
    for chosen in (["cccc", "aaaa"], ["aaaa", "zzzz", "aaaa"]):  # the same passages, scores and order, filtered
        assert query.ranking(10, chosen) == [(cid, s) for cid, s in everywhere if cid.split(":")[0] in chosen]
    store.delete_document("bbbb")  # the query keeps the state it was scored against; a new one sees the change
    assert "bbbb:00000" in [cid for cid, _ in query.ranking(5)]
    assert "bbbb:00000" not in [cid for cid, _ in store.keyword_ranking(["basalt", "volcanic"], 5)]
    assert store.keyword_coverage(query, ["basalt"]) == store.keyword_coverage(query, ["Basalt!"])
    assert query.ranking(0) == [] and query.ranking(5, []) == []


def test_coverage_read_from_the_postings_is_the_coverage_of_the_passages_texts(shipped_corpus_store: Store) -> None:
    """A question's passages are not tokenized again: their share of its weight comes from the postings it was
    scored with, and is what their texts give, for every passage of the shipped corpus."""
    store = shipped_corpus_store
    # By name: the registry lists documents newest first, and their times (to the second) vary from run to run.
    documents = sorted(store.documents(), key=lambda record: record.name)
    for deleted in ([], documents[: len(documents) // 2 + 1]):  # many segments; then compacted into one
        for record in deleted:
            store.delete_document(record.doc_id)
        chunks = [c for d in store.documents() for c in store.chunks_of(d.doc_id)]
        for question in ("How do I change the context window of llama2?", "Why is a PDF page empty?", "zz"):
            query = store.keyword_search(query_terms(question))
            assert all(np.all(np.diff(rows) > 0) for rows, _ in query.postings)  # what the binary search needs
            from_postings = query.coverage([c.id for c in chunks])
            assert from_postings is not None
            from_texts = store.keyword_coverage(query, [c.indexed_text for c in chunks])
            assert from_postings == pytest.approx(from_texts, abs=1e-9)
            assert (max(from_texts) > 0.3) == (question != "zz")
    assert query.coverage([chunks[0].id, "nowhere:00000"]) is None  # not a live passage: read its text instead
    assert query.coverage([documents[0].doc_id + ":00000"]) is None  # deleted


def test_document_frequency_counts_ready_documents_holding_a_phrase_word_for_word(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "cama", ["Caldera Marine card members spent more.", "Card members stayed."])
    add(store, "halvard", ["Caldera airlines bought planes.", "Marine delivery of parts."])
    add(store, "half", ["Caldera Marine is accepted here."], commit=False)  # not ready: not counted
    assert store.document_frequency(["caldera marine", "Caldera", "members", "planes", "nowhere", ""]) == {
        "caldera marine": 1,
        "Caldera": 2,
        "members": 1,  # stemmed as FTS5 does: "member" would count the same
        "planes": 1,
        "nowhere": 0,
        "": 0,
    }


def test_document_frequency_from_memory_is_fts5s_own_count(shipped_corpus_store: Store, tmp_path: Path) -> None:
    """Words and phrases of the shipped corpus (everyday words, names, pairs side by side, pairs that only meet
    apart, words in no document): the count read from the postings in memory is FTS5's COUNT(DISTINCT doc)."""
    texts = [c.text for d in shipped_corpus_store.documents() for c in shipped_corpus_store.chunks_of(d.doc_id)]
    words = [w for text in texts for w in WORD.findall(text.lower())]
    phrases = sorted(set(words))[::7] + [f"{a} {b}" for a, b in zip(words[::11], words[1::11], strict=False)]
    phrases += [f"{a} {b}" for a, b in zip(words[::13], words[5::13], strict=False)]  # five words apart
    phrases += ["zyzzyva", "llama zyzzyva", "the the"]
    with sqlite3.connect(tmp_path / "kb" / "registry.sqlite3") as db:
        expected = {
            phrase: db.execute(
                "SELECT COUNT(DISTINCT doc_id) FROM chunk_text WHERE chunk_text MATCH ?",
                ('"' + " ".join(WORD.findall(phrase)) + '"',),
            ).fetchone()[0]
            for phrase in phrases
        }
    got = shipped_corpus_store.document_frequency(phrases)
    assert got == expected
    assert 0 < sum(1 for n in got.values() if n == 0) < len(phrases)  # phrases both held and not held
    assert len({n for n in got.values()}) > 3  # and held by few or many documents


def fts5_ranking_of(texts: dict[str, str], words: list[str], k: int) -> list[tuple[str, float]]:
    """FTS5's own BM25 over a table holding only these passages (chunk id → text)."""
    with sqlite3.connect(":memory:") as db:
        db.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, chunk_id UNINDEXED, tokenize = '{TOKENIZER}')")
        db.executemany("INSERT INTO t(text, chunk_id) VALUES (?, ?)", [(t, c) for c, t in texts.items()])
        expression = " OR ".join(f'"{w}"' for w in words)
        rows = db.execute(
            "SELECT chunk_id, -bm25(t) AS s FROM t WHERE t MATCH ? ORDER BY s DESC LIMIT ?", (expression, k)
        ).fetchall()
    return [(cid, float(s)) for cid, s in rows]


def test_within_a_document_words_weigh_by_their_rarity_among_its_own_passages(tmp_path: Path) -> None:
    """Ranked within one document, the document's passages are the collection: the word every one of them holds
    (here the supplier's name) weighs nearly nothing, and the one word few of them hold decides, as FTS5 ranks
    a table of that document alone. Across the knowledge base the supplier's name is the rare word."""
    store = Store(tmp_path / "kb")
    contract = [
        "Gullwing supplies rope to the harbour. Gullwing delivers monthly.",
        "Gullwing invoices the harbour each quarter; Gullwing prices are fixed.",
        "This agreement with Gullwing was signed on 3 May 2001.",
        "Gullwing may end the agreement with ninety days notice to Gullwing's customer.",
    ]
    add(store, "cccc", contract)
    add(store, "dddd", [f"Lease {n} was signed by the tenant." for n in range(12)])
    add(store, "eeee", [f"Nothing about the contract in note {n}." for n in range(12)])
    words = ["signed", "gullwing"]
    query = store.keyword_search(words)
    within = query.ranking_within("cccc", 10)
    assert within[0][0] == "cccc:00002"  # the one passage of the contract that says "signed"
    reference = fts5_ranking_of({f"cccc:{i:05d}": t for i, t in enumerate(contract)}, words, 10)
    # FTS5 gives a word in most passages a token weight; within a document such a word does not count at all,
    # so the passages holding only it are not ranked. The others score as FTS5 scores them.
    assert ties_in_id_order(within) == ties_in_id_order([(cid, s) for cid, s in reference if s > 1e-3])
    assert len(within) == 1
    across = query.ranking(10, ["cccc"])
    assert across[0][0] != "cccc:00002"  # across the knowledge base "gullwing" outweighs "signed"
    assert query.passages_in("cccc") == 4 and query.passages_in("zzzz") == 0
    assert query.ranking_within("zzzz", 10) == [] and query.ranking_within("eeee", 10) == []


def test_within_a_replaced_document_only_its_live_passages_count(tmp_path: Path) -> None:
    store = Store(tmp_path / "kb")
    add(store, "old1", ["Old text about saffron.", "More saffron.", "Saffron again."])
    store.keyword_search(["saffron"])  # the index is built with the old version
    new = ["Saffron fields in autumn.", "The harvest is by hand.", "Rain in spring.", "Sun in summer."]
    add(store, "new1", new, replaces="old1")
    query = store.keyword_search(["saffron", "harvest"])
    assert query.passages_in("new1") == 4 and query.passages_in("old1") == 0
    assert sorted(cid for cid, _ in query.ranking_within("new1", 5)) == ["new1:00000", "new1:00001"]
    assert query.ranking_within("old1", 5) == []
