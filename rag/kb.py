"""Knowledge bases: several in one data folder, each with its own documents, vectors, keyword index,
conversations, sources and settings; where each one's index lives; and what built it (chunker, model).

The data folder (RAG_DATA_DIR):

    settings.json                     the app's settings, and the knowledge base 'default''s own
    registry.sqlite3, chroma/, …      the knowledge base 'default': the data folder itself
    kbs/<id>/kb.json                  another knowledge base: its name (a rename changes only this file)
    kbs/<id>/settings.json            its own settings: chunking, retrieval, system prompt, profile
    kbs/<id>/registry.sqlite3, …      its registry, vectors, keyword index, conversations, sources
    <its folder>/index.json           after a re-index (rag/reindex.py): the generation of the index that serves,
                                      in <its folder>/index-<n>/ (generation 0: the folder itself)

A data folder made before there were several knowledge bases is the knowledge base 'default' as it is: nothing
moves and nothing is embedded again. On a Chroma server each knowledge base has its own collection: 'default'
the one of RAG_CHROMA_COLLECTION, another `<collection>-<id>`, and a re-indexed generation `…-g<n>`.

Each index records in its registry's `meta` table the chunker version, the embedding model and the chunk size
and overlap it was built with (`IndexVersions`): when the code's differ, `check_versions` says how, and the app
offers to re-index in place.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from rag.chunking import CHUNKER_VERSION
from rag.config import DEFAULT_KB, Settings, auth_headers, kb_name_problem, write_atomically
from rag.errors import RagError, StoreError
from rag.formatting import plural
from rag.sqlite import now_iso
from rag.store import Store
from rag.write_lock import LOCK_FILE

logger = logging.getLogger(__name__)

KBS_FOLDER = "kbs"
KB_FILE = "kb.json"
INDEX_FILE = "index.json"
CATALOG_LOCK = "kbs.lock"
SYNC_LOCK = "sync.lock"  # held by a sync of the knowledge base (rag/sync.py), and by a delete
_TRASH_PREFIX = ".deleted-"
_TEMP_PREFIX = ".new-"


class KnowledgeBaseError(RagError):
    """A knowledge base cannot be found, made, renamed or deleted as asked."""


@dataclass(frozen=True)
class KnowledgeBase:
    name: str
    kb_id: str  # 'default', or the name of its folder in kbs/ (never changes)
    folder: Path
    created_at: str = ""

    @property
    def is_default(self) -> bool:
        return self.kb_id == DEFAULT_KB


class KnowledgeBases:
    """The knowledge bases of a data folder. Cheap to build: every call reads the folder as it is now, so several
    processes (the app, the CLI) see each other's changes."""

    def __init__(self, settings: Settings, env: Mapping[str, str] | None = None) -> None:
        """`settings`: the app's (its data folder, Chroma); `env`: the environment its settings came from (None:
        the process's), read again for each knowledge base's own settings."""
        self.settings = settings
        self.env = env
        self.data_dir = settings.data_dir
        self.root = settings.data_dir / KBS_FOLDER

    # -- reading ----------------------------------------------------------------------------------------

    def list(self) -> list[KnowledgeBase]:
        """'default' first, then the others by name."""
        others: list[KnowledgeBase] = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                if folder.name.startswith("."):
                    continue
                kb = _read_kb(folder)
                if kb is not None:
                    others.append(kb)
        others.sort(key=lambda kb: kb.name.casefold())
        return [KnowledgeBase(DEFAULT_KB, DEFAULT_KB, self.data_dir), *others]

    def find(self, name: str) -> KnowledgeBase | None:
        """By name, ignoring case."""
        wanted = name.strip().casefold()
        return next((kb for kb in self.list() if kb.name.casefold() == wanted), None)

    def get(self, name: str) -> KnowledgeBase:
        kb = self.find(name)
        if kb is None:
            names = ", ".join(repr(k.name) for k in self.list())
            raise KnowledgeBaseError(
                f"There is no knowledge base {name!r} in {self.data_dir} (there are: {names}): create it with "
                f"`python -m rag kb create {_quoted(name)}` or in the app's sidebar, or pick another with --kb "
                "(or RAG_KB)."
            )
        return kb

    def settings_for(self, name: str | None = None) -> Settings:
        """The settings of a knowledge base (default: the settings' own, RAG_KB): the app's, with its own
        chunking, retrieval, system prompt and profile."""
        kb = self.get(name or self.settings.kb)
        if kb.is_default:
            return Settings.load(self.env, data_dir=self.data_dir).with_overrides(kb=DEFAULT_KB)
        return Settings.load(self.env, kb_folder=kb.folder, data_dir=self.data_dir).with_overrides(kb=kb.name)

    # -- changing -----------------------------------------------------------------------------------------

    def create(self, name: str) -> KnowledgeBase:
        """A new, empty knowledge base (its folder appears whole or not at all)."""
        name = name.strip()
        _check_name(name)
        with self._catalog():
            if (clash := self.find(name)) is not None:
                raise KnowledgeBaseError(
                    f"A knowledge base named {clash.name!r} exists already: choose another name, or switch to it."
                )
            self.root.mkdir(parents=True, exist_ok=True)
            kb_id = uuid.uuid4().hex[:8]
            temporary = self.root / f"{_TEMP_PREFIX}{kb_id}"
            temporary.mkdir()
            kb = KnowledgeBase(name, kb_id, self.root / kb_id, now_iso())
            _write_kb(temporary, kb)
            os.replace(temporary, kb.folder)
        logger.info("Created the knowledge base %r in %s", name, kb.folder)
        return kb

    def rename(self, name: str, new_name: str) -> KnowledgeBase:
        new_name = new_name.strip()
        _check_name(new_name)
        with self._catalog():
            kb = self.get(name)
            if kb.is_default:
                raise KnowledgeBaseError(
                    "The knowledge base 'default' is the data folder itself and keeps its name: create another "
                    "one and add the documents there instead."
                )
            clash = self.find(new_name)
            if clash is not None and clash.kb_id != kb.kb_id:
                raise KnowledgeBaseError(f"A knowledge base named {clash.name!r} exists already: choose another name.")
            renamed = KnowledgeBase(new_name, kb.kb_id, kb.folder, kb.created_at)
            _write_kb(kb.folder, renamed)
        return renamed

    def delete(self, name: str) -> KnowledgeBase:
        """Delete a knowledge base with everything in it: documents, vectors (also on a Chroma server),
        conversations, sources and settings. Refused while it is being written or synced."""
        with self._catalog():
            kb = self.get(name)
            if kb.is_default:
                raise KnowledgeBaseError(
                    "The knowledge base 'default' is the data folder itself and cannot be deleted: delete its "
                    "documents instead (Documents page, or `python -m rag delete NAME`)."
                )
            settings = self.settings_for(kb.name)
            location = index_location(settings)
            with ExitStack() as held:  # nobody writing or syncing it: they would write into a folder going away
                for lock in (location.folder / LOCK_FILE, kb.folder / SYNC_LOCK):
                    try:
                        held.enter_context(FileLock(lock, timeout=0, thread_local=False))
                    except Timeout:
                        raise KnowledgeBaseError(
                            f"The knowledge base {kb.name!r} is being written or synced right now: try again when "
                            "that is done."
                        ) from None
                trash = self.root / f"{_TRASH_PREFIX}{kb.kb_id}-{uuid.uuid4().hex[:6]}"
                os.replace(kb.folder, trash)  # gone from the list at once, whatever happens next
        if settings.chroma_url:
            for generation in range(location.generation + 1):
                collection = index_location(settings, generation).collection
                try:
                    from rag.chroma_client import drop_collection

                    drop_collection(settings.chroma_url, collection, auth_headers(settings.chroma_token))
                except (StoreError, ValueError) as exc:  # already gone, or the server is down: say so, go on
                    logger.warning("Could not delete the collection %r on %s: %s", collection, settings.chroma_url, exc)
        shutil.rmtree(trash, ignore_errors=True)
        self._sweep()
        return kb

    def _catalog(self) -> FileLock:
        """One change of the list at a time, across processes (names stay unique)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return FileLock(self.data_dir / CATALOG_LOCK, timeout=30, thread_local=False)

    def _sweep(self) -> None:
        """Folders left by a delete or a create that a crash interrupted."""
        if not self.root.is_dir():
            return
        for folder in self.root.iterdir():
            if folder.name.startswith((_TRASH_PREFIX, _TEMP_PREFIX)):
                shutil.rmtree(folder, ignore_errors=True)


def _check_name(name: str) -> None:
    problem = kb_name_problem(name)
    if problem:
        raise KnowledgeBaseError(f"A knowledge base cannot be called {name!r}: the name {problem}. Choose another.")


def _quoted(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else repr(name)


def _read_kb(folder: Path) -> KnowledgeBase | None:
    try:
        raw = json.loads((folder / KB_FILE).read_text(encoding="utf-8"))
        return KnowledgeBase(str(raw["name"]), folder.name, folder, str(raw.get("created_at", "")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s is not a knowledge base (%s): left out", folder, exc)
        return None


def _write_kb(folder: Path, kb: KnowledgeBase) -> None:
    data = {"name": kb.name, "created_at": kb.created_at}
    write_atomically(folder / KB_FILE, json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8"))


# -- where a knowledge base's index lives ---------------------------------------------------------------


@dataclass(frozen=True)
class IndexLocation:
    folder: Path  # the registry, the keyword index and (embedded) Chroma
    collection: str  # the Chroma collection
    generation: int  # 0: the knowledge base's folder itself; n: index-<n>/ after n re-indexes


def current_generation(kb_dir: Path) -> int:
    try:
        return int(json.loads((kb_dir / INDEX_FILE).read_text(encoding="utf-8"))["generation"])
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(
            f"{kb_dir / INDEX_FILE} is damaged ({exc}): it says which index of the knowledge base serves. Write "
            '{"generation": N} with N the highest index-N folder beside it (0 when there is none).'
        ) from exc


def set_generation(kb_dir: Path, generation: int) -> None:
    """Switch the knowledge base to another index: one atomic rename."""
    write_atomically(kb_dir / INDEX_FILE, json.dumps({"generation": generation}).encode("utf-8"))


def index_location(settings: Settings, generation: int | None = None) -> IndexLocation:
    """Where the knowledge base of these settings keeps its index (the one that serves, or `generation`)."""
    kb_dir = settings.kb_dir
    generation = current_generation(kb_dir) if generation is None else generation
    folder = kb_dir if generation == 0 else kb_dir / f"index-{generation}"
    collection = settings.chroma_collection
    if settings.kb_folder is not None:  # a collection of its own on a server, whatever its name
        collection = f"{collection[:40]}-{settings.kb_folder.name}"
    if generation:
        collection = f"{collection[:52]}-g{generation}"
    return IndexLocation(folder, collection, generation)


def index_folders(settings: Settings) -> list[Path]:
    """The folders of every index of the knowledge base, oldest first, the last the one serving (a re-index removes
    the older ones when it is done; a process may still hold them open)."""
    serving = index_location(settings).generation
    return [index_location(settings, generation).folder for generation in range(serving + 1)]


def open_store(settings: Settings, generation: int | None = None) -> Store:
    """The index of the knowledge base of these settings: its registry in its folder, its vectors there or on
    the Chroma server."""
    location = index_location(settings, generation)
    return Store(location.folder, settings.chroma_url, auth_headers(settings.chroma_token), location.collection)


# -- what built an index ------------------------------------------------------------------------------------

_VERSION_KEYS = ("chunker_version", "embedding_model", "chunk_size", "chunk_overlap")


@dataclass(frozen=True)
class IndexVersions:
    """What cut and embedded the chunks of an index: recorded with it, compared with the code's."""

    chunker: str
    embedding_model: str
    chunk_size: int
    chunk_overlap: int

    @classmethod
    def current(cls, embedding_model: str, chunk_size: int, chunk_overlap: int) -> IndexVersions:
        return cls(CHUNKER_VERSION, embedding_model, chunk_size, chunk_overlap)

    def as_dict(self) -> dict[str, str | int]:
        values = (self.chunker, self.embedding_model, self.chunk_size, self.chunk_overlap)
        return dict(zip(_VERSION_KEYS, values, strict=True))

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> IndexVersions:
        return cls(
            str(values["chunker_version"]),
            str(values["embedding_model"]),
            int(str(values["chunk_size"])),
            int(str(values["chunk_overlap"])),
        )


def recorded_versions(store: Store) -> IndexVersions | None:
    """What the index says built it; None for an index made before versions were recorded."""
    values = {key: store.get_meta(key) for key in _VERSION_KEYS}
    if any(v is None for v in values.values()):
        return None
    try:
        return IndexVersions.from_dict(values)
    except ValueError:
        return None


def record_versions(store: Store, versions: IndexVersions) -> None:
    for key, value in versions.as_dict().items():
        store.set_meta(key, str(value))


def stamp_versions(store: Store, versions: IndexVersions) -> None:
    """An empty index that records nothing yet is built by what goes into it first (the ingestor calls this under
    the write lock). One that holds documents but no record stays unknown: it was built before records."""
    if recorded_versions(store) is None and not store.documents():
        record_versions(store, versions)


@dataclass(frozen=True)
class VersionCheck:
    """The index's versions against the code's and the settings'."""

    recorded: IndexVersions | None
    current: IndexVersions
    documents: int

    @property
    def outdated(self) -> bool:
        return self.documents > 0 and self.recorded != self.current

    @property
    def needs_originals(self) -> bool:
        """Re-chunking needs the documents' files; a new embedding model only the chunks' texts."""
        r, c = self.recorded, self.current
        return r is None or (r.chunker, r.chunk_size, r.chunk_overlap) != (c.chunker, c.chunk_size, c.chunk_overlap)

    def reasons(self) -> list[str]:
        """Why the index is not what this version of the app would build, in words; empty when it is."""
        if not self.outdated:
            return []
        r, c = self.recorded, self.current
        if r is None:
            return [
                f"it was built before the app recorded how, maybe by an older chunker (this version cuts chunks "
                f"with chunker version {c.chunker})"
            ]
        reasons = []
        if r.chunker != c.chunker:
            reasons.append(f"its chunks were cut by chunker version {r.chunker}; this version of the app: {c.chunker}")
        if r.embedding_model != c.embedding_model:
            reasons.append(
                f"its vectors come from the model {r.embedding_model}, but questions are embedded with "
                f"{c.embedding_model}: searches by meaning miss until it is re-indexed"
            )
        if (r.chunk_size, r.chunk_overlap) != (c.chunk_size, c.chunk_overlap):
            reasons.append(
                f"its chunks are {r.chunk_size} characters with {r.chunk_overlap} of overlap; the settings say "
                f"{c.chunk_size} and {c.chunk_overlap}"
            )
        return reasons

    def describe(self) -> str:
        reasons = self.reasons()
        if not reasons:
            built = self.recorded or self.current
            return (
                f"up to date: chunker version {built.chunker}, {built.embedding_model}, chunks of {built.chunk_size} "
                f"characters ({built.chunk_overlap} overlap)"
            )
        return (
            f"outdated ({plural(self.documents, 'document')}): " + "; ".join(reasons) + ". Re-index it in place "
            "(`python -m rag kb reindex`, or the button on the Documents page): it keeps answering from the old "
            "index until the new one is complete."
        )


def check_versions(store: Store, settings: Settings, embedding_model: str) -> VersionCheck:
    current = IndexVersions.current(embedding_model, settings.chunk_size, settings.chunk_overlap)
    return VersionCheck(recorded_versions(store), current, len(store.documents()))
