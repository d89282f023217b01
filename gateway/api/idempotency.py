"""``Idempotency-Key`` on the API's commands (POST and DELETE): a retried request with
the same key returns the first answer and submits nothing new, also after a restart (and
after a kill), and the same key on a different request is refused (the IETF
idempotency-key draft).

An ASGI middleware in front of the routes. For a POST or DELETE that carries the header
it reserves ``(credential, key)`` in a SQLite table (``DATRIX_HOME/idempotency.db``,
0600), scoped by a SHA-256 of the API key presented (two keys never share answers, and
no key is stored); then:

- the first request runs; a 2xx answer (status, body, ``Content-Type``, ``Location``) is
  stored with a SHA-256 of the request (method, path, query and body: the body hashed as
  it streams through, never held), anything else releases the reservation so that a
  retry runs again;
- a repeat of a stored one gets that answer again, with ``Idempotent-Replayed: true``,
  when its method, path, query and body are the same (its body is read and hashed as it
  streams in); another request under the same key is a 422 problem;
- a repeat while the first still runs is a 409 problem with ``Retry-After``.

The command ids of the request derive from ``(API key id, Idempotency-Key)``
(``seed``: routes pass it to the use cases, ``services.derived_id``), so when the answer
was lost (the server killed after the command was submitted and before its answer was
stored) the retry runs the request again and submits the *same* command ids, which the
command log and the processor drop as seen before: a double submission is one command.
A reservation left pending by a process that is gone (its pid no longer runs; the file
is local to the host) is taken over at once, one older than ``ABANDONED_S`` too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from datrix.gateway.api import problems
from datrix.gateway.api.keys import parse
from datrix.gateway.api.sqlite_file import PrivateSqliteFile

HEADER = "idempotency-key"
ABANDONED_S = 300.0  # a reservation this old whose request never finished: taken over
_KEPT = ("content-type", "location")
SEED = "idempotency_seed"  # the request state's entry (routes: ``seed(request)``)
_NAMESPACE = uuid.UUID("6f1c2a52-3f0e-5e47-9b1a-8f7d7f0c6d21")
log = logging.getLogger("datrix.api")

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
    request_sha TEXT,
    holder      INTEGER,
    PRIMARY KEY (owner, key)
)"""
_ADDED = (("request_sha", "TEXT"), ("holder", "INTEGER"))  # columns later than the table


def seed(request: Request) -> uuid.UUID | None:
    """The seed this request's command ids derive from, when it has an Idempotency-Key."""
    found = getattr(request.state, SEED, None)
    return found if isinstance(found, uuid.UUID) else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Stored:
    status: int
    headers: dict[str, str]
    body: bytes
    request_sha: str | None = None  # None: stored before requests were hashed


class IdempotencyBackend(Protocol):
    """Where reservations and answers are kept: ``IdempotencyStore`` (SQLite, the
    embedded default) or ``pg_idempotency.PostgresIdempotencyStore`` (Kafka mode: shared
    by every API host)."""

    def reserve(self, owner: str, key: str, fingerprint: str) -> str | Stored: ...

    def complete(self, owner: str, key: str, answer: Stored) -> None: ...

    def release(self, owner: str, key: str) -> None: ...


def decide(
    row: tuple[Any, ...], fingerprint: str, now: float, *, holder_alive: bool = True
) -> str | Stored:
    """What a stored reservation ``row`` (fingerprint, state, status, headers, body,
    updated, request_sha) means for a request: ``"mismatch"``, the stored answer,
    ``"busy"``, or ``"run"`` — its holder is gone (killed) or it is stale, so the caller
    takes it over and runs the request again (with the same derived command ids: a
    command the holder did submit is not submitted twice). Both stores decide here."""
    was, state, status, headers, body, updated, request_sha = row
    if was != fingerprint:
        return "mismatch"
    if state == "done":
        return Stored(int(status), json.loads(headers), bytes(body), request_sha)
    if now - float(updated) < ABANDONED_S and holder_alive:
        return "busy"
    return "run"


class IdempotencyStore(PrivateSqliteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)
        with self._connect() as db:
            have = {row[1] for row in db.execute("PRAGMA table_info(idempotency)")}
            for column, kind in _ADDED:
                if column not in have:
                    db.execute(f"ALTER TABLE idempotency ADD COLUMN {column} {kind}")

    def reserve(self, owner: str, key: str, fingerprint: str) -> str | Stored:
        """``"run"`` (reserved: go on), ``"busy"``, ``"mismatch"``, or the stored answer."""
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT fingerprint, state, status, headers, body, updated, request_sha, "
                    "holder FROM idempotency WHERE owner = ? AND key = ?",
                    (owner, key),
                ).fetchone()
                if row is None:
                    db.execute(
                        "INSERT INTO idempotency (owner, key, fingerprint, state, updated, "
                        "holder) VALUES (?, ?, ?, 'pending', ?, ?)",
                        (owner, key, fingerprint, now, os.getpid()),
                    )
                    return "run"
                decision = decide(row[:7], fingerprint, now, holder_alive=_alive(row[7]))
                if decision == "run":
                    db.execute(
                        "UPDATE idempotency SET updated = ?, holder = ? "
                        "WHERE owner = ? AND key = ?",
                        (now, os.getpid(), owner, key),
                    )
                return decision
            finally:
                db.execute("COMMIT")

    def complete(self, owner: str, key: str, answer: Stored) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ?, "
                "updated = ?, request_sha = ? WHERE owner = ? AND key = ?",
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
        try:
            decision = await run_in_threadpool(self.store.reserve, owner, key, fingerprint)
        except Exception as exc:  # the store's database is down: a 503, not a 500
            log.warning("idempotency store unavailable: %s", exc)
            answer = problems.problem_response(
                request,
                503,
                "the idempotency store is unavailable; retry with the same Idempotency-Key",
                headers={"Retry-After": "5"},
            )
            await answer(scope, receive, send)
            return
        if isinstance(decision, Stored) and decision.request_sha is not None:
            digest = _RequestHash(fingerprint, receive, _boundary(headers))
            await digest.drain()
            if digest.hexdigest() != decision.request_sha:
                decision = "mismatch"
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
                "this Idempotency-Key was used for another request (method, path, query or body)",
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
        key_id = parse(credential)
        if key_id is not None:  # else a 401 to come
            scope.setdefault("state", {})[SEED] = uuid.uuid5(_NAMESPACE, f"{key_id[0]}\n{key}")
        digest = _RequestHash(fingerprint, receive, _boundary(headers))
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
            await self.app(scope, digest.receive, capture)
            if 200 <= captured["status"] < 300:
                await digest.drain()  # what the route left unread counts too
                answer_ = Stored(
                    captured["status"],
                    captured["headers"],
                    bytes(captured["body"]),
                    digest.hexdigest(),
                )
                try:
                    await run_in_threadpool(self.store.complete, owner, key, answer_)
                    stored = True
                except Exception as exc:
                    # the command was handed in: answer it. A retry runs the request again,
                    # with the same derived command ids, so it submits nothing new.
                    log.warning("idempotency store: answer not kept: %s", exc)
        finally:
            if not stored:
                try:
                    await run_in_threadpool(self.store.release, owner, key)
                except Exception as exc:
                    log.warning("idempotency store: reservation not released: %s", exc)
        for message in held:
            await send(message)


def _boundary(headers: Headers) -> bytes | None:
    """The boundary of a multipart body, else None."""
    kind, options = parse_options_header(headers.get("content-type", ""))
    if not kind.lower().startswith(b"multipart/"):
        return None
    return options.get(b"boundary") or None


class _RequestHash:
    """SHA-256 of a request (its method, path and query, then its body), the body hashed
    chunk by chunk as it is received (never held). A multipart body's boundary is hashed
    as a fixed token: clients draw a new random one for every request, a retry too."""

    def __init__(self, fingerprint: str, receive: Receive, boundary: bytes | None) -> None:
        self._receive = receive
        self._sha = hashlib.sha256(fingerprint.encode() + b"\n")
        self._done = False
        self._boundary = boundary
        self._carry = b""  # the tail that may be the start of a boundary

    def _update(self, chunk: bytes, last: bool) -> None:
        b = self._boundary
        if not b:
            self._sha.update(chunk)
            return
        data = self._carry + chunk
        at = 0
        while (found := data.find(b, at)) != -1:
            self._sha.update(data[at:found])
            self._sha.update(b"\x00boundary\x00")
            at = found + len(b)
        safe = len(data) if last else max(at, len(data) - (len(b) - 1))
        self._sha.update(data[at:safe])
        self._carry = data[safe:]

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            last = not message.get("more_body", False)
            self._update(message.get("body", b""), last)
            if last:
                self._done = True
        elif message["type"] == "http.disconnect":
            self._done = True
        return message

    async def drain(self) -> None:
        while not self._done:
            await self.receive()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()
