"""Streams (issue 13): Kafka topics the stream quality monitor watches, their closed
windows (merged across the topic's partitions) and their quality alerts, as a list, a
page at a time, and as server-sent events (the use cases of ``gateway/streams.py``).

Registering and removing are asynchronous like every command: 202 with a Location once the
command is handed in (Kafka mode only: on the embedded default a registration is a 409
``needs-kafka-mode``). Reading needs ``datasets:read`` (the streams) or ``quality:read``
(windows, alerts); registering and removing ``datasets:write``.

``GET /v1/streams/{id}/alerts/events`` sends each alert as an event named after its kind
(``degraded`` or ``recovered``) whose id is its number in the stream's history; a client
that reconnects with ``Last-Event-ID: n`` gets what followed n. The stream does not end
(alerts may come at any time): comments (``: keep-alive``) flow while nothing happens.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from datrix.aggregates.stream import StreamThresholds
from datrix.gateway import streams as stream_services
from datrix.gateway.api import idempotency, paging
from datrix.gateway.api.deps import DatasetReader, DatasetWriter, QualityReader
from datrix.gateway.api.intake import Intake
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem, Problem
from datrix.gateway.errors import NotFound, UserInputError
from datrix.projections.read_models import streams as stream_views

router = APIRouter(tags=["streams"])

POLL_S = 1.0  # the alerts' event stream: how often the read model is read

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Handed in: the Location is the stream"},
    409: {"model": Problem, "description": "Refused as things are (name taken, not Kafka mode)"},
}


class Thresholds(BaseModel):
    """Per-window quality thresholds; absent or null: not checked."""

    model_config = ConfigDict(extra="forbid")

    max_null_rate: float | None = Field(default=None, ge=0, le=1)
    max_lag_seconds: float | None = Field(default=None, ge=0)
    max_psi: float | None = Field(default=None, ge=0)
    max_duplicate_rate: float | None = Field(default=None, ge=0, le=1)
    max_slot_lag_bytes: int | None = Field(default=None, ge=0)
    min_records: int | None = Field(default=None, ge=0)


class StreamBody(BaseModel):
    """A stream to register: the topic, how its records are encoded, how it is windowed."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(min_length=1, max_length=249)
    name: str = Field(min_length=1, max_length=200)
    format: Literal["json", "json-schema", "debezium", "avro-confluent"]
    key_field: str | None = Field(default=None, max_length=1000)
    window_seconds: int = Field(default=60, ge=1, le=86_400)
    grace_seconds: int = Field(default=10, ge=0, le=86_400)
    snapshot_every_seconds: int | None = Field(default=None, ge=1)
    start_from: Literal["earliest", "latest"] = "earliest"
    thresholds: Thresholds = Field(default_factory=Thresholds)


class StreamAccepted(BaseModel):
    command_id: str
    stream_id: str
    status_url: str
    links: dict[str, str]


class StreamDoc(BaseModel):
    model_config = ConfigDict(extra="allow")

    stream_id: str
    name: str
    topic: str
    format: str
    key_field: str | None
    window_seconds: int
    grace_seconds: int
    snapshot_every_seconds: int | None
    start_from: str
    thresholds: dict[str, Any]
    status: str
    removed_reason: str | None
    degraded_partitions: list[int]
    windows: int
    records: int
    last_window_end: str | None
    last_snapshot_dataset: str | None = Field(
        default=None, description="The dataset the latest snapshot period became a version of"
    )
    last_snapshot_version: int | None = None
    last_snapshot_end: str | None = None
    created_at: str
    updated_at: str
    links: dict[str, str] = Field(default_factory=dict)


class StreamPage(BaseModel):
    items: list[StreamDoc]
    next_cursor: str | None


class StreamStatus(StreamDoc):
    health: Literal["healthy", "degraded"]
    latest_window: dict[str, Any] | None
    latest_alert: dict[str, Any] | None


class WindowPage(BaseModel):
    stream_id: str
    items: list[dict[str, Any]] = Field(
        description="Windows, newest first, merged across partitions: window_start, "
        "window_end, partitions, count, null_rate{field: rate}, distinct{field: n}, psi, "
        "fields{field: {...}}, schema_changes, lag, duplicates, poisoned, tombstones, "
        "slot_lag_bytes"
    )
    next_cursor: str | None


class AlertPage(BaseModel):
    stream_id: str
    items: list[dict[str, Any]]
    next_cursor: str | None


def _links(stream_id: str) -> dict[str, str]:
    base = f"/v1/streams/{stream_id}"
    return {
        "self": base,
        "windows": f"{base}/windows",
        "alerts": f"{base}/alerts",
        "alert_events": f"{base}/alerts/events",
    }


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "links": _links(str(row["stream_id"]))}


def _found(caller: Any, stream_ref: str) -> dict[str, Any]:
    try:
        return stream_services.resolve_stream(caller.runtime, stream_ref)
    except NotFound:
        raise ApiProblem(404, f"no stream named or with id {stream_ref!r}") from None


@router.get("/v1/streams", response_model=StreamPage)
def list_streams(
    caller: DatasetReader, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> StreamPage:
    """The tenant's streams, oldest first, a page at a time."""
    after = None
    if cursor is not None:
        _, created, last_id = paging.decode(cursor, "streams", 3)
        after = (str(created), str(last_id))
    runtime = caller.runtime
    rows = stream_views.streams_page(
        runtime.read_store, runtime.settings.tenant, limit=limit + 1, after=after
    )
    page = rows[:limit]
    following = None
    if len(rows) > limit:
        following = paging.encode(["streams", page[-1]["created_at"], page[-1]["stream_id"]])
    return StreamPage(items=[StreamDoc(**_doc(r)) for r in page], next_cursor=following)


@router.post("/v1/streams", status_code=202, response_model=StreamAccepted, responses=ACCEPTED)
def post_stream(
    request: Request, response: Response, caller: DatasetWriter, body: StreamBody
) -> StreamAccepted:
    """Register a Kafka topic as a stream (Kafka mode): the monitor then reads it and
    closes its windows (asynchronous: 202; the Location answers once it is registered)."""
    runtime = caller.runtime
    if runtime.settings.embedded:
        raise ApiProblem(409, stream_services.KAFKA_ONLY, slug="needs-kafka-mode")
    try:
        command = stream_services.check_registration(
            runtime,
            topic=body.topic,
            name=body.name,
            format=body.format,
            key_field=body.key_field,
            window_seconds=body.window_seconds,
            grace_seconds=body.grace_seconds,
            snapshot_every_seconds=body.snapshot_every_seconds,
            start_from=body.start_from,
            thresholds=StreamThresholds(**body.thresholds.model_dump()),
        )
    except UserInputError as exc:
        text = str(exc)
        if text.startswith("a stream named"):
            raise ApiProblem(409, text, slug="name-taken") from None
        raise ApiProblem(422, text) from None
    submitted = stream_services.register_stream(
        runtime, command, actor=caller.key.actor, idempotency=idempotency.seed(request)
    )
    intake: Intake = request.app.state.intake
    intake.settle(runtime)  # Kafka mode: flushed to the broker before the answer
    stream_id = str(submitted.stream_id)
    location = f"/v1/streams/{stream_id}"
    response.status_code = 202
    response.headers["Location"] = location
    return StreamAccepted(
        command_id=str(submitted.command_id),
        stream_id=stream_id,
        status_url=location,
        links={**_links(stream_id), "command": f"/v1/commands/{submitted.command_id}"},
    )


@router.get("/v1/streams/{stream_id}", response_model=StreamStatus)
def get_stream(caller: DatasetReader, stream_id: str) -> StreamStatus:
    """A stream (its id, a unique prefix of it, or its name): settings, health (the
    degraded partitions), counters, its latest window and its latest alert."""
    _found(caller, stream_id)
    doc = stream_services.stream_status(caller.runtime, stream_id)
    return StreamStatus(**_doc(doc))


@router.delete(
    "/v1/streams/{stream_id}", status_code=202, response_model=StreamAccepted, responses=ACCEPTED
)
def delete_stream(
    request: Request,
    response: Response,
    caller: DatasetWriter,
    stream_id: str,
    reason: Annotated[str | None, Header(alias="X-Reason", max_length=1000)] = None,
) -> StreamAccepted:
    """Stop watching a stream (its windows and alerts stay readable); 409 when it is
    removed already."""
    found = _found(caller, stream_id)
    try:
        submitted = stream_services.remove_stream(
            caller.runtime,
            str(found["stream_id"]),
            reason,
            actor=caller.key.actor,
            idempotency=idempotency.seed(request),
        )
    except UserInputError as exc:
        raise ApiProblem(409, str(exc), slug="already-removed") from None
    intake: Intake = request.app.state.intake
    intake.settle(caller.runtime)
    sid = str(submitted.stream_id)
    response.status_code = 202
    response.headers["Location"] = f"/v1/streams/{sid}"
    return StreamAccepted(
        command_id=str(submitted.command_id),
        stream_id=sid,
        status_url=f"/v1/streams/{sid}",
        links={**_links(sid), "command": f"/v1/commands/{submitted.command_id}"},
    )


@router.get("/v1/streams/{stream_id}/windows", response_model=WindowPage)
def get_windows(
    caller: QualityReader, stream_id: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> WindowPage:
    """The stream's closed windows, newest first, each merged across the topic's
    partitions (one item per window start), a page at a time."""
    found = _found(caller, stream_id)
    sid = str(found["stream_id"])
    before = None
    if cursor is not None:
        _, was, before = paging.decode(cursor, "stream-windows", 3)
        if was != sid or not isinstance(before, str):
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    rows = stream_services.windows(caller.runtime, sid, limit=limit + 1, before=before)
    newest_first = list(reversed(rows))
    page = newest_first[:limit]
    following = None
    if len(newest_first) > limit:
        following = paging.encode(["stream-windows", sid, page[-1]["window_start"]])
    return WindowPage(stream_id=sid, items=page, next_cursor=following)


@router.get("/v1/streams/{stream_id}/alerts", response_model=AlertPage)
def get_alerts(
    caller: QualityReader, stream_id: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> AlertPage:
    """The stream's quality alerts (``degraded`` with the breaches, ``recovered``),
    oldest first, a page at a time."""
    found = _found(caller, stream_id)
    sid = str(found["stream_id"])
    after = 0
    if cursor is not None:
        _, was, after = paging.decode(cursor, "stream-alerts", 3)
        if was != sid or not isinstance(after, int):
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    _, rows = stream_services.alerts(caller.runtime, sid, after_seq=after)
    page = rows[:limit]
    following = None
    if len(rows) > limit:
        following = paging.encode(["stream-alerts", sid, page[-1]["seq"]])
    return AlertPage(stream_id=sid, items=page, next_cursor=following)


def _sse(alert: dict[str, Any]) -> str:
    return f"id: {alert['seq']}\nevent: {alert['kind']}\ndata: {json.dumps(alert)}\n\n"


@router.get(
    "/v1/streams/{stream_id}/alerts/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`event: degraded` / `event: recovered` (data: the alert, as "
            "GET /v1/streams/{id}/alerts lists it; id: its number), as they happen; "
            "comments (`: keep-alive`) while nothing happens",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def get_alert_events(
    request: Request,
    caller: QualityReader,
    stream_id: str,
    last_event_id: Annotated[
        str | None,
        Header(pattern=r"^\d{1,18}$", description="The id of the last event received"),
    ] = None,
) -> Response:
    """The stream's alerts as server-sent events (`curl -N`): those after Last-Event-ID
    (all without it), then each new one as it is projected."""
    found = await run_in_threadpool(_found, caller, stream_id)
    sid = str(found["stream_id"])
    start = int(last_event_id) if last_event_id else 0
    keepalive: float = request.app.state.datrix.settings.api_events_keepalive_s

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {int(POLL_S * 1000)}\n\n"
        last, idle = start, 0.0
        while True:
            _, rows = await run_in_threadpool(
                stream_services.alerts, caller.runtime, sid, after_seq=last
            )
            for alert in rows:
                yield _sse(alert)
                last, idle = int(alert["seq"]), 0.0
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)
            idle += POLL_S
            if idle >= keepalive:
                idle = 0.0
                yield ": keep-alive\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
