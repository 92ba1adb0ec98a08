"""Hybrid retrieval on a real store and the real embedding model: fusion, scores, filters, threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.registry import DocumentRecord
from rag.retrieval import (
    EVIDENCE_COVERAGE,
    RetrievalOptions,
    Retriever,
    convex_fusion,
    has_evidence,
    reciprocal_rank_fusion,
    select_sources,
    without,
)
from rag.schema import Chunk, RetrievedChunk
from rag.sqlite import now_iso
from rag.store import Store

PASSAGES = {
    "manual.txt": [
        "To reset the router, hold the button on the back for ten seconds.",
        "The status light blinks amber while the firmware updates.",
        "Error code E-4417 means the fan is blocked by dust.",
    ],
    "recipes.txt": [
        "Knead the dough for ten minutes until it is smooth and elastic.",
        "Bake the bread at 220 degrees until the crust is golden.",
    ],
}


@pytest.fixture
def store(tmp_path: Path, embedder: Embedder) -> Store:
    store = Store(tmp_path / "kb")
    for doc_id, (name, texts) in zip(("man0", "rec0"), PASSAGES.items(), strict=True):
        chunks = [Chunk(f"{doc_id}:{i}", doc_id, t, name, None, i) for i, t in enumerate(texts)]
        store.begin_document(DocumentRecord(doc_id, name, "text", doc_id * 8, None, len(chunks), 10, now_iso()))
        store.add_chunks(chunks, embedder.embed_documents(texts))
        store.commit_document(doc_id)
    return store


def ranked(retriever: Retriever, question: str, k: int) -> list[RetrievedChunk]:
    return retriever.retrieve(question, top_k=k).hits


def test_fusion_rewards_items_ranked_well_by_both() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "c", "d"]], k=60)
    assert [item for item, _ in fused] == ["b", "c", "a", "d"]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_convex_fusion_normalises_each_ranking_before_weighing() -> None:
    dense = [("a", 0.9), ("b", 0.5), ("c", 0.1)]  # cosine similarities
    keyword = [("c", 40.0), ("d", 20.0), ("a", 0.0)]  # BM25: another scale entirely
    fused = dict(convex_fusion([dense, keyword], [0.5, 0.5]))
    assert fused == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.5, "d": 0.25})
    assert convex_fusion([[("x", 3.0)], []], [0.5, 0.5]) == [("x", 0.5)]  # one candidate: normalised to 1


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_hybrid_finds_an_exact_code_that_dense_search_ranks_low(store: Store, embedder: Embedder, fusion: str) -> None:
    query = "what does E-4417 mean"
    hybrid = ranked(Retriever(store, embedder, RetrievalOptions(fusion=fusion)), query, 1)  # type: ignore[arg-type]
    assert hybrid[0].chunk.text.startswith("Error code E-4417")
    keyword_only = ranked(Retriever(store, embedder, RetrievalOptions(mode="keyword")), query, 5)
    assert [h.chunk.text for h in keyword_only] == [PASSAGES["manual.txt"][2]]


def test_every_result_is_scored_by_cosine_similarity(store: Store, embedder: Embedder) -> None:
    query = "how long should I knead bread dough"
    hits = ranked(Retriever(store, embedder), query, 5)
    assert hits[0].chunk.source == "recipes.txt"
    q = embedder.embed_query(query)
    for hit in hits:
        expected = float(embedder.embed_documents([hit.chunk.text])[0] @ q)
        assert hit.score == pytest.approx(expected, abs=2e-3)


def test_document_filter_and_threshold(store: Store, embedder: Embedder) -> None:
    retriever = Retriever(store, embedder)
    only_manual = retriever.retrieve("bake bread", top_k=5, doc_ids=["man0"]).hits
    assert {h.chunk.source for h in only_manual} == {"manual.txt"}
    off_topic = retriever.retrieve("quantum chromodynamics of neutron stars", top_k=5, min_score=0.3, max_chars=4000)
    assert off_topic.hits and off_topic.selected == [] and off_topic.declined
    assert ranked(retriever, "   ", 5) == []


def test_an_empty_store_returns_nothing(tmp_path: Path, embedder: Embedder) -> None:
    result = Retriever(Store(tmp_path / "empty"), embedder).retrieve("anything", top_k=3)
    assert result.hits == [] and result.knowledge_base_empty and not result.declined


def test_unknown_mode_is_refused(store: Store, embedder: Embedder) -> None:
    with pytest.raises(ValueError, match="hybrid"):
        Retriever(store, embedder, RetrievalOptions(mode="semantic"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="convex"):
        RetrievalOptions(fusion="borda")  # type: ignore[arg-type]


def test_scores_are_finite(store: Store, embedder: Embedder) -> None:
    hits = ranked(Retriever(store, embedder), "router firmware", 5)
    assert hits and all(np.isfinite(h.score) for h in hits)


def hit(text: str, score: float) -> RetrievedChunk:
    return RetrievedChunk(Chunk(text[:8], "d", text, "d.txt", None, 0), score)


def test_a_question_without_evidence_is_declined(store: Store, embedder: Embedder) -> None:
    retriever = Retriever(store, embedder)
    result = retriever.retrieve("Who won the Super Bowl in 2016?", top_k=5, min_score=0.0, max_chars=4000)
    assert result.hits and not has_evidence(result.hits, result.coverages)
    assert result.selected == [] and result.declined
    assert not has_evidence([hit("Bake the bread.", 0.31)], [0.2])


def test_either_similarity_or_keyword_coverage_is_evidence_enough(store: Store, embedder: Embedder) -> None:
    assert has_evidence([hit("unrelated words", 0.46)], [0.0])
    assert has_evidence([hit("Error code E-4417: the fan is blocked.", 0.2)], [EVIDENCE_COVERAGE])
    # Low similarity, but a passage holds the question's rare words (a code, a name): not declined.
    retriever = Retriever(store, embedder)
    result = retriever.retrieve("What is E-4417 again?", top_k=5, min_score=0.0, max_chars=4000)
    assert has_evidence(result.hits, result.coverages)
    assert result.selected[0].chunk.text.startswith("Error code E-4417")


def test_a_passage_holding_the_rare_words_is_given_even_below_the_minimum_similarity(
    store: Store, embedder: Embedder
) -> None:
    """A part number in a list reads like nothing to the embedding model; keyword search finds it, and the
    model must be given it, with the default minimum similarity."""
    text = "Spare parts in stock: ZK-1180, QX-7731, PL-2093, MM-4410, TR-0021."
    store.begin_document(DocumentRecord("par0", "parts.txt", "text", "p" * 32, None, 1, 10, now_iso()))
    store.add_chunks([Chunk("par0:0", "par0", text, "parts.txt", None, 0)], embedder.embed_documents([text]))
    store.commit_document("par0")
    retriever = Retriever(store, embedder)
    result = retriever.retrieve("What is PL-2093?", top_k=5, min_score=Settings().min_score, max_chars=4000)
    parts = next(h for h in result.hits if h.chunk.source == "parts.txt")
    assert parts.score < Settings().min_score  # the case meant: found by keyword, not by meaning
    given = result.selected
    assert parts in given
    assert all(h.chunk.source == "parts.txt" or h.score >= Settings().min_score for h in given)


def test_sources_below_the_minimum_similarity_are_kept_when_they_hold_the_question_words() -> None:
    hits = [hit("a" * 100, 0.9), hit("b" * 100, 0.1), hit("c" * 100, 0.1)]
    chosen = select_sources(hits, 0.2, 4000, coverages=[0.0, EVIDENCE_COVERAGE, EVIDENCE_COVERAGE - 0.01])
    assert [h.chunk.text[0] for h in chosen] == ["a", "b"]


def test_coverage_weighs_rare_terms_more_than_common_ones(store: Store) -> None:
    # "ten" is in two of five passages, "firmware" in one: the firmware passage covers more of the query.
    firmware, knead = store.keyword_coverage(
        ["ten", "firmware"], [PASSAGES["manual.txt"][1], PASSAGES["recipes.txt"][0]]
    )
    assert 0.5 < firmware < 1.0 and 0.0 < knead < 0.5 and firmware + knead == pytest.approx(1.0)
    assert store.keyword_coverage(["zeppelin"], ["A zeppelin is an airship."]) == [1.0]
    assert store.keyword_coverage(["the"], ["the router"]) == [0.0]  # in every passage: no evidence at all


def test_sources_are_kept_in_order_within_the_character_budget() -> None:
    hits = [hit("a" * 300, 0.9), hit("b" * 300, 0.5), hit("c" * 50, 0.1), hit("d" * 300, 0.8), hit("e" * 90, 0.7)]
    chosen = select_sources(hits, min_score=0.2, max_chars=700)
    assert [h.chunk.text[0] for h in chosen] == ["a", "b", "e"]  # c is below the threshold, d would overflow
    assert select_sources([hit("a" * 900, 0.9)], 0.2, max_chars=500)[0].score == 0.9  # first always kept


def test_the_document_a_question_names_wins_over_its_sibling(tmp_path: Path, embedder: Embedder) -> None:
    """Two nearly identical filings: the same words, different years. The question names one of them."""
    from rag.ingest import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    for year, revenue in (("2022", "31,100"), ("2023", "35,500")):
        (docs / f"ACME_{year}_10K.txt").write_text(
            f"Acme Widgets annual report.\n\nTotal revenue for the fiscal year was {revenue} million dollars, "
            "driven by widget sales in every region.\n\nOperating expenses rose with headcount."
        )
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 600, 100).ingest_paths([docs])
    retriever = Retriever(store, embedder)
    for year in ("2022", "2023"):
        question = f"What was Acme's total revenue in FY{year}?"
        named = store.find(f"ACME_{year}_10K.txt")
        assert named is not None and retriever.focus.named(question) == {named.doc_id: 1.0}
        assert ranked(retriever, question, 1)[0].chunk.source == f"ACME_{year}_10K.txt"
    assert retriever.focus.named("What drove widget sales?") == {}  # both documents alike: none named


def test_a_question_naming_a_metric_finds_the_statement_that_prints_its_inputs(
    tmp_path: Path, embedder: Embedder
) -> None:
    """ "Gross margin" is printed nowhere: the income statement prints "Net sales" and "Cost of sales"."""
    from rag.ingest import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ACME_2022_10K.md").write_text(
        "# Management's discussion\n\n"
        + "Our margin profile reflects pricing discipline. Management reviews the profile of every product line "
        "each quarter and improving profiles are rewarded. "
        * 4
        + "\n\n# Risk factors\n\n"
        + "An improving economy may not last; a company like ours depends on its customers and its suppliers. " * 5
        + "\n\n"
        "# Consolidated Statements of Operations\n\n"
        "| (In millions) | 2022 | 2021 |\n|---|---|---|\n| Net sales | 1,250 | 1,100 |\n"
        "| Cost of sales | 700 | 640 |\n| Gross profit | 550 | 460 |\n\n"
        "# Consolidated Balance Sheets\n\n"
        "| (In millions) | 2022 | 2021 |\n|---|---|---|\n"
        "| Inventories | 300 | 280 |\n| Total assets | 4,000 | 3,800 |\n"
    )
    (docs / "ZENITH_2022_10K.md").write_text(
        "# Overview\n\n"
        + "Zenith makes gears. Its gross margin is discussed by the board every year. " * 8
        + "\n\n# Consolidated Statements of Operations\n\n"
        "| (In millions) | 2022 | 2021 |\n|---|---|---|\n| Net sales | 900 | 800 |\n"
        "| Cost of sales | 500 | 450 |\n| Gross profit | 400 | 350 |\n"
    )
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 600, 100).ingest_paths([docs])
    question = "Does Acme have an improving gross margin profile as of FY2022?"
    finance = Retriever(store, embedder, RetrievalOptions(profile="finance"))
    best = ranked(finance, question, 1)[0].chunk
    assert "Statements of Operations" in best.header and "Cost of sales" in best.text
    assert best.source == "ACME_2022_10K.md"  # the statement of the company asked about, not Zenith's
    plain = ranked(finance, "Is Acme's margin profile improving?", 1)[0].chunk
    assert "Statements of Operations" not in plain.header  # no metric named: no statement preferred


def test_rag_eval_can_turn_each_optional_stage_off() -> None:
    options = without(RetrievalOptions(rerank="sentences"), ["rerank", "content-focus"])
    assert (options.rerank, options.by_content, options.focus, options.by_time) == ("off", False, True, True)
    assert without(RetrievalOptions(), ["focus"]).focus is False
    with pytest.raises(ValueError, match="Unknown stage 'routing'"):
        without(RetrievalOptions(), ["routing"])


PORTS = ["Aberdeen", "Bristol", "Cardiff", "Dover", "Exeter", "Falmouth", "Grimsby", "Hull", "Ipswich", "Jarrow"]
GOODS = ["mooring rope", "tow rope", "anchor rope", "deck rope", "lifeline rope", "dock rope"]
CLAUSES = 80
NOTICES = range(10, 30, 4)
NOTICE = (
    "Clause 38. Prices are in sterling and invoices fall due within thirty days; either party may end this "
    "contract on ninety days notice; headings do not affect meaning; late payment bears interest."
)


def contract(clause: str, clauses: int, endings: dict[int, str]) -> str:
    """A contract whose clauses all name its party, goods and agreement (`clause`, formatted with the clause's
    number and a port), but those in `endings` (clause number → text), which say how it ends."""
    text = [clause.format(n=n, port=PORTS[n % len(PORTS)], goods=GOODS[n % len(GOODS)]) for n in range(clauses)]
    for at, ending in endings.items():
        text[at] = ending
    return "\n\n".join(text)


def test_the_passage_inside_the_document_in_focus_is_found_by_what_the_question_asks_of_it(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Six look-alike contracts. In the one the question is about, every clause holds the words that
    found it (the supplier, the goods, the agreement), and across the knowledge base those are the rare words:
    its other clauses fill the context. Ranked within it, those words count for nothing and the word the
    question asks about ("notice") decides: the clause that says how it ends, among other terms, is given."""
    from rag.ingest import Ingestor

    docs = tmp_path / "docs"
    docs.mkdir()
    gullwing = "Clause {n}. Gullwing Marine supplies {goods} under this rope supply agreement to the port of {port}"
    gullwing += ", batch {n}."
    (docs / "gullwing-contract.txt").write_text(contract(gullwing, CLAUSES, {38: NOTICE}))
    for party, cargo, kind in (("Bluefin", "timber", "haulage"), ("Cormorant", "grain", "shipping"),
                               ("Dunlin", "coal", "carriage"), ("Eider", "salt", "transport"),
                               ("Fulmar", "steel", "freight")):  # fmt: skip
        clause = f"Clause {{n}}. {party} Freight carries {cargo} under this {kind} agreement to {{port}}, lot {{n}}."
        # Their notices are many: across the knowledge base "notice" is an everyday word.
        ending = "Clause {n}. Notice {n}: either party may end this agreement on {n} days notice."
        endings = {n: ending.format(n=n) for n in NOTICES}
        (docs / f"{party.lower()}-contract.txt").write_text(contract(clause, 40, endings))
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 200, 0).ingest_paths([docs])
    question = "How much notice ends the rope supply agreement with Gullwing Marine?"
    result = Retriever(store, embedder).retrieve(question, top_k=3, max_chars=10_000)
    assert NOTICE in [h.chunk.text for h in result.selected]
    within = next(s for s in result.stages if s.stage == "within")
    assert within.note.startswith("ranked within gullwing-contract.txt")
    off = Retriever(store, embedder, without(RetrievalOptions(), ["within-document"])).retrieve(question, top_k=3)
    assert {h.chunk.source for h in off.selected} == {"gullwing-contract.txt"}  # the right contract, …
    assert NOTICE not in [h.chunk.text for h in off.selected]  # … but its other clauses
    assert "within" not in {s.stage for s in off.stages}


def test_within_the_document_in_focus_the_question_also_moves_towards_its_best_passages(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Pseudo-relevance feedback: the log the question is about is searched by meaning again with the question
    moved towards the mean of its three best passages — computed here from the stored vectors, alike whether
    every vector is kept in memory or only the document's; the other logs' passages keep their places, and
    `--without feedback` turns it off."""
    from rag.retrieval.candidates import KeptVectors
    from rag.retrieval.fusion import fuse_within
    from rag.retrieval.pipeline import FEEDBACK_PASSAGES, FEEDBACK_WEIGHT, within_share

    details = (
        "it was found frayed near the end and cut back",
        "it was tarred against the rain",
        "a new splice was made at the bow",
        "it was stored coiled in the dry locker",
        "its length was measured at forty metres",
        "its colour had faded in the sun",
        "the supplier sent a replacement coil",
        "it cost twelve pounds to replace",
        "it was weighed wet and dry",
        "a bowline knot was tied and tested",
        "salt crystals were washed off with fresh water",
        "it was worn thin where it crossed the rail",
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    for topic in ("rope", "sail", "mast"):
        entries = [f"The {topic} log, entry {n}: on inspection of the {topic}, {d}." for n, d in enumerate(details)]
        (docs / f"{topic}s.txt").write_text("\n\n".join(entries))
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, 120, 0).ingest_paths([docs])
    ropes = store.find("ropes.txt")
    assert ropes is not None
    question = "Which entry of the rope log says the rope was worn or damaged?"
    retriever = Retriever(store, embedder)
    result = retriever.retrieve(question, top_k=6, depth=40)
    within = next(s for s in result.stages if s.stage == "within")
    assert within.note == "ranked within ropes.txt"
    query = retriever.candidates.query(question)
    inside = retriever.candidates.search(query, 50, [ropes.doc_id])
    assert query.keywords is not None
    share = within_share(query.keywords.passages_in(ropes.doc_id))
    fused = fuse_within(inside.dense, inside.keyword, query.keywords.ranking_within(ropes.doc_id, 50), "convex", share)
    best = [cid for cid, _ in fused[:FEEDBACK_PASSAGES]]
    stored = {cid: vector for cid, (_, vector) in store.fetch(best).items()}
    moved = query.vectors[0] + FEEDBACK_WEIGHT * np.mean([stored[cid] for cid in best], axis=0)
    moved /= np.linalg.norm(moved)
    chunks = {c.id: vector for c, vector in store.chunks_with_vectors(ropes.doc_id)}
    expected = sorted(chunks, key=lambda cid: -float(chunks[cid] @ moved))[:10]
    assert [cid for cid, _ in retriever._feedback(ropes.doc_id, query, fused, 10)] == expected
    # The log's passages, as the within stage ranked them: both meanings share dense search's weight.
    moved_ranking = retriever._feedback(ropes.doc_id, query, fused, 50)
    refused = fuse_within(inside.dense, inside.keyword, query.keywords.ranking_within(ropes.doc_id, 50), "convex",
                          share, moved_ranking)  # fmt: skip
    assert [cid for cid, _ in within.ranking if cid.startswith(ropes.doc_id)] == [cid for cid, _ in refused]
    partly = Retriever(store, embedder)
    partly.candidates.kept = KeptVectors(store, limit=store.chunk_count() - 1)  # only the documents searched are kept
    partly.candidates.search(query, 50, [ropes.doc_id])  # as the within stage does before its feedback
    assert [cid for cid, _ in partly._feedback(ropes.doc_id, query, fused, 10)] == expected

    off = Retriever(store, embedder, without(RetrievalOptions(), ["feedback"])).retrieve(question, top_k=6, depth=40)
    off_within = next(s for s in off.stages if s.stage == "within")
    others = [(i, cid) for i, (cid, _) in enumerate(within.ranking) if not cid.startswith(ropes.doc_id)]
    assert others == [(i, cid) for i, (cid, _) in enumerate(off_within.ranking) if not cid.startswith(ropes.doc_id)]
    assert {cid for cid, _ in within.ranking} == {cid for cid, _ in off_within.ranking}


def test_feedback_shares_the_weight_of_meaning_within_a_document() -> None:
    from rag.retrieval.fusion import DENSE_WEIGHT, fuse_within

    dense = [("a", 0.9), ("b", 0.5)]
    words = [("b", 3.0), ("a", 1.0)]
    alone = dict(fuse_within(dense, words, words, "convex", 0.5))
    assert alone == {"a": DENSE_WEIGHT, "b": 1 - DENSE_WEIGHT}
    moved = [("c", 0.8), ("b", 0.7)]  # the question moved towards the best passages finds "c"
    fed = dict(fuse_within(dense, words, words, "convex", 0.5, moved))
    assert fed == {"a": DENSE_WEIGHT / 2, "b": 1 - DENSE_WEIGHT, "c": DENSE_WEIGHT / 2}
    assert [cid for cid, _ in fuse_within(dense, words, words, "rrf", 0.5, moved)] == ["b", "a", "c"]


def three_notebooks(tmp_path: Path, embedder: Embedder) -> tuple[Store, Ingestor]:
    """A knowledge base of three look-alike notebooks (ropes, sails, masts) of 30 notes each, and its ingestor."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, topic in (("ropes.txt", "rope"), ("sails.txt", "sail"), ("masts.txt", "mast")):
        notes = [f"Note {n} on the {topic}: it was checked in week {n}." for n in range(30)]
        (docs / name).write_text("\n\n".join(notes))
    store = Store(tmp_path / "kb")
    ingestor = Ingestor(store, embedder, 120, 0)
    ingestor.ingest_paths([docs])
    return store, ingestor


def test_a_search_within_a_few_documents_ranks_as_chromas_filtered_search(tmp_path: Path, embedder: Embedder) -> None:
    """Within the documents in focus, dense search reads their kept vectors instead of a filtered search of the
    whole collection: the same passages, the same order, the same cosines; and nothing of a document deleted
    since."""
    store, _ = three_notebooks(tmp_path, embedder)
    search = Retriever(store, embedder).candidates
    query = search.query("When was the rope checked?")
    ropes, sails = (store.find(name) for name in ("ropes.txt", "sails.txt"))
    assert ropes is not None and sails is not None
    for doc_ids in ([ropes.doc_id], [ropes.doc_id, sails.doc_id]):
        kept = dict(search.search(query, 100, doc_ids).dense)
        chroma = {cid: score for d in doc_ids for cid, score in store.nearest(query.vectors[0], 100, [d])}
        assert kept.keys() == chroma.keys()
        assert len(kept) == sum(d.chunks for d in store.documents() if d.doc_id in doc_ids)  # every passage
        assert all(abs(kept[cid] - chroma[cid]) < 1e-3 for cid in kept)
        best = search.search(query, 5, doc_ids).dense
        assert [score for _, score in best] == sorted(kept.values(), reverse=True)[:5]
    store.delete_document(ropes.doc_id)
    assert search.search(query, 20, [ropes.doc_id]).dense == []


def test_a_search_of_the_whole_knowledge_base_reads_the_kept_vectors_and_follows_its_changes(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Every vector kept in memory (a small knowledge base): dense search ranks as Chroma's index does, sees a
    document added or deleted since the last question, and a knowledge base beyond the limit is searched in
    Chroma's index again."""
    from rag.retrieval.candidates import KeptVectors

    store, ingestor = three_notebooks(tmp_path, embedder)
    search = Retriever(store, embedder).candidates
    query = search.query("When was the sail checked?")

    def chroma(depth: int) -> dict[str, float]:
        return dict(store.nearest(query.vectors[0], depth))

    kept = search.search(query, 40).dense
    assert search.kept.holds_all and len(kept) == 40
    assert [cid for cid, _ in kept] == list(chroma(40))  # a few dozen vectors: Chroma's index is exact here
    assert all(abs(score - chroma(40)[cid]) < 1e-3 for cid, score in kept)

    keel = tmp_path / "keel.txt"
    keel.write_text("The sail was checked again in week 31, after the storm tore it.")
    ingestor.ingest_paths([keel])
    added = search.search(query, 200).dense
    assert len(added) == store.chunk_count() and [cid for cid, _ in added] == list(chroma(200))
    sails = store.find("sails.txt")
    assert sails is not None
    store.delete_document(sails.doc_id)
    after = search.search(query, 200).dense
    assert len(after) == store.chunk_count() and not any(cid.startswith(sails.doc_id) for cid, _ in after)
    assert [cid for cid, _ in after] == list(chroma(200))

    search.kept = KeptVectors(store, limit=store.chunk_count())
    assert search.kept.holds_all
    hull = tmp_path / "hull.txt"
    hull.write_text("The hull was painted in week 12.")
    ingestor.ingest_paths([hull])  # now beyond the limit: Chroma's index answers, within documents the kept rows
    assert search.kept.nearest(query.vectors, 5) is None and not search.kept.holds_all
    assert search.search(query, 10).dense == list(chroma(10).items())
    ropes = store.find("ropes.txt")
    assert ropes is not None
    assert len(search.search(query, 100, [ropes.doc_id]).dense) == ropes.chunks


def test_a_passage_found_only_by_its_words_is_scored_by_its_stored_vector_kept_or_not(
    tmp_path: Path, embedder: Embedder
) -> None:
    """The passages a chat turn gets are read without a round trip to Chroma; one that only keyword search
    found still gets its cosine to the question, from the kept vectors, or from Chroma beyond their limit."""
    from rag.retrieval.candidates import Candidates, KeptVectors

    store, _ = three_notebooks(tmp_path, embedder)
    retriever = Retriever(store, embedder)
    query = retriever.candidates.query("When was the mast checked?")
    candidates = retriever.candidates.search(query, 5)
    ranking = [(cid, 1.0) for cid, _ in candidates.dense[:3]] + [("gone:00000", 1.0)]
    only_words = Candidates(dense=[], keyword=[])  # none scored by meaning: every cosine comes from a vector
    stored = store.fetch([cid for cid, _ in ranking])
    expected = [(cid, round(float(stored[cid][1] @ query.vectors[0]), 4)) for cid, _ in ranking[:3]]
    kept = retriever.passages(ranking, query, only_words)
    assert [(h.chunk.id, h.score) for h in kept] == expected
    assert [h.chunk for h in kept] == [stored[cid][0] for cid, _ in ranking[:3]]
    assert [(h.chunk.id, h.score) for h in retriever.passages(ranking, query, candidates)] == [
        (cid, score) for cid, score in candidates.dense[:3]
    ]
    retriever.candidates.kept = KeptVectors(store, limit=1)  # none kept: the vectors are read from Chroma
    assert [(h.chunk.id, h.score) for h in retriever.passages(ranking, query, only_words)] == expected


def test_warming_builds_ahead_what_questions_reuse_and_changes_no_result(
    store: Store, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    Retriever(Store(tmp_path / "empty"), embedder).warm()  # nothing to build: no error
    cold, warm = Retriever(store, embedder), Retriever(store, embedder)
    warm.warm()
    reads: list[str] = []
    read_one, read_all = store.vectors_of, store.vectors_by_document

    def one(doc_id: str) -> tuple[list[str], np.ndarray]:
        reads.append(doc_id)
        return read_one(doc_id)

    def every() -> dict[str, tuple[list[str], np.ndarray]]:
        reads.append("every document")
        return read_all()

    monkeypatch.setattr(store, "vectors_of", one)
    monkeypatch.setattr(store, "vectors_by_document", every)
    question = "What does error code E-4417 mean?"
    warmed = [h.chunk.id for h in warm.retrieve(question, top_k=3).hits]
    assert reads == []  # read when warmed, not at the first question
    assert warmed == [h.chunk.id for h in cold.retrieve(question, top_k=3).hits]
    assert sorted(reads) == ["man0", "rec0"]  # the cold one read them at its first question
