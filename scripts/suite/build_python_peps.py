"""Python Enhancement Proposals (python/peps): long, look-alike technical proposals, some superseding others.

Source: the PEP texts (peps/pep-NNNN.rst, reStructuredText) in python/peps, saved as plain text. PEPs are placed
in the public domain or under CC0-1.0 (each PEP's Copyright section says which).

Documents: 33 PEPs chosen by hand, 23,000-121,000 characters each (22 of them 50,000+), in clusters of related
topics so that documents look alike: typing (484, 544, 563, 646, 649, 675, 695, 749), structural pattern matching
(622, 634, 635, 636, 642), packaging (440, 517, 665, 668, 691, 722, 723, 735, 751, 817, 825), string templates
(501, 701, 750), the GIL (684, 703), WSGI (333, 3333) and a unified TLS API (543, 748). Several supersede or
revise others: 3333 revises 333 (2003 -> 2010), 748 replaces 543 (2016 -> 2024), 634 replaces 622, 649 and 749
supersede 563, 750 supersedes 501, 751 supersedes 665 (2021 -> 2024), 723 replaces 722; 825 (2026) is the newest
of the two wheel-variant drafts.
Questions: written by us from the documents only (questions/python_peps.jsonl); most name the PEP by its subject,
some by number, some by time ("the most recent lock file proposal" = PEP 751, "the later revision of WSGI" =
PEP 3333, "the 2015 template literal proposal" = PEP 501), resolved with the Created dates in the PEP headers.
"""

from __future__ import annotations

import common

DOMAIN = "python_peps"
REPO = "python/peps"
COMMIT = "ba4deeb7969588d937da609008d05bb83a47b1ab"
PEPS = [
    333, 3333, 440, 484, 501, 517, 543, 544, 563, 622, 634, 635, 636, 642, 646, 649, 665,
    668, 675, 684, 691, 695, 701, 703, 722, 723, 735, 748, 749, 750, 751, 817, 825,
]  # fmt: skip


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    for number in PEPS:
        text = common.git(gd, "show", f"{COMMIT}:peps/pep-{number:04d}.rst").decode("utf-8")
        (docs_dir / f"PEP {number}.txt").write_text(text, encoding="utf-8")
    stats = common.finalize(DOMAIN, docs_dir, common.load_questions(DOMAIN), long_chars=50000, deep_from=5000)
    meta = {
        "source": f"github:{REPO}@{COMMIT} (peps/pep-NNNN.rst)",
        "licence": "Public domain or CC0-1.0 (each PEP's Copyright section)",
        "citation": "Python Enhancement Proposals, the Python community, https://peps.python.org",
        "builder": "scripts/suite/build_python_peps.py",
        "notes": "Technical proposals, long and look-alike: 33 PEPs (reStructuredText saved as .txt, 22 of them"
        " 50,000+ characters) in clusters (typing, pattern matching, packaging, templates, GIL, WSGI, TLS), several"
        " superseding or revising others (333 -> 3333, 543 -> 748, 622 -> 634, 563 -> 649/749, 501 -> 750,"
        " 665 -> 751, 722 -> 723). Questions written by the suite builder from the documents; the tag long-document"
        " marks an answer deep in a long PEP (first occurrence after its first 5,000 characters); some carry time"
        " references resolved with the PEPs' Created dates.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
