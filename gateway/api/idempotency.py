"""``Idempotency-Key`` on the API's commands (POST and DELETE): a retried request with
the same key returns the first answer and submits nothing new, also after a restart.

An ASGI middleware in front of the routes. For a POST or DELETE that carries the header
it reserves ``(credential, key)`` in a SQLite table (``DATRIX_HOME/idempotency.db``,
0600), scoped by a SHA-256 of the API key presented (two keys never share answers, and
no key is stored); then:

- the first request runs; a 2xx answer (status, body, ``Content-Type``, ``Location``) is
  stored, anything else releases the reservation so that a retry runs again;
- a repeat of a stored one gets that answer again, with ``Idempotent-Replayed: true``;
- a repeat while the first still runs is a 409 problem with ``Retry-After``;
- the same key on another method, path or query is a 422 problem (the body is not part
  of the comparison: an upload is streamed, never held to be hashed).

Known gap: a server killed after a command was submitted and before its answer was stored
leaves the reservation pending; after ``ABANDONED_S`` a retry runs the request again and
may submit the command a second time (deterministic command ids from the key would close
it: next step).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datrix.gateway.api import problems
from datrix.gateway.api.sqlite_file import PrivateSqliteFile

HEADER = "idempotency-key"
ABANDONED_S = 300.0  # a reservation this old whose request never finished: taken over
_KEPT = ("content-type", "location")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    owner       TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    state       TEXT NOT NULL,
    status      INTEGER,
    headers     TEXT,
    body        BLOB,
    updated     REAL NOT NULL,
    PRIMARY KEY (owner, key)
)"""


@dataclass(frozen=True)
class Stored:
    status: int
    headers: dict[str, str]
    body: bytes


class IdempotencyBackend(Protocol):
    """Where reservations and answers are kept: ``IdempotencyStore`` (SQLite, the
    embedded default) or ``pg_idempotency.PostgresIdempotencyStore`` (Kafka mode: shared
    by every API host)."""

    def reserve(self, owner: str, key: str, fingerprint: str) -> str | Stored: ...

    def complete(self, owner: str, key: str, answer: Stored) -> None: ...

    def release(self, owner: str, key: str) -> None: ...


class IdempotencyStore(PrivateSqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def reserve(self, owner: str, key: str, fingerprint: str) -> str | Stored:
        """``"run"`` (reserved: go on), ``"busy"``, ``"mismatch"``, or the stored answer."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT fingerprint, state, status, headers, body, updated FROM idempotency "
                    "WHERE owner = ? AND key = ?",
                    (owner, key),
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO idempotency (owner, key, fingerprint, state, updated) "
                        "VALUES (?, ?, ?, 'pending', ?)",
                        (owner, key, fingerprint, now),
                    )
                    return "run"
                was, state, status, headers, body, updated = row
                if was != fingerprint:
                    return "mismatch"
                if state == "done":
                    return Stored(int(status), json.loads(headers), bytes(body))
                if now - float(updated) < ABANDONED_S:
                    return "busy"
                db.execute(
                    "UPDATE idempotency SET updated = ? WHERE owner = ? AND key = ?",
                    (now, owner, key),
                )
                return "run"
            finally:
                db.execute("COMMIT")

    def complete(self, owner: str, key: str, answer: Stored) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?, "
                "updated = ? WHERE owner = ? AND key = ?",
                (answer.status, json.dumps(answer.headers), answer.body, time.time(), owner, key),
            )

    def release(self, owner: str, key: str) -> None:
        with self._connect() as db:
            db.execute(
                "DELETE FROM idempotency WHERE owner = ? AND key = ? AND state = 'pending'",
                (owner, key),
            )


def _credential(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp, store: IdempotencyBackend) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        key = headers.get(HEADER)
        credential = _credential(headers)
        if key is None or credential is None:  # no key, or a 401 to come: nothing to keep
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
            answer = problems.problem_response(
                request, 400, "Idempotency-Key must be 1-255 printable ASCII characters"
            )
            await answer(scope, receive, send)
            return
        owner = hashlib.sha256(credential.encode()).hexdigest()
        query = scope.get("query_string", b"").decode("latin-1")
        fingerprint = f"{scope['method']} {scope['path']}?{query}"
        decision = await run_in_threadpool(self.store.reserve, owner, key, fingerprint)
        if isinstance(decision, Stored):
            await send(
                {
                    "type": "http.response.start",
                    "status": decision.status,
                    "headers": [
                        *((k.encode(), v.encode()) for k, v in decision.headers.items()),
                        (b"content-length", str(len(decision.body)).encode()),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": decision.body})
            return
        if decision == "mismatch":
            answer = problems.problem_response(
                request,
                422,
                "this Idempotency-Key was used for another request (method, path or query)",
                slug="idempotency-key-reused",
            )
            await answer(scope, receive, send)
            return
        if decision == "busy":
            answer = problems.problem_response(
                request,
                409,
                "a request with this Idempotency-Key is still being processed",
                slug="idempotency-key-in-use",
                headers={"Retry-After": "1"},
            )
            await answer(scope, receive, send)
            return
        captured: dict[str, Any] = {"status": 0, "headers": {}, "body": bytearray()}
        # The answer is held back until it is stored: a client that retries the moment it
        # has the first answer must find it stored, not a reservation still pending (it
        # got a 409 "still being processed" for a request that was done). The answers of
        # commands are small JSON bodies.
        held: list[Message] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = int(message["status"])
                kept = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
                captured["headers"] = {k: kept[k] for k in _KEPT if k in kept}
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            held.append(message)

        stored = False
        try:
            await self.app(scope, receive, capture)
            if 200 <= captured["status"] < 300:
                answer_ = Stored(captured["status"], captured["headers"], bytes(captured["body"]))
                await run_in_threadpool(self.store.complete, owner, key, answer_)
                stored = True
        finally:
            if not stored:
                await run_in_threadpool(self.store.release, owner, key)
        for message in held:
            await send(message)
