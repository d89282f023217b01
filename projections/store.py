"""Read-model stores: a transaction port and its SQLite adapter (Postgres adapter later)."""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from datrix.projections import migrations


class Tx(Protocol):
    """What a projector may do inside one read-model transaction ('?' placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...


class ReadStore(Protocol):
    def transaction(self) -> Any: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def position(self, name: str) -> int: ...

    def install(self, read_model: str, steps: Sequence[migrations.Migration]) -> list[int]:
        """Apply a read model's own migrations that the store has not recorded."""
        ...


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
        self._installed: set[tuple[str, int]] = set()  # read models' migrations known applied
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

    def install(self, read_model: str, steps: Sequence[migrations.Migration]) -> list[int]:
        if all((read_model, m.version) in self._installed for m in steps):
            return []
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(migrations.CREATE_READ_MODEL_LEDGER)
            applied = _owned(db.execute, read_model)
            done = migrations.apply_owned(
                lambda sql, params: db.execute(sql, params),
                "sqlite",
                "main",
                read_model,
                steps,
                applied,
            )
            db.execute("COMMIT")
        self._installed |= {(read_model, v) for v in {*applied, *done}}
        return done


def _owned(execute: Any, read_model: str, mark: str = "?") -> set[int]:
    rows = execute(
        f"SELECT version FROM read_model_migrations WHERE read_model = {mark}", (read_model,)
    ).fetchall()
    return {int(r[0]) for r in rows}


def _deferrable(sql: str) -> bool:
    """Plain INSERTs can wait and go out as one ``executemany`` per statement: read-model
    tables have no foreign keys, so inserts into different tables commute, and every
    UPDATE, upsert or read flushes them first, so nothing ever sees a missing row."""
    return sql.startswith("INSERT INTO") and "ON CONFLICT" not in sql


class _PostgresTx:
    """A read-model transaction that batches plain INSERTs by statement (in order within
    a statement); a unique violation still surfaces before commit, at the flush."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur
        self._pending: dict[str, list[tuple[Any, ...]]] = {}

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        if _deferrable(sql):
            self._pending.setdefault(sql, []).append(tuple(params))
            return
        self.flush()
        self.cur.execute(_pg(sql), tuple(params))

    def fetch_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.flush()
        self.cur.execute(_pg(sql), tuple(params))
        row = self.cur.fetchone()
        return tuple(row) if row is not None else None

    def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for sql, rows in pending.items():
            target = _INSERT_TARGET.match(sql)
            if target is not None and len(rows) >= _COPY_FROM:
                # COPY is several times faster than even a pipelined executemany
                table, columns = target.group(1), target.group(2)
                with self.cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            elif len(rows) == 1:
                self.cur.execute(_pg(sql), rows[0])
            else:
                self.cur.executemany(_pg(sql), rows)


# an INSERT whose values are all parameters (no literals), so COPY can take its rows
_INSERT_TARGET = re.compile(
    r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \(\s*\?(?:\s*,\s*\?)*\s*\)\s*$"
)
_COPY_FROM = 8


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
        self._conn: Any = None
        self._lock = threading.Lock()
        self._installed: set[tuple[str, int]] = set()  # read models' migrations known applied
        if tenant is None:
            self._migrate()

    def _migrate(self) -> None:
        from datrix.streams.postgres import ensure_schema

        ensure_schema(self.url, self.schema)
        with self._connect() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
            db.execute(migrations.CREATE_LEDGER)
            applied = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
            migrations.apply(
                lambda sql, params: db.execute(sql, params), "postgres", self.schema, applied
            )

    def install(self, read_model: str, steps: Sequence[migrations.Migration]) -> list[int]:
        if all((read_model, m.version) in self._installed for m in steps):
            return []
        with self._connect() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
            db.execute(migrations.CREATE_READ_MODEL_LEDGER)
            applied = _owned(db.execute, read_model, "%s")
            done = migrations.apply_owned(
                lambda sql, params: db.execute(sql, params),
                "postgres",
                self.schema,
                read_model,
                steps,
                applied,
            )
        self._installed |= {(read_model, v) for v in {*applied, *done}}
        return done

    def _connect(self) -> Any:
        return self._psycopg.connect(
            self.url, autocommit=False, options=f"-c search_path={self.schema}"
        )

    def _writer(self) -> Any:
        """The store's one long-lived write connection (a new connection per projected
        batch cost ~10 ms, more than projecting a hundred events)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        return self._conn

    def for_tenant(self, tenant: str) -> PostgresReadStore:
        return PostgresReadStore(self.url, self.schema, tenant=tenant)

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        """One read-model transaction on the store's write connection. Plain inserts are
        batched (COPY / executemany), so a batch of events costs a few round trips."""
        with self._lock:
            db = self._writer()
            try:
                with db.transaction(), db.cursor() as cur:
                    self._scope(cur)
                    tx = _PostgresTx(cur)
                    yield tx
                    tx.flush()
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError):
                db.close()  # broken (e.g. the server restarted): reconnect next time
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

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
