"""The Idempotency-Key middleware at the ASGI level: the first answer reaches the client
only once it is stored, so a retry sent the moment the client has it replays it (it used
to find the reservation still pending and get a 409, fresh-ci of b122b8e)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

from datrix.gateway.api.idempotency import IdempotencyMiddleware, IdempotencyStore, Stored

KEY = "scan-sales-1"
CREDENTIAL = "dtx_abc_secret"


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/datasets/sales/scan",
        "query_string": b"",
        "headers": [
            (b"authorization", f"Bearer {CREDENTIAL}".encode()),
            (b"idempotency-key", KEY.encode()),
        ],
    }


async def _accepted(scope: Any, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [(b"content-type", b"application/json"), (b"location", b"/v1/x")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"scan_id": "1"}'})


def test_the_answer_is_stored_before_the_client_gets_it(tmp_path: Path) -> None:
    store = IdempotencyStore(tmp_path / "idempotency.db")
    middleware = IdempotencyMiddleware(_accepted, store)
    owner = hashlib.sha256(CREDENTIAL.encode()).hexdigest()
    fingerprint = "POST /v1/datasets/sales/scan?"
    seen_by_a_retry: list[object] = []
    sent: list[dict[str, Any]] = []

    async def client(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            # what a retry sent right now would find
            seen_by_a_retry.append(store.reserve(owner, KEY, fingerprint))
        sent.append(message)

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(middleware(_scope(), nothing, client))
    [found] = seen_by_a_retry
    assert isinstance(found, Stored) and found.status == 202, found
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b'{"scan_id": "1"}'


def test_a_reservation_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    import sqlite3
    import subprocess
    import sys

    store = IdempotencyStore(tmp_path / "idempotency.db")
    assert store.reserve("owner", KEY, "POST /x?") == "run"
    assert store.reserve("owner", KEY, "POST /x?") == "busy"  # this process holds it
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    db = sqlite3.connect(tmp_path / "idempotency.db")
    with db:  # as a server killed mid-request leaves it
        db.execute("UPDATE idempotency SET holder = ?", (int(gone.stdout),))
    db.close()
    assert store.reserve("owner", KEY, "POST /x?") == "run"
    assert store.reserve("owner", KEY, "POST /y?") == "mismatch"


def test_an_older_table_gains_the_new_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "idempotency.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE idempotency (owner TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT "
        "NOT NULL, state TEXT NOT NULL, status INTEGER, headers TEXT, body BLOB, updated "
        "REAL NOT NULL, PRIMARY KEY (owner, key))"
    )
    db.execute(
        "INSERT INTO idempotency VALUES ('o', 'k', 'POST /x?', 'done', 202, '{}', x'7b7d', 0)"
    )
    db.commit()
    db.close()
    store = IdempotencyStore(path)
    assert store.reserve("o", "k", "POST /x?") == Stored(202, {}, b"{}", None)


def test_a_multipart_body_hashes_alike_whatever_its_boundary_and_chunks() -> None:
    from datrix.gateway.api.idempotency import _RequestHash

    def form(boundary: bytes, content: bytes) -> bytes:
        return (
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; '
            b'filename="a.csv"\r\n\r\n' + content + b"\r\n--" + boundary + b"--\r\n"
        )

    def digest(body: bytes, boundary: bytes | None, size: int) -> str:
        chunks = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]

        async def receive() -> Any:
            return messages.pop(0)

        hashed = _RequestHash("POST /v1/datasets?", receive, boundary)
        asyncio.run(hashed.drain())
        return hashed.hexdigest()

    content = b"a,b\n" + b"1,2\n" * 50
    first, second = b"x" * 30 + b"abc", b"y" * 25 + b"defgh"
    seen = {
        digest(form(b, content), b, size)
        for b in (first, second)
        for size in (1, 7, 32, 33, 64, 10_000)
    }
    assert len(seen) == 1
    assert digest(form(first, content + b"3,4\n"), first, 7) not in seen
    # a raw body: the bytes as they are
    assert digest(content, None, 5) == digest(content, None, 1000)


def test_a_store_that_cannot_be_reached_is_a_503_and_the_route_never_runs(
    tmp_path: Path,
) -> None:
    """The store's database gone (Kafka mode: PostgreSQL down) is a 503 problem with
    Retry-After, not a 500, and nothing is submitted without a reservation."""
    path = tmp_path / "idempotency.db"
    store = IdempotencyStore(path)
    for leftover in tmp_path.glob("idempotency.db*"):
        leftover.unlink()
    path.mkdir()  # a real failure to open the database, not a stand-in
    ran: list[bool] = []

    async def route(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)
        await _accepted(scope, receive, send)

    sent: list[dict[str, Any]] = []

    async def client(message: dict[str, Any]) -> None:
        sent.append(message)

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(IdempotencyMiddleware(route, store)(_scope(), nothing, client))
    assert not ran
    start = sent[0]
    assert start["status"] == 503
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert headers["content-type"].startswith("application/problem+json")
    assert headers["retry-after"] == "5"
    assert b"idempotency store is unavailable" in sent[1]["body"]
