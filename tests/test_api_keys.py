"""API keys on a real SQLite file: shown once, stored hashed, revoked at once, names checked."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from rag.api_keys import DB_NAME, ApiKeyError, ApiKeys


@pytest.fixture
def keys(tmp_path: Path) -> ApiKeys:
    return ApiKeys.in_data_dir(tmp_path)


def test_a_key_is_shown_once_and_only_its_hash_is_kept(keys: ApiKeys, tmp_path: Path) -> None:
    record, secret = keys.create("  my   editor ")
    assert record.name == "my editor" and secret.startswith("rag-") and len(secret) > 40
    assert record.shown == secret[:12] + "…"
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        stored = db.execute("SELECT * FROM api_keys").fetchall()
    assert secret not in repr(stored)
    assert hashlib.sha256(secret.encode()).hexdigest() in repr(stored)
    assert [k.name for k in keys.list()] == ["my editor"]


def test_verify_knows_a_key_and_notes_its_use(keys: ApiKeys) -> None:
    _, secret = keys.create("editor")
    verified = keys.verify(secret)
    assert verified is not None and verified.name == "editor" and verified.last_used_at is not None
    assert keys.list()[0].last_used_at == verified.last_used_at
    assert keys.verify(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert keys.verify("sk-something-else") is None
    assert keys.verify("") is None


def test_a_revoked_key_stops_working_and_is_listed_after_the_active_ones(keys: ApiKeys) -> None:
    old, old_secret = keys.create("old script")
    _, new_secret = keys.create("new script")
    revoked = keys.revoke(old.shown[:8])  # by the start of its key, as listed
    assert revoked.name == "old script" and revoked.revoked_at is not None and not revoked.active
    assert keys.verify(old_secret) is None and keys.verify(new_secret) is not None
    assert [(k.name, k.active) for k in keys.list()] == [("new script", True), ("old script", False)]
    with pytest.raises(ApiKeyError, match="No active API key named 'old script'"):
        keys.revoke("old script")


def test_names_are_checked(keys: ApiKeys) -> None:
    keys.create("editor")
    with pytest.raises(ApiKeyError, match="already a key named 'editor'"):
        keys.create("editor")
    with pytest.raises(ApiKeyError, match="Give the key a name"):
        keys.create("   ")
    with pytest.raises(ApiKeyError, match="at most 60 characters"):
        keys.create("x" * 61)
    with pytest.raises(ApiKeyError, match="keys list"):
        keys.revoke("nobody")
    assert [k.name for k in keys.list()] == ["editor"]


def test_keys_survive_a_restart(tmp_path: Path) -> None:
    _, secret = ApiKeys.in_data_dir(tmp_path).create("editor")
    assert ApiKeys.in_data_dir(tmp_path).verify(secret) is not None
