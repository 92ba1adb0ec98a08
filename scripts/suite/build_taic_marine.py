"""TAIC marine inquiry reports: real New Zealand marine accident investigation reports (PDF), 2010-2021.

Source: the Transport Accident Investigation Commission's (TAIC, New Zealand) published marine inquiry reports,
as committed (original PDFs) in 1jamesthompson1/TAIC-report-summary under viewer/output/<year>_<number>/ at
commit 16c1904cf74b0b7af8966ec299d96eb6c0cd6005 (later commits removed that folder; the snapshot's history
keeps it). Inquiry numbers 2xx are marine inquiries (MO-<year>-2xx); no aviation report is used.

Documents: 30 marine reports (groundings, fires, fatalities, capsizes, jet boats), named by their inquiry number.
Questions: written by us from the reports only (questions/taic_marine.jsonl): vessels, places, figures, causes,
owners; most name the accident by what happened, a few by time ("the most recent accident in the collection" =
the Moana Chief accident of 10 December 2021; "the earliest" = TPC Wellington, May 2010).
"""

from __future__ import annotations

import common

DOMAIN = "taic_marine"
REPO = "1jamesthompson1/TAIC-report-summary"
COMMIT = "16c1904cf74b0b7af8966ec299d96eb6c0cd6005"
REPORTS = [
    "2010_201",
    "2010_202",
    "2010_203",
    "2010_206",
    "2011_202",
    "2012_202",
    "2012_203",
    "2013_201",
    "2015_201",
    "2015_203",
    "2016_201",
    "2016_203",
    "2016_205",
    "2016_206",
    "2017_201",
    "2017_202",
    "2017_203",
    "2017_204",
    "2017_205",
    "2018_202",
    "2018_203",
    "2018_204",
    "2018_205",
    "2019_201",
    "2019_202",
    "2020_202",
    "2020_204",
    "2020_205",
    "2021_201",
    "2021_203",
    "2021_204",
    "2021_205",
]


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    for rid in REPORTS:
        year, num = rid.split("_")
        data = common.git(gd, "show", f"{COMMIT}:viewer/output/{rid}/{rid}.pdf")
        (docs_dir / f"TAIC marine inquiry MO-{year}-{num}.pdf").write_bytes(data)
    stats = common.finalize(DOMAIN, docs_dir, common.load_questions(DOMAIN), unique_page_evidence=True)
    meta = {
        "source": f"github:{REPO}@{COMMIT} (viewer/output/*/*.pdf: TAIC marine inquiry reports)",
        "licence": "TAIC reports: 'may be reprinted in whole or in part without charge, provided that"
        " acknowledgement is made to the Transport Accident Investigation Commission' (printed in each report)",
        "citation": "Transport Accident Investigation Commission (New Zealand), marine inquiry reports MO-2010-201"
        " to MO-2021-205, https://www.taic.org.nz",
        "builder": "scripts/suite/build_taic_marine.py",
        "notes": "Incident reports (marine, not aviation): 32 original PDF reports of 28-60 pages. Questions written"
        " by the suite builder from the reports; evidence page = the single page holding the answer, where unique."
        " Two Korean-language reports and the 93-page MV Rena report in the source folder are left out.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
