"""Cursor pagination: default 20 items, at most 100. A cursor is opaque (URL-safe base64
of the position) and tied to the list and sort it was made for."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from fastapi import Query

from datrix.gateway.api.problems import ApiProblem

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (at most 100)")]
Cursor = Annotated[
    str | None, Query(max_length=2000, description="`next_cursor` of the previous page")
]


def encode(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kind: str, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, list) or len(position) != length or position[0] != kind:
        raise ApiProblem(400, "cursor: not a cursor this list gave out", slug="bad-cursor")
    return position


def offset_page(
    items: list[Any], cursor: str | None, kind: str, scope: str, limit: int
) -> tuple[list[Any], str | None]:
    """A page of an immutable list (a scan's issues): the cursor is (kind, scope, offset)."""
    start = 0
    if cursor is not None:
        _, was, start = decode(cursor, kind, 3)
        if was != scope or not isinstance(start, int) or start < 0:
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, encode([kind, scope, start + limit]) if more else None
