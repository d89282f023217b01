"""Read-model stores: a transaction port and its SQLite adapter (Postgres adapter later)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from projections import migrations


class Tx(Protocol):
    """What a projector may do inside one read-model transaction ('?' placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...


class ReadStore(Protocol):
    def transaction(self) -> Any: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def position(self, name: str) -> int: ...


class _SQLiteTx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.db.execute(sql, tuple(params))

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.db.execute(sql, tuple(params)).fetchone()
        return tuple(row) if row is not None else None


class SQLiteReadStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(migrations.CREATE_LEDGER)
            applied = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
            migrations.apply(lambda sql, params: db.execute(sql, params), "sqlite", "main", applied)
            db.execute("COMMIT")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[_SQLiteTx]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as db:
            return [tuple(r) for r in db.execute(sql, tuple(params)).fetchall()]

    def position(self, name: str) -> int:
        rows = self.query("SELECT position FROM projector_position WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0


class _PostgresTx:
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cur.execute(_pg(sql), tuple(params))

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.cur.execute(_pg(sql), tuple(params))
        row = self.cur.fetchone()
        return tuple(row) if row is not None else None


def _pg(sql: str) -> str:
    """Our SQL uses '?' placeholders (SQLite); psycopg wants '%s'."""
    return sql.replace("%", "%%").replace("?", "%s")


READER_ROLE = migrations.READER_ROLE


class PostgresReadStore:
    """Read models in PostgreSQL (same tables and SQL as SQLite).

    Tenant isolation by construction: every tenant-bearing table has row-level security
    with a policy on ``current_setting('datrix.tenant')``. A store opened with ``tenant``
    runs each transaction as the unprivileged ``datrix_reader`` role with that setting, so
    even a query that forgets its ``WHERE tenant = ...`` sees one tenant's rows only. The
    projector (no tenant) writes as the owner, which RLS does not restrict.
    """

    def __init__(self, url: str, schema: str = "public", tenant: str | None = None) -> None:
        import psycopg

        self.url = url
        self.schema = schema
        self.tenant = tenant
        self._psycopg = psycopg
        if tenant is None:
            self._migrate()

    def _migrate(self) -> None:
        from streams.event_store import ensure_schema

        ensure_schema(self.url, self.schema)
        with self._connect() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
            db.execute(migrations.CREATE_LEDGER)
            applied = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
            migrations.apply(
                lambda sql, params: db.execute(sql, params), "postgres", self.schema, applied
            )

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=False, options=f"-c search_path={self.schema}"
        )

    def for_tenant(self, tenant: str) -> PostgresReadStore:
        return PostgresReadStore(self.url, self.schema, tenant=tenant)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        # Pipeline mode: statements are sent without waiting for each reply, so a batch
        # of projected events costs a few round trips instead of three per event.
        with self._connect() as db, db.pipeline(), db.cursor() as cur:
            self._scope(cur)
            yield _PostgresTx(cur)

    def _scope(self, cur: Any) -> None:
        if self.tenant is not None:
            cur.execute(f"SET LOCAL ROLE {READER_ROLE}")
            cur.execute("SELECT set_config('datrix.tenant', %s, true)", (self.tenant,))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as db, db.cursor() as cur:
            self._scope(cur)
            cur.execute(_pg(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    def position(self, name: str) -> int:
        rows = self.query("SELECT position FROM projector_position WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def drop_schema(self) -> None:
        with self._psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
