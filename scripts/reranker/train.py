"""Fine-tune the shipped all-MiniLM-L6-v2 weights as a passage reranker (a cross-encoder, one logit).

Measured on the suite and not taken (README, "Rerankers measured"): kept so that the figure can be rebuilt.

    .venv/bin/python scripts/reranker/build_pairs.py /work/reranker/pairs.jsonl
    .venv/bin/python scripts/reranker/train.py /work/reranker/pairs.jsonl rag/retrieval/reranker

One pass over the pairs, batches of 16, AdamW at 4e-5 with a 10 % warm-up then a linear decay, binary
cross-entropy on the label; question and passage together cut at 192 tokens. One in twenty questions is held
out: its loss and accuracy are printed before and after, and how well the trained model and the shipped
encoder (cosine) rank each held-out question's answer among its five passages (mean reciprocal rank, share
ranked first). About 22 minutes for 14,000 pairs on 2 CPU cores. The weights are saved in half precision.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rag.embeddings import Embedder, packaged_model_path  # noqa: E402

BATCH, LEARNING_RATE, EPOCHS, HELD_OUT = 16, 4e-5, 1, 20
MAX_TOKENS = 192  # question and passage together (a 600-character passage fits)


def main() -> None:
    pairs, target = Path(sys.argv[1]), Path(sys.argv[2])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    rng = random.Random(0)
    rows = [json.loads(line) for line in pairs.open()]
    questions = sorted({r["query"] + "|" + r["source"] for r in rows})
    held = set(rng.sample(questions, len(questions) // HELD_OUT))
    train = [r for r in rows if r["query"] + "|" + r["source"] not in held]
    check = [r for r in rows if r["query"] + "|" + r["source"] in held][:600]
    tokenizer = AutoTokenizer.from_pretrained(packaged_model_path(), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        packaged_model_path(), num_labels=1, local_files_only=True
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.01)
    steps = EPOCHS * math.ceil(len(train) / BATCH)
    warm = steps // 10
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / (steps - warm)))
    )
    loss_of = torch.nn.BCEWithLogitsLoss()

    def batch(rs: list[dict]) -> tuple[dict, torch.Tensor]:
        encoded = tokenizer([r["query"] for r in rs], [r["passage"] for r in rs], truncation="only_second",
                            max_length=MAX_TOKENS, padding=True, return_tensors="pt")  # fmt: skip
        return encoded, torch.tensor([float(r["label"]) for r in rs])

    def held_out() -> str:
        model.eval()
        loss = right = 0.0
        with torch.no_grad():
            for i in range(0, len(check), 64):
                encoded, labels = batch(check[i : i + 64])
                logits = model(**encoded).logits.squeeze(-1)
                loss += float(loss_of(logits, labels)) * len(labels)
                right += int(((logits > 0).float() == labels).sum())
        model.train()
        return f"held-out loss {loss / len(check):.3f}, accuracy {right / len(check):.3f}"

    print(f"{len(train)} pairs to train on, {len(check)} held out; {steps} steps; before: {held_out()}", flush=True)
    started = time.time()
    step = 0
    model.train()
    for _ in range(EPOCHS):
        rng.shuffle(train)
        for i in range(0, len(train), BATCH):
            encoded, labels = batch(train[i : i + BATCH])
            loss = loss_of(model(**encoded).logits.squeeze(-1), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"step {step}/{steps}, loss {float(loss):.3f}, {time.time() - started:.0f} s", flush=True)
    print(f"after: {held_out()}", flush=True)
    model.eval()
    by_question: dict[str, list[dict]] = {}
    for r in check:
        by_question.setdefault(r["query"] + "|" + r["source"], []).append(r)
    groups = [g for g in by_question.values() if sum(r["label"] for r in g) == 1]

    def cross(g: list[dict]) -> list[float]:
        with torch.no_grad():
            return model(**batch(g)[0]).logits.squeeze(-1).tolist()

    encoder = Embedder()

    def cosine(g: list[dict]) -> list[float]:
        return (encoder.embed_documents([r["passage"] for r in g]) @ encoder.embed_query(g[0]["query"])).tolist()

    for name, score in (("trained reranker", cross), ("shipped encoder", cosine)):
        places = []
        for g in groups:
            scores = score(g)
            places.append(1 + sum(s > scores[next(i for i, r in enumerate(g) if r["label"])] for s in scores))
        mrr, first = sum(1 / p for p in places) / len(places), sum(p == 1 for p in places) / len(places)
        print(f"{name}: mean reciprocal rank {mrr:.3f}, first {first:.3f} ({len(groups)} held-out questions)")
    model.half().save_pretrained(target)
    tokenizer.save_pretrained(target)
    print(f"saved to {target} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
