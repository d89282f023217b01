"""``GET /metrics``: Prometheus text exposition (``metrics.py``), without an API key;
``DATRIX_API_METRICS=false`` turns it off (a 404). Why no key: docs/security.md."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from datrix.gateway.api.metrics import CONTENT_TYPE, Metrics
from datrix.gateway.api.problems import ApiProblem
from datrix.runtime.bootstrap import App

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus metrics (text exposition format 0.0.4)",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def get_metrics(request: Request) -> Response:
    """Request latency by route template, commands submitted and processed by type, and
    the work not yet processed. No API key; no tenant's data (docs/security.md)."""
    built: App = request.app.state.datrix
    if not built.settings.api_metrics:
        raise ApiProblem(404, "metrics are turned off (DATRIX_API_METRICS=false)")
    metrics: Metrics = request.app.state.metrics
    body = await run_in_threadpool(metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE)
