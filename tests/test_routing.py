"""Which documents a question names: rarity-weighted words shared with each document's title and file name."""

from __future__ import annotations

from rag.keyword_index import STOPWORDS
from rag.routing import DocumentCard, DocumentRouter, abbreviated_words, card_terms

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


def test_a_short_form_names_the_company_it_abbreviates() -> None:
    assert abbreviated_words("AMEX", ["form", "10", "k", "american", "express", "company"]) == ("american", "express")
    assert abbreviated_words("JnJ", ["form", "10", "k", "for", "johnson", "johnson"]) == ("johnson", "johnson")
    assert abbreviated_words("IBM", ["international", "business", "machines", "corp"]) == (
        "international",
        "business",
        "machines",
    )
    assert abbreviated_words("Tesla", ["nikola", "tesla"]) == ()  # one word is not a short form of two
    assert abbreviated_words("AXE", ["american", "express"]) == ()
    cards = [
        DocumentCard("amex", "Form 10-K filed on 2023-02-10 — American Express Company AMERICANEXPRESS_2022_10K.pdf"),
        DocumentCard("jnj", "Form 10-K for Johnson Johnson filed 02/16/2023 JOHNSON_JOHNSON_2022_10K.pdf"),
        DocumentCard("mmm", "10-K - 02/08/2023 - 3M Company 3M_2022_10K.pdf"),
    ]
    router = DocumentRouter(cards)
    assert router.named("Does AMEX have an improving operating margin profile as of 2022?", STOPWORDS)[0][0] == "amex"
    assert [doc for doc, _ in router.named("What drove gross margin change for JnJ?", STOPWORDS)] == ["jnj"]


def test_a_legal_form_or_a_common_word_names_no_document() -> None:
    router = DocumentRouter(
        [
            DocumentCard("mmm", "10-K - 3M Company 3M_2022_10K.pdf"),
            DocumentCard("ba", "THE BOEING COMPANY BOEING_2022_10K.pdf"),
            DocumentCard("school", "Private_school.txt"),
            DocumentCard("law", "European_Union_law.txt"),
            DocumentCard("harvard", "Harvard_University.txt"),
        ]
    )
    assert router.named("If operating margin is not useful for a company like this, explain why.", STOPWORDS) == []
    assert router.named("What river is located in the vicinity of the school?", STOPWORDS) == []
    assert router.named("What type of goals are usually done skirting the law?", STOPWORDS) == []
    assert router.named("Which Harvard school has the most students?", STOPWORDS)[0][0] == "harvard"
    # written without capitals, every word may name a document
    assert router.named("what is the private school's fee?", STOPWORDS)[0][0] == "school"


def test_a_word_many_documents_use_names_none_of_them() -> None:
    cards = [
        DocumentCard("war", "French_and_Indian_War.txt"),
        DocumentCard("who", "Doctor_Who.txt"),
        DocumentCard("tesla", "Nikola_Tesla.txt"),
        DocumentCard("warsaw", "Warsaw.txt"),
    ]
    in_texts = {"war": 3, "who": 4, "french": 2, "tesla": 1, "nikola": 1, "warsaw": 1}

    def text_frequency(phrases: list[str]) -> dict[str, int]:
        return {p: in_texts.get(p, 0) for p in phrases}

    question = "Who was the War of Currents waged between?"  # "Currents" is capitalised, but abbreviates nothing
    assert DocumentRouter(cards).named(question, STOPWORDS) != []  # by the cards alone, "War" names one
    router = DocumentRouter(cards, text_frequency)
    assert router.named(question, STOPWORDS) == []  # but three of the four texts say "war"
    assert router.named("Where did Tesla work in 1884?", STOPWORDS)[0][0] == "tesla"
