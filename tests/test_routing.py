"""Which documents a question names: rarity-weighted words shared with each document's title and file name."""

from __future__ import annotations

from rag.keyword_index import STOPWORDS
from rag.routing import DocumentCard, DocumentRouter, card_terms

CARDS = [
    DocumentCard("a18", "10-K - 02/07/2019 - 3M Company 3M_2018_10K.pdf"),
    DocumentCard("a22", "3M COMPANY 3M_2022_10K.pdf"),
    DocumentCard("bb", "Form 10-Q for the period ending 2023-07-29 BEST BUY CO., INC. BESTBUY_2024Q2_10Q.pdf"),
    DocumentCard("am", "Amcor 4Q 2023 Exhibit 99.1 AMCOR_2023Q4_EARNINGS.pdf"),
]


def test_codes_spell_out_their_years_and_quarters() -> None:
    assert {"fy2024", "2024"} <= card_terms("FY2024")
    assert {"2023q4", "2023", "q4"} <= card_terms("AMCOR_2023Q4_EARNINGS.pdf")
    assert "q4" in card_terms("4Q results")
    assert "q2" in card_terms("in Q2 of FY2024")


def test_the_company_and_the_year_pick_one_of_two_siblings() -> None:
    router = DocumentRouter(CARDS)
    named = router.named("What is the FY2018 capital expenditure amount for 3M?", STOPWORDS)
    assert named[0] == ("a18", 1.0)
    assert all(doc != "bb" for doc, _ in named)
    assert router.named("What was 3M's revenue in FY2022?", STOPWORDS)[0][0] == "a22"


def test_words_on_every_card_name_nothing() -> None:
    router = DocumentRouter(CARDS)
    assert router.named("Which stores did Best Buy open in Q2 of FY2024?", STOPWORDS)[0][0] == "bb"
    assert router.named("What drove the operating margin?", STOPWORDS) == []
    assert router.scores("pdf") == {d.doc_id: 1.0 for d in CARDS}
    assert router.named("the pdf", STOPWORDS) == []  # on every card: it names no one document


def test_one_document_is_never_routed() -> None:
    assert DocumentRouter(CARDS[:1]).named("3M 2018") == []
