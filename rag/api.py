"""The HTTP API (`python -m rag serve`): an OpenAI-compatible chat endpoint and the knowledge base, a thin edge
over rag/turn.py.

    POST /v1/chat/completions   a turn (streamed or not), saved like the app's; sources in the text and in `sources`
    GET  /v1/models             each knowledge base is a model
    POST /v1/documents          upload files (multipart); GET lists them; DELETE /v1/documents/{id}
    POST /v1/search             the passages a question retrieves, and which the model would be given; no model
    GET  /v1/conversations      the saved conversations; GET /v1/conversations/{id} one, with every record
    GET  /docs, /openapi.json   what all this is, readable offline

Every request needs an API key (`Authorization: Bearer rag-…`; created on the Settings page or with
`python -m rag keys create NAME`), except from this machine when RAG_API_LOOPBACK_WITHOUT_KEY allows it.
Bodies are limited (RAG_API_MAX_REQUEST_KB; uploads: RAG_MAX_UPLOAD_MB); at most RAG_API_CONCURRENCY answers
are generated at once, as many again per slot wait, and the rest are told to come back (429). Every error is
JSON in OpenAI's shape, `{"error": {"message", "type", "code"}}`, with a message that says what to fix.

The errors are rag/api_errors.py, the limits rag/api_limits.py, OpenAI's wire format rag/api_openai.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import ipaddress
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from rag.api_errors import ApiError
from rag.api_keys import ApiKey, ApiKeys
from rag.api_limits import AnswerSlots, BodyLimit, RequestTooLarge, too_large_response
from rag.api_openai import (
    ChatCompletionRequest,
    chunk,
    chunk_event,
    completion,
    passage,
    question_and_history,
    references,
    sources_field,
    sse,
    usage_field,
)
from rag.backends.embedded import EmbeddedBackend
from rag.backends.ollama import OllamaStatus, probe_ollama
from rag.config import Settings, auth_headers
from rag.conversations import ConversationNotFound, ConversationStore, SelectedDocument
from rag.embeddings import Embedder
from rag.engine import (
    ChosenBackend,
    Engine,
    choose_backend,
    embedded_gguf,
    knowledge_bases,
    open_store,
    retrieval_options,
)
from rag.errors import BackendUnavailable, ModelNotFound, RagError, SettingsError
from rag.ingest import UploadLimitError
from rag.kb import KnowledgeBases
from rag.retrieval import RetrievalOptions, Retriever
from rag.store import Store
from rag.turn import Chat, Turn

logger = logging.getLogger(__name__)

# Saved as the error of an answer whose client hung up before it finished.
API_STOPPED = "the client closed the connection before the answer finished; what had arrived is kept."
OLLAMA_PROBE_EVERY_S = 10.0  # as the app: starting Ollama is noticed without a restart
# A request answered whole (not streamed) looks this often for a client that hung up.
HANG_UP_CHECK_S = 0.5
UPLOAD_PATH = "/v1/documents"


# -- a failed answer ---------------------------------------------------------------------------------------


def _turn_error(turn: Turn) -> ApiError:
    """A turn that failed, as the status a client can act on (its partial answer is saved all the same)."""
    failure, extra = turn.failure, {"conversation": turn.conversation_id}
    message = f"The answer failed: {turn.error}"
    if isinstance(failure, BackendUnavailable):
        return ApiError(503, message, "server_error", "model_unavailable", {"Retry-After": "10"}, extra)
    if isinstance(failure, ModelNotFound):
        return ApiError(502, message, "server_error", "model_not_found", extra=extra)
    return ApiError(502, message, "server_error", "answer_failed", extra=extra)


# -- this API's own request body ---------------------------------------------------------------------------


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, description="What to look for, as a question or keywords.")
    model: str = Field("", description="The knowledge base (default: the first one GET /v1/models lists).")


# -- the parts the requests use ----------------------------------------------------------------------------


class Engines:
    """An engine for each request, one per knowledge base, from the settings as saved now (a change on the
    Settings page applies to the next request, as in the app), sharing the heavy parts between requests:
    the stores, the embedding model, the built-in LLM, the conversations. Thread-safe."""

    def __init__(self, load_settings: Callable[[], Settings] = Settings.load, seed: Engine | None = None) -> None:
        self._load_settings = load_settings
        self._lock = threading.Lock()
        self._stores: dict[tuple[str, str, str, str], Store] = {}
        self._conversations: dict[str, ConversationStore] = {}
        # Per store and options: what questions reuse (the vectors, the document cards) is kept between requests.
        self._retrievers: dict[tuple[tuple[str, str, str, str], RetrievalOptions], Retriever] = {}
        self._llms: dict[tuple[str | None, int], EmbeddedBackend] = {}
        self._embedder: Embedder | None = None
        self._probe: tuple[float, str, OllamaStatus] | None = None
        if seed is not None:  # the app's own parts, when the API runs beside it
            s = seed.settings
            self._stores[_place(s)] = seed.store
            self._retrievers[(_place(s), retrieval_options(s))] = seed.retriever
            self._conversations[str(s.kb_dir)] = seed.conversations
            self._embedder = seed.embedder
            if isinstance(seed.chosen.backend, EmbeddedBackend):
                self._llms[(_gguf_key(s), s.context_window)] = seed.chosen.backend

    def settings(self) -> Settings:
        try:
            return self._load_settings()
        except SettingsError as exc:
            raise ApiError(503, f"The settings cannot be used: {exc}", "server_error", "bad_settings") from exc

    def names(self) -> list[str]:
        return knowledge_bases(self.settings())

    def get(self, name: str) -> Engine:
        settings = self.settings()
        names = knowledge_bases(settings)
        if not name:
            name = names[0]
        if name not in names:
            raise ApiError(
                404,
                f"No knowledge base {name!r}: use one of {', '.join(names)} as the model (GET /v1/models lists them).",
                code="model_not_found",
            )
        if name != names[0]:  # another knowledge base than the default: its own folder and settings
            settings = KnowledgeBases(settings).settings_for(name)
        with self._lock:
            place = _place(settings)
            if place not in self._stores:
                self._stores[place] = open_store(settings)
            folder = str(settings.kb_dir)
            if folder not in self._conversations:
                self._conversations[folder] = ConversationStore.in_data_dir(settings.kb_dir)
            if self._embedder is None:
                self._embedder = Embedder()
            chosen = self._choose(settings)
            options = retrieval_options(settings)
            if (place, options) not in self._retrievers:
                self._retrievers[(place, options)] = Retriever(self._stores[place], self._embedder, options)
            return Engine(
                settings,
                store=self._stores[place],
                embedder=self._embedder,
                chosen=chosen,
                conversations=self._conversations[folder],
                retriever=self._retrievers[(place, options)],
            )

    def _choose(self, settings: Settings) -> ChosenBackend:
        status = None
        if settings.backend == "auto":
            now = time.monotonic()
            probe = self._probe
            if probe is None or probe[1] != settings.ollama_host or now - probe[0] > OLLAMA_PROBE_EVERY_S:
                probed = probe_ollama(settings.ollama_host, timeout=1.5, headers=auth_headers(settings.ollama_token))
                probe = self._probe = (now, settings.ollama_host, probed)
            status = probe[2]
        return choose_backend(settings, status, self._embedded)

    def _embedded(self, settings: Settings) -> EmbeddedBackend:
        key = (_gguf_key(settings), settings.context_window)
        if key not in self._llms:
            gguf = embedded_gguf(settings)
            self._llms[key] = EmbeddedBackend(gguf, settings.context_window)
        return self._llms[key]


def _place(s: Settings) -> tuple[str, str, str, str]:
    return (str(s.kb_dir), s.chroma_url, s.chroma_token, s.chroma_collection)


def _gguf_key(s: Settings) -> str | None:
    gguf = embedded_gguf(s)
    return None if gguf is None else str(gguf)


# -- the app -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    """Who is asking: a key, or this machine without one (when the settings allow it)."""

    key: ApiKey | None
    host: str


def _caller(request: Request) -> Caller:
    """Every endpoint's check: a valid key, or this machine without one when the settings allow it."""
    keys: ApiKeys = request.app.state.keys
    engines: Engines = request.app.state.engines
    host = request.client.host if request.client else ""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if header and scheme.lower() == "bearer" and secret.strip():
        key = keys.verify(secret.strip())
        if key is None:
            raise ApiError(
                401,
                "The API key is not valid (mistyped or revoked): create one on the Settings page or with "
                "`python -m rag keys create NAME`, and send it as `Authorization: Bearer <key>`.",
                "authentication_error",
                "invalid_api_key",
                {"WWW-Authenticate": "Bearer"},
            )
        return Caller(key, host)
    if engines.settings().api_loopback_without_key and _is_loopback(host):
        return Caller(None, host)
    raise ApiError(
        401,
        "No API key: send `Authorization: Bearer <key>`. Create a key on the Settings page or with "
        "`python -m rag keys create NAME`.",
        "authentication_error",
        "missing_api_key",
        {"WWW-Authenticate": "Bearer"},
    )


Authorized = Annotated[Caller, Depends(_caller)]


def create_app(engines: Engines, keys: ApiKeys, settings: Settings | None = None) -> FastAPI:
    """The API on these engines and keys. `settings` fixes the limits for the server's lifetime (those read at
    start: the host, the port and the limits are the server's); the answers follow the settings as saved."""
    limits = settings or engines.settings()
    app = FastAPI(
        title="Chat with your documents: HTTP API",
        version="1",
        summary="OpenAI-compatible chat over your documents, with the sources kept; and the documents themselves.",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: this one is served from here (see /docs)
        redoc_url=None,
    )
    slots = AnswerSlots(limits.api_concurrency, 4 * limits.api_concurrency, limits.request_timeout)
    app.state.slots, app.state.engines, app.state.keys = slots, engines, keys

    def body_limit(scope: Scope) -> tuple[int, str]:
        if scope.get("path") == UPLOAD_PATH and scope.get("method") == "POST":
            return limits.max_upload_mb * 1024 * 1024, "An upload"
        return limits.api_max_request_kb * 1024, "The request"

    app.add_middleware(BodyLimit, limits=body_limit)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestTooLarge)
    async def too_large(request: Request, exc: RequestTooLarge) -> JSONResponse:
        return too_large_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_problem(e) for e in exc.errors()[:5])
        return ApiError(400, f"The request is not valid: {problems}. See /docs for the fields.").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"No endpoint {request.method} {request.url.path}: /docs lists them."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}: /docs says which methods are."
        else:
            message = str(exc.detail)
        return ApiError(exc.status_code, message, code="not_found" if exc.status_code == 404 else None).response()

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError) -> JSONResponse:
        return ApiError(503 if isinstance(exc, BackendUnavailable) else 400, str(exc)).response()

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return ApiError(
            500,
            f"Something went wrong ({type(exc).__name__}: {exc}). Try again; the details are in the server's log.",
            "server_error",
        ).response()

    @app.get("/v1/models", tags=["chat"], summary="The knowledge bases, each a model an OpenAI client can pick")
    def models(who: Authorized) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "local"} for name in engines.names()],
        }

    @app.post(
        "/v1/chat/completions",
        tags=["chat"],
        summary="Answer the last message from a knowledge base, with its sources (OpenAI-compatible)",
        response_description="chat.completion (or, with stream, chat.completion.chunk events); `sources` lists "
        "the passages cited as [1], [2] (file, page, score, passage), and `conversation` the saved conversation",
    )
    async def chat_completions(body: ChatCompletionRequest, who: Authorized, request: Request) -> Response:
        # Asynchronous, to notice a client that hangs up before a whole (not streamed) answer is ready; what
        # blocks (SQLite, waiting for a free slot, the model) runs in threads.
        turn = await run_in_threadpool(start_turn, body)
        answer_id = f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return StreamingResponse(
                _events(turn, slots, answer_id, body.model or engines.names()[0], include_usage),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        await _whole_answer(turn, slots, request, answer_id)
        if turn.error is not None:
            raise _turn_error(turn)
        return JSONResponse(completion(turn, answer_id, body.model or engines.names()[0]))

    def start_turn(body: ChatCompletionRequest) -> Turn:
        """The question's turn, not yet run, holding one of the answer slots (given back when the turn ends)."""
        if body.n != 1:
            raise ApiError(400, f"n={body.n}: one answer per question here; send n=1 (or leave it out).")
        question, earlier = question_and_history(body.messages)
        engine = engines.get(body.model)
        documents = _documents(engine, body.documents)
        conversation_id = None
        if body.conversation is not None:
            try:
                conversation_id = engine.conversations.resolve(body.conversation)
            except ConversationNotFound as exc:
                raise ApiError(404, str(exc), code="conversation_not_found") from exc
            earlier = []
        slots.take()
        try:
            # No whole-document reading here (minutes of model calls behind one request), whatever the app's
            # switch says for a conversation continued here: its questions are searched.
            turn = Chat(engine, "api").ask(
                question, conversation_id, documents, stopped=API_STOPPED, earlier=earlier, whole_document=False
            )
        except BaseException:
            slots.give_back()
            raise
        return turn

    @app.post("/v1/search", tags=["knowledge base"], summary="The passages a question retrieves, without a model")
    def search(body: SearchRequest, who: Authorized) -> dict[str, Any]:
        engine = engines.get(body.model)
        check = engine.check_retrieval(body.query)
        given = {hit.chunk.id for hit in check.selected}
        return {
            "object": "list",
            "query": body.query,
            "data": [
                {**passage(hit), "rank": rank, "given_to_model": hit.chunk.id in given}
                for rank, hit in enumerate(check.hits, 1)
            ],
        }

    @app.get("/v1/documents", tags=["knowledge base"], summary="The documents of a knowledge base")
    def documents(who: Authorized, model: str = "") -> dict[str, Any]:
        engine = engines.get(model)
        return {"object": "list", "data": [_document(d) for d in engine.documents()]}

    @app.post(UPLOAD_PATH, tags=["knowledge base"], summary="Add files (multipart, field `file`, repeatable)")
    def upload(
        who: Authorized,
        file: Annotated[list[UploadFile], File(description="PDF, DOCX, MD, TXT, HTML, CSV, PNG…")],
        model: str = "",
    ) -> JSONResponse:
        engine = engines.get(model)
        sizes = [f.size or 0 for f in file]
        try:
            engine.check_upload(sizes)
        except UploadLimitError as exc:
            raise ApiError(413, str(exc), code="request_too_large") from exc
        results = engine.ingest_uploads([(f.filename or "upload", f.file.read) for f in file])
        rows = [
            {"name": r.name, "status": r.status, "chunks": r.chunks, "message": r.message, "id": r.doc_id or None}
            for r in results
        ]
        status = 200 if any(r.ok for r in results) else 422
        body: dict[str, Any] = {"object": "list", "data": rows}
        if status != 200:
            body = ApiError(422, "No file could be added: " + "; ".join(r.message for r in results)).body() | body
        return JSONResponse(body, status_code=status)

    @app.delete("/v1/documents/{document}", tags=["knowledge base"], summary="Remove a document and its passages")
    def delete(document: str, who: Authorized, model: str = "") -> dict[str, Any]:
        engine = engines.get(model)
        found = engine.store.find(document)
        if found is None:
            raise ApiError(404, f"No document {document!r}: GET /v1/documents lists names and ids.", code="not_found")
        engine.delete(found.doc_id)
        return {"id": found.doc_id, "name": found.name, "deleted": True}

    @app.get("/v1/conversations", tags=["conversations"], summary="The saved conversations, most recent first")
    def conversations(who: Authorized, model: str = "", limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
        engine = engines.get(model)
        return {"object": "list", "data": [asdict(c) for c in engine.conversations.list(limit=limit)]}

    @app.get("/v1/conversations/{conversation}", tags=["conversations"], summary="A conversation with every record")
    def conversation(conversation: str, who: Authorized, model: str = "") -> Any:
        store = engines.get(model).conversations
        try:
            return asdict(store.get(store.resolve(conversation)))
        except ConversationNotFound as exc:
            raise ApiError(404, str(exc), code="conversation_not_found") from exc

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(openapi_page(app.openapi()))

    return app


def _documents(engine: Engine, names: Sequence[str] | None) -> list[SelectedDocument] | None:
    if not names:
        return None
    chosen: list[SelectedDocument] = []
    for name in names:
        doc = engine.store.find(name)
        if doc is None:
            raise ApiError(404, f"No document {name!r} to search: GET /v1/documents lists names and ids.")
        chosen.append(SelectedDocument(doc.doc_id, doc.name))
    return chosen


def _document(d: Any) -> dict[str, Any]:
    return {
        "id": d.doc_id,
        "object": "document",
        "name": d.name,
        "type": d.kind,
        "pages": d.pages,
        "chunks": d.chunks,
        "size_bytes": d.size_bytes,
        "ingested_at": d.ingested_at,
    }


async def _whole_answer(turn: Turn, slots: AnswerSlots, request: Request, answer_id: str) -> None:
    """The turn run to its end in a thread of its own, for a request that does not stream. A client that hangs up
    meanwhile (looked for every HANG_UP_CHECK_S) stops it as a streamed one does: the answer saved as it stands,
    marked stopped, and the model stopped at once, not left answering for nobody while the next question waits."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def at_end(failure: BaseException | None) -> None:
        slots.give_back()
        _log_failure(failure)
        with contextlib.suppress(RuntimeError):  # the server is shutting down: nobody waits any more
            loop.call_soon_threadsafe(done.set)

    turn.run_in_thread(lambda _piece: True, at_end, name=f"answer-{answer_id[-8:]}")
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), HANG_UP_CHECK_S)
        except TimeoutError:
            if await request.is_disconnected():
                await run_in_threadpool(turn.save_stopped)  # it writes to SQLite
                return


async def _events(
    turn: Turn, slots: AnswerSlots, answer_id: str, model: str, include_usage: bool
) -> AsyncIterator[str]:
    """The turn as OpenAI's event stream. The turn runs in a thread of its own (the model blocks); when the
    client hangs up, its partial answer is saved with the reason and the model stopped at once, even while it is
    still silent, reading the prompt (`Turn.save_stopped`, in a thread: it writes to SQLite)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    hung_up = threading.Event()

    def put(item: tuple[str, str]) -> bool:
        if hung_up.is_set():
            return False
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the server is shutting down: nobody reads any more
            hung_up.set()
            return False
        return True

    def at_end(failure: BaseException | None) -> None:
        slots.give_back()
        _log_failure(failure)
        put(("end", ""))

    turn.run_in_thread(lambda piece: put(("piece", piece)), at_end, name=f"answer-{answer_id[-8:]}")
    created = int(time.time())
    ended = False
    try:
        yield chunk_event(answer_id, model, created, {"role": "assistant", "content": ""})
        while True:
            kind, piece = await queue.get()
            if kind == "end":
                ended = True
                break
            yield chunk_event(answer_id, model, created, {"content": piece})
        if turn.error is not None:
            yield sse(_turn_error(turn).body())
        else:
            tail = references(turn)
            final = chunk(answer_id, model, created, {"content": tail} if tail else {}, "stop")
            yield sse({**final, "sources": sources_field(turn), "conversation": turn.conversation_id})
            if include_usage:
                yield sse(
                    {"id": answer_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [], "usage": usage_field(turn)}
                )  # fmt: skip
        yield "data: [DONE]\n\n"
    finally:
        hung_up.set()
        if not ended:  # the client hung up (this generator cancelled at once, in the middle of waiting)
            threading.Thread(target=turn.save_stopped, name=f"stop-{answer_id[-8:]}", daemon=True).start()


def _log_failure(failure: BaseException | None) -> None:
    """A turn's unexpected failure (a RagError is the turn's own `error`, sent to the client) logged where the
    server's operator sees it: the turn's thread has nobody above it to raise it to."""
    if failure is not None:
        logger.error("an answer failed: %s", failure, exc_info=failure)


def _problem(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
    return f"{where}: {error.get('msg', 'invalid')}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# -- the OpenAPI page --------------------------------------------------------------------------------------


def openapi_page(schema: Mapping[str, Any]) -> str:
    """The API described as one self-contained HTML page (no script, nothing loaded from elsewhere)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        html.escape(schema["info"]["title"]),
        "</title><style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.4}"
        "code,pre{background:#f3f3f3;padding:0 .2rem}h2{margin-top:2rem;border-top:1px solid #ddd;padding-top:1rem}"
        "td,th{text-align:left;padding:.2rem .6rem;vertical-align:top}</style></head><body>",
        f"<h1>{html.escape(schema['info']['title'])}</h1>",
        f"<p>{html.escape(schema['info'].get('summary', ''))}</p>",
        "<p>Send <code>Authorization: Bearer &lt;key&gt;</code> with every request. The machine-readable "
        "description is <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    components = schema.get("components", {}).get("schemas", {})
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            parts.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2>")
            parts.append(f"<p>{html.escape(op.get('summary', ''))}</p>")
            if op.get("description"):
                parts.append(f"<p>{html.escape(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table><tr><th>parameter</th><th>in</th><th>description</th></tr>")
                for p in params:
                    parts.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}</td>"
                        f"<td>{html.escape(p.get('description', ''))}</td></tr>"
                    )
                parts.append("</table>")
            content = op.get("requestBody", {}).get("content", {})
            for media, spec in content.items():
                ref = spec.get("schema", {}).get("$ref", "")
                fields = components.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
                parts.append(f"<p>Body ({html.escape(media)}):</p><table>")
                for name, field in fields.items():
                    parts.append(
                        f"<tr><td><code>{html.escape(name)}</code></td>"
                        f"<td>{html.escape(field.get('description', ''))}</td></tr>"
                    )
                parts.append("</table>")
            for status, response in op.get("responses", {}).items():
                parts.append(f"<p>{html.escape(status)}: {html.escape(response.get('description', ''))}</p>")
    parts.append("</body></html>")
    return "".join(parts)


# -- running it --------------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    """The API served in a thread (beside the app); `stop()` ends it."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _uvicorn_config(app: FastAPI, host: str, port: int) -> Any:
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off")


def serve(app: FastAPI, host: str, port: int) -> None:
    """Serve in this thread until Ctrl-C."""
    import uvicorn

    uvicorn.Server(_uvicorn_config(app, host, port)).run()


def serve_in_thread(app: FastAPI, host: str, port: int) -> RunningServer:
    """Serve in a daemon thread (beside the app); returns once the server listens, or raises why it cannot."""
    import uvicorn

    server = uvicorn.Server(_uvicorn_config(app, host, port))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as exc:  # e.g. the port is taken: reported to the caller below
            failure.append(exc)

    thread = threading.Thread(target=run, name="rag-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RagError(
            f"The HTTP API could not listen on {host}:{port} ({failure[0] if failure else 'no answer'}): set "
            "RAG_API_PORT to a free port."
        )
    return RunningServer(f"http://{host}:{port}", server, thread)
