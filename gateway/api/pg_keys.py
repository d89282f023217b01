"""API keys in PostgreSQL (Kafka mode): one store for every API host and ``datrix keys``.

Same keys, same hashing as ``SQLiteKeyStore`` (``keys.py``: ``dtx_<id>_<secret>``, only
``HMAC-SHA256(salt, secret)`` kept), in the table ``api_keys`` of the deployment's schema.
Two roles (docs/security.md, "API keys"):

- the writer (``DATRIX_DATABASE_URL``, ``datrix_writer``) owns the table: it makes, lists
  and revokes keys (``datrix keys``, an operator's tool that holds the writer URL anyway);
- the reader (``DATRIX_DATABASE_READER_URL``, ``datrix_reader``) authenticates, on every
  request, through one function, ``datrix_api_key(id)`` (SECURITY DEFINER, owned by the
  writer): it returns the row of the one key id it is given. The reader has no privilege
  on the table itself, so the API's per-request path cannot list keys, learn which
  tenants exist, or write (a revoked key stays revoked; no key can be made). What it can
  get, a key's salt and hash by its id, is worthless without the 256-bit secret.
"""

from __future__ import annotations

from typing import Any

from datrix.gateway.api.keys import ApiKey, KeyError_, NewKey, checked, key_id_of, parse
from datrix.gateway.api.postgres import Pool, migrate
from datrix.projections.migrations import READER_ROLE, Migration
from datrix.streams.settings import Settings, SettingsError

OWNER = "gateway.api_keys"  # its migrations' name in read_model_migrations
LOOKUP = "datrix_api_key"
_COLS = "id, tenant, role, name, created_at, revoked_at"


def _schema_v1(schema: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, tenant TEXT NOT NULL, "
        "role TEXT NOT NULL, name TEXT NOT NULL, salt BYTEA NOT NULL, hash BYTEA NOT NULL, "
        "created_at TEXT NOT NULL, revoked_at TEXT)",
        "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant)",
        "REVOKE ALL ON api_keys FROM PUBLIC",
        # like every tenant-bearing table: row-level security forced; only the writer (the
        # owner, and the lookup function, which runs as it) has a policy; the reader none
        "ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE api_keys FORCE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS api_keys_writer ON api_keys",
        "CREATE POLICY api_keys_writer ON api_keys TO CURRENT_USER USING (true) WITH CHECK (true)",
        f"""CREATE OR REPLACE FUNCTION {LOOKUP}(wanted text)
RETURNS TABLE (id text, tenant text, role text, name text, created_at text,
               revoked_at text, salt bytea, hash bytea)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
  SELECT k.id, k.tenant, k.role, k.name, k.created_at, k.revoked_at, k.salt, k.hash
  FROM "{schema}".api_keys k WHERE k.id = wanted
$body$""",
        f"REVOKE ALL ON FUNCTION {LOOKUP}(text) FROM PUBLIC",
        f'GRANT USAGE ON SCHEMA "{schema}" TO {READER_ROLE}',
        f"GRANT EXECUTE ON FUNCTION {LOOKUP}(text) TO {READER_ROLE}",
    ]


MIGRATIONS = [Migration(1, "api keys and their lookup", [], _schema_v1)]


class PostgresKeyStore:
    """``KeyStore`` in PostgreSQL: writes as the writer, authentication as the reader."""

    def __init__(self, url: str, schema: str, reader_url: str | None) -> None:
        self.schema = schema
        self._writer = Pool(url, schema, "DATRIX_DATABASE_URL")
        self._reader = (
            Pool(reader_url, schema, "DATRIX_DATABASE_READER_URL") if reader_url else None
        )
        migrate(url, schema, OWNER, MIGRATIONS)

    @classmethod
    def of(cls, settings: Settings) -> PostgresKeyStore:
        if not settings.database_url:
            raise SettingsError(
                "Kafka mode keeps API keys in PostgreSQL: set DATRIX_DATABASE_URL (the "
                "writer role) as well"
            )
        return cls(settings.database_url, settings.database_schema, settings.database_reader_url)

    def create(self, tenant: str, role: str, name: str = "") -> tuple[ApiKey, str]:
        made = NewKey.make(tenant, role, name)
        with self._writer.connection() as db:
            db.execute(
                "INSERT INTO api_keys (id, tenant, role, name, salt, hash, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                made.row(),
            )
        return made.key, made.full

    def list(self, tenant: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {_COLS} FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = %s"
            params = (tenant,)
        with self._writer.connection() as db:
            rows = db.execute(sql + " ORDER BY created_at, id", params).fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        wanted = key_id_of(key_id)
        with self._writer.connection() as db, db.transaction():
            db.execute(
                "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                (_now(), wanted),
            )
            row = db.execute(f"SELECT {_COLS} FROM api_keys WHERE id = %s", (wanted,)).fetchone()
        if row is None:
            raise KeyError_(f"no API key {key_id!r}")
        return ApiKey(*row)

    def _lookup(self) -> Pool:
        if self._reader is None:
            raise SettingsError(
                "the HTTP API authenticates as the reader role: set DATRIX_DATABASE_READER_URL"
            )
        return self._reader

    def authenticate(self, presented: str) -> ApiKey | None:
        found = parse(presented)
        if found is None:
            return None
        key_id, secret = found
        with self._lookup().connection() as db:
            row: Any = db.execute(f"SELECT * FROM {LOOKUP}(%s)", (key_id,)).fetchone()
        return checked(row, secret)

    def count(self) -> int:
        with self._writer.connection() as db:
            return int(db.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0])

    def ping(self) -> None:
        """The reader's path: what every request's authentication needs."""
        with self._lookup().connection() as db:
            db.execute(f"SELECT count(*) FROM {LOOKUP}('')").fetchone()

    def close(self) -> None:
        self._writer.close()
        if self._reader is not None:
            self._reader.close()


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat()
