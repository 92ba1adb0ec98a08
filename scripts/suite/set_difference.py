"""The questions of one evaluation set whose documents another set does not hold: a never-tuned set from the
rest of a source whose first part was tuned on (FinanceBench's filings outside the 20 the development set holds).

    python3 /work/shared/eval/financebench/build.py GIT_DIR /work/eval/fball        # every question, 74 filings
    .venv/bin/python scripts/suite/set_difference.py /work/eval/fball /work/eval/fb20 /work/eval/fbrest
    .venv/bin/python -m rag eval --docs /work/eval/fbrest/docs --qa /work/eval/fbrest/qa.jsonl \
        --no-declines --no-tutorial

EVERY and TUNED hold `docs/` and `qa.jsonl` (the format `rag eval --qa` reads); TARGET gets the questions of EVERY
whose document and evidence documents are none of TUNED's, and those documents hard-linked (copied across
file systems). Nothing inside a file changes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import link_or_copy


def set_difference(every: Path, tuned: Path, target: Path) -> tuple[int, int]:
    """Write the never-tuned part of `every` into `target`; returns (questions, documents)."""
    held = {p.name for p in (tuned / "docs").iterdir() if p.is_file()}
    kept = []
    for line in (every / "qa.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        question = json.loads(line)
        named = {question.get("doc", "")} | {e["doc"] for e in question.get("evidence", [])}
        if not named & held:
            kept.append(question)
    asked = {q["doc"] for q in kept if q.get("doc")}
    documents = sorted(asked | {e["doc"] for q in kept for e in q.get("evidence", [])})
    (target / "docs").mkdir(parents=True, exist_ok=True)
    for name in documents:
        link_or_copy(every / "docs" / name, target / "docs" / name)
    with (target / "qa.jsonl").open("w", encoding="utf-8") as out:
        for question in kept:
            out.write(json.dumps(question) + "\n")
    return len(kept), len(documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("every", type=Path, help="the whole set's folder: docs/ and qa.jsonl")
    parser.add_argument("tuned", type=Path, help="the folder of the part tuned on: its docs/ are left out")
    parser.add_argument("target", type=Path, help="where the never-tuned part goes")
    args = parser.parse_args()
    questions, documents = set_difference(args.every, args.tuned, args.target)
    print(f"{questions} questions over {documents} documents into {args.target}")


if __name__ == "__main__":
    main()
