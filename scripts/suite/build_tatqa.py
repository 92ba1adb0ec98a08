"""TAT-QA (NExTplusplus/TAT-QA): annual-report pages that mix a financial table with its text, rendered to PDF.

TAT-QA gives each annual-report page as a table (rows of cells) plus the paragraphs around it; the original
PDFs are not distributed. Each selected context is rendered with fpdf2 into a one-page PDF (paragraphs, with
the table placed after the paragraph that introduces it), so the app reads a table page as it would in a report.

Documents: 35 contexts from the released dev and test-gold files, chosen for a recognisable subject (list
below, with our short description of each). Questions: the dataset's own "span" questions whose answer is
printed verbatim (<= 10 words, not a bare year), up to 3 per context; each is adapted with a reference to the
page's subject, since the original questions assume the reader holds the page.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
from fpdf import FPDF
from fpdf.fonts import FontFace

DOMAIN = "tatqa"
REPO = "NExTplusplus/TAT-QA"
FILES = ["dataset_raw/tatqa_dataset_dev.json", "dataset_raw/tatqa_dataset_test_gold.json"]
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
PER_DOC = 3

# table uid prefix -> how a user would name that page (our wording)
ABOUT: dict[str, str] = {
    "77d8e381": "the reconciliation of statutory profit to underlying EBITDA",
    "22f634eb": "the table of stock-based compensation cost by line item",
    "8749fc7b": "the goodwill activity by operating segment, including Mobileye",
    "386352cf": "the disclosure of the balance sheet impact of adopting ASC 606",
    "285a1ced": "American Tower's note on other operating expense",
    "2061da6a": "the stock awards note on RSUs and performance stock units",
    "bcbd7783": "BCE's fourth quarter highlights",
    "75c4ce3e": "the Adjusted EBITDA non-GAAP reconciliation",
    "c957de22": "the note on the fair value of RSUs and PSUs granted and vested",
    "bd57880a": "the restructuring costs that include the Qdoba evaluation",
    "34f239a7": "the contract balances note on billed and accrued receivables",
    "ceb7f8c7": "the working capital discussion",
    "dace18a6": "the tax reconciliation for the period ended 30 March 2019",
    "64587c9c": "the property and equipment note for the year to March 31, 2019",
    "f5cab3e6": "the note on accrued expenses and other current liabilities",
    "41481127": "the strategic investments note on non-marketable investments",
    "502dd70a": "the greenhouse gas emissions summary",
    "9afaa852": "the deferred tax note of the company with an August 31 year end",
    "e6c3cb87": "the note on financial assets at fair value through profit or loss",
    "e8877535": "TCS's analysis of revenue growth",
    "8edfdb1c": "the results of operations with electronic component product group revenues",
    "93f11a3d": "Altium's parent entity statement of financial position",
    "0a75d1da": "the note on the acquisition of Automated",
    "d7a538e8": "the inventories note",
    "073a0021": "the quarterly financial information note",
    "8dcb30f6": "the restructuring activity note",
    "e5fc54e8": "the market information and dividends section",
    "00addb09": "the Endeavour Drinks review of BWS and Dan Murphy's",
    "e573a09b": "the related party transactions with Peel",
    "78b73a25": "the note on the Woolworths Group Superannuation Plan",
    "6aa15859": "the discontinued Horizon Clinicals and Series2000 operation",
    "879fb3ae": "the stock capital note on warrants",
    "ae44e24d": "the section on restaurant leases",
    "4c2f88e1": "Advanced Energy's note on uncertain tax positions",
    "b1b21d4c": "the note on segment and geographical revenue",
}
QWORDS = {"what", "how", "which", "when", "where", "who", "why", "is", "are", "does", "do", "did", "in", "as", "for"}
INTRO = re.compile(r"(?i)(following|table|as follows|consist|below|summar)")


def usable(q: dict[str, Any]) -> bool:
    if q["answer_type"] != "span" or not isinstance(q["answer"], list):
        return False
    a = str(q["answer"][0]).strip()
    return True and len(a.split()) <= 10 and len(a) >= 3 and not re.fullmatch(r"(FY)?\s*\d{4}", a)


def render(ctx: dict[str, Any], path: Path) -> None:
    pdf = FPDF(format="A4")
    pdf.set_creation_date(datetime(2021, 1, 1, tzinfo=UTC))  # fixed, so that builds are byte-identical
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    paras = [common.clean_ws(p["text"]) for p in sorted(ctx["paragraphs"], key=lambda p: p["order"])]
    paras = [p.replace("&amp;lt;", "<").replace("&amp;gt;", ">") for p in paras if p]
    at = next(
        (i for i, p in enumerate(paras) if p.endswith(":") and INTRO.search(p)),
        next((i for i, p in enumerate(paras) if INTRO.search(p)), 0),
    )
    rows = [[common.clean_ws(str(c)) for c in r] for r in ctx["table"]["table"]]
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    for i, p in enumerate(paras):
        pdf.set_font("DejaVu", "B" if len(p) < 70 and not p.endswith(".") else "", 9.5)
        pdf.multi_cell(0, 5, p)
        pdf.ln(2)
        if i == at:
            pdf.set_font("DejaVu", "", 8)
            first = 0.34 if width > 2 else 0.5
            rest = (1 - first) / max(1, width - 1)
            with pdf.table(
                col_widths=[first] + [rest] * (width - 1),
                first_row_as_headings=False,
                line_height=4.2,
                headings_style=FontFace(emphasis="BOLD"),
            ) as table:
                for r in rows:
                    table.row(r)
            pdf.ln(3)
    pdf.output(str(path))


def adapt(question: str, about: str) -> str:
    q = common.clean_ws(question)
    if q.split(" ", 1)[0].lower() in QWORDS:
        q = q[0].lower() + q[1:]
    if not q.endswith("?"):
        q += "?"
    return f"In {about}, {q}"


def main() -> None:
    gd = common.gitdir(REPO)
    contexts: dict[str, dict[str, Any]] = {}
    for f in FILES:
        for ctx in json.loads(common.show(gd, f)):
            contexts[ctx["table"]["uid"][:8]] = ctx
    docs_dir = common.reset_domain(DOMAIN)
    questions: list[dict[str, Any]] = []
    for uid8, about in ABOUT.items():
        ctx = contexts[uid8]
        name = f"TAT-QA page {uid8}.pdf"
        render(ctx, docs_dir / name)
        qs = [q for q in sorted(ctx["questions"], key=lambda q: q["order"]) if usable(q)][:PER_DOC]
        for q in qs:
            tags = ["named-by-content"]
            if "table" in q["answer_from"]:
                tags.append("table")
            questions.append(
                {
                    "id": f"tatqa-{q['uid']}",
                    "question": adapt(q["question"], about),
                    "answers": [str(q["answer"][0]).strip()],
                    "doc": name,
                    "evidence": [{"doc": name, "page": 1}],
                    "source_question": common.clean_ws(q["question"]),
                    "adapted": True,
                    "tags": tags,
                }
            )
    stats = common.finalize(DOMAIN, docs_dir, questions, unique_page_evidence=True)
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} ({', '.join(FILES)})",
        "licence": "CC BY 4.0 (TAT-QA)",
        "citation": "Zhu et al., TAT-QA: A Question Answering Benchmark on a Hybrid of Tabular and Textual Content in"
        " Finance, ACL 2021",
        "builder": "scripts/suite/build_tatqa.py",
        "notes": "Each document is one annual-report page (table + paragraphs) from TAT-QA, rendered by us to PDF with"
        " fpdf2 (the originals are not distributed). Questions are the dataset's span questions, each adapted"
        " with a reference to the page's subject. Documents are short (one page each): a test of telling similar"
        " financial tables apart rather than of depth.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
