"""Chroma, for the store: where its vectors live, whose they are, and how several processes use them safely.
The store (rag/store.py) owns the registry and decides what to read and write; this module owns every call
it makes to Chroma.

Where: Chroma embedded in the data directory (the default), or a Chroma server (`chroma run`) at
RAG_CHROMA_URL, which a team shares.

Whose: the registry and the keyword index always stay in the app's data directory. A collection therefore
records which registry it belongs to (the registry's id, kept in its `meta` table); a second data
directory pointed at the same collection on a server is refused instead of silently diverging from it
(two registries would each purge the other's "unknown" chunks, or show chunks they cannot list).

How (VectorCollection): Chroma embedded (PersistentClient) is not made for several processes
(chroma-core/chroma#3769): each client keeps its own copy of the vector index in memory, applies to it the
writes it has not seen, and saves it to the folder now and then, on a read too. A copy that missed another
client's writes fails to read ("Error finding id"), and once saved it loses those vectors for everyone; a
client that loads the files while another saves them can crash. So embedded Chroma is used by one client at a
time (`chroma.lock`, across processes and threads; each call takes milliseconds, an add a second or so), every
write first bumps a counter (`vectors_version`, kept in the registry's `meta` table by the store), and a client
that has not seen the latest one opens a fresh client before it reads or writes. A read that fails all the same
is retried on a fresh client a few times. With a Chroma server none of this is needed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from filelock import FileLock, Timeout

from rag.errors import DamagedKnowledgeBase, DiskFull, StoreError

logger = logging.getLogger(__name__)

OWNER_KEY = "rag_registry_id"  # collection metadata: the id of the registry that owns the collection
# Neighbours HNSW explores per search (Chroma's default: 100). Asked for the 50 nearest of 22,000 chunks, 100
# missed 3 % of the exact ones (and an exact first one now and then, which made answers differ from one process
# to another); 400 misses 0.1 %, for a fraction of a millisecond more (README, "Retrieval").
SEARCH_EF = 400
OWNER_PLACE_KEY = "rag_registry_place"  # collection metadata: "host:/path/to/data" of that registry, for messages
CHROMA_MAX_BATCH = 5000  # Chroma rejects adds above ~5,461 records
CHROMA_LOCK_FILE = "chroma.lock"
CHROMA_LOCK_TIMEOUT = 120.0  # the longest call is an add of CHROMA_MAX_BATCH vectors
# A read of embedded Chroma that fails all the same is retried on a reopened client this many times, waiting
# READ_RETRY_WAIT, then twice as long, ... (about 3 s in all).
READ_RETRIES = 6
READ_RETRY_WAIT = 0.05
T = TypeVar("T")


def open_collection(
    data_dir: Path,
    registry_id: str,
    name: str,
    chroma_url: str = "",
    headers: dict[str, str] | None = None,
) -> Any:
    """The collection of chunk vectors, checked to belong to this data directory's registry."""
    client = _client(data_dir, chroma_url, headers)
    place = this_place(data_dir)
    where = chroma_url or str(data_dir / "chroma")
    run: Callable[[Callable[[], Any]], Any] = GuardedCollection(None, chroma_url).call if chroma_url else _direct
    # embedding_function=None: we always pass our own vectors, so Chroma never loads (or downloads) its own.
    collection = run(
        lambda: client.get_or_create_collection(
            name,
            metadata={"hnsw:space": "cosine", OWNER_KEY: registry_id, OWNER_PLACE_KEY: place},
            embedding_function=None,
        )
    )
    metadata = dict(collection.metadata or {})
    owner = metadata.get(OWNER_KEY)
    if owner is None:
        # A collection from before owners were recorded: embedded, it is this directory's own; on a server,
        # only an empty one can be claimed (chunks no registry lists would show up in searches, unlisted).
        count = int(run(collection.count))
        if chroma_url and count:
            raise StoreError(
                f"The Chroma collection {name!r} at {chroma_url} already holds {count} chunks that no knowledge "
                f"base claims: set RAG_CHROMA_COLLECTION to another name for this one, or delete that collection."
            )
        # The distance function cannot be passed again to modify(); it stays cosine in the collection's config.
        kept = {k: v for k, v in metadata.items() if not k.startswith("hnsw:")}
        run(lambda: collection.modify(metadata={**kept, OWNER_KEY: registry_id, OWNER_PLACE_KEY: place}))
    elif owner != registry_id and metadata.get(OWNER_PLACE_KEY) == place:
        raise DamagedKnowledgeBase(
            f"The registry of the knowledge base in {data_dir} was replaced: the vectors in {where} belong to the one "
            "this folder had before, which is gone. Run `python -m rag check --repair` to rebuild the registry from "
            "the chunks Chroma holds (the registry there now is kept beside it).",
            "registry missing",
        )
    elif owner != registry_id:
        raise StoreError(
            f"The Chroma collection {name!r} at {where} belongs to another knowledge base (its registry is in "
            f"{metadata.get(OWNER_PLACE_KEY, 'another data directory')}), not to the one in {data_dir}: sharing it "
            "would make the two diverge. Point RAG_DATA_DIR at that knowledge base's data directory to use it, or "
            "set RAG_CHROMA_COLLECTION to a collection of this one's own."
        )
    hnsw = (getattr(collection, "configuration", None) or {}).get("hnsw") or {}
    if int(hnsw.get("ef_search") or 0) < SEARCH_EF:  # also raises it in collections made before
        run(lambda: collection.modify(configuration={"hnsw": {"ef_search": SEARCH_EF}}))
    return GuardedCollection(collection, chroma_url) if chroma_url else collection


def this_place(data_dir: Path) -> str:
    """How a collection names the data directory of its registry: "host:/path/to/data"."""
    return f"{socket.gethostname()}:{data_dir.resolve()}"


@dataclass(frozen=True)
class Owner:
    registry_id: str
    place: str  # this_place() of its data directory


def collection_owner(
    data_dir: Path, name: str, chroma_url: str = "", headers: dict[str, str] | None = None
) -> Owner | None:
    """Which registry the collection says it belongs to (None: no such collection, or it names none); read
    only, for a data directory whose registry is missing."""

    def existing() -> Any:
        try:
            return _client(data_dir, chroma_url, headers).get_collection(name, embedding_function=None)
        except (DamagedKnowledgeBase, DiskFull):
            raise
        except Exception as exc:  # no such collection: NotFoundError (ValueError in older chromadb), or a 404
            if _not_found(exc):
                return None
            raise

    if chroma_url:
        collection = GuardedCollection(None, chroma_url).call(existing)
    else:
        with _chroma_lock(data_dir).held():
            collection = existing()
    if collection is None:
        return None
    metadata = dict(collection.metadata or {})
    owner = metadata.get(OWNER_KEY)
    return Owner(str(owner), str(metadata.get(OWNER_PLACE_KEY, ""))) if owner else None


def _not_found(exc: Exception) -> bool:
    import chromadb.errors

    return isinstance(exc, chromadb.errors.NotFoundError | ValueError) or "does not exist" in str(exc)


def _client(data_dir: Path, chroma_url: str, headers: dict[str, str] | None) -> Any:
    """A Chroma client: embedded in the data directory, or of the server at `chroma_url`. An embedded one that
    cannot even start says whether its disk is full or its files are damaged."""
    import chromadb

    settings = chromadb.Settings(anonymized_telemetry=False, allow_reset=False)
    if not chroma_url:
        folder = data_dir / "chroma"
        try:
            return chromadb.PersistentClient(path=str(folder), settings=settings)
        except Exception as exc:  # Chroma's own errors (InternalError from its Rust core), and anything below it
            from rag.sqlite import is_disk_full

            if is_disk_full(exc):
                raise DiskFull(
                    f"The disk holding {data_dir} is full: Chroma cannot even open its files there ({exc}). Free some "
                    "space (or set RAG_DATA_DIR to a folder on a larger disk) and try again; nothing was lost."
                ) from exc
            raise DamagedKnowledgeBase(
                f"Chroma's files in {folder} cannot be read ({type(exc).__name__}: {exc}): run `python -m rag check "
                "--repair`, which keeps the damaged folder beside it and rebuilds the vectors from the texts in the "
                "registry (by embedding them again).",
                "vectors unreadable",
            ) from exc
    parts = urlsplit(chroma_url)
    try:
        client = chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
            headers=headers or {},
            settings=settings,
        )
    except (ValueError, httpx.HTTPError) as exc:  # chromadb says "Could not connect to a Chroma server"
        raise StoreError(
            f"Cannot reach Chroma at {chroma_url} ({exc}): start it (`chroma run --path /srv/chroma --host "
            "0.0.0.0 --port 8000`) or correct RAG_CHROMA_URL; leave RAG_CHROMA_URL empty to keep the "
            "knowledge base in the data directory."
        ) from exc
    return client


def _direct(operation: Callable[[], T]) -> T:
    return operation()


class GuardedCollection:
    """A collection on a Chroma server whose failures (server down, restarted, refusing) become StoreErrors
    that say what to do. The store's registry rows are written only after Chroma calls succeed, so a
    document interrupted this way stays `indexing` and is purged the next time the store opens."""

    def __init__(self, collection: Any, url: str) -> None:
        self._collection = collection
        self.url = url

    def call(self, operation: Callable[[], T]) -> T:
        import chromadb.errors

        try:
            return operation()
        except httpx.TransportError as exc:
            raise StoreError(
                f"Chroma at {self.url} is not answering ({type(exc).__name__}: {exc}): check that the server runs "
                "(`chroma run --path DIR --host 0.0.0.0 --port 8000`) and try again. A document that was being "
                "added is removed the next time the app opens the knowledge base; add it again then."
            ) from exc
        except chromadb.errors.ChromaError as exc:
            raise StoreError(f"Chroma at {self.url} refused the request ({exc.name()}: {exc.message()}).") from exc
        except httpx.HTTPStatusError as exc:  # a proxy in front of Chroma: 401/403 without the right token
            raise StoreError(
                f"Chroma at {self.url} answered {exc.response.status_code}: if a proxy guards it, set "
                "RAG_CHROMA_TOKEN (a token, or a whole header `Name: value`)."
            ) from exc

    @property
    def metadata(self) -> Any:
        return self._collection.metadata

    def add(self, **kwargs: Any) -> None:
        self.call(lambda: self._collection.add(**kwargs))

    def query(self, **kwargs: Any) -> Any:
        return self.call(lambda: self._collection.query(**kwargs))

    def get(self, **kwargs: Any) -> Any:
        return self.call(lambda: self._collection.get(**kwargs))

    def delete(self, **kwargs: Any) -> None:
        self.call(lambda: self._collection.delete(**kwargs))

    def update(self, **kwargs: Any) -> None:
        self.call(lambda: self._collection.update(**kwargs))

    def count(self) -> int:
        return int(self.call(self._collection.count))


class VectorCollection:
    """This knowledge base's collection, for several processes and threads at once: every call goes through
    `read` or `write` (embedded Chroma: one client at a time, a fresh client after another's write, failed
    reads retried; a server: straight through)."""

    def __init__(
        self,
        data_dir: Path,
        registry_id: str,
        name: str,
        chroma_url: str = "",
        headers: dict[str, str] | None = None,
        *,
        version: Callable[[], str],
        bump_version: Callable[[], str],
    ) -> None:
        """Opens the collection (see open_collection). `version` reads the counter every client bumps before it
        writes, `bump_version` bumps it and returns the new value: the store keeps it in its registry, where
        every process sees it (used with embedded Chroma only)."""
        self.data_dir = data_dir
        self.chroma_url = chroma_url
        self._registry_id = registry_id
        self._name = name
        self._version = version
        self._bump_version = bump_version
        self._system: Any = None  # embedded Chroma: the client this collection opened last
        if chroma_url:
            self._collection = open_collection(data_dir, registry_id, name, chroma_url, headers)
        else:
            with self._chroma_turn():
                self._vectors_seen = version()
                self._open_fresh_collection()

    @property
    def collection(self) -> Any:
        """The Chroma collection as last opened, outside any turn (for tests and diagnostics: use read/write)."""
        return self._collection

    def read(self, operation: Callable[[Any], T]) -> T:
        """A read of the collection: on a client that has seen every write so far, in turn with every other use
        of the folder; retried on a fresh client should Chroma fail all the same (embedded Chroma only)."""
        for attempt in range(READ_RETRIES + 1):
            with self._chroma_turn():
                collection = self._current_collection()
                try:
                    return operation(collection)
                except Exception as exc:
                    if self.chroma_url or not _chroma_error(exc):
                        raise
                    if attempt == READ_RETRIES:
                        raise StoreError(
                            f"Chroma in {self.data_dir / 'chroma'} could not be read ({exc}), {READ_RETRIES} times "
                            "on a freshly opened client: try again in a moment; if it persists, run "
                            "`python -m rag check`."
                        ) from exc
                    wait = READ_RETRY_WAIT * 2**attempt
                    logger.warning(
                        "Chroma read failed (%s): reopening it and retrying in %.2f s (%d/%d)",
                        exc,
                        wait,
                        attempt + 1,
                        READ_RETRIES,
                    )
                    self._vectors_seen = self._version()
                    self._open_fresh_collection()
            time.sleep(wait)
        raise AssertionError("unreachable")

    def write(self, operation: Callable[[Any], object]) -> None:
        """A write to the collection (the caller holds the store's write lock), on a client that has seen every
        earlier write, announced to the other clients first."""
        with self._chroma_turn():
            collection = self._current_collection()
            if not self.chroma_url:
                # Before the write: should it fail half-way, the others reopen all the same.
                self._vectors_seen = self._bump_version()
            operation(collection)

    def _chroma_turn(self) -> AbstractContextManager[object]:
        """Embedded Chroma is used by one client at a time, across threads and processes: every call may save
        the index files (a read too: it first applies the writes it has not seen), and a client must never
        load them half-saved. Calls take milliseconds, an add of a batch a second or so."""
        if self.chroma_url:
            return nullcontext()
        return _chroma_lock(self.data_dir).held()

    def _current_collection(self) -> Any:
        """The collection (in its turn), reopened first if another client wrote since it was opened: its copy
        of the index would lack those vectors, and saving it would lose them for everyone."""
        if self.chroma_url:
            return self._collection
        version = self._version()
        if version != self._vectors_seen:
            logger.info("The vectors in %s were changed by another client: reopening Chroma", self.data_dir)
            self._open_fresh_collection()
            self._vectors_seen = version
        return self._collection

    @property
    def _system_key(self) -> str:
        """The folder's key in Chroma's per-process cache of clients (its persist directory)."""
        return str(self.data_dir / "chroma")

    def _open_fresh_collection(self) -> None:
        """A client of its own (in its turn): Chroma shares one per folder within a process, whose copy of the
        index would be another store's, up to date or not; forgetting it makes the next one load the folder."""
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(self._system_key, None)
        self._collection = open_collection(self.data_dir, self._registry_id, self._name)
        # This collection's client, for `close`.
        self._system = SharedSystemClient._identifier_to_system.get(self._system_key)

    def close(self) -> None:
        """Let go of Chroma's files (embedded Chroma): the client this collection opened is stopped and forgotten by
        Chroma's per-process cache, which would otherwise keep the folder's files open as long as the process runs
        (a knowledge base deleted or imported in the app kept its disk space and its file descriptors until a
        restart). Other stores of the folder have clients of their own (`_open_fresh_collection`)."""
        if self.chroma_url or self._system is None:
            return
        from chromadb.api.shared_system_client import SharedSystemClient

        # A folder deleted (its knowledge base, a re-index's old index) has no lock to take, nor anyone to wait for.
        with self._chroma_turn() if self.data_dir.is_dir() else nullcontext():
            system, self._system = self._system, None
            if SharedSystemClient._identifier_to_system.get(self._system_key) is system:
                SharedSystemClient._identifier_to_system.pop(self._system_key, None)
            system.stop()


class _ChromaLock:
    """One client at a time on an embedded Chroma folder: a lock file across processes, a lock across threads."""

    def __init__(self, path: Path) -> None:
        self._threads = threading.RLock()
        # Shared by the threads (they take turns on `_threads` first); polled often: turns are short.
        self._file = FileLock(path, timeout=CHROMA_LOCK_TIMEOUT, thread_local=False, poll_interval=0.005)

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            try:
                self._file.acquire()
            except Timeout as exc:
                raise StoreError(
                    f"Chroma in {self._file.lock_file} has been busy for over {CHROMA_LOCK_TIMEOUT:.0f} s (another "
                    "process holds it): try again when it is done."
                ) from exc
            try:
                yield
            finally:
                self._file.release()


_CHROMA_LOCKS: dict[Path, _ChromaLock] = {}
_CHROMA_LOCKS_GUARD = threading.Lock()


def _chroma_lock(data_dir: Path) -> _ChromaLock:
    """The lock of this data directory's Chroma folder, one per process."""
    path = (data_dir / CHROMA_LOCK_FILE).resolve()
    with _CHROMA_LOCKS_GUARD:
        if path not in _CHROMA_LOCKS:
            _CHROMA_LOCKS[path] = _ChromaLock(path)
        return _CHROMA_LOCKS[path]


def _chroma_error(exc: Exception) -> bool:
    """Chroma's own failure to read its files (as when another process writes meanwhile), not a bad request."""
    import chromadb.errors

    return isinstance(exc, chromadb.errors.InternalError)


def drop_collection(chroma_url: str, name: str, headers: dict[str, str] | None = None) -> None:
    """Delete a collection on a Chroma server (the benchmark's throwaway ones)."""
    import chromadb

    parts = urlsplit(chroma_url)
    client = chromadb.HttpClient(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (443 if parts.scheme == "https" else 8000),
        ssl=parts.scheme == "https",
        headers=headers or {},
        settings=chromadb.Settings(anonymized_telemetry=False),
    )
    GuardedCollection(None, chroma_url).call(lambda: client.delete_collection(name))
