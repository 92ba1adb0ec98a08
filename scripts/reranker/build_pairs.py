"""Training pairs for a cross-encoder passage reranker (measured, not taken: README, "Rerankers measured"),
from public question-answering data sets.

Reads the fetched snapshots (see scripts/suite/README.md for `fetch`) and writes JSONL rows
{query, passage, label, source} to the path given (default /work/reranker/pairs.jsonl):
- COVID-QA: the papers of 200423_covidQA.json that the suite does not use;
- CUAD v1: contracts that the suite does not use, each with up to six of its annotated clauses, the question
  being CUAD's own description of the clause's category;
- PolicyQA: questions on the policies of the suite's development half only (never a never-tuned policy).
Documents are cut as the app cuts them (600 characters, 100 shared). Each question gives its answer-bearing
passage (label 1) and four of the same document's passages that do not hold the answer (label 0): the three
that share most of the question's words (BM25), and one at random. Deterministic (seeded).
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts" / "suite"))

import common  # noqa: E402  (scripts/suite/common.py)

from rag.chunking import make_splitter  # noqa: E402

SPLITTER = make_splitter("text", 600, 100)
WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = "the a an of to in and or for on by with is are was were be this that what which who how does do did"
STOP = frozenset((_STOP_WORDS + " from as at it its their any").split())
CUAD_REPO = "maastrichtlawtech/law3027-advanced-legal-analytics"
CUAD_DOCS_PER_RUN = 250  # contracts read (of ~470 unused)
CLAUSES_PER_CONTRACT = 6
POLICY_QUESTIONS_PER_POLICY = 60


def normal(text: str) -> str:
    return " ".join(text.split()).lower()


def bm25_order(query: str, passages: list[str]) -> list[int]:
    bags = [Counter(WORD.findall(p.lower())) for p in passages]
    n = len(bags)
    average = sum(sum(b.values()) for b in bags) / max(n, 1)
    words = [w for w in set(WORD.findall(query.lower())) if w not in STOP]
    df = {w: sum(1 for b in bags if w in b) for w in words}

    def score(bag: Counter[str]) -> float:
        length = sum(bag.values())
        total = 0.0
        for w in words:
            tf = bag.get(w, 0)
            if tf:
                idf = math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5))
                total += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / average))
        return total

    return sorted(range(n), key=lambda i: -score(bags[i]))


def add_pairs(query: str, answer: str, passages: list[str], source: str, rng: random.Random, out: list[dict]) -> bool:
    """One question's rows; False when its answer is not found in one to three passages."""
    wanted = normal(answer)
    if len(wanted) < 2:
        return False
    key = wanted if len(wanted) <= 200 else wanted[:120]  # a long answer: the passage holding its opening
    positives = [i for i, p in enumerate(passages) if key in normal(p)]
    if not positives or len(positives) > 3:
        return False
    hard = [i for i in bm25_order(query, passages) if i not in positives][:3]
    rest = [i for i in range(len(passages)) if i not in positives and i not in hard]
    negatives = hard + rng.sample(rest, min(1, len(rest)))
    out.append({"query": query, "passage": passages[positives[0]], "label": 1, "source": source})
    out.extend({"query": query, "passage": passages[i], "label": 0, "source": source} for i in negatives)
    return True


def covid(rng: random.Random, out: list[dict]) -> int:
    names = [f.name for f in (common.SUITE / "covid_qa" / "docs").iterdir()]
    used = {int(m[1]) for name in names if (m := re.search(r"COVID-QA (\d+)", name))}
    data = json.loads(common.show(common.gitdir("deepset-ai/COVID-QA"), "data/question-answering/200423_covidQA.json"))
    count = 0
    for article in data["data"]:
        paragraph = article["paragraphs"][0]
        if int(paragraph["document_id"]) in used:
            continue
        passages = SPLITTER.split_text(paragraph["context"])
        for qa in paragraph["qas"]:
            count += add_pairs(qa["question"], qa["answers"][0]["text"], passages, "covid", rng, out)
    return count


def cuad(rng: random.Random, out: list[dict]) -> int:
    used = {f.stem.upper()[:40] for f in (common.SUITE / "cuad" / "docs").iterdir()}
    raw_descriptions = common.show(common.gitdir("TheAtticusProject/cuad"), "category_descriptions.csv")
    descriptions = csv.reader(io.StringIO(raw_descriptions.decode("utf-8-sig")))
    questions = {}
    for row in descriptions:
        if not row or not row[0].startswith("Category:"):
            continue
        category, description = row[0].split(":", 1)[1].strip(), row[1].split(":", 1)[1].strip()
        if category not in ("Document Name", "Parties"):
            asked = f"Is there a clause on {category.lower()}? {description}"
            questions[category] = description if description.endswith("?") else asked
    gd = common.gitdir(CUAD_REPO)
    rows = list(csv.DictReader(io.StringIO(common.show(gd, "data/CUAD_v1/master_clauses.csv").decode("utf-8"))))
    texts = {Path(p).stem.upper()[:40]: p for p, size in common.ls(gd, "data/CUAD_v1/full_contract_txt/") if size >= 0}
    rng.shuffle(rows)
    count = read = 0
    for row in rows:
        stem = Path(row["Filename"]).stem.upper()[:40]
        if stem in used or stem not in texts:
            continue
        passages = SPLITTER.split_text(common.show(gd, texts[stem]).decode("utf-8", "replace"))
        read += 1
        categories = list(questions)
        rng.shuffle(categories)
        taken = 0
        for category in categories:
            raw = row.get(category, "")
            try:
                clauses = ast.literal_eval(raw) if raw.startswith("[") else []
            except (ValueError, SyntaxError):
                clauses = []
            if clauses and add_pairs(questions[category], clauses[0], passages, "cuad", rng, out):
                taken += 1
            if taken >= CLAUSES_PER_CONTRACT:
                break
        count += taken
        if read >= CUAD_DOCS_PER_RUN:
            break
    return count


def policyqa(rng: random.Random, out: list[dict]) -> int:
    suite = [json.loads(line) for line in (common.SUITE / "policyqa" / "qa.jsonl").open()]
    site = {"dev": set(), "test": set()}
    for q in suite:
        site[q["split"]].add(q["doc"].removesuffix(" privacy policy.txt"))
    gd = common.gitdir("wasiahmad/PolicyQA")
    count = 0
    for name in ("data/dev.json", "data/test.json"):
        for policy in json.loads(common.show(gd, name))["data"]:
            if policy["title"] not in site["dev"] or policy["title"] in site["test"]:
                continue
            ordered = sorted(policy["paragraphs"], key=lambda p: p.get("index", 0))
            passages = SPLITTER.split_text("\n\n".join(p["context"] for p in ordered))
            qas = [qa for p in policy["paragraphs"] for qa in p["qas"]]
            rng.shuffle(qas)
            seen: set[str] = set()
            taken = 0
            for qa in qas:
                if qa["question"] in seen or taken >= POLICY_QUESTIONS_PER_POLICY:
                    continue
                seen.add(qa["question"])
                taken += add_pairs(qa["question"], qa["answers"][0]["text"], passages, "policyqa", rng, out)
            count += taken
    return count


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/reranker/pairs.jsonl")
    rng = random.Random(7)
    out: list[dict] = []
    counts = {"covid": covid(rng, out), "cuad": cuad(rng, out), "policyqa": policyqa(rng, out)}
    rng.shuffle(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w") as f:
        for row in out:
            f.write(json.dumps(row) + "\n")
    print(f"{len(out)} pairs from {sum(counts.values())} questions {counts} -> {target}")


if __name__ == "__main__":
    main()
