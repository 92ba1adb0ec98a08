"""A copy of an evaluation set with its documents' file names taken away: does retrieval find the right document
from what the documents say, or only from how someone named the files?

    .venv/bin/python scripts/suite/rename_documents.py /work/eval/fb20 /work/eval/fb20_opaque
    .venv/bin/python -m rag eval --docs /work/eval/fb20_opaque/docs --qa /work/eval/fb20_opaque/qa.jsonl --no-tutorial

SRC holds `docs/` and `qa.jsonl` (the format `rag eval --qa` reads); DST gets the same files hard-linked (copied
across file systems) as `<prefix>-01.<ext>` … in a shuffled order, the questions with their `doc` and evidence
documents renamed alike, and `mapping.json` (old name → new name). Nothing inside a file changes.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from common import link_or_copy


def rename_documents(source: Path, target: Path, prefix: str = "filing", seed: int = 7) -> dict[str, str]:
    names = sorted(p.name for p in (source / "docs").iterdir() if p.is_file())
    shuffled = names[:]
    random.Random(seed).shuffle(shuffled)
    width = max(2, len(str(len(names))))
    mapping = {name: f"{prefix}-{i + 1:0{width}d}{Path(name).suffix.lower()}" for i, name in enumerate(shuffled)}
    (target / "docs").mkdir(parents=True, exist_ok=True)
    for old, new in mapping.items():
        link_or_copy(source / "docs" / old, target / "docs" / new)
    with (
        (source / "qa.jsonl").open(encoding="utf-8") as lines,
        (target / "qa.jsonl").open("w", encoding="utf-8") as out,
    ):
        for line in lines:
            if not line.strip():
                continue
            question = json.loads(line)
            if "doc" in question:
                question["doc"] = mapping.get(question["doc"], question["doc"])
            question["evidence"] = [dict(e, doc=mapping.get(e["doc"], e["doc"])) for e in question.get("evidence", [])]
            out.write(json.dumps(question) + "\n")
    (target / "mapping.json").write_text(json.dumps(mapping, indent=1), encoding="utf-8")
    return mapping


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a set's folder: docs/ and qa.jsonl")
    parser.add_argument("target", type=Path, help="where the renamed copy goes")
    parser.add_argument("--prefix", default="filing", help="the new names' stem (default: filing)")
    parser.add_argument("--seed", type=int, default=7, help="the shuffle's seed (default: 7)")
    args = parser.parse_args()
    mapping = rename_documents(args.source, args.target, args.prefix, args.seed)
    print(f"{len(mapping)} documents renamed into {args.target / 'docs'}; questions in {args.target / 'qa.jsonl'}")


if __name__ == "__main__":
    main()
