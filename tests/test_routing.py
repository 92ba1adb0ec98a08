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
    DocumentCard("a18", "10-K - 02/07/2019 - 6W Company 6W_2018_10K.pdf"),
    DocumentCard("a22", "6W COMPANY 6W_2022_10K.pdf"),
    DocumentCard("bl", "Form 10-Q for the period ending 2023-07-29 BRIGHT LANE CO., INC. BRIGHTLANE_2024Q2_10Q.pdf"),
    DocumentCard("tw", "Tarnwell 4Q 2023 Exhibit 99.1 TARNWELL_2023Q4_EARNINGS.pdf"),
]


def texts_holding(counts: dict[str, int], default: int = 0) -> Callable[[list[str]], dict[str, int]]:
    """A knowledge base's text frequencies: phrase → how many documents' texts hold it."""
    return lambda phrases: {phrase: counts.get(phrase, default) for phrase in phrases}


def test_codes_spell_out_their_years_and_quarters() -> None:
    assert {"fy2024", "2024"} <= card_terms("FY2024")
    assert {"2023q4", "2023", "q4"} <= card_terms("TARNWELL_2023Q4_EARNINGS.pdf")
    assert "q4" in card_terms("4Q results")
    assert "q2" in card_terms("in Q2 of FY2024")


def test_the_company_and_the_year_pick_one_of_two_siblings() -> None:
    router = DocumentRouter(CARDS)
    named = router.named("What is the FY2018 capital expenditure amount for 6W?", STOPWORDS)
    assert named[0] == ("a18", 1.0)
    assert all(doc != "bl" for doc, _ in named)
    assert router.named("What was 6W's revenue in FY2022?", STOPWORDS)[0][0] == "a22"


def test_words_on_every_card_name_nothing() -> None:
    router = DocumentRouter(CARDS)
    assert router.named("Which stores did Bright Lane open in Q2 of FY2024?", STOPWORDS)[0][0] == "bl"
    assert router.named("What drove the operating margin?", STOPWORDS) == []
    assert router.scores("pdf") == {d.doc_id: 1.0 for d in CARDS}
    assert router.named("the pdf", STOPWORDS) == []  # on every card: it names no one document


def test_one_document_is_never_routed() -> None:
    assert DocumentRouter(CARDS[:1]).named("6W 2018") == []


def test_a_short_form_names_the_company_it_abbreviates() -> None:
    assert abbreviated_words("CAMA", ["form", "10", "k", "caldera", "marine", "company"]) == ("caldera", "marine")
    assert abbreviated_words("QnQ", ["form", "10", "k", "for", "quill", "quarry"]) == ("quill", "quarry")
    assert abbreviated_words("VGL", ["vesper", "granite", "lines", "corp"]) == ("vesper", "granite", "lines")
    assert abbreviated_words("Varno", ["oren", "varno"]) == ()  # one word is not a short form of two
    assert abbreviated_words("CIM", ["caldera", "marine"]) == ()
    cards = [
        DocumentCard("cama", "Form 10-K filed on 2023-02-10 — Caldera Marine Company CALDERAMARINE_2022_10K.pdf"),
        DocumentCard("qnq", "Form 10-K for Quill Quarry filed 02/16/2023 QUILL_QUARRY_2022_10K.pdf"),
        DocumentCard("6w", "10-K - 02/08/2023 - 6W Company 6W_2022_10K.pdf"),
    ]
    router = DocumentRouter(cards)
    assert router.named("Does CAMA have an improving operating margin profile as of 2022?", STOPWORDS)[0][0] == "cama"
    assert [doc for doc, _ in router.named("What drove gross margin change for QnQ?", STOPWORDS)] == ["qnq"]


def test_a_legal_form_or_a_common_word_names_no_document() -> None:
    router = DocumentRouter(
        [
            DocumentCard("6w", "10-K - 6W Company 6W_2022_10K.pdf"),
            DocumentCard("hal", "THE HALVARD COMPANY HALVARD_2022_10K.pdf"),
            DocumentCard("school", "Village_school.txt"),
            DocumentCard("law", "Russian_state_law.txt"),
            DocumentCard("corbelle", "Corbelle_University.txt"),
        ]
    )
    assert router.named("If operating margin is not useful for a company like this, explain why.", STOPWORDS) == []
    assert router.named("What river is located in the vicinity of the school?", STOPWORDS) == []
    assert router.named("What type of goals are usually done skirting the law?", STOPWORDS) == []
    assert router.named("Which Corbelle school has the most students?", STOPWORDS)[0][0] == "corbelle"
    # written without capitals, every word may name a document
    assert router.named("what is the village school's fee?", STOPWORDS)[0][0] == "school"


def test_a_word_many_documents_use_names_none_of_them() -> None:
    cards = [
        DocumentCard("war", "French_and_Corsair_War.txt"),
        DocumentCard("who", "Guess_Who_Called.txt"),
        DocumentCard("varno", "Oren_Varno.txt"),
        DocumentCard("warvale", "Warvale.txt"),
    ]
    text_frequency = texts_holding({"war": 3, "who": 4, "french": 2, "varno": 1, "oren": 1, "warvale": 1})
    question = "Who was the War of Currents waged between?"  # "Currents" is capitalised, but abbreviates nothing
    assert DocumentRouter(cards).named(question, STOPWORDS) != []  # by the cards alone, "War" names one
    router = DocumentRouter(cards, text_frequency)
    assert router.named(question, STOPWORDS) == []  # but three of the four texts say "war"
    assert router.named("Where did Varno work in 1884?", STOPWORDS)[0][0] == "varno"


def test_a_quarter_written_in_words_picks_that_quarters_filing() -> None:
    router = DocumentRouter(
        [
            DocumentCard("q2", "Mirelle_2023Q2_10Q.pdf"),
            DocumentCard("k21", "MIRELLE_2021_10K.pdf"),
            DocumentCard("bl", "BRIGHTLANE_2024Q2_10Q.pdf"),
            DocumentCard("tw", "TARNWELL_2023Q4_EARNINGS.pdf"),
        ]
    )
    assert spelled_quarters("in the second quarter of 2023, and its fourth-quarter results") == {"q2", "q4"}
    assert spelled_quarters("the 3rd fiscal quarter") == {"q3"}
    assert spelled_quarters("the quarter before") == set()
    assert router.named("How much did Mirelle spend on R&D in the second quarter of 2023?", STOPWORDS) == [("q2", 1.0)]


def test_short_forms_with_an_ampersand_and_names_glued_in_capitals() -> None:
    cards = [
        DocumentCard("qnq", "FOR IMMEDIATE RELEASE QUILL_QUARRY_2022Q4_EARNINGS.pdf"),
        DocumentCard("zem", "Form 10-Q filed on 2023-08-02 ZEMRESORTS_2023Q2_10Q.pdf"),
        DocumentCard("vesko", "Q1 2023 8-K - Exhibit 99.1 VESKOCO_2023Q1_EARNINGS.pdf"),
        DocumentCard("law", "Russian_state_law.txt"),
        DocumentCard("carlson", "Carlsonville__Oresta.txt"),
    ]
    router = DocumentRouter(cards)
    assert router.named("What did Q&Q spend on research in 2022?", STOPWORDS)[0][0] == "qnq"
    assert router.named("How much net revenue did ZEM Coral make?", STOPWORDS)[0][0] == "zem"
    assert router.named("What was Vesko's long-term debt?", STOPWORDS)[0][0] == "vesko"
    assert begun_words("ZEM", {"zemresorts", "form"}) == {"zemresorts"}
    assert begun_words("ZEMRESORTS", {"zemresorts"}) == set()  # the whole word is a name, not a short form
    # Words written in Title case show where they end: "Russia" does not begin "Russian", "Carlson" not "Carlsonville".
    assert router.named("Which plague reached Russia first?", STOPWORDS) == []
    assert router.named("When did Andrew Carlson die?", STOPWORDS) == []
    # A word that begins a glued name but that many texts use names nothing.
    water = [DocumentCard("atw", "AMERICANTIMBERWORKS_2022_10K.pdf"), DocumentCard("tw", "TARNWELL_2023Q2_10Q.pdf")]
    water += [DocumentCard(f"o{n}", f"OTHER{n}_2021_10K.pdf") for n in range(6)]
    router = DocumentRouter(water, texts_holding({"america": 7, "tarnwell": 1}))
    assert router.named("What were Tarnwell's net sales in North America?", STOPWORDS)[0][0] == "tw"
    assert all(doc != "atw" for doc, _ in router.named("What were Tarnwell's net sales in North America?", STOPWORDS))
    assert router.named("Which utility serves North America?", STOPWORDS) == []
    # ... and that ends where one of the texts' words begins: ZEM|RESORTS, not AMERICA|NTIMBERWORKS.
    glued = [*water, DocumentCard("zem", "ZEMRESORTS_2023Q2_10Q.pdf")]
    router = DocumentRouter(glued, texts_holding({"america": 1, "zem": 1, "resorts": 3, "timberworks": 1}))
    assert router.named("Which utility serves North America?", STOPWORDS) == []
    assert router.named("What did ZEM earn in Ostra?", STOPWORDS)[0][0] == "zem"


def test_a_name_many_texts_mention_still_names_the_filing_of_the_period_asked() -> None:
    """Other companies' filings name their bank ("Velmont Crest Bank, N.A., as administrative agent")."""
    cards = [
        DocumentCard(f"vel{year}", f"CORP — Velmont Crest & Co. VELMONT_{year}Q2_10Q.pdf") for year in (2022, 2023)
    ]
    cards += [DocumentCard(f"other{n}", f"OTHER{n}_2022_10K.pdf") for n in range(6)]
    router = DocumentRouter(cards, texts_holding({}, default=8))  # every text says "Velmont" and "2022"
    assert router.named("What was Velmont's CET1 ratio at the end of June 2022?", STOPWORDS)[0] == ("vel2022", 1.0)
    assert router.named("What was Velmont's CET1 ratio in the second quarter of 2023?", STOPWORDS)[0][0] == "vel2023"
    assert router.named("Is Velmont a lender of the company?", STOPWORDS) == []  # a name many texts hold, no period


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
