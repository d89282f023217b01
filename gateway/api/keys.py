"""API keys: who a request is. Each key is bound to one tenant and one role (seeds 000
§2.2); the tenant of every request comes from its key, never from the request.

A key is ``dtx_<id>_<secret>``: ``id`` (12 hex digits) is public and finds the stored
row, ``secret`` (32 random bytes, URL-safe base64) is shown once, when the key is made,
and stored only as ``HMAC-SHA256(salt, secret)`` with a random 16-byte salt per key;
a presented secret is checked with ``hmac.compare_digest``.

Why salted SHA-256 and not argon2: argon2 (or bcrypt, scrypt) is for *passwords*, which
people choose from a small space, so each guess must be made expensive. An API key's
secret is 256 random bits: nobody can enumerate that space however cheap one hash is,
so a slow hash buys no security; it would cost every request tens of milliseconds of CPU
(the API's budget is a p95 under 50 ms) and hand an attacker a cheap way to burn the
server's CPU with bad keys. A per-key salt keeps equal secrets from hashing alike and
defeats precomputed tables; the constant-time compare keeps the check from leaking how
many bytes matched. (GitHub and Stripe tokens are stored the same way.)

The store is a port (``KeyStore``) with two adapters, chosen by ``open_key_store``:
``SQLiteKeyStore`` on the embedded default, a file ``keys.db`` under ``DATRIX_HOME``,
private like the rest of the home (folder 0700, file 0600: ``streams/private_state.py``);
``PostgresKeyStore`` (``pg_keys.py``) in Kafka mode, shared by every API host and by
``datrix keys`` (docs/security.md, "API keys": the writer makes and revokes keys, the
reader authenticates through one function that returns one key's row).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from datrix.gateway.api.sqlite_file import PrivateSqliteFile
from datrix.streams.private_state import open_private
from datrix.streams.settings import Settings

PREFIX = "dtx_"
_KEY = re.compile(r"^dtx_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

# The roles of seeds 000 §2.2 and what each may do through the API. Super Admin (billing)
# and API User (a key *is* programmatic access; its role says what it may do) are not
# roles of their own here.
PERMISSIONS = {
    "datasets:read": "list datasets, read their metadata, columns and versions",
    "datasets:write": "upload, register and delete datasets",
    "scans:run": "request quality scans",
    "quality:read": "read quality scores, issues and their history",
    "commands:read": "read what became of a command",
    "audit:read": "read and verify the audit trail (the compliance module)",
}
ROLES: dict[str, frozenset[str]] = {
    # all permissions
    "admin": frozenset(PERMISSIONS),
    # manage datasets (pipelines, connectors later); no compliance module
    "engineer": frozenset(
        {"datasets:read", "datasets:write", "scans:run", "quality:read", "commands:read"}
    ),
    # quality scans (synthetic data, active learning later); reads datasets
    "scientist": frozenset({"datasets:read", "scans:run", "quality:read", "commands:read"}),
    # the annotation queue only (later): no data access at all
    "annotator": frozenset(),
    # read-only: dashboards, reports, quality scores
    "viewer": frozenset({"datasets:read", "quality:read"}),
}


class KeyError_(ValueError):
    """A key cannot be made or revoked as asked (a bad tenant or role, an unknown id)."""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret: who the holder is."""

    id: str
    tenant: str
    role: str
    name: str
    created_at: str
    revoked_at: str | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return ROLES.get(self.role, frozenset())

    @property
    def actor(self) -> str:
        """Who the key's commands are recorded as (the audit trail's actor)."""
        return f"api:{self.id}"

    def may(self, permission: str) -> bool:
        return permission in self.permissions


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant):
        raise KeyError_(
            f"tenant must be 1-63 characters of A-Z a-z 0-9 _ . - (starting with a letter "
            f"or digit), got {tenant!r}"
        )
    return tenant


def check_role(role: str) -> str:
    if role not in ROLES:
        raise KeyError_(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    return role


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode("ascii"), hashlib.sha256).digest()


def parse(presented: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed key, else None."""
    found = _KEY.match(presented.strip())
    return (found.group(1), found.group(2)) if found else None


def key_id_of(given: str) -> str:
    """The id of a key named by its id or given whole (``dtx_<id>_<secret>``)."""
    wanted = given.strip().lower()
    if wanted.startswith(PREFIX):
        found = parse(wanted)
        wanted = found[0] if found else wanted
    return wanted


@dataclass(frozen=True)
class NewKey:
    """A key just made: its record, secret, salt and hash (what a store inserts)."""

    key: ApiKey
    secret: str
    salt: bytes

    @classmethod
    def make(cls, tenant: str, role: str, name: str = "") -> NewKey:
        check_tenant(tenant)
        check_role(role)
        if len(name) > 200 or not name.isprintable():
            raise KeyError_("the key's name must be printable, at most 200 characters")
        key = ApiKey(secrets.token_hex(6), tenant, role, name, datetime.now(UTC).isoformat())
        return cls(key, secrets.token_urlsafe(32), secrets.token_bytes(16))

    @property
    def full(self) -> str:
        """The key as its holder presents it (shown once)."""
        return f"{PREFIX}{self.key.id}_{self.secret}"

    def row(self) -> tuple[str, str, str, str, bytes, bytes, str]:
        """(id, tenant, role, name, salt, hash, created_at)."""
        k = self.key
        return (
            k.id,
            k.tenant,
            k.role,
            k.name,
            self.salt,
            _digest(self.salt, self.secret),
            k.created_at,
        )


def checked(row: Sequence[Any] | None, secret: str) -> ApiKey | None:
    """The key a stored ``row`` (id, tenant, role, name, created_at, revoked_at, salt,
    hash) is when ``secret`` is its secret and it is not revoked; else None. A missing
    row costs the same hash as a stored one."""
    if row is None:
        _digest(b"\0" * 16, secret)
        return None
    *cols, salt, stored = row
    if not hmac.compare_digest(_digest(bytes(salt), secret), bytes(stored)):
        return None
    key = ApiKey(*cols)
    return None if key.revoked_at is not None else key


class KeyStore(Protocol):
    """Where keys are kept (hashed)."""

    def create(self, tenant: str, role: str, name: str = "") -> tuple[ApiKey, str]:
        """A new key: the stored record and the full key (``dtx_...``), shown once."""
        ...

    def list(self, tenant: str | None = None) -> list[ApiKey]: ...

    def revoke(self, key_id: str) -> ApiKey: ...

    def authenticate(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, if it is a stored, unrevoked key; else None."""
        ...

    def count(self) -> int: ...

    def ping(self) -> None:
        """Raise when the store cannot be read (``/health/ready``)."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    role       TEXT NOT NULL,
    name       TEXT NOT NULL,
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""
_COLS = "id, tenant, role, name, created_at, revoked_at"


class SQLiteKeyStore(PrivateSqliteFile):
    """Keys in ``<home>/keys.db`` (0600 in a 0700 home)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def create(self, tenant: str, role: str, name: str = "") -> tuple[ApiKey, str]:
        made = NewKey.make(tenant, role, name)
        with self._connect() as db:
            db.execute(
                "INSERT INTO api_keys (id, tenant, role, name, salt, hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                made.row(),
            )
        return made.key, made.full

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {_COLS} FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = ?"
            params = (tenant,)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        wanted = key_id_of(key_id)
        with self._connect() as db:
            db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), wanted),
            )
            row = db.execute(f"SELECT {_COLS} FROM api_keys WHERE id = ?", (wanted,)).fetchone()
        if row is None:
            raise KeyError_(f"no API key {key_id!r}")
        return ApiKey(*row)

    def authenticate(self, presented: str) -> ApiKey | None:
        found = parse(presented)
        if found is None:
            return None
        key_id, secret = found
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLS}, salt, hash FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return checked(row, secret)

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])

    def ping(self) -> None:
        with self._connect() as db:
            db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchall()


def open_key_store(settings: Settings) -> KeyStore:
    """The key store of these settings: Kafka mode's in PostgreSQL (shared by every API
    host and ``datrix keys``), the embedded default's ``DATRIX_HOME/keys.db``."""
    if not settings.embedded:
        from datrix.gateway.api.pg_keys import PostgresKeyStore

        return PostgresKeyStore.of(settings)
    return SQLiteKeyStore(settings.home / "keys.db")


ADMIN_KEY_FILE = "api-admin.key"


def ensure_local_admin(settings: Settings, store: KeyStore) -> Path | None:
    """The embedded default's first ``serve``: when the store holds no key at all, make an
    admin key for the settings' tenant and write it to ``DATRIX_HOME/api-admin.key``
    (0600); return that path (None when keys exist or in Kafka mode)."""
    if not settings.embedded or store.count() > 0:
        return None
    _, full = store.create(settings.tenant, "admin", "local admin (first serve)")
    path = settings.home / ADMIN_KEY_FILE
    import os

    fd = open_private(path, os.O_WRONLY | os.O_TRUNC)
    with os.fdopen(fd, "w") as out:
        out.write(full + "\n")
    return path
