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
