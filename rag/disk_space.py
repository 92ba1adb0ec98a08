"""Room on the disk holding a knowledge base: checked before a write, and a write that fails for lack of it said
as DiskFull, with how much is free and what to do."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rag.errors import DiskFull
from rag.sqlite import is_disk_full

# Free space kept in hand beyond what a wave needs: SQLite's write-ahead logs (up to 4 MB before a checkpoint) and
# Chroma's index files grow before they shrink back; reads need a little too.
DISK_RESERVE = 8 * 1024 * 1024


def disk_full(data_dir: Path, needed: int | None = None) -> DiskFull:
    """ "The disk holding DATA_DIR is full: N MB free, about M needed", with what to do."""
    free = _free(data_dir) or 0
    need = f", about {_mb(needed)} needed" if needed else ""
    return DiskFull(
        f"The disk holding {data_dir} is full: {_mb(free)} free{need}. Nothing was half-written: free some space "
        "(or set RAG_DATA_DIR to a folder on a larger disk) and try again."
    )


def no_room(data_dir: Path) -> bool:
    """Less than 1 MB free on the disk holding `data_dir` (False when that cannot be read)."""
    free = _free(data_dir)
    return free is not None and free < 1024 * 1024


def check_room(data_dir: Path, needed: int, remote: bool) -> None:
    """Raise DiskFull, before anything is written, when the disk holding the data directory has less free space
    than `needed` bytes and a reserve (SQLite's write-ahead logs and Chroma's index files grow before they
    shrink back). A Chroma server's disk is its own (`remote`): only the registry's share is counted then."""
    if remote:
        needed //= 8
    free = _free(data_dir)
    if free is not None and free < needed + DISK_RESERVE:
        raise disk_full(data_dir, needed + DISK_RESERVE)


@contextmanager
def full_disk_said(data_dir: Path, needed: int | None = None) -> Iterator[None]:
    """A write that fails for lack of space raises DiskFull, which says how much is free and what to do."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if is_disk_full(exc) or is_disk_full(exc.__cause__ or exc):
            raise disk_full(data_dir, needed) from exc
        raise


def _free(data_dir: Path) -> int | None:
    """Free bytes on the disk holding `data_dir`; None when that cannot be read."""
    try:
        return shutil.disk_usage(data_dir).free
    except OSError:
        return None


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / (1024 * 1024):,.1f} MB"
