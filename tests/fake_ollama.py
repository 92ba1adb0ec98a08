"""A local HTTP server speaking Ollama's documented NDJSON API, for testing the real client at the wire.

Endpoints: GET /api/tags, POST /api/generate, POST /api/chat, POST /api/pull (streamed NDJSON, chunked
transfer encoding). Every request body is recorded. `mode` switches behaviour: "ok", "missing-model",
"break-mid-stream", "busy-once" (a 503 on the first generation request, then ok), "reading-prompt" (a generation
request gets nothing, not even headers, until `go_on` is set, as Ollama while it reads a long prompt; a client that
goes away meanwhile is noticed, `client_gone`, and nothing is generated for it).
A pull streams Ollama's progress lines and adds the model (with ":latest" when untagged) to `models`
before its final "success" line; a name containing "does-not-exist" gets a 500 with Ollama's error
for an unknown model. Request headers are recorded too; with `required_headers` set, a request without
them gets the 401 a reverse proxy in front of Ollama would send.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER_PIECES = ["Llama 2 ", "uses a ", "4096-token ", "context [1]."]
# (digest, size) of the layers a pull reports; each is reported in PULL_STEPS increments.
PULL_LAYERS = [("sha256:" + "a" * 64, 3_800_000_000), ("sha256:" + "b" * 64, 7_000)]
PULL_STEPS = 4


class PausedPieces:
    """Answer pieces (for ANSWER_PIECES) sent as a model that goes silent sends them: the first ones, then nothing
    until `go_on` is set (a model reading a long prompt, or between two parts of a whole-document answer; at
    most `pause` seconds), then the rest."""

    def __init__(self, first: list[str], rest: list[str], pause: float = 120.0) -> None:
        self.first, self.rest, self.pause = first, rest, pause
        self.go_on = threading.Event()

    def __len__(self) -> int:
        return len(self.first) + len(self.rest)

    def __iter__(self) -> Iterator[str]:
        yield from self.first
        self.go_on.wait(self.pause)
        yield from self.rest


class FakeOllama:
    def __init__(self, models: list[str] | None = None) -> None:
        self.models = models if models is not None else ["llama2:latest"]
        self.mode = "ok"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.required_headers: dict[str, str] = {}
        self._busy_left = 0
        self.reading, self.go_on, self.client_gone = threading.Event(), threading.Event(), threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _refused(self) -> bool:
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if all(self.headers.get(k) == v for k, v in fake.required_headers.items()):
                    return False
                self._json(401, {"error": "unauthorized"})
                return True

            def do_GET(self) -> None:
                if self._refused():
                    return
                if self.path == "/api/tags":
                    body = {
                        "models": [
                            {
                                "name": m,
                                "model": m,
                                "modified_at": "2026-11-01T00:00:00Z",
                                "size": 3_800_000_000,
                                "digest": "0" * 64,
                                "details": {"family": "llama", "parameter_size": "7B", "quantization_level": "Q4_0"},
                            }
                            for m in fake.models
                        ]
                    }
                    self._json(200, body)
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append((self.path, body))
                if self._refused():
                    return
                if self.path == "/api/pull":
                    self._pull(str(body.get("model") or body.get("name") or ""))
                    return
                if self.path not in ("/api/generate", "/api/chat"):
                    self._json(404, {"error": "not found"})
                    return
                if fake.mode == "busy-once" and fake._busy_left > 0:
                    fake._busy_left -= 1
                    self._json(503, {"error": "server busy, please try again"})
                    return
                name = body.get("model", "")
                if fake.mode == "missing-model" or (name not in fake.models and f"{name}:latest" not in fake.models):
                    self._json(404, {"error": f"model '{name}' not found, try pulling it first"})
                    return
                if fake.mode == "reading-prompt" and not self._read_prompt():
                    return
                self._stream(body, chat=self.path == "/api/chat")

            def _read_prompt(self) -> bool:
                """Silent until `go_on` (at most two minutes); False when the client went away meanwhile."""
                fake.reading.set()
                for _ in range(2400):
                    if fake.go_on.wait(0.05):
                        return True
                    if has_gone(self.connection):
                        fake.client_gone.set()
                        self.close_connection = True
                        return False
                return True

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict[str, Any], chat: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i, piece in enumerate(ANSWER_PIECES):
                    if fake.mode == "break-mid-stream" and i == 2:
                        self.wfile.flush()
                        self.connection.shutdown(2)  # the server dies mid-answer: no final chunk
                        self.close_connection = True
                        return
                    self._chunk(self._line(body, piece, chat, done=False))
                final = self._line(body, "", chat, done=True)
                final.update(
                    done_reason="stop",
                    total_duration=2_000_000_000,
                    load_duration=100_000_000,
                    prompt_eval_count=321,
                    prompt_eval_duration=500_000_000,
                    eval_count=len(ANSWER_PIECES),
                    eval_duration=1_000_000_000,
                )
                self._chunk(final)
                self.wfile.write(b"0\r\n\r\n")

            def _pull(self, name: str) -> None:
                if "does-not-exist" in name:
                    self._json(500, {"error": "pull model manifest: file does not exist"})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk({"status": "pulling manifest"})
                for digest, total in PULL_LAYERS:
                    for step in range(1, PULL_STEPS + 1):
                        self._chunk(
                            {
                                "status": f"pulling {digest[7:19]}",
                                "digest": digest,
                                "total": total,
                                "completed": total * step // PULL_STEPS,
                            }
                        )
                self._chunk({"status": "verifying sha256 digest"})
                self._chunk({"status": "writing manifest"})
                tagged = name if ":" in name else f"{name}:latest"
                if tagged not in fake.models:
                    fake.models.append(tagged)
                self._chunk({"status": "success"})
                self.wfile.write(b"0\r\n\r\n")

            @staticmethod
            def _line(body: dict[str, Any], piece: str, chat: bool, done: bool) -> dict[str, Any]:
                line: dict[str, Any] = {"model": body["model"], "created_at": "2026-11-23T00:00:00Z", "done": done}
                if chat:
                    line["message"] = {"role": "assistant", "content": piece}
                else:
                    line["response"] = piece
                return line

            def _chunk(self, obj: dict[str, Any]) -> None:
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def busy_once(self) -> None:
        self.mode = "busy-once"
        self._busy_left = 1

    def __enter__(self) -> FakeOllama:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def has_gone(connection: socket.socket) -> bool:
    """Whether the client at the other end of a server's connection has closed it (or reset it), without reading
    what it sent. `poll`, not `select`: a test process holds many files, and `select` refuses descriptors past 1023."""
    poller = select.poll()
    poller.register(connection, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except ConnectionError:  # reset: a socket shut down with data unread closes that way
        return True
