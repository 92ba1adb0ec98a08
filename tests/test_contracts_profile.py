"""The contracts profile: on where the documents are agreements; a question about when an agreement was made is
given its opening, and one about a clause the passages worded as that clause (real store, real encoder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.profiles import TextFrequency, choose_profile
from rag.profiles.contracts import asks_when_made, carries_clause
from rag.retrieval import RetrievalOptions, Retriever, without
from rag.store import Store


@pytest.mark.parametrize(
    "question",
    [
        "When was the rope supply agreement with Gullwing Marine signed?",
        "What is the effective date of the haulage agreement?",
        "What is the date of the licence agreement between Orbit and Lumen?",
        "As of what date does the distribution agreement take effect?",
        "When was the lease executed?",
    ],
)
def test_a_question_about_when_an_agreement_was_made_asks_for_its_opening(question: str) -> None:
    assert asks_when_made(question)


@pytest.mark.parametrize(
    "question",
    [
        "When does the rope supply agreement expire?",
        "How much notice ends the haulage agreement?",
        "Which law governs the licence agreement?",
        "When did the ferry run aground?",
    ],
)
def test_other_questions_do_not(question: str) -> None:
    assert not asks_when_made(question)


def frequency(held: set[str]) -> TextFrequency:  # the keyword index's answer: documents holding each phrase
    return lambda phrases: {phrase: int(phrase in held) for phrase in phrases}


def test_the_profile_is_on_where_documents_carry_an_agreements_boilerplate() -> None:
    agreements = frequency({"in witness whereof", "governing law"})
    assert choose_profile("auto", agreements).name == "contracts"
    assert choose_profile("auto", frequency({"governing law"})).name == "none"  # one phrase is no agreement
    assert choose_profile("contracts", frequency(set())).name == "contracts"
    assert choose_profile("none", agreements).name == "none"
    both = choose_profile(
        "auto", frequency({"in witness whereof", "entire agreement", "balance sheets", "cash flow statement"})
    )
    assert both.name == "finance + contracts"  # agreements with financial statements attached: both apply
    assert both.opening("When was the agreement signed?") and both.expand("What is the gross margin?")


PORTS = ["Nelson", "Lyttelton", "Timaru", "Napier", "Gisborne", "Picton", "Bluff"]
PARTIES = [
    ("Gullwing Marine", "rope supply"),
    ("Bluefin Freight", "timber haulage"),
    ("Cormorant Lines", "grain shipping"),
    ("Dunlin Carriers", "coal carriage"),
    ("Eider Transport", "salt transport"),
]


def agreements_store(tmp_path: Path, embedder: Embedder, texts: list[str], chunk_size: int) -> Store:
    """A knowledge base of one agreement per party of PARTIES (file "<first word of the party>-agreement.txt")."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for (party, _), text in zip(PARTIES, texts, strict=True):
        (docs / f"{party.split()[0].lower()}-agreement.txt").write_text(text)
    store = Store(tmp_path / "kb")
    Ingestor(store, embedder, chunk_size, 0).ingest_paths([docs])
    return store


def agreement(party: str, kind: str, year: int) -> str:
    """An agreement whose every clause names its party and kind; its date is said once, in its preamble."""
    clauses = [
        f"This {kind.title()} Agreement is entered into as of March {year - 2000}, {year}, by and between {party} "
        f"and Harbour Stores Limited."
    ]
    clauses += [
        f"Clause {n}. {party} performs the {kind} under this {kind} agreement at the port of {PORTS[n % len(PORTS)]}"
        f", schedule {n}, as signed off by both parties."
        for n in range(1, 40)
    ]
    clauses += [
        f"Governing Law. This {kind} agreement with {party} is governed by the laws of New Zealand.",
        f"Entire Agreement. This {kind} agreement is the entire agreement between {party} and Harbour Stores.",
        f"IN WITNESS WHEREOF {party} and Harbour Stores have signed this {kind} agreement.",
    ]
    return "\n\n".join(clauses)


def test_when_an_agreement_was_made_is_answered_from_its_opening(tmp_path: Path, embedder: Embedder) -> None:
    """Five look-alike agreements: every clause of the one asked about names its party and its kind, many say
    "signed", and its date is in the preamble alone. With the profile (on by itself: the documents carry an
    agreement's boilerplate) the preamble is given; without the opening stage, the clauses that repeat the
    question's words fill the context."""
    texts = [agreement(party, kind, year) for year, (party, kind) in enumerate(PARTIES, start=2011)]
    store = agreements_store(tmp_path, embedder, texts, chunk_size=200)
    question = "When was the rope supply agreement with Gullwing Marine signed?"
    preamble = "entered into as of March 11, 2011"
    retriever = Retriever(store, embedder)
    assert retriever.profile().name == "contracts"
    result = retriever.retrieve(question, top_k=4, max_chars=4000)
    assert any(preamble in h.chunk.text for h in result.selected)
    opening = next(s for s in result.stages if s.stage == "opening")
    assert opening.note == "contracts profile: the opening of gullwing-agreement.txt"
    off = Retriever(store, embedder, without(RetrievalOptions(), ["opening"])).retrieve(
        question, top_k=4, max_chars=4000
    )
    assert {h.chunk.source for h in off.selected} == {"gullwing-agreement.txt"}  # the right agreement, …
    assert not any(preamble in h.chunk.text for h in off.selected)  # … but its other clauses
    expiry = retriever.retrieve("When does the rope supply agreement with Gullwing Marine expire?", top_k=4)
    assert "opening" not in {s.stage for s in expiry.stages}  # not a question about when it was made


@pytest.mark.parametrize(
    ("question", "clauses"),
    [
        ("Which jurisdiction's law governs the consulting agreement?", {"governing-law"}),
        ("Under whose laws is the haulage agreement to be construed?", {"governing-law"}),
        ("How much notice is needed to stop the lease from renewing?", {"notice", "renewal"}),
        ("For what period does the licence renew after its initial term?", {"renewal", "term"}),
        ("Can the distributor assign the agreement to an affiliate?", {"assignment"}),
        ("Is there a cap on the supplier's liability?", {"liability"}),
        ("When was the rope supply agreement signed?", set()),  # the opening answers that one
        ("When did the ferry run aground?", set()),
    ],
)
def test_a_question_about_a_clause_says_which(question: str, clauses: set[str]) -> None:
    expansion = choose_profile("contracts", frequency(set())).expand(question)
    assert {p.removeprefix("clause:") for p in expansion.prefer} == clauses


def test_a_passage_is_preferred_when_worded_as_every_clause_asked_about() -> None:
    assert carries_clause("This Agreement shall be governed by the laws of the State of Delaware.", {"governing-law"})
    assert carries_clause("construed and enforced in accordance with the laws of Ontario", {"governing-law"})
    assert not carries_clause("The parties agree to comply with all applicable laws.", {"governing-law"})
    renewal_notice = "It renews for successive one-year terms unless either party gives ninety (90) days' prior notice."
    assert carries_clause(renewal_notice, {"notice", "renewal"})
    assert not carries_clause("Notices shall be sent by registered mail to the addresses above.", {"notice", "renewal"})
    assert not carries_clause("anything", set())


def law_agreement(party: str, kind: str, country: str) -> str:
    """An agreement whose clauses all name its party and kind, and say how they are construed and which laws the
    parties keep to; the law that governs it is said once, in words the question does not use."""
    clauses = [f"This {kind} agreement is made between {party} and Harbour Stores Limited."]
    clauses += [
        f"Clause {n}. The {kind} duties of {party} under this agreement are to be construed as set out in schedule "
        f"{n}; each party keeps to the laws and the harbour rules of the port of {PORTS[n % len(PORTS)]}."
        for n in range(1, 30)
    ]
    clauses += [
        f"Clause 30. This agreement shall be governed by the laws of {country}.",
        f"IN WITNESS WHEREOF {party} and Harbour Stores have signed. Entire Agreement: this is all of it.",
    ]
    return "\n\n".join(clauses)


def test_the_clause_asked_about_is_given_from_the_agreement_in_focus(tmp_path: Path, embedder: Embedder) -> None:
    countries = ["Fiji", "Samoa", "Tonga", "Chile", "Peru"]
    texts = [law_agreement(party, kind, country) for (party, kind), country in zip(PARTIES, countries, strict=True)]
    store = agreements_store(tmp_path, embedder, texts, chunk_size=300)
    question = "Under whose laws is the timber haulage agreement with Bluefin Freight to be construed?"
    result = Retriever(store, embedder).retrieve(question, top_k=3, max_chars=900)
    assert any("governed by the laws of Samoa" in h.chunk.text for h in result.selected)
    assert not any(country in h.chunk.text for h in result.selected for country in countries if country != "Samoa")
    prefer = next(s for s in result.stages if s.stage == "prefer")
    assert "clause:governing-law" in prefer.note
    plain = Retriever(store, embedder, RetrievalOptions(profile="none")).retrieve(question, top_k=3, max_chars=900)
    assert not any("governed by the laws" in h.chunk.text for h in plain.selected)  # the clauses that repeat it
