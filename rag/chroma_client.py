"""Where the store's vectors live: Chroma embedded in the data directory (the default), or a Chroma server
(`chroma run`) at RAG_CHROMA_URL, which a team shares.

The registry and the keyword index always stay in the app's data directory. A collection therefore
records which registry it belongs to (the registry's id, kept in its `meta` table); a second data
directory pointed at the same collection on a server is refused instead of silently diverging from it
(two registries would each purge the other's "unknown" chunks, or show chunks they cannot list).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from rag.errors import StoreError

OWNER_KEY = "rag_registry_id"  # collection metadata: the id of the registry that owns the collection
OWNER_PLACE_KEY = "rag_registry_place"  # collection metadata: "host:/path/to/data" of that registry, for messages
T = TypeVar("T")


def open_collection(
    data_dir: Path,
    registry_id: str,
    name: str,
    chroma_url: str = "",
    headers: dict[str, str] | None = None,
) -> Any:
    """The collection of chunk vectors, checked to belong to this data directory's registry."""
    import chromadb

    settings = chromadb.Settings(anonymized_telemetry=False, allow_reset=False)
    if not chroma_url:
        client: Any = chromadb.PersistentClient(path=str(data_dir / "chroma"), settings=settings)
    else:
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
    place = f"{socket.gethostname()}:{data_dir.resolve()}"
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
    elif owner != registry_id:
        raise StoreError(
            f"The Chroma collection {name!r} at {where} belongs to another knowledge base (its registry is in "
            f"{metadata.get(OWNER_PLACE_KEY, 'another data directory')}), not to the one in {data_dir}: sharing it "
            "would make the two diverge. Point RAG_DATA_DIR at that knowledge base's data directory to use it, or "
            "set RAG_CHROMA_COLLECTION to a collection of this one's own."
        )
    return GuardedCollection(collection, chroma_url) if chroma_url else collection


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

    def count(self) -> int:
        return int(self.call(self._collection.count))


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
