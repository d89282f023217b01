"""A job's progress as it happens: ``GET /v1/jobs/{id}/events`` (server-sent events) and
``/v1/ws`` (a WebSocket for dashboards, several jobs on one connection).

A job's id is its scan's id (``Accepted.scan_id``; ``events_url`` in the scan's 202 and
status bodies). A stream sends ``progress`` events (phase, done, total), then exactly one
``completed`` (the scan's status, with its score) or ``failed`` (with the error), then
ends. Progress events have ids 1, 2, ... and the outcome the id ``end``: a client that
reconnects with ``Last-Event-ID: n`` gets what followed n, and one that saw ``end`` a 204
(an ``EventSource`` stops reconnecting). Comments (``: keep-alive``) flow while nothing
happens (``DATRIX_API_EVENTS_KEEPALIVE_S``).

Where the events come from: the outcome always from the read models (the scan's status,
as ``GET /v1/datasets/{id}/scan/{scanId}`` answers it), so a finished job answers at once
from any process. Progress: a job this process runs (the embedded default: its intake
thread) is recorded in ``progress.py`` and awaited without polling. A job run elsewhere
(another ``datrix serve --workers`` process, a CLI scan on the same home, or Kafka mode's
workers) is followed by reading the read models every ``POLL_S``; its progress: on the
embedded default the home's job activity file (``jobs/<scan id>.json``: each phase as it
starts), in Kafka mode what the workers published before the stream began, read once from
the job-progress topic (``streams/job_progress.py``: numbered by the workers, so a
reconnect resumes after its ``Last-Event-ID``), then their live updates on Redis pub/sub
(``streams/progress.py``; none without Redis: then the outcome follows the history). Live
events are numbered by the stream, on from the last id it sent. Before a Kafka-mode outcome
the topic is read once more: a worker flushes a job's progress before its result, so a job
that ran while the stream was starting still shows its progress, then its outcome.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, Request, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from datrix.gateway import services
from datrix.gateway.api.deps import Caller, QualityReader, Submissions, Tenants
from datrix.gateway.api.keys import ApiKey, KeyStore
from datrix.gateway.api.models import ScanStatus
from datrix.gateway.api.problems import TYPE_BASE, ApiProblem, Problem
from datrix.gateway.api.progress import ProgressBoard, Update
from datrix.gateway.api.ratelimit import RateLimiter
from datrix.gateway.api.routes.dataset_commands import get_scan
from datrix.gateway.errors import DatrixError, NotFound

router = APIRouter(tags=["jobs"])
log = logging.getLogger("datrix.api")

PERMISSION = "quality:read"  # who may read a scan's status may watch its job
END_ID = "end"
POLL_S = 1.0  # a job run by another process: how often its status is read
WS_AUTH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class JobEvent:
    """One event of a job's stream: ``progress``, ``completed`` or ``failed``."""

    id: str
    event: str
    data: dict[str, Any]

    def sse(self) -> str:
        return f"id: {self.id}\nevent: {self.event}\ndata: {json.dumps(self.data)}\n\n"


def _status(conn: HTTPConnection, caller: Caller, scan_id: str) -> ScanStatus:
    """The scan's status as its status resource answers it; 404 when the key's tenant
    has no such scan (another tenant's included)."""
    submissions: Submissions = conn.app.state.submissions
    scan = services.views(caller.runtime).scan(scan_id)
    mine = submissions.scan_of(caller.key.tenant, scan_id)
    dataset_id = scan["dataset_id"] if scan is not None else (mine[0] if mine else None)
    if dataset_id is None:
        raise ApiProblem(404, f"no job {scan_id} (a job's id is its scan's id)")
    # get_scan reads only the connection's app state
    return get_scan(cast(Request, conn), caller, dataset_id, scan_id)


def _remote_phase(caller: Caller, scan_id: str) -> tuple[str, int, int] | None:
    """The phase of a job another process of this embedded home runs, from its activity
    file; None in Kafka mode or before it started."""
    activity = getattr(caller.runtime, "job_activity", None)
    if activity is None:
        return None
    found: dict[str, Any] = activity(scan_id)
    phase = found.get("phase")
    if not isinstance(phase, str):
        return None
    return phase, int(found.get("done") or 0), int(found.get("total") or 0)


Live = Iterator[tuple[str, int, int]]


def _subscribe(caller: Caller, scan_id: str) -> Live | None:
    """Kafka mode: the job's live progress, as the workers publish it on Redis pub/sub;
    None on the embedded default or without Redis."""
    settings = caller.runtime.settings
    if settings.embedded or not settings.redis_url:
        return None
    from datrix.streams.progress import ProgressSubscriber

    return ProgressSubscriber(settings).listen(caller.key.tenant, scan_id)


def _published(caller: Caller, scan_id: str, after: int) -> list[Update]:
    """Kafka mode: the job's progress already on the job-progress topic, after number
    ``after`` (of its latest run, when the job ran more than once); [] elsewhere or when
    the topic cannot be read (one warning: the live updates and the outcome still come)."""
    if caller.runtime.settings.embedded:
        return []
    try:
        updates = services.job_progress(caller.runtime, scan_id).updates
    except NotFound:  # not in the read models yet (just requested): nothing published
        return []
    except DatrixError as exc:
        log.warning("job %s: published progress not read: %s", scan_id, exc)
        return []
    if not updates:
        return []
    latest = max(updates, key=lambda u: u.at).job_id
    return [
        Update(u.seq, u.phase, u.done, u.total)
        for u in updates
        if u.job_id == latest and u.seq > after
    ]


def _drain(live: Live) -> list[tuple[str, int, int]]:
    """What arrived on ``live`` since the last call (each empty poll waits 50 ms)."""
    found = []
    for _ in range(1000):
        phase, done, total = next(live, ("", -1, -1))
        if done < 0:
            break
        found.append((phase, done, total))
    return found


def _progress(scan_id: str, update: Update) -> JobEvent:
    data = {
        "job_id": scan_id,
        "scan_id": scan_id,
        "phase": update.phase,
        "done": update.done,
        "total": update.total,
    }
    return JobEvent(str(update.seq), "progress", data)


def _gone(scan_id: str, detail: str | None) -> dict[str, Any]:
    return {"job_id": scan_id, "scan_id": scan_id, "status": "failed", "error": detail}


def _outcome(status: ScanStatus) -> JobEvent | None:
    if status.status not in ("completed", "failed"):
        return None
    return JobEvent(END_ID, status.status, {"job_id": status.scan_id, **status.model_dump()})


async def job_events(
    conn: HTTPConnection, caller: Caller, scan_id: str, after: int, first: ScanStatus
) -> AsyncIterator[JobEvent | None]:
    """The job's events after progress number ``after``, ending with its outcome; None:
    nothing happened for a keep-alive interval. ``first``: the scan's status now."""
    board: ProgressBoard = conn.app.state.progress
    keepalive: float = conn.app.state.datrix.settings.api_events_keepalive_s
    tenant = caller.key.tenant
    status, stale, last = first, False, after
    remote: tuple[str, int, int] | None = None  # the last progress from elsewhere
    live: Live | None = None
    subscribed = False
    idle = 0.0
    try:
        if board.snapshot(tenant, scan_id, last) is None and not caller.runtime.settings.embedded:
            # Kafka mode: subscribe first (nothing published meanwhile is missed), then
            # what the workers published before now, also when the job has ended
            live, subscribed = await run_in_threadpool(_subscribe, caller, scan_id), True
            for update in await run_in_threadpool(_published, caller, scan_id, last):
                yield _progress(scan_id, update)
                remote, last = (update.phase, update.done, update.total), update.seq
        while True:
            snap = board.snapshot(tenant, scan_id, last)
            for update in snap.updates if snap is not None else ():
                yield _progress(scan_id, update)
                last = update.seq
            if snap is None or snap.settled or stale:
                try:
                    status, stale = await run_in_threadpool(_status, conn, caller, scan_id), False
                except (ApiProblem, NotFound) as gone:  # deleted with its dataset meanwhile
                    detail = gone.detail if isinstance(gone, ApiProblem) else str(gone)
                    yield JobEvent(END_ID, "failed", _gone(scan_id, detail))
                    return
                except DatrixError as exc:  # a service is down: end; the client reconnects
                    log.warning("the stream of job %s ends early: %s", scan_id, exc)
                    return
            outcome = _outcome(status)
            if outcome is not None:
                if snap is None and not caller.runtime.settings.embedded:
                    # a worker flushes the job's progress before its result, so once the
                    # outcome is in the read models all of it is on the topic: a job that
                    # ran while this stream was starting still shows its progress first
                    for update in await run_in_threadpool(_published, caller, scan_id, last):
                        yield _progress(scan_id, update)
                        last = update.seq
                yield outcome
                return
            if snap is not None and not snap.settled:  # run here: wait for the intake's news
                if not await board.changed(tenant, scan_id, last, keepalive):
                    yield None
                    stale = True  # a while without news: read the status again
                continue
            # run by another process (or settled without an outcome): follow it from here
            if not subscribed:
                live, subscribed = await run_in_threadpool(_subscribe, caller, scan_id), True
            if live is not None:
                arrived = await run_in_threadpool(_drain, live)
            else:
                phase = await run_in_threadpool(_remote_phase, caller, scan_id)
                arrived = [phase] if phase is not None else []
            for i, news in enumerate(arrived):
                newest = i == len(arrived) - 1
                if news != remote and (newest or remote is None or news[0] != remote[0]):
                    remote, last, idle = news, last + 1, 0.0
                    yield _progress(scan_id, Update(last, *news))
            await asyncio.sleep(POLL_S)
            idle += POLL_S
            if idle >= keepalive:
                idle = 0.0
                yield None
    finally:
        close = getattr(live, "close", None)
        if close is not None:  # unsubscribe (the generator's pub/sub)
            close()


_EVENTS_DOC = (
    "`event: progress` (data: job_id, phase, done, total; ids 1, 2, ...), then one "
    "`event: completed` or `event: failed` (data: the scan's status, as "
    "GET /v1/datasets/{id}/scan/{scanId} answers it; id `end`), then the stream ends. "
    "Comments (`: keep-alive`) while nothing happens."
)


@router.get(
    "/v1/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": _EVENTS_DOC,
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "Last-Event-ID was the outcome's (`end`): nothing follows"},
    },
)
async def get_job_events(
    request: Request,
    caller: QualityReader,
    job_id: str,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=r"^(\d{1,18}|end)$",
            description="The id of the last event received: only what followed is sent",
        ),
    ] = None,
) -> Response:
    """A job's progress as server-sent events (`curl -N`): progress, then its outcome.
    A job's id is its scan's id (the scan's `events_url`)."""
    first = await run_in_threadpool(_status, request, caller, job_id)
    if last_event_id == END_ID:
        return Response(status_code=204)
    after = int(last_event_id) if last_event_id else 0

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {int(POLL_S * 1000)}\n\n"
        async for event in job_events(request, caller, job_id, after, first):
            yield ": keep-alive\n\n" if event is None else event.sse()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# -- the WebSocket -----------------------------------------------------------------------
def _problem(problem: ApiProblem, job_id: str) -> dict[str, Any]:
    """An RFC 9457 problem document for a WebSocket message (instance: the job's SSE URL)."""
    return Problem(
        type=TYPE_BASE + problem.slug,
        title=problem.title,
        status=problem.status,
        detail=problem.detail,
        instance=f"/v1/jobs/{job_id}/events",
    ).model_dump(exclude_none=True)


def _presented_key(websocket: WebSocket) -> str | None:
    auth = websocket.headers.get("authorization", "")
    scheme, _, credentials = auth.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return websocket.headers.get("x-api-key") or None


def _check_key(websocket: WebSocket, presented: str) -> ApiKey | str:
    """The key, or why not (a close reason)."""
    keys: KeyStore = websocket.app.state.keys
    key = keys.authenticate(presented)
    if key is None:
        return "the API key is not valid (unknown or revoked)"
    limiter: RateLimiter = websocket.app.state.limiter
    if limiter.take(key.id) > 0:
        return "too many requests for this API key"
    return key


_NOT_JSON = object()


async def _receive(websocket: WebSocket) -> Any:
    """The next message, parsed as JSON (text or UTF-8 bytes); ``_NOT_JSON`` when it is
    not. Raises WebSocketDisconnect when the client has gone."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    try:
        return json.loads(raw)
    except ValueError:
        return _NOT_JSON


async def _authenticate(websocket: WebSocket) -> ApiKey | None:
    """The connection's key: from the upgrade request's headers, else from a first
    message ``{"api_key": ...}``; closes the socket (4401) and returns None when bad."""
    presented = _presented_key(websocket)
    if presented is None:
        try:
            doc = await asyncio.wait_for(_receive(websocket), WS_AUTH_TIMEOUT_S)
        except WebSocketDisconnect:
            return None
        except TimeoutError:
            doc = None
        presented = doc.get("api_key") if isinstance(doc, dict) else None
        if not isinstance(presented, str) or not presented:
            await websocket.close(4401, 'no API key: send {"api_key": "dtx_..."} first')
            return None
    found = await run_in_threadpool(_check_key, websocket, presented)
    if isinstance(found, str):
        await websocket.close(4401 if "valid" in found else 4429, found)
        return None
    return found


@router.websocket("/v1/ws")
async def websocket_events(websocket: WebSocket) -> None:
    """Job events for dashboards. Authenticate (the upgrade's ``Authorization: Bearer``
    header or a first message ``{"api_key": "dtx_..."}``; a bad key closes with 4401, a
    role without quality:read with 4403, a key over its rate with 4429), then send
    ``{"subscribe": "<job id>"}`` (and ``"last_event_id"`` to resume) for each job: every
    event comes as ``{"job_id", "id", "event", "data"}`` (the documents of the SSE
    stream), the last of each job its ``completed`` or ``failed``; an unknown job is
    ``{"job_id", "event": "error", "problem": {...}}``."""
    await websocket.accept()
    key = await _authenticate(websocket)
    if key is None:
        return
    if not key.may(PERMISSION):
        await websocket.close(4403, f"the role {key.role!r} lacks the permission {PERMISSION!r}")
        return
    tenants: Tenants = websocket.app.state.tenants
    caller = Caller(key, await run_in_threadpool(tenants.runtime, key.tenant))
    sending = asyncio.Lock()
    watching: dict[str, asyncio.Task[None]] = {}

    async def send(doc: dict[str, Any]) -> None:
        async with sending:
            await websocket.send_json(doc)

    async def follow(job_id: str, after: int) -> None:
        try:
            first = await run_in_threadpool(_status, websocket, caller, job_id)
            async for event in job_events(websocket, caller, job_id, after, first):
                if event is not None:
                    await send(
                        {"job_id": job_id, "id": event.id, "event": event.event, "data": event.data}
                    )
        except ApiProblem as problem:
            await send({"job_id": job_id, "event": "error", "problem": _problem(problem, job_id)})
        except (WebSocketDisconnect, RuntimeError):  # the client left meanwhile
            pass

    await send({"event": "ready", "tenant": key.tenant})
    try:
        while True:
            message = await _receive(websocket)
            if message is _NOT_JSON:
                await send({"event": "error", "problem": {"status": 400, "detail": "not JSON"}})
                continue
            job_id = message.get("subscribe") if isinstance(message, dict) else None
            after = message.get("last_event_id", 0) if isinstance(message, dict) else 0
            if not isinstance(job_id, str) or not job_id or not isinstance(after, int):
                detail = 'send {"subscribe": "<job id>"} (and an integer "last_event_id")'
                await send({"event": "error", "problem": {"status": 400, "detail": detail}})
                continue
            running = watching.get(job_id)
            if running is None or running.done():
                watching[job_id] = asyncio.create_task(follow(job_id, max(0, after)))
    except WebSocketDisconnect:
        pass
    finally:
        for task in watching.values():
            task.cancel()
