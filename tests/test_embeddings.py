"""The packaged embedding model: device choice, batching, normalised vectors, token counts."""

from __future__ import annotations

import numpy as np
import pytest

import rag.embeddings
from rag.embeddings import Embedder, pick_device


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


def test_batch_size_suits_the_device(monkeypatch: pytest.MonkeyPatch, embedder: Embedder) -> None:
    assert embedder.batch_size == rag.embeddings.CPU_BATCH_SIZE == 8
    assert Embedder(batch_size=3).batch_size == 3
    monkeypatch.setattr(Embedder, "device", property(lambda self: "cuda"))
    assert Embedder().batch_size == rag.embeddings.ACCELERATOR_BATCH_SIZE
