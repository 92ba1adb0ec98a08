"""The embedded backend: the real built-in llama.cpp model (SmolLM2-135M-Instruct, shipped as a package)."""

from __future__ import annotations

import subprocess
import threading

import pytest

from rag.backends.base import GenerationOptions, StopSignal
from rag.backends.embedded import EmbeddedBackend, check_llama_cpp_runs, packaged_gguf_path
from rag.config import PROJECT_ROOT
from rag.errors import BackendError
from rag.schema import Message


@pytest.fixture(scope="module")
def embedded() -> EmbeddedBackend:
    return EmbeddedBackend(context_window=2048)


@pytest.mark.slow
def test_embedded_streams_an_answer_with_usage(embedded: EmbeddedBackend) -> None:
    messages = [Message("system", "You are terse."), Message("user", "Say hello.")]
    stream = embedded.stream(messages, GenerationOptions(2048, 24, 0.0))
    pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces).strip()
    assert stream.usage is not None
    assert stream.usage.prompt_tokens == embedded.count_tokens(messages)
    assert 0 < (stream.usage.completion_tokens or 0) <= 24


# A prompt the built-in model reads in several batches of 512 tokens (seconds each on a CPU).
LONG_REPORT = "The harbour master reported that the ferry ran aground near the northern reef at dawn. " * 70
LONG_PROMPT = [Message("system", LONG_REPORT), Message("user", "Where did the ferry run aground?")]


def _read_in_thread(embedded: EmbeddedBackend, stop: StopSignal) -> tuple[threading.Thread, list[str]]:
    pieces: list[str] = []
    stream = embedded.stream(LONG_PROMPT, GenerationOptions(2048, 24, 0.0, stop))
    reader = threading.Thread(target=lambda: pieces.extend(stream))
    reader.start()
    return reader, pieces


def _wait_for_a_batch_read(embedded: EmbeddedBackend, reader: threading.Thread) -> None:
    """Until llama.cpp has read the prompt's first batch (and not yet the whole of it)."""
    while embedded.llama.n_tokens == 0 and reader.is_alive():
        reader.join(0.01)


@pytest.mark.slow
def test_a_stop_ends_the_reading_of_a_long_prompt_before_any_word_comes(embedded: EmbeddedBackend) -> None:
    """The app's Stop while the model reads a long prompt (seconds with the built-in model, minutes with a 7B one on
    a CPU): llama.cpp gives up in the middle of it, so the stream ends with nothing, where before the stop was seen
    only at the first word (the whole prompt read first)."""
    assert embedded.count_tokens(LONG_PROMPT) > 1200  # three batches at least
    stop = StopSignal()
    reader, pieces = _read_in_thread(embedded, stop)
    _wait_for_a_batch_read(embedded, reader)
    stop.set()
    reader.join(120)
    assert not reader.is_alive()
    assert pieces == []


@pytest.mark.slow
def test_after_a_stopped_prompt_the_same_prompt_is_answered_as_if_nothing_had_happened(
    embedded: EmbeddedBackend,
) -> None:
    """What llama.cpp keeps of a prompt it gave up reading (the batches read before the stop) and what
    llama-cpp-python believes it keeps must agree: else the next answer would come from a prompt missing a part."""
    options = GenerationOptions(2048, 16, 0.0)
    before = "".join(embedded.stream(LONG_PROMPT, options))
    embedded.llama.reset()  # the stopped run starts from an empty cache, as a first question does
    stop = StopSignal()
    reader, pieces = _read_in_thread(embedded, stop)
    _wait_for_a_batch_read(embedded, reader)
    stop.set()
    reader.join(120)
    assert pieces == []
    assert "".join(embedded.stream(LONG_PROMPT, options)) == before
    assert "".join(embedded.stream([Message("user", "Say hello.")], options)).strip()


@pytest.mark.slow
def test_a_stop_set_before_the_model_is_free_starts_nothing(embedded: EmbeddedBackend) -> None:
    stop = StopSignal()
    stop.set()
    stream = embedded.stream(LONG_PROMPT, GenerationOptions(2048, 24, 0.0, stop))
    assert list(stream) == []
    assert stream.usage is not None and stream.usage.completion_tokens == 0


@pytest.mark.slow
def test_embedded_renders_the_models_own_template_with_the_system_message(embedded: EmbeddedBackend) -> None:
    prompt = embedded.render([Message("system", "RULES"), Message("user", "QUESTION")])
    assert prompt == (
        "<|im_start|>system\nRULES<|im_end|>\n<|im_start|>user\nQUESTION<|im_end|>\n<|im_start|>assistant\n"
    )
    assert embedded.context_window == 2048


def test_a_llama_cpp_that_crashes_the_process_is_an_error_that_says_how_to_fix_it() -> None:
    """A build that dies by a signal at the first token (llama.cpp's AMX code on recent Xeons) would end the app with
    no message; the test run in a child turns it into an error. The child here really segfaults."""
    crashes = "import faulthandler, sys\nfaulthandler.disable()\nfaulthandler._sigsegv()\n"
    with pytest.raises(BackendError, match=r"crashed \(SIGSEGV\).*--no-cache-dir.*RAG_BACKEND=ollama") as raised:
        check_llama_cpp_runs(packaged_gguf_path(), code=crashes)
    # The command it gives builds as `make setup` does: the Makefile's flags, read from the same file.
    makefile_flags = subprocess.run(
        ["make", "-s", "--no-print-directory", "llama-flags"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert "-DGGML_NATIVE=OFF" in makefile_flags
    assert f'CMAKE_ARGS="{makefile_flags}"' in str(raised.value)
    # The real build here generates its token; a Python error in the child is left to the load to report.
    check_llama_cpp_runs(packaged_gguf_path())
    check_llama_cpp_runs(packaged_gguf_path(), code="raise SystemExit('no llama_cpp')")


def test_packaged_gguf_is_found_without_importing_the_plugin() -> None:
    path = packaged_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_missing_gguf_path_says_what_to_fix(tmp_path: object) -> None:
    from pathlib import Path

    with pytest.raises(BackendError, match="RAG_GGUF_PATH"):
        EmbeddedBackend(Path(str(tmp_path)) / "nope.gguf")


@pytest.mark.slow
def test_two_first_questions_at_once_load_the_built_in_model_once() -> None:
    import threading

    backend = EmbeddedBackend(context_window=2048)
    loaded: list[object] = []
    threads = [threading.Thread(target=lambda: loaded.append(backend.llama)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loaded) == 3 and all(model is loaded[0] for model in loaded)
