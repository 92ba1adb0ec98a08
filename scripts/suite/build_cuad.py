"""CUAD v1 (The Atticus Project): commercial contracts (original EDGAR PDFs) with lawyer-annotated clauses.

The Atticus Project's own repository ships CUAD_v1 as data.zip, which is absent from its snapshot (over 4 MiB);
the same CUAD_v1 folder (full_contract_pdf/, full_contract_txt/, master_clauses.csv) is committed unchanged in
maastrichtlawtech/law3027-advanced-legal-analytics (data/CUAD_v1/), which is read here.

Documents: 40 contracts chosen by hand for variety of type (list below), each with a short description of
what it is about, written by us. Questions: CUAD's categories with short verbatim answers (Agreement Date,
Effective Date, Governing Law, Expiration Date, Renewal Term, Notice Period To Terminate Renewal, Warranty
Duration), phrased as a user would ask them, naming the contract by its subject (two in three) or by its parties.
The answer is the annotated span (or the annotators' short answer where it is printed inside that span).
"""

from __future__ import annotations

import ast
import csv
import io
import re
from typing import Any

import common

DOMAIN = "cuad"
REPO = "maastrichtlawtech/law3027-advanced-legal-analytics"
BASE = "data/CUAD_v1"

# file-name prefix -> (contract type, parties reference, subject reference); our wording.
CONTRACTS: dict[str, tuple[str, str, str]] = {
    "ADUROBIOTECH,INC_06_02_2020-EX-10.7-CONSULTING AGREEMENT.PDF": (
        "consulting agreement",
        "between Aduro Biotech and IREYA",
        "with a consultancy based in Leiden",
    ),
    "AMBASSADOREYEWEARGROUPINC": (
        "endorsement agreement",
        "involving Kathy Ireland and Diplomat Ambassador Eyewear",
        "for a supermodel's eyewear line",
    ),
    "AMERICANPHYSICIANSCAPITALINC": (
        "agency agreement",
        "between MICOA and Stratton, Cheeseman & Walsh-Nevada",
        "appointing a Nevada insurance agency",
    ),
    "AgapeAtpCorp": (
        "supply agreement",
        "between Organic Preparations and Agape ATP",
        "with a manufacturer in Vanuatu",
    ),
    "BELLRINGBRANDS,INC_02_07_2020": (
        "master supply agreement",
        "between Premier Nutrition and Fonterra",
        "for protein powders used in ready-to-drink shakes",
    ),
    "BLACKSTONEGSOLONG": (
        "service agreement",
        "between the Blackstone / GSO fund and Mellon Investor Services",
        "for transfer agent services to a credit income fund",
    ),
    "BOLIVARMININGCORP": (
        "web site agreement",
        "between YourNetPlus.com and Kingdom Connect",
        "for building and hosting a web site",
    ),
    "BellringBrandsInc_20190920": (
        "manufacturing agreement",
        "between Stremicks Heritage Foods and Premier Nutrition",
        "for contract production of protein shakes",
    ),
    "BravatekSolutionsInc": (
        "reseller agreement",
        "between i3 Integrative Creative Solutions and Bravatek",
        "for reselling a security software company's products",
    ),
    "CHAPARRALRESOURCESINC": (
        "transportation contract",
        "between KazakhOil and Karakudukmunay",
        "for shipping crude oil in Kazakhstan",
    ),
    "DataCallTechnologies": (
        "content licensing agreement",
        "between Data Call Technologies and plan_b media",
        "with a German media company",
    ),
    "ETELOS,INC": (
        "distributor agreement",
        "between Tripath Technology and Uniquest",
        "for an audio amplifier chip maker's products in Asia",
    ),
    "EcoScienceSolutionsInc_20180406": (
        "sponsorship agreement",
        "between Fruit of Life Productions and Eco Science",
        "for sponsoring a promoter's events",
    ),
    "FerroglobePlc": (
        "outsourcing agreement",
        "between Silicon Smelters and Espacio Information Technology",
        "for IT services to an Australian silicon smelter",
    ),
    "FuelcellEnergyInc": (
        "joint development agreement",
        "between ExxonMobil Research and FuelCell Energy",
        "on carbonate fuel cells for carbon capture",
    ),
    "GOCALLINC": ("promotion agreement", "between Go Call and PageMaster", "for promoting paging services"),
    "GSITECHNOLOGYINC": (
        "intellectual property agreement",
        "between Sony Electronics and GSI Technology",
        "for the sale of an SRAM business",
    ),
    "GluMobileInc": (
        "wireless content license",
        "between Twentieth Century Fox and Sorrent",
        "for mobile games based on films",
    ),
    "HealthcareIntegratedTechnologiesInc": (
        "reseller agreement",
        "between Vayyar Imaging and IndeLiving",
        "for a fall-detection sensor for the home",
    ),
    "ICORECONNECTINC": (
        "strategic alliance agreement",
        "between iMedicor and USA Managed Care Organization",
        "for a HIPAA-compliant portal for physicians",
    ),
    "IPAYMENT,INC": (
        "sponsorship agreement",
        "between First Data, Wells Fargo and iPayment",
        "for sponsoring a card payment processor",
    ),
    "LeadersonlineInc": (
        "co-branding agreement",
        "between VerticalNet and LeadersOnline",
        "for recruiting services in online business communities",
    ),
    "LegacyEducationAllianceInc_20200330": (
        "development agreement",
        "between T&B Seminars and Legacy Education Alliance",
        "for real estate investing seminars",
    ),
    "LinkPlusCorp": (
        "affiliate agreement",
        "between Link Plus and Axiometric",
        "for wireless mesh networking and meter reading devices",
    ),
    "MARTINMIDSTREAMPARTNERSLP": (
        "transportation services agreement",
        "between Martin Operating Partnership and Midstream Fuel Service",
        "for marine transport of fuel by barge",
    ),
    "MERCATAINC": (
        "sponsorship agreement",
        "between Football Northwest and Mercata",
        "with a professional football team in Seattle",
    ),
    "MPLXLP_06_17_2015": (
        "transportation services agreement",
        "between Marathon Petroleum and Marathon Pipe Line",
        "for a crude pipeline system in Ohio",
    ),
    "NETGEAR,INC": (
        "distributor agreement",
        "between NETGEAR and Ingram Micro",
        "for a networking hardware maker's products",
    ),
    "NEXSTARFINANCEHOLDINGSINC": (
        "outsourcing agreement",
        "between WYZZ and Nexstar Broadcasting of Peoria",
        "for a television station in the Peoria-Bloomington market",
    ),
    "NakedBrandGroupInc": (
        "endorsement agreement",
        "between Naked and Wade Enterprises",
        "with a basketball star for an underwear brand",
    ),
    "NeoformaInc": ("co-branding agreement", "between VerticalNet and Neoforma", "for a medical products marketplace"),
    "OASYSMOBILE,INC": (
        "outsourcing agreement",
        "between E.piphany and High Speed Net Solutions",
        "for hosted customer analytics software",
    ),
    "PANDIONTHERAPEUTICSHOLDCOLLC": (
        "consulting agreement",
        "between Immunotolerance and Alan Crane",
        "with an individual adviser to a biotech start-up",
    ),
    "PaperexchangeComInc": (
        "co-branding agreement",
        "between VerticalNet and PaperExchange.com",
        "for an online paper-industry exchange",
    ),
    "PerformanceSportsBrandsInc": (
        "endorsement agreement",
        "between Andy North and Golfers Incorporated",
        "with a golfer and television commentator",
    ),
    "SPHERE3DCORP": (
        "consulting agreement",
        "between Groupe Parameus and Sphere 3D",
        "for investor relations services",
    ),
    "SmartRxSystemsInc": (
        "distributor agreement",
        "between Smart Rx Systems and A3 Development Group",
        "for an exclusive distributor of pharmacy kiosks",
    ),
    "THERAVANCEBIOPHARMA,INC": (
        "service agreement",
        "between Theravance Biopharma UK and Brett Haumann",
        "for employing an executive in the UK",
    ),
    "TRANSPHORM,INC": (
        "joint venture agreement",
        "between Fujitsu Semiconductor and Transphorm",
        "for a wafer foundry in Aizu, Japan",
    ),
    "TRICITYBANKSHARESCORP": (
        "outsourcing agreement",
        "between Tri City National Bank and Marshall & Ilsley",
        "for a bank's data processing",
    ),
    "TRIZETTOGROUPINC": (
        "maintenance agreement",
        "between Medical Manager Midwest and MTS",
        "for technical infrastructure support",
    ),
    "TcPipelinesLp": (
        "transportation service agreement",
        "between Great Lakes Gas Transmission and ANR Pipeline",
        "for firm natural gas transport",
    ),
    "VERTICALNETINC": (
        "maintenance and support agreement",
        "between VerticalNet and Converge",
        "for licensed e-commerce software",
    ),
    "VIRTUALSCOPICS,INC": (
        "strategic alliance agreement",
        "between PPD and VirtualScopics",
        "for medical imaging in clinical trials",
    ),
    "VNUE,INC": ("sponsorship agreement", "between Anthemic and VNUE", "for a live music recording company"),
    "VertexEnergyInc": (
        "marketing agreement",
        "between Bunker One and Vertex Energy",
        "for marine fuel from a refinery in Marrero, Louisiana",
    ),
    "VgrabCommunicationsInc": (
        "development agreement",
        "between VGrab Asia and three individual developers",
        "for a mobile application",
    ),
    "WELLSFARGOMORTGAGEBACKEDSECURITIES": (
        "yield maintenance agreement",
        "between UBS and a Wells Fargo trust",
        "for a mortgage-backed securities trust",
    ),
    "XinhuaSportsEntertainmentLtd": (
        "content license agreement",
        "between CEIS and Xinhua Financial Network",
        "for Xinhua financial news content",
    ),
}
N_DOCS = 36

CATEGORY = {
    "Agreement Date": "The date of the contract",
    "Effective Date": "The date when the contract is effective",
    "Expiration Date": "On what date will the contract's initial term expire?",
    "Renewal Term": "What is the renewal term after the initial term expires?",
    "Notice Period To Terminate Renewal": "What is the notice period required to terminate renewal?",
    "Governing Law": "Which state/country's law governs the interpretation of the contract?",
    "Warranty Duration": "What is the duration of any warranty against defects or errors?",
}
ASK = {
    "Agreement Date": ["When was {ref} signed?", "What is the date of {ref}?", "On what date was {ref} entered into?"],
    "Effective Date": ["As of what date does {ref} take effect?", "What is the effective date of {ref}?"],
    "Expiration Date": ["When does {ref} expire?", "How long does the term of {ref} run?"],
    "Renewal Term": ["For what period does {ref} renew after its initial term?"],
    "Notice Period To Terminate Renewal": ["How much notice is needed to stop {ref} from renewing?"],
    "Governing Law": ["Which jurisdiction's law governs {ref}?", "Under whose laws is {ref} to be construed?"],
    "Warranty Duration": ["How long is the warranty under {ref}?"],
}
ANSWER_COL = {
    "Governing Law": "Governing Law-Answer",
    "Renewal Term": "Renewal Term-Answer",
    "Notice Period To Terminate Renewal": "Notice Period To Terminate Renewal- Answer",
    "Warranty Duration": "Warranty Duration-Answer",
    "Expiration Date": "Expiration Date-Answer",
}
MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
DATE_RE = re.compile(
    rf"(?i)(\d{{1,2}}(?:st|nd|rd|th)?\s+(?:day\s+of\s+)?(?:{MONTHS}),?\s+\d{{4}}|(?:{MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s*\d{{4}}"
    r"|\d{1,2}[/-]\d{1,2}[/-]\d{2,4})"
)


def spans(row: dict[str, str], col: str) -> list[str]:
    v = row[col].strip()
    # CUAD's text splits some ordinals ("15t h day"); the PDFs print them whole.
    return [re.sub(r"(\d)(s|n|r|t) (t|d|h)\b", r"\1\2\3", common.clean_ws(s)) for s in ast.literal_eval(v)] if v else []


def date_answer(span: str) -> str | None:
    if "[" in span or "_" in span:
        return None
    m = DATE_RE.search(span)
    if m:
        return m.group(1)
    return span if len(span.split()) <= 10 and re.search(r"\d{4}", span) else None


def main() -> None:
    gd = common.gitdir(REPO)
    rows = list(csv.DictReader(io.StringIO(common.show(gd, f"{BASE}/master_clauses.csv").decode("utf-8"))))
    pdfs = {p.rsplit("/", 1)[1]: (p, size) for p, size in common.ls(gd, f"{BASE}/full_contract_pdf")}
    docs_dir = common.reset_domain(DOMAIN)
    chosen: list[tuple[str, dict[str, str], tuple[str, str, str]]] = []
    for prefix, info in CONTRACTS.items():
        row = next(r for r in sorted(rows, key=lambda r: r["Filename"]) if r["Filename"].startswith(prefix))
        chosen.append((row["Filename"], row, info))
    chosen = sorted(chosen)[:N_DOCS]
    questions: list[dict[str, Any]] = []
    k = 0
    for fname, row, (kind, parties, about) in chosen:
        path, size = pdfs[fname]
        if size < 0:
            raise SystemExit(f"{path} is absent from the snapshot")
        (docs_dir / fname).write_bytes(common.show(gd, path))
        asked: list[tuple[str, str]] = []
        agreement = None
        for cat in CATEGORY:
            if cat in ("Agreement Date", "Effective Date"):
                cands = [a for a in (date_answer(s) for s in spans(row, cat)) if a]
                if not cands or (cat == "Effective Date" and cands[0] == agreement):
                    continue
                if cat == "Agreement Date":
                    agreement = cands[0]
                asked.append((cat, cands[0]))
            else:
                ans = row[ANSWER_COL[cat]].strip()
                sp = spans(row, cat)
                if ans and len(ans.split()) <= 10 and any(ans.lower() in s.lower() for s in sp):
                    asked.append((cat, ans))
        for cat, ans in asked:
            by_parties = k % 3 == 2
            ref = f"the {kind} {parties}" if by_parties else f"the {kind} {about}"
            templates = ASK[cat]
            q = templates[k % len(templates)].format(ref=ref)
            slug = re.sub(r"\W+", "-", cat.lower()).strip("-")
            questions.append(
                {
                    "id": f"cuad-{row['Filename'][:40]}-{slug}".replace(" ", ""),
                    "question": q,
                    "answers": [ans],
                    "doc": fname,
                    "source_question": f'CUAD category "{cat}": {CATEGORY[cat]}',
                    "adapted": True,
                    "tags": ["named-by-parties" if by_parties else "named-by-content"],
                }
            )
            k += 1
    stats = common.finalize(DOMAIN, docs_dir, questions, unique_page_evidence=True)
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} ({BASE}: CUAD v1 as released by The Atticus Project)",
        "licence": "CC BY 4.0 (CUAD v1); the contracts are public EDGAR filings",
        "citation": "Hendrycks, Burns, Chen, Ball. CUAD: An Expert-Annotated NLP Dataset for Legal Contract Review."
        " NeurIPS 2021 Datasets and Benchmarks",
        "builder": "scripts/suite/build_cuad.py",
        "notes": "Original contract PDFs (scanned-looking EDGAR renderings with text layer). Questions phrase CUAD's"
        " category annotations (dates, governing law, renewal and notice periods) as a user would; every question"
        " names its contract by subject or parties (adapted). Evidence page = the single page holding the answer.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
