"""COVID-QA (deepset-ai/COVID-QA): expert questions over full scientific papers (CORD-19), as .txt documents.

Source file: data/question-answering/200423_covidQA.json (SQuAD format; the final COVID-QA.json is absent from
the snapshot, over its 4 MiB file limit). Documents: the 33 papers with the most short answers (<= 10 words).
Questions: the annotators' own; answers are the annotated spans (<= 10 words). Two in three name the paper by
what it is about (a reference we added: "adapted"), one in three is kept as written.
"""

from __future__ import annotations

import json
import re
from typing import Any

import common

DOMAIN = "covid_qa"
REPO = "deepset-ai/COVID-QA"
SRC = "data/question-answering/200423_covidQA.json"
N_DOCS = 33
PER_DOC = 3
MAX_WORDS = 10

# How a reader of many papers would name each one: by its subject, not its title (our wording).
ABOUT: dict[int, str] = {
    185: "the CDC situation summary of 21 March 2020",
    187: "the paper on preparing for sustained transmission of the 2019 novel coronavirus in the US",
    188: "the paper on emergency management in the battle against COVID-19 in China",
    650: "the study of IFITM5 palmitoylation and FKBP11 in bone cells",
    1545: "the study comparing clinical features of the four common human coronaviruses in adolescents and adults",
    1550: "the genome report on an echovirus strain from a meningitis cluster in California",
    1553: "the paper on an ELISA array detecting five encephalitis viruses",
    1557: "the tuberculosis prevalence survey in a Chinese province",
    1560: "the study of hepcidin and oxidative stress in septic newborn calves",
    1568: "the study of respiratory infection causes in Ilorin, Nigeria",
    1572: "the paper on predicting drug interactions with nuclear receptors",
    1576: "the paper on a new bat alphacoronavirus from horseshoe bats",
    1592: "the study of hepatitis C resistance substitutions in patients from Uruguay",
    1595: "the paper on the SARS coronavirus 3a protein and the NLRP3 inflammasome",
    1604: "the study of severe ARDS caused by adenovirus type 55",
    1620: "the mouse study of a Katnal1 mutation",
    1652: "the deep-sequencing study of lung cells infected with H5N1 bird flu",
    1656: "the paper comparing the HIV fusion inhibitor AP3 with enfuvirtide",
    1671: "the review of host resilience to emerging coronaviruses",
    1676: "the review of viruses that cause gastroenteritis",
    1679: "the study of apoptosis caused by Venezuelan equine encephalitis virus",
    1684: "the paper on MKP-1 and mycobacterial infection",
    1689: "the review of chikungunya as an emerging epidemic",
    1719: "the review of virus-vectored flu vaccines",
    1740: "the review of the human viral challenge model",
    2437: "the screen of FDA-approved drugs against Japanese encephalitis virus",
    2459: "the article rebutting claims that SARS-CoV-2 was engineered in a lab",
    2461: "the piglet study of an oral Bacillus subtilis vaccine against PEDV",
    2463: "the paper on lessons from SARS for the novel coronavirus",
    2486: "the systematic review of diagnostics, vaccines and therapeutics for 2019-nCoV",
    2504: "the review of viral infections in exacerbations of chronic airway diseases",
    2526: "the paper on epidemiological research priorities for the 2019-nCoV outbreak",
    2565: "the study of IFITM3 and Hantaan virus",
    2592: "the mathematical model of phase-based coronavirus transmissibility",
    2620: "the modelling study of unreported 2019-nCoV cases in early January 2020",
    2634: "the genome study of the coronavirus from a patient who had visited Wuhan",
    2642: "the report on the first COVID-19 cases in the WHO European Region",
    2643: "the paper on COVID-19 in humanitarian crises",
    2668: "the paper on the Identify-Isolate-Inform tool",
    2683: "the Imperial College report on infections and non-pharmaceutical interventions in Europe",
}

QWORDS = {
    "what",
    "how",
    "which",
    "when",
    "where",
    "who",
    "whom",
    "whose",
    "why",
    "is",
    "are",
    "does",
    "do",
    "did",
    "can",
    "was",
    "were",
    "in",
    "on",
    "at",
    "by",
    "for",
    "to",
    "the",
    "a",
    "an",
    "name",
    "list",
    "describe",
}
LEADS = ["In {about}, ", "According to {about}, ", "From {about}: "]


def title_of(context: str) -> str:
    first = context.strip().split("\n")[0].strip().rstrip(",")
    return first


def file_name(doc_id: int, title: str) -> str:
    t = re.sub(r"[^\w\s\-]", "", title)
    t = re.sub(r"\s+", " ", t).strip()[:80].strip()
    return f"{t} (COVID-QA {doc_id}).txt"


def adapt(question: str, about: str, k: int) -> str:
    q = question.strip()
    first = q.split(" ", 1)[0]
    if first.lower() in QWORDS:
        q = q[0].lower() + q[1:]
    if not q.endswith("?"):
        q += "?"
    return LEADS[k % len(LEADS)].format(about=about) + q


def main() -> None:
    gd = common.gitdir(REPO)
    data = json.loads(common.show(gd, SRC))["data"]
    docs_dir = common.reset_domain(DOMAIN)
    ranked = []
    for art in data:
        p = art["paragraphs"][0]
        short = [q for q in p["qas"] if q["answers"] and len(q["answers"][0]["text"].split()) <= MAX_WORDS]
        ranked.append((-len(short), p["document_id"], p, short))
    ranked.sort(key=lambda r: (r[0], r[1]))
    questions: list[dict[str, Any]] = []
    k = 0
    for _, doc_id, p, short in sorted(ranked[:N_DOCS], key=lambda r: r[1]):
        title = title_of(p["context"])
        name = file_name(doc_id, title)
        (docs_dir / name).write_text(p["context"], encoding="utf-8")
        short = sorted(short, key=lambda q: q["answers"][0]["answer_start"])
        step = max(1, len(short) // PER_DOC)
        picks = short[::step][:PER_DOC]
        for q in picks:
            ans = q["answers"][0]["text"].strip().strip(".").strip()
            item: dict[str, Any] = {"id": f"covidqa-{q['id']}", "doc": name, "answers": [ans], "tags": []}
            if k % 3 == 2:
                item["question"] = q["question"].strip()
            else:
                item["question"] = adapt(q["question"], ABOUT[doc_id], k)
                item["source_question"] = q["question"].strip()
                item["adapted"] = True
                item["tags"].append("named-by-content")
            k += 1
            questions.append(item)
    stats = common.finalize(DOMAIN, docs_dir, questions)
    meta = {
        "source": f"github:{REPO}@{common.head(gd)} ({SRC})",
        "licence": "Apache-2.0 (COVID-QA annotations); papers are CORD-19 open-access articles, each under the"
        " licence printed in its header (mostly CC BY / CC BY-NC / CC0)",
        "citation": "Möller et al., COVID-QA: A Question Answering Dataset for COVID-19,"
        " NLP-COVID19 workshop, ACL 2020",
        "builder": "scripts/suite/build_covid_qa.py",
        "notes": "Biomedical papers as plain text (title, authors, licence, abstract, body). Questions by the dataset's"
        " biomedical experts; two in three adapted with a reference to the paper's subject. Pre-release file"
        " 200423_covidQA.json (98 papers) used.",
    }
    common.write_meta(DOMAIN, meta, stats)


if __name__ == "__main__":
    main()
