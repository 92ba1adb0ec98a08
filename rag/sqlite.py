"""SQLite plumbing shared by the document registry and keyword index (store.py) and the saved conversations.

Every database here is opened the same way: WAL (readers never wait for a writer), a busy timeout (a
writer waits its turn instead of failing), autocommit outside explicit transactions, and write
transactions that take the write lock first (``BEGIN IMMEDIATE``), so a read-then-write can never fail
half-way with "database is locked". Schemas change only through numbered migrations recorded in the
database itself (the way simonw/llm does it): each is applied once, in order, on open, inside one write
transaction, so several processes opening an old database at once upgrade it exactly once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
MIGRATIONS_TABLE = "_migrations"


@dataclass(frozen=True)
class Migration:
    """One schema step. ``name`` is recorded once applied; ``apply`` runs inside the migration transaction
    and must not commit (use ``db.execute``, never ``executescript``)."""

    name: str
    apply: Callable[[sqlite3.Connection], object]


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection usable from any thread (callers serialise its use), in WAL mode, waiting for other writers.

    `read_only`: the file as it is, read without locks or SQLite's shared-memory file (which cannot be made on a
    full disk); for when nothing can be written anyway."""
    if read_only:
        uri = f"{path.resolve().as_uri()}?immutable=1"
        return sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    # Switching a database to WAL needs it to itself; SQLite does not always call the busy handler for that,
    # so several processes opening one older (rollback-journal) database at once retry here instead.
    _retry_while_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
    db.execute("PRAGMA foreign_keys=ON")
    return db


def open_migrated(path: Path, migrations: Sequence[Migration]) -> sqlite3.Connection:
    """`connect` to the database at `path` (its folder made first) with `migrations` applied; OSError and
    sqlite3.Error pass through, for the caller to say what could not be opened."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = connect(path)
    migrate(db, migrations)
    return db


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction holding the database's write lock from its first statement (no lost updates)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


@contextmanager
def read_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One read transaction, so that several SELECTs see the same snapshot."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration]) -> list[str]:
    """Apply the migrations not yet recorded in the database, in order, in one write transaction; returns
    the names applied now. Migrations must be idempotent on the schema they find (``CREATE … IF NOT
    EXISTS``, ``add_column``): databases made before migrations were recorded hold part of it already."""
    names = [m.name for m in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"migration names must be unique: {names}")
    with write_transaction(db):
        db.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {str(row[0]) for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE}")}
        applied = []
        for migration in migrations:
            if migration.name in done:
                continue
            migration.apply(db)
            db.execute(f"INSERT INTO {MIGRATIONS_TABLE}(name, applied_at) VALUES (?, ?)", (migration.name, now_iso()))
            applied.append(migration.name)
    if applied:
        logger.info("%s: applied migrations %s", _db_file(db), ", ".join(applied))
    return applied


def applied_migrations(db: sqlite3.Connection) -> list[str]:
    """The names recorded, in the order they were applied."""
    return [str(row[0]) for row in db.execute(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")]


def execute_all(db: sqlite3.Connection, script: str) -> None:
    """Run each ``;``-separated statement of ``script`` inside the current transaction (``executescript``
    would commit it first). Statements must not contain ``;`` themselves."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def add_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """``ALTER TABLE … ADD COLUMN`` unless the table has it already."""
    if column not in columns(db, table):
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def columns(db: sqlite3.Connection, table: str) -> set[str]:
    return {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}


def now_iso() -> str:
    """A UTC timestamp to the second, as every table here stores it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _retry_while_locked(statement: Callable[[], object]) -> None:
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            logger.debug("database busy (%s): retrying in %.2f s", exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _db_file(db: sqlite3.Connection) -> str:
    row = db.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row and row[2] else "database"


def is_corrupt(exc: BaseException) -> bool:
    """Is this SQLite's "the file is damaged" (malformed, truncated, or not a database at all)?"""
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text


def is_truncated(path: Path) -> bool:
    """Is the database file shorter than its header says (cut short: SQLite then reports a "disk I/O error")?"""
    try:
        with path.open("rb") as db:
            header = db.read(100)
        size = path.stat().st_size
    except OSError:
        return False
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return False
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    return page_size * pages > size


def is_disk_full(exc: BaseException) -> bool:
    """Did a write fail for lack of space (SQLite's SQLITE_FULL, ENOSPC, or a library saying so)?"""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    name = str(getattr(exc, "sqlite_errorname", ""))
    text = str(exc).lower()
    return name.startswith("SQLITE_FULL") or "disk is full" in text or "no space left" in text or "(code: 13)" in text
