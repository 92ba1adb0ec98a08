"""NumPy release notes (numpy/numpy): a versioned series, one document per feature release 1.16.0 ... 2.4.0.

Documents: doc/source/release/<X.Y>.0-notes.rst for the 16 feature releases from 1.16 (January 2019) to 2.4
(the newest released one at the snapshot; the 2.5.0 notes on the main branch describe an unreleased version and
are left out), saved as plain text. Questions: written by us from the documents only
(questions/numpy_releases.jsonl), many with time references ("the latest release", "the release before the
latest", "2019's release"); "latest" means 2.4.0, the newest document in the collection.
"""

from __future__ import annotations

import common

DOMAIN = "numpy_releases"
REPO = "numpy/numpy"
VERSIONS = [
    "1.16",
    "1.17",
    "1.18",
    "1.19",
    "1.20",
    "1.21",
    "1.22",
    "1.23",
    "1.24",
    "1.25",
    "1.26",
    "2.0",
    "2.1",
    "2.2",
    "2.3",
    "2.4",
]


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    for v in VERSIONS:
        text = common.show(gd, f"doc/source/release/{v}.0-notes.rst").decode("utf-8")
        (docs_dir / f"NumPy {v}.0 Release Notes.txt").write_text(text, encoding="utf-8")
    stats = common.finalize(DOMAIN, docs_dir, common.load_questions(DOMAIN))
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} (doc/source/release/*.0-notes.rst)",
        "licence": "BSD-3-Clause (NumPy, documentation included)",
        "citation": "NumPy release notes, The NumPy community, https://numpy.org/doc/stable/release.html",
        "builder": "scripts/suite/build_numpy_releases.py",
        "notes": "Versioned series: 16 editions of the same kind of document (feature release notes, 2019-2025),"
        " reStructuredText saved as .txt. Questions written by the suite builder from the documents; about a"
        " fifth carry a time reference resolved against the collection (latest = 2.4.0).",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
