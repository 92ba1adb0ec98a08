"""The Ollama backend against a fake server speaking its wire protocol."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import pytest

from rag.backends.base import GenerationOptions, StopSignal
from rag.backends.ollama import OllamaBackend, probe_ollama
from rag.config import auth_headers
from rag.errors import BackendError, BackendUnavailable, ModelNotFound, StreamInterrupted
from rag.prompts import render_llama2
from rag.schema import Message
from tests.fake_ollama import ANSWER_PIECES, FakeOllama
from tests.servers import free_port

CONVERSATION = [
    Message("system", "Answer from the sources.\n\nSources:\n\n[1] llama.md\nLlama 2 has a 4096-token context."),
    Message("user", " What is the context length? "),
    Message("assistant", "4096 tokens [1]."),
    Message("user", "And for 70B?"),
]
OPTIONS = GenerationOptions(context_window=4096, max_tokens=256, temperature=0.1)


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=["llama2:latest", "mistral:latest"]) as server:
        yield server


def test_llama2_goes_raw_to_generate_with_the_exact_prompt(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "llama2", context_window=4096)
    stream = backend.stream(CONVERSATION, OPTIONS)
    pieces = list(stream)

    assert pieces == ANSWER_PIECES
    path, body = fake_ollama.requests[-1]
    assert path == "/api/generate"
    assert body["raw"] is True and body["stream"] is True and body["model"] == "llama2"
    # Meta's format byte-for-byte, without a second BOS (the runner adds one).
    assert body["prompt"] == render_llama2(CONVERSATION)[len("<s>") :]
    assert body["prompt"].startswith("[INST] <<SYS>>\nAnswer from the sources.")
    assert "</s><s>[INST] And for 70B? [/INST]" in body["prompt"]
    assert body["options"]["num_ctx"] == 4096
    assert body["options"]["num_predict"] == 256
    assert stream.usage is not None
    assert stream.usage.prompt_tokens == 321
    assert stream.usage.completion_tokens == len(ANSWER_PIECES)
    assert stream.usage.prompt_seconds == 0.5 and stream.usage.generation_seconds == 1.0
    assert stream.usage.tokens_per_second == len(ANSWER_PIECES) / 1.0


def test_other_models_use_chat_with_messages(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "mistral", context_window=8192)
    assert "".join(backend.stream(CONVERSATION, GenerationOptions(8192, 100, 0.0))) == "".join(ANSWER_PIECES)
    path, body = fake_ollama.requests[-1]
    assert path == "/api/chat"
    assert body["messages"][0] == {"role": "system", "content": CONVERSATION[0].content}
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert body["options"]["num_ctx"] == 8192


def test_installed_models_and_presence(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "llama2")
    models = backend.installed_models()
    assert models == ["llama2:latest", "mistral:latest"]
    assert backend.has_model(models)
    assert not OllamaBackend(fake_ollama.host, "llama2:70b").has_model(models)


def test_no_server_says_how_to_start_it() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    backend = OllamaBackend(host, "llama2", retry_delay=0.01)
    with pytest.raises(BackendUnavailable, match=rf"Ollama is not running at {host}: start it with `ollama serve`"):
        list(backend.stream(CONVERSATION, OPTIONS))
    with pytest.raises(BackendUnavailable, match="ollama serve"):
        backend.installed_models()


def test_missing_model_says_to_pull_it_and_is_not_retried(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "llama2:13b", retry_delay=0.01)
    with pytest.raises(ModelNotFound, match=r"run `ollama pull llama2:13b`"):
        list(backend.stream(CONVERSATION, OPTIONS))
    assert len(fake_ollama.requests) == 1


def test_stream_broken_mid_way_keeps_what_was_said(fake_ollama: FakeOllama) -> None:
    fake_ollama.mode = "break-mid-stream"
    backend = OllamaBackend(fake_ollama.host, "llama2", retry_delay=0.01)
    received: list[str] = []
    with pytest.raises(StreamInterrupted, match="broke during the answer"):
        for piece in backend.stream(CONVERSATION, OPTIONS):
            received.append(piece)
    assert received == ANSWER_PIECES[:2]
    assert len(fake_ollama.requests) == 1  # never re-sent once the answer had started


def test_a_token_for_a_proxy_in_front_of_ollama_is_sent_with_every_call(fake_ollama: FakeOllama) -> None:
    fake_ollama.required_headers = {"Authorization": "Bearer s3cret"}
    refused = OllamaBackend(fake_ollama.host, "llama2", retry_delay=0.01)
    with pytest.raises(BackendError, match=r"refused the request .*set RAG_OLLAMA_TOKEN"):
        refused.installed_models()
    with pytest.raises(BackendError, match="set RAG_OLLAMA_TOKEN"):
        list(refused.stream(CONVERSATION, OPTIONS))
    assert not probe_ollama(fake_ollama.host).reachable

    backend = OllamaBackend(fake_ollama.host, "llama2", headers=auth_headers("s3cret"))
    assert backend.installed_models() == ["llama2:latest", "mistral:latest"]
    assert list(backend.stream(CONVERSATION, OPTIONS)) == ANSWER_PIECES
    assert probe_ollama(fake_ollama.host, headers=auth_headers("s3cret")).reachable
    assert fake_ollama.headers[-1]["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize("model", ["llama2", "mistral"])
def test_a_stop_while_ollama_reads_the_prompt_ends_the_answer_and_ollama_sees_its_client_gone(
    fake_ollama: FakeOllama, model: str
) -> None:
    """Ollama sends nothing, not even headers, while it reads a long prompt (minutes for a 7B model on a CPU): a stop
    then must not wait for the first word. The connection is shut, so the reading thread ends with nothing (no
    error: the person stopped it) and Ollama, seeing its client gone, generates nothing for it. Before, the thread
    waited for the first word, and Ollama went on."""
    fake_ollama.mode = "reading-prompt"
    fake_ollama.required_headers = {"Authorization": "Bearer s3cret"}  # the per-answer client keeps the headers
    backend = OllamaBackend(fake_ollama.host, model, headers=auth_headers("s3cret"))
    stop = StopSignal()
    pieces: list[str] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            pieces.extend(backend.stream(CONVERSATION, GenerationOptions(4096, 256, 0.1, stop)))
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert fake_ollama.reading.wait(60)
        stop.set()
        reader.join(60)
        assert not reader.is_alive()
        assert fake_ollama.client_gone.wait(60)
    finally:
        fake_ollama.go_on.set()
        reader.join(60)
    assert pieces == [] and failures == []
    # The next answer, on the backend's own client, is whole.
    fake_ollama.mode = "ok"
    assert list(backend.stream(CONVERSATION, OPTIONS)) == ANSWER_PIECES


def test_a_stop_between_words_ends_the_answer_with_what_arrived(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "llama2")
    stop = StopSignal()
    stream = backend.stream(CONVERSATION, GenerationOptions(4096, 256, 0.1, stop))
    received = []
    for piece in stream:
        received.append(piece)
        stop.set()
    assert received and "".join(received) == "".join(ANSWER_PIECES[: len(received)])


def test_a_token_setting_is_a_bearer_token_or_a_whole_header() -> None:
    assert auth_headers("") == {} and auth_headers("  ") == {}
    assert auth_headers("abc123") == {"Authorization": "Bearer abc123"}
    assert auth_headers("X-Api-Key: abc123") == {"X-Api-Key": "abc123"}
    assert auth_headers("Authorization: Basic dXNlcjpwYXNz") == {"Authorization": "Basic dXNlcjpwYXNz"}


def test_busy_server_is_retried_with_backoff(fake_ollama: FakeOllama) -> None:
    fake_ollama.busy_once()
    backend = OllamaBackend(fake_ollama.host, "llama2", retry_delay=0.01)
    stream = backend.stream(CONVERSATION, OPTIONS)
    assert list(stream) == ANSWER_PIECES
    assert len(fake_ollama.requests) == 2
    assert stream.usage is not None and stream.usage.retries == 1  # counted with the answer's usage


# -- pulling a model into Ollama -------------------------------------------------------------------


def test_pull_reports_progress_and_installs_the_model(fake_ollama: FakeOllama) -> None:
    from tests.fake_ollama import PULL_LAYERS, PULL_STEPS

    backend = OllamaBackend(fake_ollama.host, "phi3")
    updates = list(backend.pull())

    assert fake_ollama.requests == [("/api/pull", {"model": "phi3", "insecure": False, "stream": True})]
    assert updates[0].status == "pulling manifest" and updates[0].fraction is None
    assert [u.status for u in updates[-3:]] == ["verifying sha256 digest", "writing manifest", "success"]
    layers = [u for u in updates if u.total]
    assert len(layers) == len(PULL_LAYERS) * PULL_STEPS
    assert [u.fraction for u in layers] == [step / PULL_STEPS for step in range(1, PULL_STEPS + 1)] * len(PULL_LAYERS)
    assert layers[0].status == f"pulling {PULL_LAYERS[0][0][7:19]}" and layers[0].total == PULL_LAYERS[0][1]
    models = backend.installed_models()
    assert models == ["llama2:latest", "mistral:latest", "phi3:latest"]
    assert backend.has_model(models)


def test_pull_of_a_tagged_model_keeps_its_tag(fake_ollama: FakeOllama) -> None:
    assert list(OllamaBackend(fake_ollama.host, "llama2:13b").pull())[-1].status == "success"
    assert "llama2:13b" in OllamaBackend(fake_ollama.host, "llama2").installed_models()


def test_pull_of_an_unknown_model_says_to_check_the_name(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "does-not-exist")
    with pytest.raises(ModelNotFound) as caught:
        list(backend.pull())
    assert str(caught.value) == (
        "Ollama could not pull 'does-not-exist' (pull model manifest: file does not exist): "
        "check the name on https://ollama.com/library."
    )
    assert backend.installed_models() == ["llama2:latest", "mistral:latest"]


def test_pull_with_no_server_says_how_to_start_it() -> None:
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match=rf"Ollama is not running at {host}: start it with `ollama serve`"):
        list(OllamaBackend(host, "llama2").pull())


def test_token_estimate_learns_from_what_ollama_reports(fake_ollama: FakeOllama) -> None:
    backend = OllamaBackend(fake_ollama.host, "llama2")
    first = backend.count_tokens(CONVERSATION)
    assert first >= len(render_llama2(CONVERSATION).encode()) / 3  # conservative before any answer
    list(backend.stream(CONVERSATION, OPTIONS))  # the fake reports prompt_eval_count=321
    corrected = backend.count_tokens(CONVERSATION)
    # The server counted 321 tokens where the estimate said fewer: from now on it counts like the server,
    # with a 5% margin, so the budget never overflows the window.
    assert first < 321 and corrected == math.ceil(first * (321 / first * 1.05))
    # A fresh backend object for the same server and model (the app builds one per request) keeps it.
    assert OllamaBackend(fake_ollama.host, "llama2").count_tokens(CONVERSATION) == corrected
