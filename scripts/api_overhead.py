"""The HTTP API's overhead over a direct turn, in one process on one engine (README, "The HTTP API").

The same questions are asked directly (`Chat(engine, "cli").ask`) and through `rag serve` with the official
`openai` client, interleaved; each answer follows a different question, so that llama.cpp's reuse of an
identical prompt favours neither path. A question the documents cannot answer (no model asked) measures the
API's fixed cost alone. Uses a temporary data folder holding docs_corpus/ and the built-in model.

Usage: HF_HUB_OFFLINE=1 python scripts/api_overhead.py
"""

from __future__ import annotations

import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai

from rag.api import Engines, create_app, serve_in_thread
from rag.api_keys import ApiKeys
from rag.config import Settings
from rag.engine import Engine
from rag.turn import Chat

QUESTIONS = [
    "What context length does Llama 2 use?",
    "How are documents split into chunks?",
    "What is retrieval-augmented generation?",
    "Which embedding model is used?",
    "How big is the vocabulary of Llama 2?",
]
DECLINED = "Who won the 2016 Super Bowl?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    data = Path(tempfile.mkdtemp())
    settings = Settings(data_dir=data, backend="embedded", max_answer_tokens=32, context_chars=1200)
    engine = Engine(settings)
    engine.ensure_default_corpus()
    keys = ApiKeys.in_data_dir(data)
    _, key = keys.create("bench")
    app = create_app(Engines(lambda: settings, seed=engine), keys, settings)
    server = serve_in_thread(app, "127.0.0.1", free_port())
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=300)

    def direct(question: str) -> tuple[float, float | None]:
        started, first = time.perf_counter(), None
        with Chat(engine, "cli").ask(question) as turn:
            for _ in turn:
                first = first or time.perf_counter() - started
        return time.perf_counter() - started, first

    def api(question: str, stream: bool = False) -> tuple[float, float | None]:
        started, first = time.perf_counter(), None
        messages = [{"role": "user", "content": question}]
        if stream:
            for chunk in client.chat.completions.create(model="default", messages=messages, stream=True):  # type: ignore[arg-type]
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter() - started
        else:
            client.chat.completions.create(model="default", messages=messages)  # type: ignore[arg-type]
        return time.perf_counter() - started, first

    direct(QUESTIONS[0]), api(QUESTIONS[0])  # warm up
    declined_direct = [direct(DECLINED)[0] for _ in range(20)]
    declined_api = [api(DECLINED)[0] for _ in range(20)]
    total_direct, total_api, first_direct, first_api = [], [], [], []
    n = len(QUESTIONS)
    for stream in (False, True):
        for i in range(2 * n):
            question = QUESTIONS[i % n]
            if i % 2 == 0:
                seconds, first = direct(question)
                total_direct.append(seconds)
                first_direct.append(first or seconds)
            else:
                seconds, first = api(question, stream)
                (first_api.append(first or seconds) if stream else total_api.append(seconds))
    server.stop()
    med = statistics.median
    print(f"declined (no model): direct {1000 * med(declined_direct):.1f} ms, API {1000 * med(declined_api):.1f} ms")
    print(f"answered: direct {med(total_direct):.2f} s, API {med(total_api):.2f} s, "
          f"ratio {med(total_api) / med(total_direct):.3f}")  # fmt: skip
    print(f"first token: direct {med(first_direct):.2f} s, API streamed {med(first_api):.2f} s, "
          f"ratio {med(first_api) / med(first_direct):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
