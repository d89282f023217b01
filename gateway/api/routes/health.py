"""``/health/live`` and ``/health/ready``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from datrix.gateway.api import problems
from datrix.gateway.api.keys import KeyStore
from datrix.gateway.api.models import Health
from datrix.gateway.api.problems import Problem
from datrix.runtime.bootstrap import App

router = APIRouter(tags=["health"])


@router.get("/health/live", response_model=Health)
def live() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get(
    "/health/ready",
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
