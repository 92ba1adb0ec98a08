"""PolicyQA (wasiahmad/PolicyQA): questions over website privacy policies (OPP-115 corpus), as .txt documents.

PolicyQA gives each policy as its ordered segments (SQuAD format, one "title" = one website). The segments of a
policy are joined back into one text file per website. Documents: the 40 policies of the released dev and test
files. Questions: the dataset's own, whose answer span is 3-10 words (15+ characters) and occurs exactly once
in its policy (so it points at one passage), up to 2 per policy, spread over the policy. The questions assume the
reader holds the policy ("this website"); each is adapted to name the website.
"""

from __future__ import annotations

import json
import re
from typing import Any

import common

DOMAIN = "policyqa"
REPO = "wasiahmad/PolicyQA"
FILES = ["data/dev.json", "data/test.json"]
PER_DOC = 2


def adapt(question: str, site: str) -> str:
    q = common.clean_ws(question)
    repl = [
        (r"\bthis website's\b", f"{site}'s"),
        (r"\bthe website's\b", f"{site}'s"),
        (r"\bthis website\b", site),
        (r"\bthe website\b", site),
        (r"\bthis site\b", site),
        (r"\bthe site\b", site),
        (r"\bthis company\b", site),
        (r"\bthe company\b", site),
        (r"\bthis app\b", site),
    ]
    for pat, sub in repl:
        new = re.sub(pat, sub, q, count=1, flags=re.I)
        if new != q:
            return new
    q = q.rstrip("?")
    return f"{q}, according to the privacy policy of {site}?"


def main() -> None:
    gd = common.gitdir(REPO)
    docs_dir = common.reset_domain(DOMAIN)
    questions: list[dict[str, Any]] = []
    for f in FILES:
        for art in json.loads(common.show(gd, f))["data"]:
            site = art["title"].strip()
            name = f"{site} privacy policy.txt"
            text = "\n\n".join(common.clean_ws(p["context"]) for p in art["paragraphs"])
            (docs_dir / name).write_text(text + "\n", encoding="utf-8")
            low = text.lower()
            cands = []
            seen_answers: set[str] = set()
            for p in art["paragraphs"]:
                for q in p["qas"]:
                    a = common.clean_ws(q["answers"][0]["text"]).strip(" .,;:")
                    n = len(a.split())
                    if not (3 <= n <= 10) or len(a) < 15 or low.count(a.lower()) != 1 or a.lower() in seen_answers:
                        continue
                    seen_answers.add(a.lower())
                    cands.append((low.find(a.lower()), q, a))
            cands.sort(key=lambda c: (c[0], c[1]["id"]))
            if not cands:
                continue
            step = max(1, len(cands) // PER_DOC)
            for _pos, q, a in cands[::step][:PER_DOC]:
                questions.append(
                    {
                        "id": f"policyqa-{q['id']}",
                        "question": adapt(q["question"], site),
                        "answers": [a],
                        "doc": name,
                        "source_question": common.clean_ws(q["question"]),
                        "adapted": True,
                        "tags": ["named-by-title", f"policyqa-type:{q['type'].split('|||')[0]}"],
                    }
                )
    stats = common.finalize(DOMAIN, docs_dir, questions)
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} ({', '.join(FILES)})",
        "licence": "MIT (PolicyQA); the policies come from the OPP-115 corpus (Wilson et al. 2016), released for"
        " research",
        "citation": "Ahmad et al., PolicyQA: A Reading Comprehension Dataset for Privacy Policies, Findings of EMNLP"
        " 2020; Wilson et al., The Creation and Analysis of a Website Privacy Policy Corpus, ACL 2016",
        "builder": "scripts/suite/build_policyqa.py",
        "notes": "Privacy policies of 40 US websites (2015-era), rebuilt as plain text from PolicyQA's ordered"
        " segments. Questions are PolicyQA's (skilled annotators), adapted to name the website. Policies are"
        " similar to one another: a test of telling near-duplicate passages apart.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
