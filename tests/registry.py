"""A knowledge base seen from outside: its registry as another process reads it while a writer works, and the files
this process holds open in its folders."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


def ready_documents(registry: Path) -> int:
    """How many documents the registry holds committed whole (0 while it does not exist or is locked)."""
    if not registry.exists():
        return 0
    try:
        db = sqlite3.connect(registry, timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM documents WHERE status = 'ready'").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def open_files_under(folder: Path) -> list[str]:
    """The files this process holds open inside `folder` (a deleted one's name ends with " (deleted)")."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target.startswith(str(folder)):
            held.append(target)
    return held
