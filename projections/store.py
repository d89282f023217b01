"""Read-model stores: a transaction port and its SQLite adapter (Postgres adapter later)."""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import threading
import time
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
        self._readers = threading.local()  # each thread's reading connection (``query``)
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
        db = self._reader()
        return [tuple(r) for r in db.execute(sql, tuple(params)).fetchall()]

    def _reader(self) -> sqlite3.Connection:
        """This thread's reading connection, kept: opening one (and its PRAGMAs) cost more
        than the API's queries themselves (bench_api.py). Autocommit, so an idle one holds
        no read transaction (checkpoints are not held up); a new one after a fork, or when
        the file was replaced (another inode)."""
        here = self._readers
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:  # removed: connecting makes it anew, as before
            inode = -1
        kept: tuple[sqlite3.Connection, int, int] | None = getattr(here, "kept", None)
        if kept is not None and kept[1] == os.getpid() and kept[2] == inode:
            return kept[0]
        if kept is not None and kept[1] == os.getpid():
            kept[0].close()
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
        db.execute("PRAGMA journal_mode=WAL")
        here.kept = (db, os.getpid(), inode)
        return db

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

    def __init__(self, cur: Any, staged: set[str]) -> None:
        self.cur = cur
        self._pending: dict[str, list[tuple[Any, ...]]] = {}
        self._staged = staged  # the connection's staging tables, made once per connection

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
                # COPY is several times faster than even a pipelined executemany, but
                # PostgreSQL refuses COPY FROM into a table whose row-level security
                # applies to the session, as FORCE makes it apply to the owner: COPY into
                # a temporary staging table, then one INSERT ... SELECT (policies checked)
                table, columns = target.group(1), target.group(2)
                stage = f"datrix_stage_{table}"
                if stage not in self._staged:
                    self.cur.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    )
                    self._staged.add(stage)
                with self.cur.copy(f"COPY {stage} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                self.cur.execute(
                    f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage}; "
                    f"DELETE FROM {stage}"
                )
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
SESSION_TTL_S = 900  # a tenant session's lifetime; the store issues a new one before it ends


class PostgresReadStore:
    """Read models in PostgreSQL (same tables and SQL as SQLite).

    Two roles (docs/security.md, "Who can read"). The store opened without ``tenant``
    connects with ``url`` as the writer (``datrix_writer``): it runs the migrations, and
    the projector writes every tenant's rows through it. A store for a tenant
    (``for_tenant``) connects with ``reader_url`` as ``datrix_reader``, which may only
    SELECT, and row-level security (forced on every tenant-bearing table) shows it the
    rows of one tenant: the tenant of the session the writer issued for it (a random token
    in ``reader_sessions``, presented per transaction as ``datrix.session``). A query that
    forgets its ``WHERE tenant = ...`` still sees one tenant's rows, and a statement run on
    the reader's connection cannot choose another tenant: it would need that tenant's
    token. Neither role is a superuser; a URL that logs in as one is refused.
    """

    def __init__(
        self,
        url: str,
        schema: str = "public",
        tenant: str | None = None,
        reader_url: str | None = None,
    ) -> None:
        import psycopg

        self.url = url
        self.schema = schema
        self.tenant = tenant
        self.reader_url = reader_url
        self._psycopg = psycopg
        self._conn: Any = None
        self._lock = threading.Lock()
        self._installed: set[tuple[str, int]] = set()  # read models' migrations known applied
        self._session: tuple[str, float] | None = None  # token, monotonic renewal time
        self._staged: set[str] = set()  # the write connection's temporary staging tables
        self._reader_checked = False
        if tenant is None:
            self._migrate()
        elif not tenant:
            raise ValueError("a tenant's read store needs a tenant")
        elif reader_url is None:
            raise ValueError(
                "a tenant's read store reads as the reader role: DATRIX_DATABASE_READER_URL "
                "is not set"
            )

    def _migrate(self) -> None:
        from datrix.streams.postgres import ensure_schema

        ensure_schema(self.url, self.schema)
        with self._connect() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
            db.execute(migrations.CREATE_LEDGER)
            applied = {int(r[0]) for r in db.execute("SELECT version FROM schema_migrations")}
            migrations.apply(
                # no parameters: None, so a '%' in a statement (format('%I')) is taken as is
                lambda sql, params: db.execute(sql, params or None),
                "postgres",
                self.schema,
                applied,
            )

    def install(self, read_model: str, steps: Sequence[migrations.Migration]) -> list[int]:
        if all((read_model, m.version) in self._installed for m in steps):
            return []
        with self._connect() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
            db.execute(migrations.CREATE_READ_MODEL_LEDGER)
            applied = _owned(db.execute, read_model, "%s")
            done = migrations.apply_owned(
                lambda sql, params: db.execute(sql, params or None),
                "postgres",
                self.schema,
                read_model,
                steps,
                applied,
            )
        self._installed |= {(read_model, v) for v in {*applied, *done}}
        return done

    def _connect(self) -> Any:
        """The writer's connection; for a tenant's store, the reader's."""
        url = self.url if self.tenant is None or self.reader_url is None else self.reader_url
        return self._psycopg.connect(url, autocommit=False, options=f"-c search_path={self.schema}")

    def _writer(self) -> Any:
        """The store's one long-lived write connection (a new connection per projected
        batch cost ~10 ms, more than projecting a hundred events)."""
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._staged = set()
        return self._conn

    def for_tenant(self, tenant: str) -> PostgresReadStore:
        """The store the query layer reads through for ``tenant``: the authenticated
        caller's tenant (the CLI: its configured DATRIX_TENANT; the HTTP API: its key's),
        never a value a request carries."""
        if self.reader_url is None:
            raise ValueError(
                "tenant-scoped reads run as the reader role: DATRIX_DATABASE_READER_URL is not set"
            )
        return PostgresReadStore(self.url, self.schema, tenant=tenant, reader_url=self.reader_url)

    def _token(self) -> str:
        """This store's tenant session: issued by the writer (the only role that can read
        or write ``reader_sessions``), renewed before it expires."""
        now = time.monotonic()
        if self._session is not None and self._session[1] > now:
            return self._session[0]
        token = secrets.token_urlsafe(32)
        with self._psycopg.connect(
            self.url, autocommit=False, options=f"-c search_path={self.schema}"
        ) as db:
            db.execute("SET LOCAL synchronous_commit = off")  # lost in a crash: issue another
            db.execute("DELETE FROM reader_sessions WHERE expires_at < now()")
            db.execute(
                "INSERT INTO reader_sessions (token, tenant, expires_at) "
                "VALUES (%s, %s, now() + make_interval(secs => %s))",
                (token, self.tenant, SESSION_TTL_S),
            )
        self._session = (token, now + SESSION_TTL_S / 2)
        return token

    @contextmanager
    def transaction(self) -> Iterator[_PostgresTx]:
        """One read-model transaction on the store's write connection. Plain inserts are
        batched (COPY / executemany), so a batch of events costs a few round trips."""
        with self._lock:
            db = self._writer()
            try:
                with db.transaction(), db.cursor() as cur:
                    self._scope(cur)
                    tx = _PostgresTx(cur, self._staged)
                    yield tx
                    tx.flush()
            except (self._psycopg.OperationalError, self._psycopg.InterfaceError):
                db.close()  # broken (e.g. the server restarted): reconnect next time
                raise
            except BaseException:
                self._staged.clear()  # a staging table made in it was rolled back
                raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _scope(self, cur: Any) -> None:
        """A tenant's transaction presents its session (parameters are bound on the
        server, so other sessions' ``pg_stat_activity`` shows ``$1``, not the token)."""
        if self.tenant is None:
            return
        if not self._reader_checked:
            from datrix.streams.postgres import refuse_privileged

            refuse_privileged(cur, "DATRIX_DATABASE_READER_URL")
            self._reader_checked = True
        cur.execute(
            f"SELECT set_config('{migrations.SESSION_SETTING}', %s, true)", (self._token(),)
        )

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        for attempt in range(2):
            try:
                with self._connect() as db, db.cursor() as cur:
                    self._scope(cur)
                    cur.execute(_pg(sql), tuple(params))
                    return [tuple(r) for r in cur.fetchall()]
            except self._psycopg.Error as exc:
                if attempt or getattr(exc, "sqlstate", None) != migrations.BAD_SESSION:
                    raise
                self._session = None  # expired, or lost in a crash: issue a new one
        raise AssertionError("unreachable")

    def position(self, name: str) -> int:
        rows = self.query("SELECT position FROM projector_position WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def drop_schema(self) -> None:
        with self._psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
