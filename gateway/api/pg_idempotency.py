"""Idempotent answers in PostgreSQL (Kafka mode): the ``IdempotencyBackend`` of
``idempotency.py`` for several API hosts. A retry reaches whichever host the load
balancer picks; a per-host SQLite file would not know the first answer there, and the
retry would submit its command again.

The same rules as the SQLite store: a reservation per ``(owner, key)`` (owner: a SHA-256
of the presented API key), the answer stored once the request is done, a reservation
abandoned for ``ABANDONED_S`` taken over. The table ``api_idempotency`` is the writer's
(the API process holds the writer URL already: it issues the reader's tenant sessions);
the reader has no privilege on it. A reservation is one transaction holding the row's
lock (``INSERT ... ON CONFLICT DO NOTHING`` then ``SELECT ... FOR UPDATE``), so two hosts
given the same key at once cannot both run the request.
"""

from __future__ import annotations

import json
import time

from datrix.gateway.api.idempotency import IdempotencyBackend, Stored, decide
from datrix.gateway.api.postgres import Pool, migrate
from datrix.projections.migrations import Migration
from datrix.streams.settings import Settings

OWNER = "gateway.api_idempotency"


def _schema_v1(schema: str) -> list[str]:
    return [
        "CREATE TABLE IF NOT EXISTS api_idempotency (owner TEXT NOT NULL, key TEXT NOT NULL, "
        "fingerprint TEXT NOT NULL, state TEXT NOT NULL, status INTEGER, headers TEXT, "
        "body BYTEA, updated DOUBLE PRECISION NOT NULL, PRIMARY KEY (owner, key))",
        "REVOKE ALL ON api_idempotency FROM PUBLIC",
    ]


def _schema_v2(schema: str) -> list[str]:
    # a hash of the first request (method, path, query, body): a reuse of the key with
    # another request is refused (idempotency.py)
    return ["ALTER TABLE api_idempotency ADD COLUMN IF NOT EXISTS request_sha TEXT"]


MIGRATIONS = [
    Migration(1, "idempotent answers", [], _schema_v1),
    Migration(2, "the first request's hash", [], _schema_v2),
]


class PostgresIdempotencyStore:
    def __init__(self, url: str, schema: str) -> None:
        self._pool = Pool(url, schema, "DATRIX_DATABASE_URL")
        migrate(url, schema, OWNER, MIGRATIONS)

    def reserve(self, owner: str, key: str, fingerprint: str) -> str | Stored:
        """``"run"`` (reserved: go on), ``"busy"``, ``"mismatch"``, or the stored answer."""
        now = time.time()
        with self._pool.connection() as db, db.transaction():
            inserted = db.execute(
                "INSERT INTO api_idempotency (owner, key, fingerprint, state, updated) "
                "VALUES (%s, %s, %s, 'pending', %s) ON CONFLICT DO NOTHING",
                (owner, key, fingerprint, now),
            ).rowcount
            if inserted:
                return "run"
            row = db.execute(
                "SELECT fingerprint, state, status, headers, body, updated, request_sha "
                "FROM api_idempotency "
                "WHERE owner = %s AND key = %s FOR UPDATE",
                (owner, key),
            ).fetchone()
            if row is None:  # released between the two statements: reserve it now
                db.execute(
                    "INSERT INTO api_idempotency (owner, key, fingerprint, state, updated) "
                    "VALUES (%s, %s, %s, 'pending', %s)",
                    (owner, key, fingerprint, now),
                )
                return "run"
            decision = decide(tuple(row), fingerprint, now)
            if decision == "run":  # abandoned: taken over
                db.execute(
                    "UPDATE api_idempotency SET updated = %s WHERE owner = %s AND key = %s",
                    (now, owner, key),
                )
            return decision

    def complete(self, owner: str, key: str, answer: Stored) -> None:
        with self._pool.connection() as db:
            db.execute(
                "UPDATE api_idempotency SET state = 'done', status = %s, headers = %s, "
                "body = %s, updated = %s, request_sha = %s WHERE owner = %s AND key = %s",
                (
                    answer.status,
                    json.dumps(answer.headers),
                    answer.body,
                    time.time(),
                    answer.request_sha,
                    owner,
                    key,
                ),
            )

    def release(self, owner: str, key: str) -> None:
        with self._pool.connection() as db:
            db.execute(
                "DELETE FROM api_idempotency WHERE owner = %s AND key = %s AND state = 'pending'",
                (owner, key),
            )


def open_idempotency_store(settings: Settings) -> IdempotencyBackend:
    """Kafka mode's in PostgreSQL, the embedded default's ``DATRIX_HOME/idempotency.db``."""
    from datrix.gateway.api.idempotency import IdempotencyStore

    if not settings.embedded and settings.database_url:
        return PostgresIdempotencyStore(settings.database_url, settings.database_schema)
    return IdempotencyStore(settings.home / "idempotency.db")
