"""Shared helpers for the multi-domain retrieval suite builders (standard library only).

Every builder reads fetched git snapshots (bare git dirs under /work/.mirror/<owner>+<name>/repo),
writes /work/suite/<domain>/docs/ and /work/suite/<domain>/qa.jsonl, and verifies each gold answer
against the text the app extracts (scripts/suite/extract_text.py, run with the app's virtual environment).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SUITE = Path(os.environ.get("SUITE_DIR", "/work/suite"))
MIRROR = Path(os.environ.get("MIRROR_DIR", "/work/.mirror"))
VENV_PY = Path(os.environ.get("SUITE_PYTHON", Path(__file__).resolve().parents[2] / ".venv" / "bin" / "python"))
EXTRACT = Path(os.environ.get("SUITE_EXTRACT", Path(__file__).resolve().parent / "extract_text.py"))
QUESTIONS = Path(__file__).resolve().parent / "questions"

PAGE_RE = re.compile(r"^\[page (\d+|None)(?: · heading: .*)?\]$")
HEAD_RE = re.compile(r"^=== (.+?) · title: .* · pages: (\d+|None)$")


def link_or_copy(source: Path, destination: Path) -> None:
    """`destination` made the same file as `source`: hard-linked, or copied across file systems (replacing it)."""
    if destination.exists():
        destination.unlink()
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def gitdir(repo: str) -> Path:
    """The bare git dir that `fetch github:<owner>/<name>` leaves on this machine."""
    d = MIRROR / repo.replace("/", "+") / "repo"
    if not d.exists():
        sys.exit(f"missing snapshot {d}: run the search tool's fetch github:{repo} first")
    return d


def git(gd: Path, *args: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(gd), *args], check=True, capture_output=True).stdout


def head(gd: Path) -> str:
    return git(gd, "rev-parse", "HEAD").decode().strip()


def show(gd: Path, path: str) -> bytes:
    return git(gd, "show", f"HEAD:{path}")


def ls(gd: Path, prefix: str) -> list[tuple[str, int]]:
    """(path, size) of the blobs under prefix in HEAD; size -1 when the blob is absent from the snapshot."""
    out = git(gd, "ls-tree", "-r", "-l", "-z", "HEAD", "--", prefix).decode()
    rows = []
    for rec in out.split("\0"):
        if not rec:
            continue
        meta, path = rec.split("\t", 1)
        size = meta.split()[3]
        rows.append((path, int(size) if size.isdigit() else -1))
    return rows


def reset_domain(domain: str) -> Path:
    """Empty /work/suite/<domain>/docs and return it."""
    docs = SUITE / domain / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    return docs


def extract_pages(files: list[Path], batch: int = 20) -> dict[str, dict[int, str]]:
    """Text of each file as the app extracts it: {file name: {page (1-based; 1 when unpaged): text}}."""
    result: dict[str, dict[int, str]] = {}
    for i in range(0, len(files), batch):
        chunk = [str(f) for f in files[i : i + batch]]
        out = subprocess.run([str(VENV_PY), str(EXTRACT), *chunk], check=True, capture_output=True, text=True).stdout
        name = ""
        page = 1
        for line in out.split("\n"):
            m = HEAD_RE.match(line)
            if m and Path(m.group(1)).name in {Path(c).name for c in chunk}:
                name = m.group(1)
                result[name] = {}
                page = 1
                continue
            m = PAGE_RE.match(line)
            if m and name:
                page = int(m.group(1)) if m.group(1) != "None" else 1
                result[name].setdefault(page, "")
                continue
            if name:
                pages = result[name]
                pages[page] = pages.get(page, "") + line + "\n"
    return result


def pages_with(pages: dict[int, str], answer: str) -> list[int]:
    a = answer.lower()
    return [p for p, t in sorted(pages.items()) if a in t.lower()]


def split_of(docs: list[str]) -> dict[str, str]:
    """Deterministic halves by document: sorted names, alternate dev / test."""
    return {d: ("dev" if i % 2 == 0 else "test") for i, d in enumerate(sorted(docs))}


def finalize(
    domain: str,
    docs_dir: Path,
    questions: list[dict[str, Any]],
    long_chars: int = 30000,
    unique_page_evidence: bool = False,
    long_pages: int = 0,
    deep_from: int = 0,
) -> dict[str, Any]:
    """Verify answers against the extracted text, set split, tag long documents, write qa.jsonl.

    A question keeps the answers that occur (case-insensitively) on one page of its document's extracted text;
    it is dropped when none does. Evidence pages given by the builder are kept only where the answer is on them.
    With unique_page_evidence (for sources whose annotation marks the answer span itself), a question without
    evidence gets the page of its answer when the answer occurs on exactly one page of a multi-page document.
    A document is long when its text has long_chars characters or more, or (long_pages > 0) that many pages.
    With deep_from > 0, "long-document" marks only answers deep inside a long document: the answer's first
    occurrence lies at or after character deep_from and, in a paged document, after page 2.
    """
    files = sorted(p for p in docs_dir.iterdir() if p.is_file())
    text = extract_pages(files)
    splits = split_of([f.name for f in files])
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    seen: set[str] = set()
    for q in questions:
        pages = text.get(q["doc"])
        if pages is None:
            dropped.append({**q, "why": "document not extracted"})
            continue
        answers = [a for a in q["answers"] if a.strip() and pages_with(pages, a)]
        if not answers:
            dropped.append({**q, "why": "answer not in extracted text"})
            continue
        if q["id"] in seen:
            raise SystemExit(f"duplicate id {q['id']}")
        seen.add(q["id"])
        q = dict(q)
        q["answers"] = answers
        q["split"] = splits[q["doc"]]
        ev = [e for e in q.get("evidence", []) if any(e["page"] in pages_with(pages, a) for a in answers)]
        if not ev and unique_page_evidence and not q.get("evidence") and len(pages) > 1:
            hits = pages_with(pages, answers[0])
            if len(hits) == 1:
                ev = [{"doc": q["doc"], "page": hits[0]}]
        if ev:
            q["evidence"] = ev
        else:
            q.pop("evidence", None)
        full = "".join(t for _, t in sorted(pages.items()))
        tags = list(q.get("tags", []))
        if len(full) >= long_chars or (long_pages > 0 and len(pages) >= long_pages):
            pos = full.lower().find(answers[0].lower())
            first_page = pages_with(pages, answers[0])[0]
            deep_enough = deep_from <= 0 or (pos >= deep_from and (len(pages) == 1 or first_page > 2))
            if deep_enough and "long-document" not in tags:
                tags.append("long-document")
            if pos > len(full) // 3 and "deep" not in tags:
                tags.append("deep")
        q.pop("tags", None)
        if tags:
            q["tags"] = tags
        order = ["id", "question", "answers", "doc", "split", "evidence", "source_question", "adapted", "written_by"]
        kept.append({k: q[k] for k in order if k in q} | {k: v for k, v in q.items() if k not in order})
    out = SUITE / domain / "qa.jsonl"
    with out.open("w", encoding="utf-8") as fh:
        for q in kept:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    with (SUITE / domain / "dropped.jsonl").open("w", encoding="utf-8") as fh:
        for q in dropped:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    n_chars = sum(len(t) for p in text.values() for t in p.values())
    stats = {
        "documents": len(files),
        "questions": {s: sum(1 for q in kept if q["split"] == s) for s in ("dev", "test")},
        "dropped": len(dropped),
        "with_evidence": sum(1 for q in kept if q.get("evidence")),
        "extracted_chars": n_chars,
        "pages": sum(len(p) for p in text.values()),
    }
    print(f"{domain}: {stats}")
    return stats


def write_meta(domain: str, meta: dict[str, Any], stats: dict[str, Any]) -> None:
    """meta.json beside the domain's docs: what build_all puts into suite.json."""
    entry = {
        "name": domain,
        "docs": f"{domain}/docs",
        "qa": f"{domain}/qa.jsonl",
        **meta,
        "documents": stats["documents"],
        "questions": stats["questions"],
    }
    entry["notes"] = (
        entry.get("notes", "")
        + f" [{stats['with_evidence']} questions with evidence pages; {stats['dropped']} dropped by the answer check;"
        f" {stats['extracted_chars']} characters of extracted text]"
    ).strip()
    (SUITE / domain / "meta.json").write_text(json.dumps(entry, indent=1, ensure_ascii=False) + "\n")


def load_questions(domain: str) -> list[dict[str, Any]]:
    """Our own questions kept in the repository (scripts/suite/questions/<domain>.jsonl)."""
    path = QUESTIONS / f"{domain}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def clean_ws(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()
