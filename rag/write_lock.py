"""The write lock of a knowledge base, and who its writers are.

Several processes (the app, the CLI) and threads may use one data directory. Writers take turns: each write
span (begin → add chunks → commit or abort, a delete, a recovery) holds an OS-level lock on the data
directory (`write.lock`, the filelock package); readers never take it. Each row being indexed or deleted
records its writer (host, pid, and a token of the open store), so recovery removes only what a writer that is
gone left behind (`abandoned`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from rag.errors import StoreError

# A writer waits this long for another one's span (an ingest wave of up to ~1,000 chunks takes about a minute
# on a CPU) before giving up with a message.
WRITE_LOCK_TIMEOUT = 300.0
LOCK_FILE = "write.lock"
# The tokens of the stores open in this process. Each open store is a writer of its own (a pid can be reused,
# after a reboot or in a container, a token cannot); a closed one is gone, like a process that ended.
_LIVE_TOKENS: set[str] = set()


class WriteLock:
    """One open store's turn at writing to the knowledge base in `data_dir`, and its identity as a writer."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._token = uuid.uuid4().hex
        _LIVE_TOKENS.add(self._token)
        # Thread-local: two threads of this process (two app sessions) take turns like two processes.
        self._lock = FileLock(data_dir / LOCK_FILE, timeout=WRITE_LOCK_TIMEOUT, thread_local=True)

    @property
    def writer(self) -> str:
        """This store as a writer, "host:pid:token": recorded on the rows it is indexing or deleting."""
        return f"{socket.gethostname()}:{os.getpid()}:{self._token}"

    @contextmanager
    def held(self, timeout: float | None = None) -> Iterator[None]:
        """The lock held for a write span, re-entrant in a thread; after `timeout` seconds (WRITE_LOCK_TIMEOUT when
        None) of another writer's span, a StoreError that says to try again."""
        try:
            self._lock.acquire(timeout=WRITE_LOCK_TIMEOUT if timeout is None else timeout)
        except Timeout as exc:
            raise StoreError(
                f"Another process (or app session) has been writing to the knowledge base in {self.data_dir} for "
                f"over {WRITE_LOCK_TIMEOUT if timeout is None else timeout:.0f} s: try again when it is done (an "
                "ingest of many files writes in turns, a minute at a time)."
            ) from exc
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def held_if_free(self) -> Iterator[bool]:
        """Without waiting: the lock held for a write span (True) when nobody else holds it; nothing held (False)
        when another writer does."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            self._lock.release()

    def is_held(self) -> bool:
        """Does this thread hold the lock (inside a span)?"""
        return bool(self._lock.is_locked)

    def is_free(self) -> bool:
        """Could the lock be taken now (nobody else holds it)?"""
        with self.held_if_free() as free:
            return free

    def close(self) -> None:
        _LIVE_TOKENS.discard(self._token)  # whatever it left half-done is abandoned now


def abandoned(writer: str | None, lock_free: bool) -> bool:
    """Is the writer recorded on a row gone? Rows from before writers were recorded have none; a writer on this
    host is gone when its pid is; any writer but this process is gone when nobody holds the write lock (a live
    writer holds it for its whole span)."""
    if not writer:
        return True
    host, _, rest = writer.partition(":")
    pid, _, token = rest.partition(":")
    if token in _LIVE_TOKENS:
        return False  # a store open in this process: alive (its own rows are removed by its abort)
    if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
        return True
    return lock_free


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
