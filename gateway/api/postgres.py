"""PostgreSQL for the API's own tables in Kafka mode (API keys, idempotent answers): a
small pool of connections per role and the tables' migrations.

The tables are no read models (no event makes them, replay does not rebuild them): they
are the gateway's state, kept beside the read models in the deployment's schema
(``DATRIX_DATABASE_SCHEMA``) and migrated like a read model's own tables: numbered from 1
under their owner's name in ``read_model_migrations`` (``projections/migrations.py``
``apply_owned``), by the writer role, under the read models' DDL lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from datrix.gateway.errors import Unreachable
from datrix.projections import migrations
from datrix.streams.postgres import ensure_schema, refuse_privileged

IDLE = 8  # connections kept open per pool; more are opened (and closed) under load


def migrate(url: str, schema: str, owner: str, steps: Sequence[migrations.Migration]) -> None:
    """Apply ``owner``'s migrations not yet applied in ``schema`` (as the writer)."""
    import psycopg

    ensure_schema(url, schema)  # refuses a superuser
    with psycopg.connect(url, autocommit=False, options=f"-c search_path={schema}") as db:
        db.execute("SELECT pg_advisory_xact_lock(hashtext('datrix-read-models-ddl'))")
        db.execute(migrations.CREATE_READ_MODEL_LEDGER)
        applied = {
            int(r[0])
            for r in db.execute(
                "SELECT version FROM read_model_migrations WHERE read_model = %s", (owner,)
            )
        }
        migrations.apply_owned(
            lambda sql, params: db.execute(sql, params or None),
            "postgres",
            schema,
            owner,
            steps,
            applied,
        )


class Pool:
    """Connections to ``url`` (autocommit, ``search_path`` the schema), reused: every
    request authenticates, and a new connection costs more than the query. A connection
    that fails is closed, not returned; an outage is ``Unreachable`` (a 503 problem)."""

    def __init__(self, url: str, schema: str, setting: str, *, autocommit: bool = True) -> None:
        self.url = url
        self.schema = schema
        self.setting = setting  # the variable the URL came from, for the superuser refusal
        self.autocommit = autocommit
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _open(self) -> Any:
        import psycopg

        db = psycopg.connect(
            self.url,
            autocommit=self.autocommit,
            options=f"-c search_path={self.schema}",
            connect_timeout=5,
        )
        try:
            refuse_privileged(db, self.setting)
            if not self.autocommit:
                db.commit()
        except BaseException:
            db.close()
            raise
        return db

    @contextmanager
    def connection(self) -> Iterator[Any]:
        import psycopg

        with self._lock:
            db = self._idle.pop() if self._idle else None
        try:
            if db is None or db.closed:
                db = self._open()
            yield db
        except psycopg.OperationalError as exc:
            if db is not None:
                db.close()
            first = (str(exc).strip().splitlines() or [""])[0]
            raise Unreachable(f"PostgreSQL ({self.setting}) is unreachable: {first}") from None
        except BaseException:
            if db is not None:
                db.close()
            raise
        else:
            with self._lock:
                if len(self._idle) < IDLE and not db.closed:
                    self._idle.append(db)
                    return
            db.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()
