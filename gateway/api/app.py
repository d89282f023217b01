"""The HTTP API: a thin FastAPI gateway over the use cases of ``gateway/services.py``.

``create_app(settings)`` builds the application through the composition root
(``runtime/bootstrap.py``) and answers from the read models only. Every request carries
an API key (``Authorization: Bearer dtx_...`` or ``X-API-Key: dtx_...``); the key names
the tenant and the role. The runtime a request gets is built for the key's tenant
(``Tenants``: one per tenant, through the composition root with the key's tenant as its
settings' tenant), so every use case it calls reads that tenant's rows and no other:
another tenant's dataset is simply not found (404, never 403, so existence does not
leak). A role that lacks a permission is a 403 before anything is looked up.

Errors are RFC 9457 problems (``problems.py``). Lists are cursor-paged (default 20, at
most 100): the cursor is opaque (URL-safe base64 of the position), tied to the sort it
was made for.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from datrix.gateway import services
from datrix.gateway.api import problems
from datrix.gateway.api.idempotency import IdempotencyMiddleware, IdempotencyStore
from datrix.gateway.api.intake import Intake
from datrix.gateway.api.keys import ApiKey, KeyStore, open_key_store
from datrix.gateway.api.problems import ApiProblem, Problem
from datrix.gateway.errors import Unreachable, UserInputError
from datrix.jobs.report import DEFAULT_WEIGHTS
from datrix.runtime.bootstrap import App, bootstrap
from datrix.streams import scratch
from datrix.streams.settings import Settings, SettingsError

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


# -- the models of the answers --------------------------------------------------------------
class Score(BaseModel):
    overall: float | None
    completeness: float | None
    consistency: float | None
    accuracy: float | None
    distribution: float | None
    label_quality: float | None = Field(description="None: no label column was named")


class Dataset(BaseModel):
    id: str
    name: str
    status: str
    latest_version: int
    row_count: int | None
    column_count: int | None
    size_bytes: int | None
    created_at: str
    updated_at: str


class DatasetDetail(Dataset):
    latest_scan_id: str | None = Field(description="The newest completed scan, if any")
    score: Score | None = Field(description="The newest completed scan's scores, if any")


class DatasetPage(BaseModel):
    items: list[Dataset]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class Version(BaseModel):
    version: int
    format: str
    row_count: int
    column_count: int
    size_bytes: int
    object_sha256: str
    source_sha256: str
    created_at: str


class Versions(BaseModel):
    dataset_id: str
    items: list[Version]


class ColumnProfile(BaseModel):
    name: str
    type: str
    null_count: int
    null_pct: float
    distinct_count: int
    missingness: str | None
    stored_as: str | None = None


class Columns(BaseModel):
    dataset_id: str
    scan_id: str
    items: list[ColumnProfile]


class QualityScore(BaseModel):
    dataset_id: str
    scan_id: str
    dataset_version: int
    scanned_at: str | None
    score: Score
    weights: dict[str, float]
    overall_dimensions: list[str]


class Issue(BaseModel):
    id: str
    type: str
    column: str | None
    dimension: str
    severity: str
    description: str
    affected_count: int
    affected_pct: float
    impact_score: float
    fix_available: bool
    missingness: str | None


class IssuePage(BaseModel):
    dataset_id: str
    scan_id: str
    items: list[Issue]
    next_cursor: str | None


class HistoryEntry(BaseModel):
    scan_id: str
    dataset_version: int
    status: str
    score: Score
    created_at: str
    completed_at: str | None
    error: str | None


class History(BaseModel):
    dataset_id: str
    items: list[HistoryEntry]
    next_cursor: str | None


class CommandOutcome(BaseModel):
    id: str
    status: Literal["queued", "accepted", "rejected"] = Field(
        description="queued: submitted here and not processed yet"
    )
    reason: str | None


class Accepted(BaseModel):
    """A command handed in (202): poll ``status_url`` (also the Location header)."""

    command_id: str | None = Field(description="None: nothing to do (the same data again)")
    status: Literal["queued", "unchanged"] = "queued"
    status_url: str
    dataset_id: str | None = None
    scan_id: str | None = None


class ScanBody(BaseModel):
    """What to scan the dataset's latest version with."""

    model_config = {"extra": "forbid"}

    engine: Literal["auto", "polars", "spark"] = "auto"
    weights: dict[str, float] | None = Field(
        default=None,
        description="Weights of the overall score by dimension (completeness, consistency, "
        "accuracy, distribution, label_quality); left out: the defaults",
    )


class ScanStatus(BaseModel):
    scan_id: str
    dataset_id: str
    status: Literal["queued", "running", "completed", "failed"]
    dataset_version: int | None = None
    error: str | None = None
    score: Score | None = None
    issue_count: dict[str, int] | None = None
    created_at: str | None = None
    completed_at: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


# -- tenants and keys --------------------------------------------------------------------------
class Tenants:
    """One runtime per tenant, built through the composition root with the tenant as its
    settings' tenant (sharing the object store, registry and read models of the API's
    ``App``): the use cases then read that tenant's rows only (embedded: the views'
    tenant filter; Kafka mode: the reader role's tenant session)."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._runtimes: dict[str, services.Runtime] = {}

    def runtime(self, tenant: str) -> services.Runtime:
        with self._lock:
            found = self._runtimes.get(tenant)
            if found is None:
                built = bootstrap(
                    self._app.settings.replace(tenant=tenant, actor="api"),
                    objects=self._app.objects,
                    registry=self._app.registry,
                    read_models=self._app.read_models,
                )
                try:
                    found = built.runtime
                except SettingsError:
                    raise
                except Exception as exc:
                    raise Unreachable(f"cannot reach the Kafka-mode services: {exc}") from exc
                self._runtimes[tenant] = found
            return found


class Submissions:
    """Commands this process handed in and scans it requested, per tenant, so that their
    status reads ``queued`` before the read models know them (lost on restart: then a
    not yet processed command is a 404 until it is processed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: set[tuple[str, str]] = set()
        self._scans: dict[tuple[str, str], tuple[str, str]] = {}  # -> (dataset, command)

    def command(self, tenant: str, command_id: str) -> None:
        with self._lock:
            self._commands.add((tenant, command_id))

    def scan(self, tenant: str, scan_id: str, dataset_id: str, command_id: str) -> None:
        with self._lock:
            self._commands.add((tenant, command_id))
            self._scans[(tenant, scan_id)] = (dataset_id, command_id)

    def has_command(self, tenant: str, command_id: str) -> bool:
        with self._lock:
            return (tenant, command_id) in self._commands

    def scan_of(self, tenant: str, scan_id: str) -> tuple[str, str] | None:
        with self._lock:
            return self._scans.get((tenant, scan_id))


@dataclass(frozen=True)
class Caller:
    """An authenticated request: its key and the runtime of the key's tenant."""

    key: ApiKey
    runtime: services.Runtime


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer dtx_...")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: dtx_...")


def _authenticated(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> ApiKey:
    presented = bearer.credentials if bearer is not None else header
    challenge = {"WWW-Authenticate": 'Bearer realm="datrix"'}
    if not presented:
        raise ApiProblem(401, "no API key: send Authorization: Bearer dtx_...", headers=challenge)
    keys: KeyStore = request.app.state.keys
    key = keys.authenticate(presented)
    if key is None:
        raise ApiProblem(401, "the API key is not valid (unknown or revoked)", headers=challenge)
    limiter: RateLimiter = request.app.state.limiter
    wait = limiter.take(key.id)
    if wait > 0:
        raise ApiProblem(
            429,
            f"this API key made more than {limiter.rate:g} requests per second; "
            "retry after the Retry-After seconds",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return key


class RateLimiter:
    """Requests per second per API key, a token bucket each (bursts of twice the rate);
    in this process (each ``--workers`` process has its own). ``rate`` 0: no limit."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.burst = max(2 * rate, 1.0)
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, who: str) -> float:
        """0 when ``who`` may go on (one token taken), else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[who] = (tokens - 1, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1 - tokens) / self.rate


def allowed(permission: str) -> Callable[..., Caller]:
    """A dependency: the caller, when its key's role has ``permission`` (else 403)."""

    def check(request: Request, key: Annotated[ApiKey, Depends(_authenticated)]) -> Caller:
        if not key.may(permission):
            raise ApiProblem(403, f"the role {key.role!r} lacks the permission {permission!r}")
        tenants: Tenants = request.app.state.tenants
        return Caller(key, tenants.runtime(key.tenant))

    return check


# -- cursors -----------------------------------------------------------------------------------
def _encode(position: list[Any]) -> str:
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, kind: str, length: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        position = None
    if not isinstance(position, list) or len(position) != length or position[0] != kind:
        raise ApiProblem(400, "cursor: not a cursor this list gave out", slug="bad-cursor")
    return position


def _offset_page(
    items: list[Any], cursor: str | None, kind: str, scope: str, limit: int
) -> tuple[list[Any], str | None]:
    """A page of an immutable list (a scan's issues): the cursor is (kind, scope, offset)."""
    start = 0
    if cursor is not None:
        _, was, start = _decode(cursor, kind, 3)
        if was != scope or not isinstance(start, int) or start < 0:
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    page = items[start : start + limit]
    more = start + limit < len(items)
    return page, _encode([kind, scope, start + limit]) if more else None


DatasetReader = Annotated[Caller, Depends(allowed("datasets:read"))]
QualityReader = Annotated[Caller, Depends(allowed("quality:read"))]
CommandReader = Annotated[Caller, Depends(allowed("commands:read"))]
ScanRunner = Annotated[Caller, Depends(allowed("scans:run"))]
DatasetWriter = Annotated[Caller, Depends(allowed("datasets:write"))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (at most 100)")]
Cursor = Annotated[
    str | None, Query(max_length=2000, description="`next_cursor` of the previous page")
]


# -- the application ---------------------------------------------------------------------------
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in (
        (400, "Bad request"),
        (401, "Missing or invalid API key"),
        (403, "The key's role may not do this"),
        (404, "Not found (or another tenant's)"),
        (422, "The request is not valid"),
        (429, "Too many requests for this API key (Retry-After)"),
        (500, "Internal error"),
        (503, "A service is unavailable"),
    )
}


def create_app(settings: Settings | None = None, *, app: App | None = None) -> FastAPI:
    """The API over ``settings`` (default: the environment's), or over a built ``App``."""
    built = app or bootstrap(settings)
    intake = Intake()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if built.settings.embedded:  # scans whose process died: finished in the background
            intake.settle(built.runtime)
        yield
        intake.stop()

    api = FastAPI(
        lifespan=lifespan,
        title="Datrix API",
        version="1",
        description="Data quality as a replayable, auditable event stream. Every request "
        "needs an API key (`datrix keys create`); errors are RFC 9457 problem details.",
        responses=_ERRORS,
    )
    api.state.datrix = built
    api.state.keys = open_key_store(built.settings)
    api.state.tenants = Tenants(built)
    api.state.submissions = Submissions()
    api.state.limiter = RateLimiter(built.settings.api_rate_limit)
    api.state.intake = intake
    api.add_middleware(
        IdempotencyMiddleware, store=IdempotencyStore(built.settings.home / "idempotency.db")
    )
    problems.install(api)
    _health_routes(api)
    _dataset_routes(api)
    _command_routes_of_datasets(api)
    _quality_routes(api)
    _command_routes(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def _openapi(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error answered as ``application/problem+json``
    (its own 422 schema replaced by the problem)."""
    if api.openapi_schema is not None:
        return api.openapi_schema
    doc = get_openapi(
        title=api.title, version=api.version, description=api.description, routes=api.routes
    )
    ref = {"$ref": "#/components/schemas/Problem"}
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {problems.MEDIA_TYPE: {"schema": ref}}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    api.openapi_schema = doc
    return doc


def _health_routes(api: FastAPI) -> None:
    @api.get("/health/live", tags=["health"], response_model=Health)
    def live() -> Health:
        """The process answers."""
        return Health(status="ok")

    @api.get(
        "/health/ready",
        tags=["health"],
        response_model=Health,
        responses={503: {"model": Problem, "description": "A service is not ready"}},
    )
    def ready(request: Request) -> Any:
        """Each configured service answers: the read models, the key store, the object
        store."""
        built: App = request.app.state.datrix
        keys: KeyStore = request.app.state.keys
        checks: dict[str, str] = {}

        def check(name: str, probe: Callable[[], object]) -> None:
            try:
                probe()
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"

        check("read_models", lambda: built.runtime.read_store.query("SELECT 1"))
        check("keys", keys.ping)
        check("object_store", lambda: built.objects.location)
        if all(v == "ok" for v in checks.values()):
            return Health(status="ready", checks=checks)
        return problems.problem_response(
            request,
            503,
            "not ready: " + ", ".join(k for k, v in checks.items() if v != "ok"),
            extensions={"checks": checks},
        )


def _dataset_doc(row: dict[str, Any]) -> Dataset:
    return Dataset(**{k: row[k] for k in Dataset.model_fields})


def _dataset_routes(api: FastAPI) -> None:
    @api.get("/v1/datasets", tags=["datasets"], response_model=DatasetPage)
    def list_datasets(
        caller: DatasetReader,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        sort: Annotated[
            Literal["created_at", "updated_at", "name"], Query(description="Sort field")
        ] = "created_at",
        order: Annotated[Literal["asc", "desc"], Query(description="Direction")] = "asc",
        status: Annotated[
            Literal["registered", "active", "deleted"] | None,
            Query(description="Only datasets in this status (default: all but deleted)"),
        ] = None,
        name: Annotated[str | None, Query(max_length=200, description="Exact name")] = None,
    ) -> DatasetPage:
        """The tenant's datasets, a page at a time."""
        after = None
        if cursor is not None:
            _, was_sort, was_order, value, last_id = _decode(cursor, "datasets", 5)
            if (was_sort, was_order) != (sort, order):
                raise ApiProblem(
                    400,
                    f"cursor: made for sort={was_sort}&order={was_order}; pass the same",
                    slug="bad-cursor",
                )
            after = (value, str(last_id))
        rows = services.views(caller.runtime).datasets_page(
            limit=limit + 1,
            sort=sort,
            descending=order == "desc",
            after=after,
            status=status,
            name=name,
        )
        page = rows[:limit]
        following = None
        if len(rows) > limit:
            last = page[-1]
            following = _encode(["datasets", sort, order, last[sort], last["id"]])
        return DatasetPage(items=[_dataset_doc(r) for r in page], next_cursor=following)

    @api.get("/v1/datasets/{dataset_id}", tags=["datasets"], response_model=DatasetDetail)
    def get_dataset(caller: DatasetReader, dataset_id: str) -> DatasetDetail:
        """A dataset (its id, a unique prefix of it, or its name) and its current score."""
        found = services.resolve_dataset(caller.runtime, dataset_id)
        scans = [
            s
            for s in services.views(caller.runtime).scans(found["id"])
            if s["status"] == "completed"
        ]
        latest = scans[-1] if scans else None
        return DatasetDetail(
            **_dataset_doc(found).model_dump(),
            latest_scan_id=latest["id"] if latest else None,
            score=Score(**services.score_document(latest)) if latest else None,
        )

    @api.get("/v1/datasets/{dataset_id}/columns", tags=["datasets"], response_model=Columns)
    def get_columns(caller: DatasetReader, dataset_id: str) -> Columns:
        """Per-column profiles of the dataset's newest completed scan."""
        found = services.resolve_dataset(caller.runtime, dataset_id)
        scan = services.latest_scan(caller.runtime, found["id"])
        profiles = services.scan_columns(caller.runtime, scan["id"])
        return Columns(
            dataset_id=found["id"],
            scan_id=scan["id"],
            items=[ColumnProfile(**p) for p in profiles],
        )

    @api.get("/v1/datasets/{dataset_id}/versions", tags=["datasets"], response_model=Versions)
    def get_versions(caller: DatasetReader, dataset_id: str) -> Versions:
        """Every version of the dataset, oldest first."""
        found_id, rows = services.dataset_versions(caller.runtime, dataset_id)
        return Versions(dataset_id=found_id, items=[Version(**r) for r in rows])


def _accepted(response: Response, location: str, body: Accepted) -> Accepted:
    response.status_code = 202
    response.headers["Location"] = location
    return body


def _too_large(limit_mb: float) -> ApiProblem:
    return ApiProblem(413, f"the upload is larger than {limit_mb:g} MB (DATRIX_API_MAX_UPLOAD_MB)")


def _command_routes_of_datasets(api: FastAPI) -> None:
    accepted: dict[int | str, dict[str, Any]] = {
        202: {"description": "Handed in: poll the Location"}
    }

    @api.post(
        "/v1/datasets/{dataset_id}/scan",
        tags=["datasets"],
        status_code=202,
        response_model=Accepted,
        responses=accepted,
    )
    def post_scan(
        request: Request,
        response: Response,
        caller: ScanRunner,
        dataset_id: str,
        body: ScanBody | None = None,
    ) -> Accepted:
        """Scan the dataset's latest version (asynchronous: 202, then poll the scan)."""
        chosen = body or ScanBody()
        done = services.request_scan(
            caller.runtime,
            dataset_id,
            engine=chosen.engine,
            weights=chosen.weights,
            actor=caller.key.actor,
        )
        submissions: Submissions = request.app.state.submissions
        submissions.scan(caller.key.tenant, done.scan_id, done.dataset_id, done.command_id)
        intake: Intake = request.app.state.intake
        intake.settle(caller.runtime, done.scan_id)
        location = f"/v1/datasets/{done.dataset_id}/scan/{done.scan_id}"
        return _accepted(
            response,
            location,
            Accepted(
                command_id=done.command_id,
                status_url=location,
                dataset_id=done.dataset_id,
                scan_id=done.scan_id,
            ),
        )

    @api.post(
        "/v1/datasets",
        tags=["datasets"],
        status_code=202,
        response_model=Accepted,
        responses={
            **accepted,
            200: {"description": "The file is the dataset's latest version already"},
            413: {"model": Problem, "description": "Larger than DATRIX_API_MAX_UPLOAD_MB"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The file's bytes (curl --data-binary @file)",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        },
    )
    async def post_dataset(
        request: Request,
        response: Response,
        caller: DatasetWriter,
        name: Annotated[str, Query(min_length=1, max_length=200, description="Dataset name")],
        filename: Annotated[
            str | None,
            Query(max_length=255, description="The file's name: its suffix tells the format"),
        ] = None,
        encoding: Annotated[str, Query(max_length=40)] = "utf-8",
    ) -> Accepted:
        """Upload a file as a new dataset, or a new version of the dataset ``name``
        (asynchronous: 202, then poll the command). The body is the file itself, streamed
        to disk in chunks; CSV, TSV, JSON, JSON Lines, Parquet or Excel, validated as the
        CLI does (a bad file is a 422 problem and nothing is recorded)."""
        built: App = request.app.state.datrix
        limit = int(built.settings.api_max_upload_mb * 2**20)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(built.settings.api_max_upload_mb)
        suffix = Path(filename or "").suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            suffix = ""
        shown = Path(filename).name if filename else f"{name}{suffix}"
        home = built.settings.home
        workdir = await run_in_threadpool(scratch.owned_tempdir, home / "tmp", "upload-")
        try:
            target = workdir / f"upload{suffix}"
            size = 0
            with target.open("wb") as out:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(built.settings.api_max_upload_mb)
                    await run_in_threadpool(out.write, chunk)
            if size == 0:
                raise ApiProblem(422, "the body is empty: send the file's bytes", slug="bad-file")
            try:
                done = await run_in_threadpool(
                    partial(
                        services.submit_version,
                        caller.runtime,
                        target,
                        name=name,
                        source=shown,
                        encoding=encoding,
                        actor=caller.key.actor,
                    )
                )
            except UserInputError as exc:
                raise ApiProblem(422, str(exc), slug="bad-file") from None
        finally:
            await run_in_threadpool(scratch.release, workdir)
        location = f"/v1/datasets/{done.dataset_id}"
        if done.command_id is None:
            response.status_code = 200
            return Accepted(
                command_id=None, status="unchanged", status_url=location, dataset_id=done.dataset_id
            )
        submissions: Submissions = request.app.state.submissions
        submissions.command(caller.key.tenant, done.command_id)
        intake: Intake = request.app.state.intake
        intake.settle(caller.runtime)
        status_url = f"/v1/commands/{done.command_id}"
        return _accepted(
            response,
            status_url,
            Accepted(command_id=done.command_id, status_url=status_url, dataset_id=done.dataset_id),
        )

    @api.get(
        "/v1/datasets/{dataset_id}/scan/{scan_id}",
        tags=["datasets"],
        response_model=ScanStatus,
    )
    def get_scan(
        request: Request, caller: QualityReader, dataset_id: str, scan_id: str
    ) -> ScanStatus:
        """A scan's status (queued, running, completed, failed) and, once completed, its
        scores and issue counts (the issues: /v1/quality/{datasetId}/issues)."""
        submissions: Submissions = request.app.state.submissions
        views = services.views(caller.runtime)
        scan = views.scan(scan_id)
        if scan is None:
            mine = submissions.scan_of(caller.key.tenant, scan_id)
            found = services.resolve_dataset(caller.runtime, dataset_id)
            if mine is None or mine[0] != found["id"]:
                raise ApiProblem(404, f"dataset {dataset_id} has no scan {scan_id}")
            outcome = services.command_status(caller.runtime, mine[1])
            if outcome is not None and not outcome.accepted:
                return ScanStatus(
                    scan_id=scan_id, dataset_id=mine[0], status="failed", error=outcome.reason
                )
            return ScanStatus(scan_id=scan_id, dataset_id=mine[0], status="queued")
        found = services.resolve_dataset(caller.runtime, dataset_id)
        if scan["dataset_id"] != found["id"]:
            raise ApiProblem(404, f"dataset {dataset_id} has no scan {scan_id}")
        status = scan["status"] if scan["status"] in ("queued", "running", "failed") else None
        completed = scan["status"] == "completed"
        return ScanStatus(
            scan_id=scan_id,
            dataset_id=scan["dataset_id"],
            status="completed" if completed else (status or "running"),
            dataset_version=scan["dataset_version"],
            error=scan["error"],
            score=Score(**services.score_document(scan)) if completed else None,
            issue_count=scan["issue_count"] if completed else None,
            created_at=scan["created_at"],
            completed_at=scan["completed_at"],
        )

    @api.delete(
        "/v1/datasets/{dataset_id}",
        tags=["datasets"],
        status_code=202,
        response_model=Accepted,
        responses=accepted,
    )
    def delete_dataset(
        request: Request, response: Response, caller: DatasetWriter, dataset_id: str
    ) -> Accepted:
        """Delete the dataset (asynchronous: 202, then poll the command)."""
        found_id = services.resolve_dataset(caller.runtime, dataset_id)["id"]
        command_id = services.delete_dataset(caller.runtime, found_id, actor=caller.key.actor)
        submissions: Submissions = request.app.state.submissions
        submissions.command(caller.key.tenant, command_id)
        intake: Intake = request.app.state.intake
        intake.settle(caller.runtime)
        location = f"/v1/commands/{command_id}"
        return _accepted(
            response,
            location,
            Accepted(command_id=command_id, status_url=location, dataset_id=found_id),
        )


def _quality_routes(api: FastAPI) -> None:
    @api.get("/v1/quality/{dataset_id}/score", tags=["quality"], response_model=QualityScore)
    def get_score(caller: QualityReader, dataset_id: str) -> QualityScore:
        """The dataset's current quality: its newest completed scan's scores."""
        found = services.resolve_dataset(caller.runtime, dataset_id)
        scan = services.latest_scan(caller.runtime, found["id"])
        return QualityScore(
            dataset_id=found["id"],
            scan_id=scan["id"],
            dataset_version=scan["dataset_version"],
            scanned_at=scan["completed_at"] or scan["created_at"],
            score=Score(**services.score_document(scan)),
            weights={**DEFAULT_WEIGHTS, **(scan["weights"] or {})},
            overall_dimensions=services.overall_dimensions(scan["label_column"], scan["weights"]),
        )

    @api.get("/v1/quality/{dataset_id}/issues", tags=["quality"], response_model=IssuePage)
    def get_issues(
        caller: QualityReader,
        dataset_id: str,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        dimension: Annotated[str | None, Query(max_length=50)] = None,
        severity: Annotated[str | None, Query(max_length=50)] = None,
        column: Annotated[str | None, Query(max_length=1000)] = None,
    ) -> IssuePage:
        """The issues of the dataset's newest completed scan, by impact (highest first);
        filters: dimension, severity, column. A cursor stays on the scan it was made on."""
        found = services.resolve_dataset(caller.runtime, dataset_id)
        if cursor is not None:
            try:
                scan_id = str(json.loads(_decode(cursor, "issues", 3)[1])[0])
            except (TypeError, ValueError, IndexError, KeyError):
                raise ApiProblem(
                    400, "cursor: not a cursor of this list", slug="bad-cursor"
                ) from None
            scan = services.views(caller.runtime).scan(scan_id)
            if scan is None or scan["dataset_id"] != found["id"]:
                raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
        else:
            scan = services.latest_scan(caller.runtime, found["id"])
        _, docs = services.scan_issues(caller.runtime, scan["id"])
        chosen = [
            d
            for d in docs
            if (dimension is None or d["dimension"] == dimension)
            and (severity is None or d["severity"] == severity)
            and (column is None or d["column"] == column)
        ]
        scope = json.dumps([scan["id"], dimension, severity, column])
        # a scan's issues never change, so an offset into them stays put
        page, following = _offset_page(chosen, cursor, "issues", scope, limit)
        return IssuePage(
            dataset_id=found["id"],
            scan_id=scan["id"],
            items=[Issue(**d) for d in page],
            next_cursor=following,
        )

    @api.get("/v1/quality/{dataset_id}/history", tags=["quality"], response_model=History)
    def get_history(
        caller: QualityReader, dataset_id: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
    ) -> History:
        """Every scan of the dataset, oldest first, with its scores (failed ones with
        their error)."""
        found = services.resolve_dataset(caller.runtime, dataset_id)
        scans = services.views(caller.runtime).scans(found["id"])
        entries = [
            HistoryEntry(
                scan_id=s["id"],
                dataset_version=s["dataset_version"],
                status=s["status"],
                score=Score(**services.score_document(s)),
                created_at=s["created_at"],
                completed_at=s["completed_at"],
                error=s["error"],
            )
            for s in scans
        ]
        # scans are only ever appended in this order, so an offset stays put
        page, following = _offset_page(entries, cursor, "history", found["id"], limit)
        return History(dataset_id=found["id"], items=page, next_cursor=following)


def _command_routes(api: FastAPI) -> None:
    @api.get("/v1/commands/{command_id}", tags=["commands"], response_model=CommandOutcome)
    def get_command(request: Request, caller: CommandReader, command_id: str) -> CommandOutcome:
        """What became of a command: accepted, or rejected with the reason."""
        found = services.command_status(caller.runtime, command_id)
        if found is None:
            submissions: Submissions = request.app.state.submissions
            if submissions.has_command(caller.key.tenant, command_id):
                return CommandOutcome(id=command_id, status="queued", reason=None)
            raise ApiProblem(404, f"no command {command_id}")
        status: Literal["accepted", "rejected"] = (
            "accepted" if found.status == "accepted" else "rejected"
        )
        return CommandOutcome(id=found.command_id, status=status, reason=found.reason)
