"""API keys (gateway/api/keys.py): format, hashing, revocation, roles."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from datrix.gateway.api.keys import (
    ROLES,
    KeyError_,
    SQLiteKeyStore,
    ensure_local_admin,
    parse,
)
from datrix.streams.settings import Settings


@pytest.fixture
def store(tmp_path: Path) -> SQLiteKeyStore:
    return SQLiteKeyStore(tmp_path / "home" / "keys.db")


def test_a_key_authenticates_as_its_tenant_and_role(store: SQLiteKeyStore) -> None:
    record, full = store.create("acme", "scientist", "notebook")
    assert full.startswith("dtx_") and parse(full) == (record.id, full.split("_", 2)[2])
    found = store.authenticate(full)
    assert found == record
    assert found.tenant == "acme" and found.role == "scientist"
    assert found.may("scans:run") and not found.may("datasets:write")
    assert found.actor == f"api:{record.id}"


def test_only_a_salted_hash_is_stored(store: SQLiteKeyStore, tmp_path: Path) -> None:
    _, one = store.create("acme", "viewer")
    _, two = store.create("acme", "viewer")
    db = sqlite3.connect(store.path)
    rows = db.execute("SELECT salt, hash FROM api_keys").fetchall()
    db.close()
    assert len({bytes(s) for s, _ in rows}) == 2 and len({bytes(h) for _, h in rows}) == 2
    wal = Path(f"{store.path}-wal")  # checkpointed away when the last connection closed
    raw = store.path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for key in (one, two):
        assert key.split("_", 2)[2].encode() not in raw
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_wrong_malformed_and_revoked_keys_fail(store: SQLiteKeyStore) -> None:
    record, full = store.create("acme", "admin")
    key_id, secret = full.split("_", 2)[1:]
    tampered = f"dtx_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    other_id = f"dtx_{'0' * 12}_{secret}"
    for bad in ("", "dtx_", "Bearer " + full, full + "x", tampered, other_id):
        assert store.authenticate(bad) is None, bad
    assert store.revoke(record.id).revoked_at is not None
    assert store.authenticate(full) is None
    assert store.revoke(full).id == record.id  # the whole key names its id too
    with pytest.raises(KeyError_, match="no API key"):
        store.revoke("ffffffffffff")


def test_bad_tenant_role_and_name_are_refused(store: SQLiteKeyStore) -> None:
    with pytest.raises(KeyError_, match="role"):
        store.create("acme", "root")
    for tenant in ("", "a b", "-x", "x" * 64, "é"):
        with pytest.raises(KeyError_, match="tenant"):
            store.create(tenant, "viewer")
    with pytest.raises(KeyError_, match="name"):
        store.create("acme", "viewer", "two\nlines")
    assert store.count() == 0


def test_the_role_table() -> None:
    assert set(ROLES) == {"admin", "engineer", "scientist", "annotator", "viewer"}
    assert ROLES["annotator"] == frozenset()
    assert all(not p.endswith(":write") and p != "scans:run" for p in ROLES["viewer"])
    assert "audit:read" not in ROLES["engineer"]  # no compliance module
    assert "datasets:write" not in ROLES["scientist"]
    assert all(ROLES[r] <= ROLES["admin"] for r in ROLES)


def test_local_admin_only_once_and_only_embedded(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", tenant="solo")
    store = SQLiteKeyStore(settings.home / "keys.db")
    made = ensure_local_admin(settings, store)
    assert made is not None and stat.S_IMODE(made.stat().st_mode) == 0o600
    key = store.authenticate(made.read_text().strip())
    assert key is not None and (key.tenant, key.role) == ("solo", "admin")
    assert ensure_local_admin(settings, store) is None
    kafka = Settings(home=tmp_path / "other", kafka_bootstrap="localhost:1")
    assert ensure_local_admin(kafka, SQLiteKeyStore(kafka.home / "keys.db")) is None
