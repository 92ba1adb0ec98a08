"""Shared SQLite plumbing: numbered migrations applied once, in order, atomically, by whichever of several
connections opening a database at once gets there first."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from rag.sqlite import Migration, add_column, applied_migrations, connect, execute_all, migrate

STEPS = (
    Migration("001_notes", lambda db: execute_all(db, "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY)")),
    Migration("002_note_text", lambda db: add_column(db, "notes", "text", "TEXT NOT NULL DEFAULT ''")),
)


def columns_of(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_migrations_run_once_in_order_and_are_recorded(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.sqlite3")
    assert migrate(db, STEPS) == ["001_notes", "002_note_text"]
    assert columns_of(db, "notes") == ["id", "text"]
    assert migrate(db, STEPS) == []  # reopening applies nothing
    later = (*STEPS, Migration("003_note_tag", lambda db: add_column(db, "notes", "tag", "TEXT")))
    assert migrate(db, later) == ["003_note_tag"]
    assert applied_migrations(db) == ["001_notes", "002_note_text", "003_note_tag"]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_made_before_migrations_were_recorded_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # what an earlier version made: the tables, no record of steps
        old.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL DEFAULT '')")
        old.execute("INSERT INTO notes(text) VALUES ('kept')")
    db = connect(path)
    assert migrate(db, STEPS) == ["001_notes", "002_note_text"]  # recorded; each step found its work done
    assert db.execute("SELECT text FROM notes").fetchall() == [("kept",)]


def test_a_failing_migration_changes_nothing_and_says_why(tmp_path: Path) -> None:
    db = connect(tmp_path / "a.sqlite3")
    broken = (*STEPS, Migration("003_broken", lambda db: db.execute("ALTER TABLE missing ADD COLUMN x")))
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
        migrate(db, broken)
    # The whole run is one transaction: the good steps before the broken one are not half-applied.
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'notes'").fetchall() == []
    assert migrate(db, STEPS) == ["001_notes", "002_note_text"]


def test_duplicate_migration_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        migrate(connect(tmp_path / "a.sqlite3"), (*STEPS, STEPS[0]))


def open_at_once(path: Path, n: int) -> tuple[list[list[str]], list[BaseException]]:
    """n threads connect and migrate at the same moment; what each applied, and what failed."""
    start = threading.Barrier(n)
    applied: list[list[str]] = []
    failures: list[BaseException] = []

    def open_it() -> None:
        start.wait()
        try:
            applied.append(migrate(connect(path), STEPS))
        except BaseException as exc:  # collected: a thread's exception would otherwise be lost
            failures.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return applied, failures


def test_many_connections_opening_an_old_database_at_once_all_succeed_and_migrate_once(tmp_path: Path) -> None:
    """Twelve connections at once on a rollback-journal database, ten times over: each must switch it to WAL,
    wait for the others and find the steps done (before rag/sqlite.py, 2 trials in 100 failed with
    "database is locked")."""
    for trial in range(10):
        path = tmp_path / f"old-{trial}.sqlite3"
        with sqlite3.connect(path) as old:
            old.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        applied, failures = open_at_once(path, 12)
        assert failures == []
        assert sorted(applied, key=len) == [[]] * 11 + [["001_notes", "002_note_text"]]
