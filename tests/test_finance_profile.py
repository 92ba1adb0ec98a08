"""The finance profile: a metric named in a question → the captions of its inputs and their statements."""

from __future__ import annotations

from rag.profiles.finance import BALANCE, CASH_FLOWS, INCOME, expand, is_statement


def test_a_metric_is_expanded_with_the_captions_that_compute_it() -> None:
    gross = expand("Does Halvard have an improving gross margin profile as of FY2022?")
    assert "cost of sales" in gross.terms and "gross profit" in gross.terms
    assert gross.prefer == {INCOME}
    capital = expand("Is 6W a capital-intensive business based on FY2022 data?")
    assert "purchases of property plant and equipment" in capital.terms
    assert capital.prefer == {BALANCE, CASH_FLOWS}
    assert expand("Roughly how many times has QnQ sold its inventory in FY2022?").prefer == {INCOME, BALANCE}


def test_abbreviations_and_other_names_of_the_statements_are_spelled_out() -> None:
    assert "property plant and equipment net" in expand("Did Mirelle grow its PPNE between FY20 and FY21?").terms
    assert "property plant and equipment net" in expand("What is the net PP&E?").terms
    pnl = expand("Use the P&L statement.")
    assert "statement of operations" in pnl.terms and pnl.prefer == {INCOME}
    assert expand("the statement of financial position").prefer == {BALANCE}


def test_a_question_naming_no_metric_is_left_alone() -> None:
    for question in ("Who was the War of Currents waged between?", "What mechanism can be used to make oxygen?"):
        assert not expand(question)
        assert expand(question).prefer == frozenset()
    assert not expand("How did the margins of the river change?")  # "margin" alone is not a metric


def test_a_statement_is_known_by_its_heading_whatever_the_company_calls_it() -> None:
    header = "10-K · ACME_2022_10K.pdf · {} · page 48"
    for heading in ("Consolidated Statements of Operations", "CONSOLIDATED STATEMENTS OF EARNINGS", "Income Statement"):
        assert is_statement(header.format(heading), frozenset({INCOME}))
    assert is_statement(header.format("Consolidated Balance Sheets"), frozenset({BALANCE}))
    assert is_statement(header.format("Consolidated Statement of Financial Position"), frozenset({BALANCE}))
    assert is_statement(header.format("Consolidated Statements of Cash Flows"), frozenset({CASH_FLOWS}))
    assert not is_statement(header.format("Consolidated Balance Sheets"), frozenset({INCOME}))
    assert not is_statement(header.format("Liquidity and Capital Resources"), frozenset({INCOME, BALANCE, CASH_FLOWS}))


def test_only_the_primary_statements_count_even_with_their_letters_split_by_the_pdf() -> None:
    both = frozenset({INCOME, BALANCE})
    assert is_statement("6W_2018_10K.pdf · Consolidated Balance Shee t · page 58", both)
    assert is_statement("X.pdf · CONSOLIDATED STATEMENTS OF INCOME · page 96", both)
    for heading in (
        "NOTE 7. Supplemental Balance Sheet Information",
        "TABLE 15: KRV SELECTED INCOME STATEMENT DATA",
        "PARENT COMPANY – CONDENSED STATEMENTS OF INCOME",
        "Results of operations",
    ):
        assert not is_statement(f"X.pdf · {heading} · page 9", both), heading


def test_the_profile_is_on_where_documents_print_a_balance_sheet_and_cash_flows() -> None:
    from rag.profiles import choose_profile

    def frequency(held: set[str]):  # the keyword index's answer: documents holding each phrase
        return lambda phrases: {phrase: int(phrase in held) for phrase in phrases}

    statements = frequency({"condensed consolidated balance sheets", "balance sheets", "statements of cash flows"})
    assert choose_profile("auto", statements).name == "finance"
    assert choose_profile("auto", frequency({"balance sheets"})).name == "none"  # one statement is no filing
    assert choose_profile("auto", frequency(set())).name == "none"
    assert choose_profile("finance", frequency(set())).name == "finance"
    assert choose_profile("none", statements).name == "none"
