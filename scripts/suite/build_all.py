"""Run every domain builder, then write /work/suite/suite.json from the domains' meta.json files.

Usage: /work/main/.venv/bin/python scripts/suite/build_all.py [domain ...]   (no argument: all domains)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import common

HERE = Path(__file__).resolve().parent
DOMAINS = [
    "tatqa",
    "cuad",
    "covid_qa",
    "policyqa",
    "numpy_user_guide",
    "taic_marine",
    "numpy_releases",
    "crs_reports",
    "python_peps",
]


def main() -> None:
    wanted = sys.argv[1:] or DOMAINS
    for d in wanted:
        script = HERE / f"build_{d}.py"
        if not script.exists():
            print(f"skip {d}: no builder yet")
            continue
        subprocess.run([sys.executable, str(script)], check=True, cwd=HERE)
    entries = []
    for d in DOMAINS:
        meta = common.SUITE / d / "meta.json"
        if meta.exists():
            m = json.loads(meta.read_text())
            entries.append(
                {
                    k: m[k]
                    for k in ("name", "docs", "qa", "source", "licence", "builder", "documents", "questions", "notes")
                    if k in m
                }
                | {"citation": m.get("citation", "")}
            )
    out = common.SUITE / "suite.json"
    out.write_text(json.dumps({"domains": entries}, indent=1, ensure_ascii=False) + "\n")
    total = sum(e["questions"]["dev"] + e["questions"]["test"] for e in entries)
    print(f"wrote {out}: {len(entries)} domains, {total} questions")


if __name__ == "__main__":
    main()
