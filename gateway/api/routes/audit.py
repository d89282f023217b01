"""The audit trail (the compliance module, ``audit:read``: admin): the tenant's entries,
filtered and cursor-paged (``datrix audit log``), and the check of the hash chains
(``datrix audit verify``)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from datrix.gateway import services
from datrix.gateway.api import paging
from datrix.gateway.api.deps import Caller, allowed
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem
from datrix.gateway.errors import NotFound

router = APIRouter(tags=["audit"])

AuditReader = Annotated[Caller, Depends(allowed("audit:read"))]
_TEXT = r"^[^\x00-\x1f]*$"  # no control characters (a NUL is no text in Postgres)


class AuditEntry(BaseModel):
    chain: int = Field(description="The hash chain (a log partition; 0 in the embedded mode)")
    seq: int = Field(description="Position in its chain")
    event_id: str
    event_type: str
    subject: str
    dataset_id: str | None
    actor: str | None = Field(description="Who caused it (an API key is api:<key id>)")
    occurred_at: str
    summary: Any = Field(description="What the event recorded (JSON)")
    hash: str = Field(description="SHA-256 of the entry and the previous entry's hash")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class AuditBreak(BaseModel):
    entry: str = Field(description="Where the chain broke: seq, or chain/seq")
    event_id: str | None = Field(description="The entry's event, when it is the caller's")
    reason: str


class AuditVerification(BaseModel):
    ok: bool = Field(description="True: every check held")
    entries: int = Field(description="The caller's entries in the trail")
    checkpoints: int = Field(description="Signed checkpoints checked")
    anchored: bool = Field(description="False: no anchor key (DATRIX_AUDIT_KEY) to check with")
    latest_checkpoint: str | None
    broken: AuditBreak | None = Field(description="The first break, when not ok")


def _utc(given: str | None, which: str) -> str | None:
    """The ISO 8601 text the trail stores (UTC) of the ISO 8601 time ``given`` (a time
    without a zone is taken as UTC). Parsed here, not by pydantic, which also takes a
    number (seconds since 1970) for a datetime."""
    if given is None:
        return None
    try:
        value = datetime.fromisoformat(given.strip().upper())
    except ValueError:
        raise ApiProblem(
            422, f"{which}: not an ISO 8601 time (e.g. 2026-12-01T12:00:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC).isoformat()
    except OverflowError:  # 0001-01-01T00:00+01:00: before year 1 in UTC
        raise ApiProblem(422, f"{value.isoformat()}: out of range in UTC") from None


def _text(description: str) -> Any:
    return Query(max_length=200, pattern=_TEXT, description=description)


def _time(description: str) -> Any:
    return Query(max_length=64, description=description, json_schema_extra={"format": "date-time"})


def _dataset_id(caller: Caller, dataset: str | None) -> str | None:
    """The id of ``dataset`` (name, id or unique prefix); a deleted dataset's full id
    still filters (its trail outlives it)."""
    if dataset is None:
        return None
    try:
        return str(services.resolve_dataset(caller.runtime, dataset)["id"])
    except NotFound:
        try:
            return str(uuid.UUID(dataset))
        except ValueError:
            raise NotFound(f"no dataset named or with id {dataset!r}") from None


def _summary(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


@router.get("/v1/audit", response_model=AuditPage)
def list_audit(
    caller: AuditReader,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    dataset: Annotated[str | None, _text("Dataset name, id or id prefix")] = None,
    actor: Annotated[str | None, _text("Exact actor")] = None,
    event_type: Annotated[str | None, _text("Exact event type")] = None,
    since: Annotated[str | None, _time("From this time (ISO 8601)")] = None,
    until: Annotated[str | None, _time("Before this time (ISO 8601)")] = None,
) -> AuditPage:
    """The tenant's audit entries, oldest first; filters: dataset, actor, event type and
    the time range ``since`` (inclusive) to ``until`` (exclusive)."""
    dataset_id = _dataset_id(caller, dataset)
    start, end = _utc(since, "since"), _utc(until, "until")
    scope = json.dumps([dataset_id, actor, event_type, start, end])
    after = None
    if cursor is not None:
        _, was, at, chain, seq = paging.decode(cursor, "audit", 5)
        if (
            was != scope
            or not isinstance(at, str)
            or not isinstance(chain, int)
            or not isinstance(seq, int)
        ):
            raise ApiProblem(
                400, "cursor: made for other filters; pass the same ones", slug="bad-cursor"
            )
        after = (at, chain, seq)
    rows = services.views(caller.runtime).audit_page(
        limit=limit + 1,
        dataset_id=dataset_id,
        actor=actor,
        event_type=event_type,
        since=start,
        until=end,
        after=after,
    )
    page = rows[:limit]
    following = None
    if len(rows) > limit:
        last = page[-1]
        following = paging.encode(
            ["audit", scope, str(last["occurred_at"]), int(last["chain"]), int(last["seq"])]
        )
    return AuditPage(
        items=[
            AuditEntry(
                **{k: r[k] for k in AuditEntry.model_fields if k != "summary"},
                summary=_summary(r["summary"]),
            )
            for r in page
        ],
        next_cursor=following,
    )


@router.get("/v1/audit/verify", response_model=AuditVerification)
async def verify_audit(caller: AuditReader) -> AuditVerification:
    """Check the audit trail as ``datrix audit verify`` does: the hash chains, the trail
    against the event log, the signed checkpoints. The chains link every tenant's entries
    (one chain per log partition), so the whole trail is checked; the answer names only
    the caller's entries. A broken trail is a report, not an error: 200 with ``ok`` false
    and the first break."""
    check = await run_in_threadpool(services.verify_audit, caller.runtime)
    mine = services.views(caller.runtime)
    entries = mine.audit_count()
    broken = None
    if check.broken is not None:
        own = mine.audit_has_event(check.broken.event_id)
        broken = AuditBreak(
            entry=check.broken.seq,
            event_id=check.broken.event_id if own else None,
            reason=check.broken.reason,
        )
    return AuditVerification(
        ok=check.intact,
        entries=entries,
        checkpoints=check.checkpoints,
        anchored=check.anchored,
        latest_checkpoint=check.latest_checkpoint,
        broken=broken,
    )
