"""The finance profile: what a question's metric is computed from, and which statement prints it.

A question names a metric ("Does Boeing have an improving gross margin profile?", "Is 3M capital-intensive?",
"JnJ's inventory turnover"); a filing prints its inputs under their own names ("Cost of sales",
"Purchases of property, plant and equipment") in a statement titled its own way ("Consolidated Statements
of Operations" for the income statement). Neither the embedding model nor BM25 can bridge that: on the
FinanceBench development set most of the questions whose evidence was not found were of this kind
(README, "Real documents"). So a question naming a metric is also searched with the line items that
compute it (as a thesaurus expands a query), and the passages of the financial statements that hold those
line items are preferred.

These are the textbook definitions of the common ratios (CFA, SEC filings' own captions), not a list fitted
to any set of questions. A question that names none of them is searched as it is. The profile is on when the
knowledge base holds financial statements (`holds_financial_statements`) or when the settings say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from rag.profiles import Expansion, TextFrequency
from rag.schema import HEADER_SEPARATOR, Chunk

Statement = Literal["income", "balance", "cash flows"]
INCOME: Statement = "income"
BALANCE: Statement = "balance"
CASH_FLOWS: Statement = "cash flows"


@dataclass(frozen=True)
class Term:
    pattern: str  # how questions name it (a case-insensitive regular expression)
    line_items: str  # the captions filings print its inputs under
    statements: frozenset[Statement]  # where those captions are


def _term(pattern: str, line_items: str, *statements: Statement) -> Term:
    return Term(pattern, line_items, frozenset(statements))


TERMS: tuple[Term, ...] = (
    # profitability
    _term(r"gross (?:profit )?margins?", "gross profit net sales revenue cost of sales cost of goods sold", INCOME),
    _term(
        r"operating (?:profit |income )?margins?|\bebit margins?",
        "operating income operating profit net sales revenue",
        INCOME,
    ),
    _term(r"net (?:profit |income )?margins?|\bprofit margins?", "net income net sales revenue", INCOME),
    _term(r"\bebitda\b", "operating income depreciation and amortization", INCOME, CASH_FLOWS),
    _term(r"\bebit\b", "operating income earnings before interest and taxes", INCOME),
    _term(r"return on (?:total )?assets|\broa\b", "net income total assets", INCOME, BALANCE),
    _term(
        r"return on (?:shareholders'? |stockholders'? |common )?equity|\broe\b",
        "net income total equity",
        INCOME,
        BALANCE,
    ),
    _term(r"effective (?:income )?tax rate", "provision for income taxes income before income taxes", INCOME),
    _term(r"interest coverage|times interest earned", "operating income interest expense", INCOME),
    # liquidity and leverage
    _term(
        r"quick ratio|acid[- ]test",
        "cash and cash equivalents marketable securities accounts receivable total current liabilities",
        BALANCE,
    ),
    _term(r"current ratio|working capital", "total current assets total current liabilities", BALANCE),
    _term(r"\bliquidity\b", "cash and cash equivalents total current assets total current liabilities", BALANCE),
    _term(
        r"debt[- ]to[- ](?:equity|capital)|leverage ratio", "long-term debt short-term borrowings total equity", BALANCE
    ),
    # efficiency
    _term(
        r"inventory turnover|days (?:of |in )?inventory|sold (?:its |their )?inventory",
        "cost of sales cost of goods sold inventories",
        INCOME,
        BALANCE,
    ),
    _term(
        r"receivables? turnover|days sales outstanding|\bdso\b",
        "accounts receivable net sales revenue",
        INCOME,
        BALANCE,
    ),
    _term(
        r"payables? turnover|days payables? outstanding|\bdpo\b",
        "accounts payable cost of sales inventories",
        INCOME,
        BALANCE,
    ),
    _term(
        r"asset turnover",
        "revenue net sales property plant and equipment net total assets",
        INCOME,
        BALANCE,
    ),
    _term(
        r"capital[- ]intensive|capital intensity",
        "capital expenditures purchases of property plant and equipment property plant and equipment net "
        "total assets revenue",
        BALANCE,
        CASH_FLOWS,
    ),
    _term(
        r"\bcapex\b|capital expenditures?", "capital expenditures purchases of property plant and equipment", CASH_FLOWS
    ),
    _term(
        r"free cash ?flows?|\bfcf\b|cash ?flow conversion",
        "net cash provided by operating activities purchases of property plant and equipment capital expenditures",
        CASH_FLOWS,
    ),
    _term(r"\bpp&e\b|\bppn?e\b|\bpp and e\b", "property plant and equipment net", BALANCE),
    _term(r"dividend payout", "dividends paid net income", INCOME, CASH_FLOWS),
    # abbreviations of captions
    _term(r"\bcogs\b", "cost of goods sold cost of sales", INCOME),
    _term(r"\bsg&a\b|\bsga\b", "selling general and administrative expenses", INCOME),
    _term(r"\bd&a\b", "depreciation and amortization", INCOME, CASH_FLOWS),
    _term(r"\br&d\b", "research and development", INCOME),
    _term(r"\beps\b", "earnings per share", INCOME),
    _term(r"\btop ?line\b", "revenue net sales", INCOME),
    # the statements themselves, by their other names
    _term(
        r"income statements?|\bp&l\b|profit (?:and|&) loss|statements? of (?:income|operations|earnings)",
        "statement of income statement of operations statement of earnings",
        INCOME,
    ),
    _term(
        r"balance sheets?|statements? of financial position", "balance sheet statement of financial position", BALANCE
    ),
    _term(r"cash ?flow statements?|statements? of cash ?flows?", "statement of cash flows", CASH_FLOWS),
)
_COMPILED = tuple((re.compile(term.pattern, re.IGNORECASE), term) for term in TERMS)

# How each primary statement is headed in filings ("Consolidated Statements of Operations", "Condensed
# Consolidated Balance Sheets", "Group income statement"), matched with the spaces taken out: PDF text often
# splits a heading's letters ("Balance Shee t").
_HEADINGS: dict[str, re.Pattern[str]] = {
    INCOME: re.compile(
        r"statements?of(?:consolidated)?(?:income|operations|earnings)|^(?:consolidated|group|condensed)*incomestatements?$"
        r"|(?:statements?of)?profit(?:and|&)loss"
    ),
    BALANCE: re.compile(r"balancesheets?|statements?of(?:consolidated)?financial(?:position|condition)"),
    CASH_FLOWS: re.compile(
        r"statements?of(?:consolidated)?cashflows?|^(?:consolidated|group|condensed)*cashflowstatements?$"
    ),
}
# Tables about a statement that are not the statement: its notes, supplemental information, selected
# (segment) data, and the parent company's own condensed statements.
_NOT_PRIMARY = re.compile(r"note|supplement|selected|parent")
_SPACE = re.compile(r"\s+")


def expand(question: str) -> Expansion:
    """The line items and statements behind the financial metrics a question names (empty when none)."""
    items: list[str] = []
    statements: set[str] = set()
    for pattern, term in _COMPILED:
        if pattern.search(question):
            if term.line_items not in items:
                items.append(term.line_items)
            statements |= term.statements
    return Expansion(" ".join(items), frozenset(statements))


def is_statement(header: str, statements: frozenset[str]) -> bool:
    """Whether a chunk's header ("title · file · heading · page N") says it is one of these primary financial
    statements."""
    for part in header.split(HEADER_SEPARATOR):
        compact = _SPACE.sub("", part.lower())
        if not _NOT_PRIMARY.search(compact) and any(_HEADINGS[s].search(compact) for s in statements if s in _HEADINGS):
            return True
    return False


# The headings of two primary statements, as phrases the keyword index can count documents for.
_STATEMENT_PHRASES = {
    BALANCE: ("balance sheets", "balance sheet", "statements of financial position"),
    CASH_FLOWS: ("statements of cash flows", "statement of cash flows", "cash flow statement"),
}


def holds_financial_statements(text_frequency: TextFrequency) -> bool:
    """Whether some document of the knowledge base prints a balance sheet and a statement of cash flows
    (the glossary then has something to point at)."""
    phrases = [phrase for group in _STATEMENT_PHRASES.values() for phrase in group]
    counts = text_frequency(phrases)
    return all(any(counts.get(phrase, 0) > 0 for phrase in group) for group in _STATEMENT_PHRASES.values())


class FinanceProfile:
    """Financial metrics expanded to their line items; the primary statements that print them preferred."""

    name = "finance"

    def expand(self, question: str) -> Expansion:
        return expand(question)

    def preferred(self, chunk: Chunk, expansion: Expansion) -> bool:
        return bool(expansion.prefer) and is_statement(chunk.header, expansion.prefer)

    def opening(self, question: str) -> bool:
        return False
