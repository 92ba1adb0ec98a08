"""The HTTP API served for real (uvicorn on a free loopback port) and called with the official `openai` client and
plain HTTP: answers from the real built-in model over the shipped corpus, keys, limits, errors, concurrency."""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rag.api import API_STOPPED, Engines, RunningServer, create_app, serve_in_thread
from rag.api_keys import ApiKeys
from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaBackend
from rag.config import Settings
from rag.conversations import DB_NAME
from rag.embeddings import Embedder
from rag.engine import ChosenBackend, Engine
from rag.kb import KnowledgeBases
from rag.retrieval import Retriever
from rag.turn import Chat
from tests.fake_ollama import FakeOllama
from tests.servers import free_port

QUESTION = "What context length does Llama 2 use?"


class Api:
    """A running API and what the tests need around it."""

    def __init__(self, server: RunningServer, engine: Engine, keys: ApiKeys, key: str) -> None:
        self.server, self.engine, self.keys, self.key = server, engine, keys, key
        self.url = server.url

    def client(self, key: str | None = None, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or self.key, max_retries=0, **options)

    def http(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=600)


def start_api(
    data_dir: Path, embedder: Embedder, llm: EmbeddedBackend, corpus: bool = True, **changes: Any
) -> tuple[RunningServer, Engine, ApiKeys, str]:
    """The API on a knowledge base holding the shipped corpus (or nothing), with one key."""
    settings = Settings(data_dir=data_dir, backend="embedded", **changes)
    engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(llm, "test: built-in model"))
    if corpus:
        assert all(r.ok for r in engine.ensure_default_corpus())
    keys = ApiKeys.in_data_dir(data_dir)
    _, key = keys.create(f"tests-{time.monotonic_ns()}")
    app = create_app(Engines(lambda: settings, seed=engine), keys, settings)
    return serve_in_thread(app, "127.0.0.1", free_port()), engine, keys, key


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, embedded_llm: EmbeddedBackend) -> Iterator[Api]:
    # Short prompts and answers (the tests check the pipeline, not the tiny model's prose); one answer at a time.
    changes: dict[str, Any] = {
        "max_answer_tokens": 48, "context_chars": 1200, "api_max_request_kb": 64, "api_concurrency": 1,
        "request_timeout": 30.0,
    }  # fmt: skip
    server, engine, keys, key = start_api(tmp_path_factory.mktemp("kb"), embedder, embedded_llm, **changes)
    try:
        yield Api(server, engine, keys, key)
    finally:
        server.stop()


@pytest.mark.slow
def test_the_models_are_the_knowledge_bases(api: Api) -> None:
    assert [m.id for m in api.client().models.list()] == ["default"]


@pytest.mark.slow
def test_an_answer_carries_its_sources_in_the_text_and_in_a_field(api: Api) -> None:
    completion = api.client().chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}])
    text = completion.choices[0].message.content or ""
    extra = completion.model_extra or {}
    sources = extra["sources"]
    assert sources[0]["file"] == "llama-2-overview.md" and "4,096" in sources[0]["passage"]
    assert {"index", "file", "page", "score", "passage"} <= set(sources[0])
    assert [s["index"] for s in sources] == list(range(1, len(sources) + 1))
    answer, _, listed = text.partition("\n\nSources:\n")
    assert answer.strip() and listed.splitlines()[0] == "[1] llama-2-overview.md"
    assert len(listed.splitlines()) == len(sources)
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    # Saved like the app's, with where it was asked.
    saved = api.engine.conversations.get(extra["conversation"])
    question, reply = saved.messages
    assert (question.content, question.channel, reply.channel) == (QUESTION, "api", "api")
    assert reply.content == answer.strip() and reply.error is None
    assert [s.source for s in reply.sources or []] == [s["file"] for s in sources]


@pytest.mark.slow
def test_a_streamed_answer_ends_with_its_sources_and_usage(api: Api) -> None:
    stream = api.client().chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 3, "the answer arrives in many pieces"
    text = "".join(pieces)
    assert "\n\nSources:\n[1] llama-2-overview.md" in text
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason == "stop")
    extra = final.model_extra or {}
    assert extra["sources"][0]["file"] == "llama-2-overview.md"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    saved = api.engine.conversations.get(extra["conversation"]).messages[-1]
    assert saved.content == text.partition("\n\nSources:")[0].strip() and saved.error is None


@pytest.mark.slow
def test_the_api_the_chat_page_and_the_cli_give_the_same_prompt_and_sources(api: Api) -> None:
    """One turn pipeline: the chat page (`Chat(engine, "app")`), `rag ask` (`Chat(engine, "cli")`) and the API
    send the model the same prompt, byte for byte, and cite the same passages."""
    completion = api.client().chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTION}])
    by_api = api.engine.conversations.get((completion.model_extra or {})["conversation"]).messages[-1]
    for channel in ("app", "cli"):
        with Chat(api.engine, channel).ask(QUESTION) as turn:
            assert "".join(turn)
        assert turn.saved is not None and turn.saved.channel == channel
        assert turn.saved.prompt == by_api.prompt and by_api.prompt
        assert turn.saved.sources == by_api.sources and by_api.sources


@pytest.mark.slow
def test_a_conversation_goes_on_by_its_id_and_a_client_history_is_kept(
    api: Api, retrievers_built: list[Retriever]
) -> None:
    client = api.client()
    first = client.chat.completions.create(
        model="default",
        messages=[
            {"role": "system", "content": "Answer in French."},  # the knowledge base's own system prompt is used
            {"role": "user", "content": "What is Llama 2?"},
            {"role": "assistant", "content": "A family of language models."},
            {"role": "user", "content": QUESTION},
        ],
    )
    conversation = (first.model_extra or {})["conversation"]
    client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "And its vocabulary size?"}],
        extra_body={"conversation": conversation[:8]},
    )
    saved = api.engine.conversations.get(conversation)
    assert [m.content for m in saved.messages if m.role == "user"] == [
        "What is Llama 2?", QUESTION, "And its vocabulary size?",
    ]  # fmt: skip
    assert "Answer in French." not in (saved.messages[3].prompt or "")
    assert retrievers_built == []  # the requests share the app's retriever, with what it keeps between questions


@pytest.mark.slow
def test_a_key_is_needed_and_a_wrong_or_revoked_one_is_refused(api: Api) -> None:
    with pytest.raises(openai.AuthenticationError) as wrong:
        api.client(key="rag-not-a-key").models.list()
    assert wrong.value.status_code == 401 and "not valid" in wrong.value.message
    bare = httpx.get(f"{api.url}/v1/models", timeout=30)
    assert bare.status_code == 401 and "No API key" in bare.json()["error"]["message"]
    record, key = api.keys.create("to be revoked")
    assert api.client(key=key).models.list().data
    api.keys.revoke(record.name)
    with pytest.raises(openai.AuthenticationError):
        api.client(key=key).models.list()


@pytest.mark.slow
def test_an_oversized_request_gets_413_and_saves_nothing(api: Api) -> None:
    before = len(api.engine.conversations.list())
    huge = "tell me about llama " * 5_000  # ~100 KB, over the 64 KB limit
    with pytest.raises(openai.APIStatusError) as refused:
        api.client().chat.completions.create(model="default", messages=[{"role": "user", "content": huge}])
    assert refused.value.status_code == 413
    assert "RAG_API_MAX_REQUEST_KB" in refused.value.message
    # Sent in chunks with no Content-Length, it is cut off as soon as it passes the limit.
    chunked = httpx.post(
        f"{api.url}/v1/chat/completions",
        content=iter([b'{"model": "default", "messages": [{"role": "user", "content": "', huge.encode(), b'"}]}']),
        headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert chunked.status_code == 413 and "larger than 64 KB" in chunked.json()["error"]["message"]
    assert len(api.engine.conversations.list()) == before


@pytest.mark.slow
def test_errors_are_json_that_say_what_to_fix(api: Api) -> None:
    with api.http() as http:
        question = [{"role": "user", "content": "x"}]
        unknown = http.post("/v1/chat/completions", json={"model": "finance", "messages": question})
        assert unknown.status_code == 404
        assert "No knowledge base 'finance'" in unknown.json()["error"]["message"] and "default" in unknown.text
        not_last = http.post(
            "/v1/chat/completions", json={"model": "default", "messages": [{"role": "assistant", "content": "hi"}]}
        )
        assert not_last.status_code == 400 and "with role user" in not_last.json()["error"]["message"]
        missing = http.post("/v1/chat/completions", json={"model": "default"})
        assert missing.status_code == 400 and "messages" in missing.json()["error"]["message"]
        nowhere = http.get("/v1/nowhere")
        assert nowhere.status_code == 404 and "/docs lists them" in nowhere.json()["error"]["message"]
        gone = http.get("/v1/conversations/0000000000")
        assert gone.status_code == 404 and "was not found" in gone.json()["error"]["message"]


@pytest.mark.slow
def test_search_documents_and_conversations(api: Api, tmp_path: Path) -> None:
    with api.http() as http:
        found = http.post("/v1/search", json={"query": QUESTION}).json()["data"]
        assert found[0]["file"] == "llama-2-overview.md" and found[0]["rank"] == 1 and found[0]["given_to_model"]
        assert (
            http.post("/v1/search", json={"query": "Who won the 2016 Super Bowl?"}).json()["data"][0]["given_to_model"]
            is False
        )

        note = b"# Greenhouse\n\nThe orchids are misted every Thursday by Tomasz.\n"
        added = http.post("/v1/documents", files=[("file", ("greenhouse.md", note, "text/markdown"))])
        assert added.status_code == 200, added.text
        [row] = added.json()["data"]
        assert (row["name"], row["status"], row["chunks"]) == ("greenhouse.md", "added", 1)
        names = [d["name"] for d in http.get("/v1/documents").json()["data"]]
        assert "greenhouse.md" in names and "llama-2-overview.md" in names
        assert http.post("/v1/search", json={"query": "Who mists the orchids?"}).json()["data"][0]["file"] == (
            "greenhouse.md"
        )
        broken = http.post("/v1/documents", files=[("file", ("scan.pdf", b"%PDF-1.4 broken", "application/pdf"))])
        assert broken.status_code == 422 and "scan.pdf" in broken.json()["error"]["message"]
        deleted = http.delete(f"/v1/documents/{row['id'][:8]}")
        assert deleted.json() == {"id": row["id"], "name": "greenhouse.md", "deleted": True}
        assert http.delete(f"/v1/documents/{row['id'][:8]}").status_code == 404

        listed = http.get("/v1/conversations").json()["data"]
        assert listed and {"id", "title", "messages", "updated_at"} <= set(listed[0])
        one = http.get(f"/v1/conversations/{listed[0]['id']}").json()
        assert one["id"] == listed[0]["id"] and one["messages"][0]["channel"] == "api"


@pytest.mark.slow
def test_a_client_that_hangs_up_mid_answer_leaves_the_partial_answer_saved(api: Api) -> None:
    before = {c.id for c in api.engine.conversations.list()}
    body = {"model": "default", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
    with api.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        events = response.iter_lines()
        received = [line for line, _ in zip(events, range(6), strict=False) if line.startswith("data:")]
    assert len(received) >= 2
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the server notices the hang-up at its next piece
        new = [c.id for c in api.engine.conversations.list() if c.id not in before]
        messages = api.engine.conversations.get(new[0]).messages if new else []
        if len(messages) == 2:
            break
        time.sleep(0.2)
    question, answer = messages
    assert question.content == QUESTION and answer.error == API_STOPPED


@pytest.mark.slow
def test_a_client_that_hangs_up_while_the_model_reads_the_prompt_stops_it_at_once(
    tmp_path: Path, embedder: Embedder
) -> None:
    """A chat front end's Stop while the model is still silent (Ollama reading a long prompt: minutes for a 7B model
    on a CPU): the answer is saved as stopped and Ollama's connection shut, so it stops generating for nobody (it
    sees its client gone). Before, the server noticed only at the model's first word."""
    with api_over_ollama(tmp_path, embedder) as (ollama, server, key, engine):
        body = {"model": "default", "messages": [{"role": "user", "content": QUESTION}], "stream": True}
        headers = {"Authorization": f"Bearer {key}"}
        with (
            httpx.Client(base_url=server.url, headers=headers, timeout=120) as http,
            http.stream("POST", "/v1/chat/completions", json=body) as response,
        ):
            lines = response.iter_lines()  # kept: httpx closes the connection when the iterator is dropped
            assert next(lines).startswith("data:")  # the role, sent at once
            assert ollama.reading.wait(60)
        # the client has hung up
        assert ollama.client_gone.wait(60)
        assert saved_turn(engine) == (QUESTION, "", API_STOPPED)


@pytest.mark.slow
def test_a_client_that_hangs_up_before_a_whole_answer_stops_the_model_too(tmp_path: Path, embedder: Embedder) -> None:
    """The same for a request that does not stream (a script with a timeout): the server looks for its client while
    the answer is made. Before, the model answered in full for nobody, holding its slot meanwhile."""
    with api_over_ollama(tmp_path, embedder) as (ollama, server, key, engine):
        body = json.dumps({"model": "default", "messages": [{"role": "user", "content": QUESTION}]}).encode()
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=60) as client:
            client.sendall(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            assert ollama.reading.wait(60)
        # the client has hung up
        assert ollama.client_gone.wait(60)
        assert saved_turn(engine) == (QUESTION, "", API_STOPPED)


@contextlib.contextmanager
def api_over_ollama(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[FakeOllama, RunningServer, str, Engine]]:
    """The API served by uvicorn over a knowledge base answered by a fake Ollama that reads prompts until released."""
    with FakeOllama(models=["llama2:latest"]) as ollama:
        ollama.mode = "reading-prompt"
        settings = Settings(data_dir=tmp_path, backend="ollama", ollama_host=ollama.host)
        backend = OllamaBackend(ollama.host, "llama2")
        engine = Engine(settings, embedder=embedder, chosen=ChosenBackend(backend, "t"))
        assert all(r.ok for r in engine.ensure_default_corpus())
        keys = ApiKeys.in_data_dir(tmp_path)
        _, key = keys.create("hang-up")
        app = create_app(Engines(lambda: settings, seed=engine), keys, settings)
        server = serve_in_thread(app, "127.0.0.1", free_port())
        try:
            yield ollama, server, key, engine
        finally:
            ollama.go_on.set()
            server.stop()


def saved_turn(engine: Engine) -> tuple[str, str, str | None]:
    """The one conversation's question, and its answer's text and error, once the server's thread has saved them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (conversation,) = engine.conversations.list()
        messages = engine.conversations.get(conversation.id).messages
        if len(messages) == 2:
            break
        time.sleep(0.1)
    question, answer = messages
    return question.content, answer.content, answer.error


@pytest.mark.slow
def test_the_openapi_page_is_served_from_here(api: Api) -> None:
    with api.http() as http:
        page = http.get("/docs").text
        schema = http.get("/openapi.json").json()
    assert "POST /v1/chat/completions" in page and "conversation" in page
    assert "<script" not in page and "cdn." not in page  # nothing loaded from elsewhere
    assert {"/v1/chat/completions", "/v1/models", "/v1/documents", "/v1/search"} <= set(schema["paths"])


@pytest.mark.slow
def test_from_this_machine_without_a_key_only_when_the_setting_allows_it(
    tmp_path: Path, embedder: Embedder, embedded_llm: EmbeddedBackend
) -> None:
    server, _, _, _ = start_api(tmp_path / "open", embedder, embedded_llm, corpus=False, api_loopback_without_key=True)
    try:
        assert httpx.get(f"{server.url}/v1/models", timeout=30).json()["data"][0]["id"] == "default"
        wrong = httpx.get(f"{server.url}/v1/models", headers={"Authorization": "Bearer rag-wrong"}, timeout=30)
        assert wrong.status_code == 401  # a key that is sent must be right
    finally:
        server.stop()


@pytest.mark.slow
def test_eight_clients_at_once_are_answered_or_told_to_wait_and_nothing_is_lost(api: Api) -> None:
    """8 clients asking for 20 s, one answer generated at a time and 4 waiting: every request is answered (200)
    or told to come back (429) or that the model stayed busy (503); every answer given is saved, whole, and
    nothing else is."""
    before = {c.id for c in api.engine.conversations.list(limit=1000)}
    with sqlite3.connect(Path(api.engine.settings.data_dir) / DB_NAME) as db:
        answers_before = db.execute("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").fetchone()[0]
    outcomes: Counter[int] = Counter()
    answered: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 20

    def client_loop(n: int) -> None:
        client = api.client(timeout=300)
        for i in range(40):  # bounded, whatever the machine's speed
            if time.monotonic() > stop_at:
                return
            try:
                completion = client.chat.completions.create(
                    model="default", messages=[{"role": "user", "content": f"{QUESTION} (client {n}, try {i})"}]
                )
                with lock:
                    outcomes[200] += 1
                    answered.append((completion.model_extra or {})["conversation"])
            except openai.APIStatusError as exc:
                with lock:
                    outcomes[exc.status_code] += 1
                    if exc.status_code not in (429, 503) or "retry" not in exc.message.lower():
                        problems.append(f"{exc.status_code}: {exc.message}")
                time.sleep(0.5)
            except Exception as exc:  # a dropped connection, a timeout: nothing may end that way
                with lock:
                    problems.append(repr(exc))

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []
    assert outcomes[200] >= 1 and set(outcomes) <= {200, 429, 503}
    new = {c.id for c in api.engine.conversations.list(limit=1000)} - before
    assert sorted(new) == sorted(answered)  # refused requests saved nothing
    for conversation_id in answered:
        question, answer = api.engine.conversations.get(conversation_id).messages
        assert question.channel == answer.channel == "api"
        assert answer.error is None and answer.content and answer.usage is not None
    with sqlite3.connect(Path(api.engine.settings.data_dir) / DB_NAME) as db:
        answers = db.execute("SELECT COUNT(*) FROM messages WHERE role = 'assistant'").fetchone()[0]
    assert answers - answers_before == len(answered)
    print(f"\n8 clients for 20 s: {dict(outcomes)}")  # a figure for the README, not an assertion


@pytest.mark.slow
def test_every_knowledge_base_is_a_model_with_its_own_documents(api: Api) -> None:
    KnowledgeBases(api.engine.settings).create("Allotment")
    assert [m.id for m in api.client().models.list()] == ["default", "Allotment"]
    note = b"# Allotment\n\nThe tomatoes at the allotment are watered every Friday by Ben.\n"
    with api.http() as http:
        added = http.post("/v1/documents?model=Allotment", files=[("file", ("allotment.md", note, "text/markdown"))])
        assert added.status_code == 200, added.text
        assert [d["name"] for d in http.get("/v1/documents?model=Allotment").json()["data"]] == ["allotment.md"]
        assert "allotment.md" not in [d["name"] for d in http.get("/v1/documents").json()["data"]]
        found = http.post("/v1/search", json={"query": "Who waters the tomatoes?", "model": "Allotment"}).json()
        assert {p["file"] for p in found["data"]} == {"allotment.md"}
        unknown = http.post("/v1/search", json={"query": "Who waters the tomatoes?", "model": "Orchard"})
        assert unknown.status_code == 404 and "Allotment" in unknown.json()["error"]["message"]
