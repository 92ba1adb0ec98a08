"""Reading a knowledge base's registry from outside, as another process sees it while a writer works."""

from __future__ import annotations

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
