"""Room on the disk of a knowledge base: refused before a write that cannot fit, and a write that failed for
lack of it said with how much is free and what to do."""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from rag.disk_space import DISK_RESERVE, check_room, disk_full, full_disk_said, no_room
from rag.errors import DiskFull, StoreError

# The message, as a pattern: the folder, then what is needed ("" when not said).
SAID = (
    r"The disk holding {} is full: [\d,.]+ MB free{}\. Nothing was half-written: free some space \(or set "
    r"RAG_DATA_DIR to a folder on a larger disk\) and try again\."
)


def test_a_full_disk_is_said_with_what_is_free_what_is_needed_and_what_to_do(tmp_path: Path) -> None:
    assert re.fullmatch(SAID.format(re.escape(str(tmp_path)), ""), str(disk_full(tmp_path)))
    assert re.fullmatch(
        SAID.format(re.escape(str(tmp_path)), ", about 3.0 MB needed"), str(disk_full(tmp_path, 3 << 20))
    )
    gone = tmp_path / "missing"  # its space cannot be read: said as none
    assert str(disk_full(gone)).startswith(f"The disk holding {gone} is full: 0.0 MB free.")


def test_room_is_checked_with_a_reserve_and_a_servers_share(tmp_path: Path) -> None:
    free = shutil.disk_usage(tmp_path).free
    check_room(tmp_path, 0, remote=False)
    with pytest.raises(DiskFull, match=r"MB needed\. Nothing was half-written"):
        check_room(tmp_path, 2 * free + 1, remote=False)
    check_room(tmp_path, free, remote=True)  # a Chroma server keeps the vectors: an eighth is the registry's
    with pytest.raises(DiskFull):
        check_room(tmp_path, 16 * free + 8 * DISK_RESERVE, remote=True)
    check_room(tmp_path / "missing", 2 * free + 1, remote=False)  # cannot be read: not refused
    assert not no_room(tmp_path) and not no_room(tmp_path / "missing")


@pytest.mark.parametrize(
    "failure",
    [
        sqlite3.OperationalError("database or disk is full"),
        OSError(errno.ENOSPC, "No space left on device"),
        StoreError("Chroma failed"),  # its cause says why
    ],
)
def test_a_write_failing_for_lack_of_space_is_said_as_a_full_disk(tmp_path: Path, failure: Exception) -> None:
    with pytest.raises(DiskFull, match=r"about 1\.0 MB needed") as said, full_disk_said(tmp_path, 1 << 20):
        if isinstance(failure, StoreError):
            raise failure from OSError(errno.ENOSPC, "No space left on device")
        raise failure
    assert said.value.__cause__ is failure


def test_other_failures_and_a_full_disk_already_said_go_through_as_they_are(tmp_path: Path) -> None:
    for failure in (ValueError("not about space"), disk_full(tmp_path / "elsewhere")):
        with pytest.raises(type(failure)) as raised, full_disk_said(tmp_path):
            raise failure
        assert raised.value is failure
