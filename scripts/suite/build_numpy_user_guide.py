"""NumPy user guide (numpy/numpy, doc/source/user/*.rst): technical documentation of an open-source library.

Documents: every page of the user guide of 2,000 characters or more (tutorials, how-tos, the C-API guides),
saved as plain text. Questions: written by us from the pages only (questions/numpy_user_guide.jsonl): defaults,
names of functions and protocols, figures from examples; several paraphrase the page's wording.
"""

from __future__ import annotations

import common

DOMAIN = "numpy_user_guide"
REPO = "numpy/numpy"
MIN_SIZE = 2000


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    for path, size in common.ls(gd, "doc/source/user"):
        name = path.rsplit("/", 1)[1]
        if "/" in path[len("doc/source/user/") :] or not name.endswith(".rst") or size < MIN_SIZE:
            continue
        text = common.show(gd, path).decode("utf-8")
        (docs_dir / f"NumPy user guide - {name[:-4]}.txt").write_text(text, encoding="utf-8")
    stats = common.finalize(DOMAIN, docs_dir, common.load_questions(DOMAIN))
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} (doc/source/user/*.rst)",
        "licence": "BSD-3-Clause (NumPy, documentation included)",
        "citation": "NumPy user guide, The NumPy community, https://numpy.org/doc/stable/user/",
        "builder": "scripts/suite/build_numpy_user_guide.py",
        "notes": "Technical documentation: the NumPy user guide pages (reStructuredText saved as .txt). Questions"
        " written by the suite builder from the pages. Same project as numpy_releases (different genre); the two"
        " are separate knowledge bases.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
