"""The write lock of a knowledge base: one write span at a time across stores, processes and threads (re-entrant
in a thread), and which recorded writers are gone."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from rag.errors import StoreError
from rag.write_lock import LOCK_FILE, WriteLock, abandoned


def in_another_thread(lock: WriteLock) -> bool:
    """Whether another thread finds the lock free (each thread of a store takes its turn like another process)."""
    seen: list[bool] = []
    thread = threading.Thread(target=lambda: seen.append(lock.is_free()))
    thread.start()
    thread.join(timeout=30)
    return seen[0]


def test_a_span_is_re_entrant_in_its_thread_and_keeps_every_other_writer_out(tmp_path: Path) -> None:
    mine, theirs = WriteLock(tmp_path), WriteLock(tmp_path)
    assert not mine.is_held() and mine.is_free() and theirs.is_free()
    with mine.held():
        with mine.held(timeout=0):  # the same thread again: no wait
            assert mine.is_held() and mine.is_free()
        assert mine.is_held() and (tmp_path / LOCK_FILE).exists()
        assert not theirs.is_held() and not theirs.is_free()
        assert not in_another_thread(mine)  # the same store in another thread waits its turn too
        with theirs.held_if_free() as got:
            assert got is False and not theirs.is_held()
        with pytest.raises(StoreError) as waited, theirs.held(timeout=0.05):
            pytest.fail("two writers at once")
    message = str(waited.value)
    assert message.startswith(f"Another process (or app session) has been writing to the knowledge base in {tmp_path}")
    assert "for over 0 s: try again when it is done" in message
    assert not mine.is_held() and theirs.is_free() and in_another_thread(mine)
    with theirs.held_if_free() as got:
        assert got is True and theirs.is_held() and not mine.is_free()
    assert mine.is_free()


def test_a_writer_is_this_host_this_process_and_a_token_of_its_own(tmp_path: Path) -> None:
    first, second = WriteLock(tmp_path), WriteLock(tmp_path)
    host, pid, token = first.writer.split(":")
    assert (host, pid) == (socket.gethostname(), str(os.getpid())) and len(token) == 32
    assert second.writer != first.writer and first.writer == first.writer  # the same for a store's whole life


def test_only_writers_that_are_gone_are_abandoned(tmp_path: Path) -> None:
    assert abandoned(None, lock_free=False) and abandoned("", lock_free=False)  # rows from before writers
    live = WriteLock(tmp_path)
    assert not abandoned(live.writer, lock_free=True)  # open in this process: alive, whatever the lock says
    live.close()
    assert abandoned(live.writer, lock_free=True) and not abandoned(live.writer, lock_free=False)
    dead = f"{socket.gethostname()}:{2**22 + 1}:sometoken"  # above Linux's pid_max: a process that has ended
    assert abandoned(dead, lock_free=False)
    elsewhere = "another-host:1:sometoken"  # its pid cannot be asked: gone when nobody holds the lock
    assert abandoned(elsewhere, lock_free=True) and not abandoned(elsewhere, lock_free=False)
    this_process = f"{socket.gethostname()}:{os.getpid()}:closedtoken"
    assert not abandoned(this_process, lock_free=False) and abandoned(this_process, lock_free=True)
