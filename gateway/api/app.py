"""The HTTP API: a thin FastAPI gateway over the use cases of ``gateway/services.py``.

``create_app(settings)`` builds the application through the composition root
(``runtime/bootstrap.py``) and answers from the read models only. Every request carries
an API key (``Authorization: Bearer dtx_...`` or ``X-API-Key: dtx_...``); the key names
the tenant and the role. The runtime a request gets is built for the key's tenant
(``Tenants``: one per tenant, through the composition root with the key's tenant as its
settings' tenant), so every use case it calls reads that tenant's rows and no other:
another tenant's dataset is simply not found (404, never 403, so existence does not
leak). A role that lacks a permission is a 403 before anything is looked up.

Errors are RFC 9457 problems (``problems.py``); lists are cursor-paged (``paging.py``);
the caller of every route (key, role, tenant's runtime) comes from ``deps.py``. The routes
live in ``routes/``, one module per resource group, registered in ``routes/__init__.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from datrix.gateway.api import problems
from datrix.gateway.api.deps import Submissions, Tenants
from datrix.gateway.api.idempotency import IdempotencyMiddleware
from datrix.gateway.api.intake import Intake
from datrix.gateway.api.keys import open_key_store
from datrix.gateway.api.metrics import Metrics, MetricsMiddleware
from datrix.gateway.api.pg_idempotency import open_idempotency_store
from datrix.gateway.api.problems import Problem
from datrix.gateway.api.progress import ProgressBoard
from datrix.gateway.api.redis_ratelimit import open_rate_limiter
from datrix.gateway.api.routes import ROUTERS
from datrix.runtime.bootstrap import App, bootstrap
from datrix.streams.settings import Settings

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
    board = ProgressBoard()  # the jobs this process runs (routes/events.py)
    intake = Intake(board.recorder())

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
    api.state.limiter = open_rate_limiter(built.settings)  # Redis's when configured
    api.state.intake = intake
    api.state.progress = board
    api.state.metrics = Metrics(built)
    api.add_middleware(IdempotencyMiddleware, store=open_idempotency_store(built.settings))
    api.add_middleware(MetricsMiddleware, metrics=api.state.metrics)  # outermost: times all
    problems.install(api, [route for router in ROUTERS for route in router.routes])
    for router in ROUTERS:
        api.include_router(router)
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
