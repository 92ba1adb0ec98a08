"""Print the text the app extracts from each file (with its own loaders), for the suite builders.

Run with the app's virtual environment: `.venv/bin/python scripts/suite/extract_text.py FILE ...`. Output, read by
`common.extract_pages`: for each file "=== NAME · title: TITLE · pages: N", then for every section
"[page P · heading: H]" (or "[page P]") followed by its table header, if any, and its text. A file the app cannot
read is reported on standard error and left out.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: rag/ is imported from it

from rag.errors import LoaderError
from rag.loaders import load_file


def main(paths: list[str]) -> None:
    for arg in paths:
        path = Path(arg)
        try:
            doc = load_file(path)
        except LoaderError as exc:
            print(f"!!! {path}: {exc}", file=sys.stderr)
            continue
        print(f"=== {path.name} · title: {doc.title} · pages: {doc.pages}")
        for section in doc.sections:
            heading = f" · heading: {section.heading}" if section.heading else ""
            print(f"[page {section.page}{heading}]")
            if section.table_header:
                print(section.table_header)
            print(section.text)


if __name__ == "__main__":
    main(sys.argv[1:])
