"""Read-model stores: a transaction port and its SQLite adapter (Postgres adapter later)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from projections.schema import INDEXES, TABLES


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
            for ddl in TABLES.values():
                db.execute(ddl)
            for ddl in INDEXES:
                db.execute(ddl)

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


class PostgresReadStore:
    """Read models in PostgreSQL (same tables and SQL as SQLite)."""

    def __init__(self, url: str, schema: str = "public") -> None:
        import psycopg

        self.url = url
        self.schema = schema
        self._psycopg = psycopg
        with self._connect() as db:
            db.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for ddl in TABLES.values():
                db.execute(ddl)
            for ddl in INDEXES:
                db.execute(ddl)

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=False, options=f"-c search_path={self.schema}"
        )

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        with self._connect() as db, db.cursor() as cur:
            yield _PostgresTx(cur)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._connect() as db, db.cursor() as cur:
            cur.execute(_pg(sql), tuple(params))
            return [tuple(r) for r in cur.fetchall()]

    def position(self, name: str) -> int:
        rows = self.query("SELECT position FROM projector_position WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def drop_schema(self) -> None:
        with self._psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
