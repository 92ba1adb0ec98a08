"""CRS reports: long U.S. Congressional Research Service reports (original PDFs), a collection of look-alikes.

Source: Congressional Research Service "R"-series reports (full-length reports, not the 2-page In Focus or the
short Insights/Sidebars), as downloaded from congress.gov and committed as original PDFs under pdf/reports/ in
ProfAmiot/crs-reports at commit 12265120e33ab237acd3f178b1d697ece3ac188f. CRS reports are works of the U.S.
Government, not subject to copyright in the United States (the notice is printed at the end of each report).

Documents: 30 of the 36 reports in that folder, 11-68 pages, most of them 20+ pages: every report except five
short ones (committee hearings, Speaker FAQ, Earth Day fact sheet, the list of AI products, Strait of Hormuz brief)
and the older of the two versions of R48905 (USDA structure; the later one, R48905.2, is kept). All share the CRS
layout (cover, contents, body, footnotes, tables, appendixes, author contacts, disclaimer), and several cover the
same ground: two SSA staffing data briefs, three transport funding reports (highways and transit financing, highway
bridges, the RAISE/BUILD grants), two tax reports, two crypto reports, several appropriations reports.
Questions: written by us from the reports only (questions/crs_reports.jsonl); most answers sit deep in a report
(body, footnotes, tables, appendixes), each with its evidence page as extract_text.py prints it.
"""

from __future__ import annotations

import common

DOMAIN = "crs_reports"
REPO = "ProfAmiot/crs-reports"
COMMIT = "12265120e33ab237acd3f178b1d697ece3ac188f"
# report number -> file under pdf/reports/ at COMMIT (the number after the dot is CRS's version, when given)
REPORTS = {
    "R45100": "R45100.21.pdf",
    "R45741": "R45741.pdf",
    "R46646": "R46646.17.pdf",
    "R46991": "R46991.32.pdf",
    "R47194": "R47194.5.pdf",
    "R47324": "R47324.18.pdf",
    "R47438": "R47438.6.pdf",
    "R47573": "R47573.4.pdf",
    "R48179": "R48179.10.pdf",
    "R48447": "R48447.6.pdf",
    "R48469": "R48469.pdf",
    "R48694": "R48694.10.pdf",
    "R48725": "R48725.6.pdf",
    "R48863": "R48863.3.pdf",
    "R48883": "R48883.4.pdf",
    "R48902": "R48902.1.pdf",
    "R48905": "R48905.2.pdf",
    "R48906": "R48906.2.pdf",
    "R48907": "R48907.2.pdf",
    "R48908": "R48908.2.pdf",
    "R48910": "R48910.2.pdf",
    "R48911": "R48911.1.pdf",
    "R48913": "R48913.pdf",
    "R48914": "R48914.2.pdf",
    "R48915": "R48915.1.pdf",
    "R48916": "R48916.2.pdf",
    "R48917": "R48917.2.pdf",
    "RL30857": "RL30857.31.pdf",
    "RL34498": "RL34498.pdf",
    "RS22331": "RS22331.53.pdf",
}


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    for number, name in REPORTS.items():
        data = common.git(gd, "show", f"{COMMIT}:pdf/reports/{name}")
        (docs_dir / f"CRS Report {number}.pdf").write_bytes(data)
    stats = common.finalize(
        DOMAIN, docs_dir, common.load_questions(DOMAIN), long_chars=50000, long_pages=20, deep_from=5000
    )
    meta = {
        "source": f"github:{REPO}@{COMMIT} (pdf/reports/*.pdf: Congressional Research Service reports)",
        "licence": "U.S. Government works, not subject to copyright in the United States (17 U.S.C. 105);"
        " 'Any CRS Report may be reproduced and distributed in its entirety without permission from CRS'"
        " (printed in each report; third-party images inside may be copyrighted)",
        "citation": "Congressional Research Service reports R45100-R48917, RL30857, RL34498, RS22331 (versions of"
        " 2025-2026), https://crsreports.congress.gov",
        "builder": "scripts/suite/build_crs_reports.py",
        "notes": "Government / public-sector reports, long and look-alike: 30 original CRS report PDFs of 11-68 pages"
        " (24 of them 20+ pages or 50,000+ characters), same layout and often overlapping subjects (two SSA staffing"
        " briefs, three transport funding reports, two tax and two crypto reports). Questions written by the suite"
        " builder from the reports; the tag long-document marks an answer deep in a long report (after page 2 and"
        " the first 5,000 characters); evidence page = the page holding the answer.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
