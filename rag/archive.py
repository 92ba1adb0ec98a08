"""A knowledge base as one file, to back it up or move it to another machine, and back (nothing embedded again).

The archive is a zip file:

    manifest.json        format and its version, the knowledge base's name, what built its index (chunker version,
                         embedding model, chunk size and overlap), the vectors' dimension, counts, and the size
                         and SHA-256 of every other member
    documents.jsonl      the registry: one document a line
    chunks.jsonl         every chunk (id, document, text, header, source, page, position), document by document
    vectors.f32          their vectors, float32 little-endian, one row a chunk, in the order of chunks.jsonl
    keywords.jsonl       the keyword index's rows (rebuilt from the chunks on import by the same tokenizer, and
                         counted against them)
    settings.json        the knowledge base's own settings (chunking, retrieval, system prompt, profile)
    sources.json         its folder and web sources (their paths may not exist on another machine: a sync then
                         says so and keeps the documents)
    conversations.sqlite3  its saved conversations (optional)

Export holds the knowledge base's write lock, so the archive is one consistent state; it is written to a
temporary file and renamed, so an interrupted export leaves no partial archive. Import checks every member
against the manifest before it touches anything, refuses a damaged archive with a message naming the member and
what is wrong, and builds a new knowledge base with the same documents, chunk ids and vectors; should it fail
half-way, the knowledge base it was making is deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from rag.config import FIELDS, Settings, save_settings
from rag.conversations import DB_NAME as CONVERSATIONS_DB
from rag.errors import RagError
from rag.formatting import human_size, plural
from rag.kb import (
    IndexVersions,
    KnowledgeBase,
    KnowledgeBaseError,
    KnowledgeBases,
    open_store,
    record_versions,
    recorded_versions,
)
from rag.registry import DocumentRecord
from rag.schema import Chunk
from rag.sources import SourceStore
from rag.sqlite import now_iso
from rag.store import Store

logger = logging.getLogger(__name__)

FORMAT = "local-rag-chat knowledge base"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBERS = ("documents.jsonl", "chunks.jsonl", "vectors.f32", "keywords.jsonl", "settings.json", "sources.json")
KEYWORD_COLUMNS = ("text", "chunk_id", "doc_id", "source", "page", "position")
_BLOCK = 1 << 20


class ArchiveError(RagError):
    """An archive cannot be written, or is not one this app can import."""


@dataclass(frozen=True)
class ArchiveProgress:
    stage: str  # "exporting", "checking", "importing"
    done: int
    total: int
    detail: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


ProgressCallback = Callable[[ArchiveProgress], None]


@dataclass(frozen=True)
class ArchiveSummary:
    name: str
    path: Path
    documents: int
    chunks: int
    conversations: int
    bytes: int

    def describe(self) -> str:
        return (
            f"{self.name}: {plural(self.documents, 'document')}, {plural(self.chunks, 'chunk')}, "
            f"{plural(self.conversations, 'conversation')} ({human_size(self.bytes)}, {self.path})"
        )


# -- export ------------------------------------------------------------------------------------------------------


def export_kb(
    settings: Settings,
    store: Store,
    target: Path,
    conversations: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ArchiveSummary:
    """Write the knowledge base of `settings` (its index `store`) to the archive `target`."""
    progress = on_progress or (lambda _p: None)
    target = target.expanduser()
    if target.is_dir():
        raise ArchiveError(f"{target} is a folder: give a file name for the archive, e.g. {target / 'kb.zip'}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kb-export-", dir=target.parent) as work_dir:
        work = Path(work_dir)
        counts: dict[str, int] = {"documents": 0, "chunks": 0, "keyword_rows": 0, "conversations": 0}
        dimension = 0
        with store.writing():  # one consistent state: writers wait, searches go on
            documents = store.documents()
            versions = recorded_versions(store)
            with (
                _Member(work / "documents.jsonl") as docs_out,
                _Member(work / "chunks.jsonl") as chunks_out,
                _Member(work / "vectors.f32") as vectors_out,
                _Member(work / "keywords.jsonl") as keywords_out,
            ):
                for i, record in enumerate(documents):
                    progress(ArchiveProgress("exporting", i, len(documents), record.name))
                    pairs = store.chunks_with_vectors(record.doc_id)
                    for chunk, vector in pairs:
                        chunks_out.line(_chunk_json(chunk))
                        floats = np.asarray(vector, dtype="<f4")
                        dimension = dimension or len(floats)
                        vectors_out.write(floats.tobytes())
                    for row in store.keyword_rows(record.doc_id):
                        keywords_out.line(dict(zip(KEYWORD_COLUMNS, row, strict=True)))
                        counts["keyword_rows"] += 1
                    docs_out.line({**asdict(record), "chunks": len(pairs)})
                    counts["documents"] += 1
                    counts["chunks"] += len(pairs)
            progress(ArchiveProgress("exporting", len(documents), len(documents)))
        own = {k: v for k, v in settings.editable().items() if FIELDS[k].per_kb}
        (work / "settings.json").write_text(json.dumps(own, indent=2, ensure_ascii=False), encoding="utf-8")
        sources = SourceStore(settings.kb_dir)
        try:
            described = [
                {k: v for k, v in asdict(s).items() if k not in ("source_id", "added_at")} for s in sources.sources()
            ]
        finally:
            sources.close()
        (work / "sources.json").write_text(json.dumps(described, indent=2, ensure_ascii=False), encoding="utf-8")
        members = list(MEMBERS)
        conversations_file = settings.kb_dir / CONVERSATIONS_DB
        if conversations and conversations_file.exists():
            counts["conversations"] = _copy_sqlite(conversations_file, work / CONVERSATIONS_DB)
            members.append(CONVERSATIONS_DB)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": settings.kb,
            "exported_at": now_iso(),
            "versions": versions.as_dict() if versions else None,
            "dimension": dimension,
            "counts": counts,
            "files": {name: _describe_file(work / name) for name in members},
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        partial = work / "archive.zip"
        with zipfile.ZipFile(partial, "w", allowZip64=True) as archive:
            for name in [MANIFEST, *members]:
                stored = name == "vectors.f32"  # floats hardly compress
                archive.write(work / name, name, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
        os.replace(partial, target)
    return ArchiveSummary(
        settings.kb, target, counts["documents"], counts["chunks"], counts["conversations"], target.stat().st_size
    )


class _Member:
    """A member file written as it goes, flushed to disk at the end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def __enter__(self) -> _Member:
        self._file = open(self.path, "wb")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._file is not None
        self._file.close()

    def write(self, data: bytes) -> None:
        assert self._file is not None
        self._file.write(data)

    def line(self, value: object) -> None:
        self.write(json.dumps(value, ensure_ascii=False).encode("utf-8") + b"\n")


def _chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {
        "id": chunk.id,
        "doc_id": chunk.doc_id,
        "text": chunk.text,
        "header": chunk.header,
        "source": chunk.source,
        "page": chunk.page,
        "position": chunk.position,
    }


def _copy_sqlite(source: Path, target: Path) -> int:
    """A consistent copy of a database another process may be writing (SQLite's backup), and its conversations."""
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        try:
            return int(dst.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])
        except sqlite3.Error:
            return 0
    finally:
        src.close()
        dst.close()


def _conversation_count(path: Path) -> int:
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])
    except sqlite3.Error:
        return 0
    finally:
        db.close()


def _describe_file(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


# -- import ------------------------------------------------------------------------------------------------------


def read_manifest(path: Path) -> dict[str, Any]:
    """The archive's manifest, after checking every member against it (sizes, SHA-256); ArchiveError naming what
    is wrong otherwise."""
    where = path.name
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ArchiveError(f"{path} does not exist: give the path of an archive made by `kb export`.") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveError(f"{where} is not a knowledge-base archive: it is not a readable zip file ({exc}).") from None
    with archive:
        try:
            manifest = json.loads(archive.read(MANIFEST))
        except KeyError:
            raise ArchiveError(f"{where} is not a knowledge-base archive: it has no {MANIFEST}.") from None
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{where} is damaged: its {MANIFEST} cannot be read ({exc}).") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArchiveError(f"{where} is not a knowledge-base archive of this app (its {MANIFEST} says otherwise).")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ArchiveError(
                f"{where} was written in archive format {version}, newer than this app reads ({FORMAT_VERSION}): "
                "update the app to import it."
            )
        files = manifest.get("files")
        if not isinstance(files, dict) or any(name not in files for name in MEMBERS):
            missing = [n for n in MEMBERS if not isinstance(files, dict) or n not in files]
            raise ArchiveError(f"{where} is damaged: its {MANIFEST} does not list {', '.join(missing)}.")
        present = set(archive.namelist())
        for name, expected in files.items():
            if name not in present:
                raise ArchiveError(f"{where} is damaged: {name} is missing from it. Export the knowledge base again.")
            digest = hashlib.sha256()
            size = 0
            try:
                with archive.open(name) as member:
                    while block := member.read(_BLOCK):
                        digest.update(block)
                        size += len(block)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:  # a CRC error, a truncated member
                raise ArchiveError(f"{where} is damaged: {name} cannot be read ({exc}).") from None
            if size != expected.get("bytes") or digest.hexdigest() != expected.get("sha256"):
                raise ArchiveError(
                    f"{where} is damaged: {name} does not match its checksum in {MANIFEST} ({size:,} bytes, "
                    f"SHA-256 {digest.hexdigest()[:12]}…; expected {expected.get('bytes')} bytes, "
                    f"{str(expected.get('sha256'))[:12]}…). Export the knowledge base again."
                )
    return manifest


def import_kb(
    catalog: KnowledgeBases,
    path: Path,
    name: str | None = None,
    conversations: bool = True,
    on_progress: ProgressCallback | None = None,
) -> ArchiveSummary:
    """A new knowledge base (`name`, or the archive's) holding what the archive holds, nothing embedded again. An
    existing knowledge base is used only when it is empty (a fresh data folder's 'default')."""
    progress = on_progress or (lambda _p: None)
    progress(ArchiveProgress("checking", 0, 1, path.name))
    manifest = read_manifest(path)
    name = (name or str(manifest.get("name") or "")).strip() or path.stem
    existing = catalog.find(name)
    made: KnowledgeBase | None = None
    if existing is not None:
        kb_settings = catalog.settings_for(existing.name)
        store = open_store(kb_settings)
        if store.documents():
            store.close()
            raise KnowledgeBaseError(
                f"A knowledge base named {existing.name!r} exists and holds documents: import with --as OTHER_NAME "
                "(or choose another name in the app)."
            )
        kb = existing
    else:
        kb = made = catalog.create(name)
        kb_settings = catalog.settings_for(kb.name)
        store = open_store(kb_settings)
    try:
        summary = _fill(kb_settings, store, path, manifest, conversations, progress, catalog.env)
    except BaseException:
        store.close()
        if made is not None:
            catalog.delete(made.name)
        raise
    store.close()
    return summary


def _fill(
    settings: Settings,
    store: Store,
    path: Path,
    manifest: dict[str, Any],
    conversations: bool,
    progress: ProgressCallback,
    env: Mapping[str, str] | None,
) -> ArchiveSummary:
    counts = manifest.get("counts") or {}
    dimension = int(manifest.get("dimension") or 0)
    total = int(counts.get("documents", 0))
    committed: list[str] = []
    with zipfile.ZipFile(path) as archive:
        own = json.loads(archive.read("settings.json"))
        if isinstance(own, dict):
            values = {k: v for k, v in own.items() if k in FIELDS and FIELDS[k].per_kb}
            save_settings(settings.with_overrides(**values), env)
        try:
            with (
                archive.open("documents.jsonl") as docs_in,
                archive.open("chunks.jsonl") as chunks_in,
                archive.open("vectors.f32") as vectors_in,
            ):
                for i, line in enumerate(docs_in):
                    record = _record(json.loads(line))
                    progress(ArchiveProgress("importing", i, total, record.name))
                    chunks = [_chunk(json.loads(next(chunks_in))) for _ in range(record.chunks)]
                    raw = vectors_in.read(4 * dimension * len(chunks))
                    vectors = np.frombuffer(raw, dtype="<f4").reshape(len(chunks), dimension).astype(np.float32)
                    store.begin_document(record)
                    try:
                        store.add_chunks(chunks, vectors)
                        store.commit_document(record.doc_id)
                    except BaseException:
                        store.abort_document(record.doc_id)
                        raise
                    committed.append(record.doc_id)
        except BaseException:
            for doc_id in committed:  # an import into an existing (empty) knowledge base leaves it as it was
                store.delete_document(doc_id)
            raise
        versions = manifest.get("versions")
        if isinstance(versions, dict):
            record_versions(store, IndexVersions.from_dict(versions))
        _restore_sources(settings.kb_dir, json.loads(archive.read("sources.json")))
        imported_conversations = 0
        if conversations and CONVERSATIONS_DB in archive.namelist():
            target = settings.kb_dir / CONVERSATIONS_DB
            if _conversation_count(target) == 0:  # never over conversations of the knowledge base's own
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
                with archive.open(CONVERSATIONS_DB) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                imported_conversations = int(counts.get("conversations", 0))
    found = (len(store.documents()), store.chunk_count(), store.keyword_row_count())
    expected = (total, int(counts.get("chunks", 0)), int(counts.get("keyword_rows", 0)))
    if found != expected:
        raise ArchiveError(
            f"{path.name}: the import ended with {found[0]} documents, {found[1]} chunks and {found[2]} keyword rows "
            f"where the manifest lists {expected[0]}, {expected[1]} and {expected[2]}: nothing was kept."
        )
    progress(ArchiveProgress("importing", total, total))
    return ArchiveSummary(settings.kb, path, found[0], found[1], imported_conversations, path.stat().st_size)


def _record(raw: dict[str, Any]) -> DocumentRecord:
    fields = DocumentRecord.__dataclass_fields__
    return DocumentRecord(**{k: v for k, v in raw.items() if k in fields} | {"status": "ready"})


def _chunk(raw: dict[str, Any]) -> Chunk:
    return Chunk(
        id=str(raw["id"]),
        doc_id=str(raw["doc_id"]),
        text=str(raw["text"]),
        source=str(raw["source"]),
        page=None if raw.get("page") is None else int(raw["page"]),
        position=int(raw["position"]),
        header=str(raw.get("header", "")),
    )


def _restore_sources(kb_dir: Path, described: list[dict[str, Any]]) -> None:
    sources = SourceStore(kb_dir)
    try:
        for s in described:
            try:
                sources.restore(s)
            except (RagError, KeyError, TypeError, ValueError, sqlite3.Error) as exc:
                logger.warning("Source %s not restored: %s", s.get("location"), exc)
    finally:
        sources.close()
