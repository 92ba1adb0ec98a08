"""The OpenAI-compatible backend against a real server: llama-cpp-python's `llama_cpp.server` serving the
packaged SmolLM2 GGUF on a free port (started once per module, and once more with `--api_key`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.backends.base import GenerationOptions, StopSignal
from rag.backends.openai import OpenAIBackend
from rag.config import Settings
from rag.embeddings import Embedder
from rag.engine import Engine, choose_backend
from rag.errors import BackendError, BackendUnavailable, ModelNotFound, StreamInterrupted
from rag.prompts import render_llama2, strip_bos
from rag.schema import Message
from rag.turn import prepare, stream_answer
from tests.fake_ollama import has_gone
from tests.servers import LlamaServer, free_port

pytestmark = pytest.mark.slow

API_KEY = "test-key-3f9a"
SERVER_WINDOW = 2048  # the server's n_ctx; the app's context window setting is 4096 in one test, to overflow it
CONVERSATION = [
    Message("system", "You answer in one short sentence."),
    Message("user", "What colour is the sky on a clear day?"),
    Message("assistant", "Blue."),
    Message("user", "And at sunset?"),
]
OPTIONS = GenerationOptions(context_window=SERVER_WINDOW, max_tokens=24, temperature=0.0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    running = LlamaServer(tmp_path_factory.mktemp("llama-server"), SERVER_WINDOW).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    running = LlamaServer(tmp_path_factory.mktemp("llama-server-key"), SERVER_WINDOW, API_KEY).start()
    try:
        yield running
    finally:
        running.stop()


# -- end to end through the engine ------------------------------------------------------------------------


def test_an_answer_streams_end_to_end_through_the_engine(
    server: LlamaServer, tmp_path: Path, embedder: Embedder
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "sky.md").write_text("# The sky\n\nOn a clear day the sky is blue because air scatters blue light most.")
    settings = Settings(
        data_dir=tmp_path / "kb",
        corpus_dir=docs,
        backend="openai",
        openai_base_url=server.base_url,
        model="SmolLM2-135M-Instruct",
        context_window=SERVER_WINDOW,
        max_answer_tokens=48,
        temperature=0.0,
    )
    engine = Engine(settings, embedder=embedder)
    assert [r.status for r in engine.ensure_default_corpus()] == ["added"]
    assert engine.chosen.backend.name == "openai" and not engine.chosen.fallback
    assert server.base_url in engine.chosen.reason

    stream = stream_answer(engine, prepare(engine, "Why is the sky blue?"))
    assert stream.sources[0].chunk.source == "sky.md"
    pieces = list(stream)
    assert len(pieces) > 3, "the answer should arrive in many streamed pieces"
    answer = stream.answer
    assert answer is not None and answer.text
    assert answer.backend == "openai" and answer.model == "SmolLM2-135M-Instruct"
    # llama-cpp-python's server reports no usage in a stream (it ignores stream_options): the completion's
    # length is its token events, one a generated token; the prompt's count is unknown rather than guessed.
    assert answer.usage.prompt_tokens is None
    assert answer.usage.completion_tokens is not None and len(pieces) <= answer.usage.completion_tokens <= 48
    assert answer.usage.time_to_first_token is not None and answer.usage.seconds


def test_llama2_models_get_the_exact_meta_prompt_through_completions(server: LlamaServer) -> None:
    sent: list[httpx.Request] = []
    client = httpx.Client(timeout=120, event_hooks={"request": [sent.append]})
    backend = OpenAIBackend(server.base_url, "llama-2-7b-chat", SERVER_WINDOW, client=client)
    stream = backend.stream(CONVERSATION, OPTIONS)
    text = "".join(stream)

    assert [str(r.url) for r in sent] == [f"{server.base_url}/completions"]
    body = json.loads(sent[0].content)  # the bytes that went on the wire
    expected = strip_bos(render_llama2(CONVERSATION))
    assert body["prompt"] == expected == render_llama2(CONVERSATION)[len("<s>") :]
    assert body["prompt"].startswith("[INST] <<SYS>>\nYou answer in one short sentence.\n<</SYS>>\n\n")
    assert body["prompt"].endswith("[/INST] Blue. </s><s>[INST] And at sunset? [/INST]")
    assert "messages" not in body and body["stream"] is True and body["max_tokens"] == 24
    assert backend.render(CONVERSATION) == expected
    assert text and stream.usage is not None and stream.usage.completion_tokens


def test_other_models_go_through_chat_completions_with_messages(server: LlamaServer) -> None:
    sent: list[httpx.Request] = []
    client = httpx.Client(timeout=120, event_hooks={"request": [sent.append]})
    backend = OpenAIBackend(server.base_url, "SmolLM2-135M-Instruct", SERVER_WINDOW, client=client)
    long_answer = [Message("user", "Write a long story about a lighthouse keeper and a storm.")]
    stream = backend.stream(long_answer, OPTIONS)
    assert "".join(stream)
    # Cut at max_tokens (24): the count of the server's token events is exactly the completion's length.
    assert stream.usage is not None and stream.usage.completion_tokens == 24
    assert str(sent[0].url) == f"{server.base_url}/chat/completions"
    body = json.loads(sent[0].content)
    assert body["messages"] == [{"role": "user", "content": long_answer[0].content}]
    assert "prompt" not in body and body["stream_options"] == {"include_usage": True}


# -- failures, each with a message that says what to do ---------------------------------------------------


def test_a_wrong_key_says_to_check_the_key_and_is_not_retried(keyed_server: LlamaServer) -> None:
    sent: list[httpx.Request] = []
    client = httpx.Client(timeout=60, event_hooks={"request": [sent.append]})
    backend = OpenAIBackend(keyed_server.base_url, "smollm2", SERVER_WINDOW, api_key="wrong", client=client)
    with pytest.raises(BackendError, match=r"refused the API key \(401.*check RAG_OPENAI_API_KEY"):
        list(backend.stream(CONVERSATION, OPTIONS))
    assert len(sent) == 1
    no_key = OpenAIBackend(keyed_server.base_url, "smollm2", SERVER_WINDOW)
    with pytest.raises(BackendError, match="it needs an API key: set RAG_OPENAI_API_KEY"):
        list(no_key.stream(CONVERSATION, OPTIONS))
    right = OpenAIBackend(keyed_server.base_url, "smollm2", SERVER_WINDOW, api_key=API_KEY)
    assert "".join(right.stream(CONVERSATION, OPTIONS))


def test_a_prompt_too_long_for_the_server_says_to_set_its_window(server: LlamaServer) -> None:
    # The app believes the window is 4096; the server was started with 2048.
    backend = OpenAIBackend(server.base_url, "smollm2", 4096, retry_delay=0.01)
    long = [Message("system", "Sources:\n" + "The sky is blue. " * 700), Message("user", "What colour?")]
    with pytest.raises(BackendError, match=r"prompt is too long .*RAG_CONTEXT_WINDOW"):
        list(backend.stream(long, GenerationOptions(4096, 24, 0.0)))


def test_a_wrong_path_or_model_says_what_to_check(server: LlamaServer) -> None:
    backend = OpenAIBackend(server.base_url.removesuffix("/v1"), "smollm2", SERVER_WINDOW, retry_delay=0.01)
    with pytest.raises(ModelNotFound, match=r"no model 'smollm2' or no such endpoint .*ends with /v1"):
        list(backend.stream(CONVERSATION, OPTIONS))


def test_no_server_is_retried_then_says_how_to_start_one() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    sent: list[httpx.Request] = []
    client = httpx.Client(timeout=5, event_hooks={"request": [sent.append]})
    backend = OpenAIBackend(base, "smollm2", retry_delay=0.01, client=client)
    with pytest.raises(BackendUnavailable, match=rf"No model server answers at {base}: start one"):
        list(backend.stream(CONVERSATION, OPTIONS))
    assert len(sent) == 3  # connection refused is transient: tried three times with backoff


def test_an_explicit_openai_backend_never_falls_back() -> None:
    base = f"http://127.0.0.1:{free_port()}/v1"
    choice = choose_backend(Settings(backend="openai", openai_base_url=base, model="llama2"))
    assert isinstance(choice.backend, OpenAIBackend) and not choice.fallback
    assert choice.backend.completions and choice.backend.base_url == base
    engine_backend = choice.backend
    engine_backend.retry_delay = 0.01
    with pytest.raises(BackendUnavailable):
        list(engine_backend.stream(CONVERSATION, OPTIONS))


def test_a_server_killed_mid_answer_keeps_the_partial_text(tmp_path: Path, embedder: Embedder) -> None:
    dying = LlamaServer(tmp_path, SERVER_WINDOW).start()
    try:
        docs = tmp_path / "docs"
        docs.mkdir()
        (docs / "sky.md").write_text("# The sky\n\nThe sky is blue by day and red at sunset.")
        settings = Settings(
            data_dir=tmp_path / "kb",
            corpus_dir=docs,
            backend="openai",
            openai_base_url=dying.base_url,
            model="smollm2",
            context_window=SERVER_WINDOW,
            max_answer_tokens=400,
            temperature=0.0,
        )
        engine = Engine(settings, embedder=embedder)
        engine.ensure_default_corpus()
        stream = stream_answer(engine, prepare(engine, "Describe the sky at length, in many sentences."))
        received: list[str] = []
        with pytest.raises(StreamInterrupted, match=r"broke during the answer.*still running"):
            for piece in stream:
                received.append(piece)
                if len(received) == 3:
                    dying.kill()
        assert len(received) >= 3
        assert stream.text == "".join(received)  # what had arrived is kept for the user
    finally:
        dying.stop()


def test_transient_statuses_and_server_messages_are_classified() -> None:
    backend = OpenAIBackend("http://127.0.0.1:1/v1", "m", api_key="k")
    cases: list[tuple[int, str, type[BackendError], Any]] = [
        (429, "Rate limit", BackendUnavailable, True),
        (503, "loading", BackendUnavailable, True),
        (400, "This model's maximum context length is 4096 tokens", BackendError, False),
        (400, "temperature must be positive", BackendError, False),
    ]
    for status, message, kind, transient in cases:
        error = backend._http_error(status, message)
        assert type(error) is kind and error.transient is transient and message in str(error)
    assert "too long" in str(backend._http_error(400, "maximum context length exceeded"))
    assert "too long" not in str(backend._http_error(400, "temperature must be positive"))


def test_usage_reported_by_the_server_in_the_stream_is_used() -> None:
    """Servers that honour `stream_options.include_usage` (OpenAI, vLLM, LiteLLM) send the counts in a last
    event with no choices. llama-cpp-python's server does not, so this one event sequence is replayed by a
    local HTTP server, as OpenAI documents it."""
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "Blue"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "."}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 57, "completion_tokens": 2, "total_tokens": 59}},
    ]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for event in events:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{http.server_address[1]}/v1", "mistral-7b-instruct")
        stream = backend.stream(CONVERSATION, OPTIONS)
        assert list(stream) == ["Blue", "."]
        assert stream.usage is not None
        assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (57, 2)
    finally:
        http.shutdown()
        http.server_close()


def test_a_stop_while_the_server_is_silent_ends_the_answer_and_the_server_sees_its_client_gone() -> None:
    """A server reading a long prompt sends nothing yet (this one not even its headers, like Ollama; some send
    headers first): a stop then ends the answer at once, with nothing and no error, and shuts the connection, so the
    server can stop generating. Replayed by a local HTTP server, which must hold its answer until the client has
    stopped (the real llama.cpp server's silence cannot be timed from here)."""
    arrived, go_on, client_gone = threading.Event(), threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.set()
            while not go_on.wait(0.05):
                if has_gone(self.connection):
                    client_gone.set()
                    return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            event = {"choices": [{"index": 0, "delta": {"content": "Blue."}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\ndata: [DONE]\n\n".encode())

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    backend = OpenAIBackend(f"http://127.0.0.1:{http.server_address[1]}/v1", "mistral-7b-instruct", api_key="k")
    stop = StopSignal()
    pieces: list[str] = []
    failures: list[BaseException] = []

    def read() -> None:
        try:
            pieces.extend(backend.stream(CONVERSATION, GenerationOptions(SERVER_WINDOW, 24, 0.0, stop)))
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert arrived.wait(60)
        stop.set()
        reader.join(60)
        assert not reader.is_alive()
        assert client_gone.wait(60)
    finally:
        go_on.set()
        reader.join(60)
        http.shutdown()
        http.server_close()
    assert pieces == [] and failures == []
