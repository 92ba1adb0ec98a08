"""API keys for the HTTP API (`rag serve`): created and revoked on the Settings page or with `rag keys`.

One SQLite file, `api_keys.sqlite3` in the data folder. A key is shown once, when it is created; only its
SHA-256 is stored, with a name and the key's first characters (to tell keys apart in a list). A key is 32
random bytes, so a fast hash is enough: nobody can guess one from its hash, and checking a request costs one
hash and one indexed lookup.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.errors import RagError
from rag.sqlite import Migration, execute_all, now_iso, open_migrated, write_transaction

DB_NAME = "api_keys.sqlite3"
KEY_PREFIX = "rag-"  # every key starts with it: easy to recognise in a config file or a leak scanner
SHOWN_CHARS = 12  # of a key, kept in clear to tell keys apart ("rag-Xy3k9QaB…")
NAME_MAX_CHARS = 60
# Writing "last used" on every request would make every request a write: once a minute is enough to read.
LAST_USED_EVERY_S = 60

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    shown TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
)
"""
MIGRATIONS = (Migration("001_api_keys", lambda db: execute_all(db, _SCHEMA)),)


class ApiKeyError(RagError):
    """An API key could not be created, found or revoked."""


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never the key itself, which is shown once when it is created."""

    name: str
    shown: str  # the key's first characters, then "…"
    created_at: str
    last_used_at: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class ApiKeys:
    """The API keys of one data folder; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._db = open_migrated(self.path, MIGRATIONS)
        except (OSError, sqlite3.Error) as exc:
            raise ApiKeyError(
                f"Cannot open the API keys in {self.path} ({exc}): check that the folder is writable, or set "
                "RAG_DATA_DIR to another folder."
            ) from exc
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> ApiKeys:
        return cls(Path(data_dir) / DB_NAME)

    def create(self, name: str) -> tuple[ApiKey, str]:
        """A new key named `name`: (its record, the key itself, to be shown once and never again)."""
        clean = re.sub(r"\s+", " ", name).strip()
        if not clean:
            raise ApiKeyError("Give the key a name that says who or what uses it, e.g. `editor` or `backup-script`.")
        if len(clean) > NAME_MAX_CHARS:
            raise ApiKeyError(
                f"A key's name has at most {NAME_MAX_CHARS} characters; {clean[:20]!r}… has {len(clean)}: shorten it."
            )
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        shown = secret[:SHOWN_CHARS] + "…"
        created = now_iso()
        with self._write():
            if self._db.execute("SELECT 1 FROM api_keys WHERE name = ?", (clean,)).fetchone():
                raise ApiKeyError(f"There is already a key named {clean!r}: choose another name, or revoke that one.")
            self._db.execute(
                "INSERT INTO api_keys(name, shown, sha256, created_at) VALUES (?, ?, ?, ?)",
                (clean, shown, _digest(secret), created),
            )
        return ApiKey(clean, shown, created, None, None), secret

    def list(self) -> list[ApiKey]:
        """Every key, active ones first, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, shown, created_at, last_used_at, revoked_at FROM api_keys"
                " ORDER BY revoked_at IS NOT NULL, created_at DESC, id DESC"
            ).fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, name_or_shown: str) -> ApiKey:
        """Revoke the key with this name (or whose shown characters start with this): it stops working at once."""
        wanted = name_or_shown.strip().rstrip("…")
        with self._write():
            rows = self._db.execute(
                "SELECT id, name FROM api_keys WHERE revoked_at IS NULL AND (name = ? OR (length(?) >= 6 AND"
                " substr(shown, 1, length(?)) = ?))",
                (wanted, wanted, wanted, wanted),
            ).fetchall()
            if not rows:
                raise ApiKeyError(
                    f"No active API key named {name_or_shown!r}: `python -m rag keys list` (or the Settings page) "
                    "shows them."
                )
            if len(rows) > 1:
                raise ApiKeyError(f"More than one key matches {name_or_shown!r}: give its whole name.")
            key_id, name = rows[0]
            self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now_iso(), key_id))
        return next(k for k in self.list() if k.name == name)

    def verify(self, secret: str) -> ApiKey | None:
        """The active key this secret is, else None (unknown, mistyped or revoked)."""
        if not secret.startswith(KEY_PREFIX):
            return None
        digest = _digest(secret)
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, shown, created_at, last_used_at, revoked_at FROM api_keys WHERE sha256 = ?",
                (digest,),
            ).fetchone()
        if row is None or row[5] is not None:
            return None
        key_id, *fields = row
        now = now_iso()
        if fields[3] is None or _seconds_between(fields[3], now) >= LAST_USED_EVERY_S:
            try:
                with self._write():
                    self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
                fields[3] = now
            except ApiKeyError:  # busy: "last used" is informative, the request goes on
                pass
        return ApiKey(*fields)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            try:
                with write_transaction(self._db):
                    yield
            except sqlite3.OperationalError as exc:
                raise ApiKeyError(
                    f"Cannot save to {self.path} ({exc}): another program may hold it; try again."
                ) from exc


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _seconds_between(earlier: str, later: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds()
