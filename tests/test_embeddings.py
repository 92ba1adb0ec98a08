"""The packaged embedding model: device choice, batching, normalised vectors, token counts."""

from __future__ import annotations

import numpy as np
import pytest

import rag.embeddings
from rag.embeddings import Embedder, pick_device, plan_batches


def test_the_gpu_is_chosen_whenever_torch_sees_one() -> None:
    assert pick_device(cuda=True, mps=True) == "cuda"
    assert pick_device(cuda=False, mps=True) == "mps"
    assert pick_device(cuda=False, mps=False) == "cpu"
    assert pick_device() == "cpu"  # this machine has no GPU


def test_the_model_loads_on_the_device_pick_device_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []

    def forced() -> str:
        asked.append("called")
        return "cpu"  # the device a GPU machine would name here is "cuda"; the call path is the same

    monkeypatch.setattr(rag.embeddings, "pick_device", forced)
    embedder = Embedder()
    assert embedder.device == "cpu" and asked == ["called"]


def test_vectors_are_normalised_and_batched(embedder: Embedder) -> None:
    vectors = embedder.embed_documents(["one", "two", "three"])
    assert vectors.shape == (3, embedder.dimension) == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed_documents([]).shape == (0, 384)
    assert embedder.count_tokens(["hello world"]) == [4]  # [CLS] hello world [SEP]


def test_the_batch_budget_suits_the_device(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    assert embedder.batch_tokens == rag.embeddings.CPU_BATCH_TOKENS
    monkeypatch.setattr(Embedder, "device", property(lambda self: "cuda"))
    assert Embedder().batch_tokens == rag.embeddings.ACCELERATOR_BATCH_TOKENS


def test_batches_group_texts_of_one_length_longest_first_within_the_budget() -> None:
    lengths = [10, 200, 12, 190, 11, 300, 9]
    # 300 alone (a second text would pad to 600), 200 with 190 (padded to 2 x 200), the short ones together
    assert plan_batches(lengths, max_tokens=400) == [[5], [1, 3], [2, 4, 0, 6]]
    assert plan_batches([500], max_tokens=100) == [[0]]  # a text longer than the budget still goes
    assert max(len(b) for b in plan_batches([5] * 50, max_tokens=1000, max_texts=8)) == 8
    assert plan_batches([], max_tokens=100) == []


def test_vectors_come_back_in_the_order_of_the_texts_whatever_the_batching(embedder: Embedder) -> None:
    texts = [
        "Short one.",
        "A much longer text about the Llama 2 model, its context window of 4096 tokens, "
        "and how to run it on a laptop with a quantised GGUF file. " * 3,
        "Chroma stores the vectors.",
        "Medium length text about retrieval and embeddings, with a few more words.",
    ]
    together = embedder.embed_documents(texts)
    alone = np.stack([embedder.embed_query(t) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    seen = sorted(i for indices, _ in embedder.embed_batches(texts) for i in indices)
    assert seen == [0, 1, 2, 3]
