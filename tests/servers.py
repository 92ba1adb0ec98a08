"""Real servers for tests, each a subprocess on a free port: `chroma run` (shipped with the chromadb package)
and llama-cpp-python's `python -m llama_cpp.server` serving the packaged SmolLM2 GGUF."""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import httpx

from rag.backends.embedded import packaged_gguf_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """A server run as a subprocess, its output in `log`; `start()` waits until `ready_url` answers 200."""

    name = "server"
    timeout = 60.0  # seconds to wait for the server to answer
    interval = 0.2  # between two tries

    def __init__(self, command: list[str], ready_url: str, log: Path, headers: dict[str, str] | None = None) -> None:
        self.command = command
        self.ready_url = ready_url
        self.log = log
        self.headers = headers or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self._log_tail()}")
            try:
                if httpx.get(self.ready_url, headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(self.interval)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {self.timeout:.0f} s: {self._log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """As a crash or a pulled plug: no chance to flush or say goodbye."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


class ChromaServer(ServerProcess):
    """`chroma run --path DIR --host 127.0.0.1 --port N`; `start()` waits for its heartbeat."""

    name = "chroma run"

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        chroma = Path(sys.executable).with_name("chroma")
        command = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(self.port)]
        super().__init__(command, f"{self.url}/api/v2/heartbeat", path.parent / f"chroma-{self.port}.log")


class LlamaServer(ServerProcess):
    """`python -m llama_cpp.server` on the packaged GGUF with an `n_ctx`-token window (and `--api_key` when
    given); `start()` waits until it lists its models."""

    name = "llama_cpp.server"
    timeout = 120.0
    interval = 0.3

    def __init__(self, tmp: Path, n_ctx: int, api_key: str | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(packaged_gguf_path()),
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_ctx", str(n_ctx), "--n_threads", "2",
            *(["--api_key", api_key] if api_key else []),
        ]  # fmt: skip
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        super().__init__(command, f"{self.base_url}/models", tmp / f"llama-server-{self.port}.log", headers)


@dataclass
class Site:
    """What the server serves: path -> (content type, body); the requests it got: (path, If-None-Match)."""

    pages: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def serve_site() -> Iterator[Site]:
    """A real HTTP server on this machine serving a `Site`'s pages (ETag, 304, redirects, 404)."""
    served = Site()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("If-None-Match", "")))
            if self.path in served.redirects:
                self.send_response(302)
                self.send_header("Location", served.redirects[self.path])
                self.end_headers()
                return
            if self.path not in served.pages:
                self.send_error(404)
                return
            kind, body = served.pages[self.path]
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
