"""Which documents a question names: rarity-weighted words shared with each document's title and file name."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from rag.config import PROJECT_ROOT
from rag.keyword_index import STOPWORDS
from rag.routing import DocumentCard, DocumentRouter, abbreviated_words, begun_words, card_terms, spelled_quarters

CARDS = [
    DocumentCard("a18", "10-K - 02/07/2019 - 3M Company 3M_2018_10K.pdf"),
    DocumentCard("a22", "3M COMPANY 3M_2022_10K.pdf"),
    DocumentCard("bb", "Form 10-Q for the period ending 2023-07-29 BEST BUY CO., INC. BESTBUY_2024Q2_10Q.pdf"),
    DocumentCard("am", "Amcor 4Q 2023 Exhibit 99.1 AMCOR_2023Q4_EARNINGS.pdf"),
]


def texts_holding(counts: dict[str, int], default: int = 0) -> Callable[[list[str]], dict[str, int]]:
    """A knowledge base's text frequencies: phrase → how many documents' texts hold it."""
    return lambda phrases: {phrase: counts.get(phrase, default) for phrase in phrases}


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
    text_frequency = texts_holding({"war": 3, "who": 4, "french": 2, "tesla": 1, "nikola": 1, "warsaw": 1})
    question = "Who was the War of Currents waged between?"  # "Currents" is capitalised, but abbreviates nothing
    assert DocumentRouter(cards).named(question, STOPWORDS) != []  # by the cards alone, "War" names one
    router = DocumentRouter(cards, text_frequency)
    assert router.named(question, STOPWORDS) == []  # but three of the four texts say "war"
    assert router.named("Where did Tesla work in 1884?", STOPWORDS)[0][0] == "tesla"


def test_a_quarter_written_in_words_picks_that_quarters_filing() -> None:
    router = DocumentRouter(
        [
            DocumentCard("q2", "Pfizer_2023Q2_10Q.pdf"),
            DocumentCard("k21", "PFIZER_2021_10K.pdf"),
            DocumentCard("bb", "BESTBUY_2024Q2_10Q.pdf"),
            DocumentCard("am", "AMCOR_2023Q4_EARNINGS.pdf"),
        ]
    )
    assert spelled_quarters("in the second quarter of 2023, and its fourth-quarter results") == {"q2", "q4"}
    assert spelled_quarters("the 3rd fiscal quarter") == {"q3"}
    assert spelled_quarters("the quarter before") == set()
    assert router.named("How much did Pfizer spend on R&D in the second quarter of 2023?", STOPWORDS) == [("q2", 1.0)]


def test_short_forms_with_an_ampersand_and_names_glued_in_capitals() -> None:
    cards = [
        DocumentCard("jnj", "FOR IMMEDIATE RELEASE JOHNSON_JOHNSON_2022Q4_EARNINGS.pdf"),
        DocumentCard("mgm", "Form 10-Q filed on 2023-08-02 MGMRESORTS_2023Q2_10Q.pdf"),
        DocumentCard("pep", "Q1 2023 8-K - Exhibit 99.1 PEPSICO_2023Q1_EARNINGS.pdf"),
        DocumentCard("law", "European_Union_law.txt"),
        DocumentCard("jax", "Jacksonville__Florida.txt"),
    ]
    router = DocumentRouter(cards)
    assert router.named("What did J&J spend on research in 2022?", STOPWORDS)[0][0] == "jnj"
    assert router.named("How much net revenue did MGM China make?", STOPWORDS)[0][0] == "mgm"
    assert router.named("What was Pepsi's long-term debt?", STOPWORDS)[0][0] == "pep"
    assert begun_words("MGM", {"mgmresorts", "form"}) == {"mgmresorts"}
    assert begun_words("MGMRESORTS", {"mgmresorts"}) == set()  # the whole word is a name, not a short form
    # Words written in Title case show where they end: "Europe" does not begin "European", "Jackson" not "Jacksonville".
    assert router.named("Which plague reached Europe first?", STOPWORDS) == []
    assert router.named("When did Andrew Jackson die?", STOPWORDS) == []
    # A word that begins a glued name but that many texts use names nothing.
    water = [DocumentCard("awk", "AMERICANWATERWORKS_2022_10K.pdf"), DocumentCard("amcor", "AMCOR_2023Q2_10Q.pdf")]
    water += [DocumentCard(f"o{n}", f"OTHER{n}_2021_10K.pdf") for n in range(6)]
    router = DocumentRouter(water, texts_holding({"america": 7, "amcor": 1}))
    assert router.named("What were Amcor's net sales in North America?", STOPWORDS)[0][0] == "amcor"
    assert all(doc != "awk" for doc, _ in router.named("What were Amcor's net sales in North America?", STOPWORDS))
    assert router.named("Which utility serves North America?", STOPWORDS) == []
    # ... and that ends where one of the texts' words begins: MGM|RESORTS, not AMERICA|NWATERWORKS.
    glued = [*water, DocumentCard("mgm", "MGMRESORTS_2023Q2_10Q.pdf")]
    router = DocumentRouter(glued, texts_holding({"america": 1, "mgm": 1, "resorts": 3, "waterworks": 1}))
    assert router.named("Which utility serves North America?", STOPWORDS) == []
    assert router.named("What did MGM earn in Macau?", STOPWORDS)[0][0] == "mgm"


def test_a_name_many_texts_mention_still_names_the_filing_of_the_period_asked() -> None:
    """Other companies' filings name their bank ("JPMorgan Chase Bank, N.A., as administrative agent")."""
    cards = [
        DocumentCard(f"jpm{year}", f"CORP — JPMorgan Chase & Co. JPMORGAN_{year}Q2_10Q.pdf") for year in (2022, 2023)
    ]
    cards += [DocumentCard(f"other{n}", f"OTHER{n}_2022_10K.pdf") for n in range(6)]
    router = DocumentRouter(cards, texts_holding({}, default=8))  # every text says "JPMorgan" and "2022"
    assert router.named("What was JPMorgan's CET1 ratio at the end of June 2022?", STOPWORDS)[0] == ("jpm2022", 1.0)
    assert router.named("What was JPMorgan's CET1 ratio in the second quarter of 2023?", STOPWORDS)[0][0] == "jpm2023"
    assert router.named("Is JPMorgan a lender of the company?", STOPWORDS) == []  # a name many texts hold, no period


_SCORES_IN_A_NEW_PROCESS = """
from rag.routing import DocumentCard, DocumentRouter
cards = [
    DocumentCard(f"{c}{y}{q}", f"{c}_{y}{q}_10Q.pdf Form 10-Q {c} Holdings")
    for c in ("ACME", "GLOBEX", "INITECH") for y in (2021, 2022, 2023) for q in ("Q1", "Q2", "Q3")
]
print(repr(DocumentRouter(cards).scores("What did Acme Holdings report on Form 10-Q for Q2 2022?")))
"""


def test_scores_are_the_same_in_every_process() -> None:
    """Python orders a set of words differently in each process; summed in that order, a document's score
    differed in its last bits, and a near tie could name other documents from one run to the next."""
    outputs = {
        subprocess.run(
            [sys.executable, "-c", _SCORES_IN_A_NEW_PROCESS],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(PROJECT_ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(1, 7)
    }
    assert len(outputs) == 1 and "ACME2022Q2" in outputs.pop()
