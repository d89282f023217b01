"""``/health/live`` and ``/health/ready``.

``/health/ready`` asks each service the settings configure, with a real request and a
short timeout: the read models (a query through the reader's tenant session, which the
writer issues: both roles in Kafka mode), the key store (the lookup every request's
authentication makes), the object store (a listing of the S3 bucket, or the local
folder), Kafka (broker metadata for the commands topic, with the API's own credentials),
Redis (PING). One failure is a 503 problem naming the service, with every check in
``checks``; except Redis alone: it is an accelerator (rate limits fall back to each
process's own, progress to polling the read models), so the API still answers correctly
and is ``degraded``, 200. A load balancer that took every API host out of rotation because
the cache was down would turn an accelerator's outage into the API's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from datrix.gateway.api import problems
from datrix.gateway.api.keys import KeyStore
from datrix.gateway.api.models import Health
from datrix.gateway.api.problems import Problem
from datrix.runtime.bootstrap import App
from datrix.streams.settings import Settings

router = APIRouter(tags=["health"])

TIMEOUT_S = 2.0  # each network check's
OPTIONAL = frozenset({"redis"})  # down: degraded, not unready


@router.get("/health/live", response_model=Health)
def live() -> Health:
    """The process answers."""
    return Health(status="ok")


def _objects(built: App) -> None:
    probe = getattr(built.objects, "probe", None)
    if probe is None:  # a store without a probe (a test's): its address at least
        _ = built.objects.location
    else:
        probe()


def _kafka(built: App) -> None:
    from datrix.streams.kafka_logging import wait_for_broker

    runtime: Any = built.runtime
    producer = runtime.commands.producer
    wait_for_broker(producer, str(built.settings.kafka_bootstrap), TIMEOUT_S)
    topic = built.topics.commands
    found = producer.list_topics(topic=topic, timeout=TIMEOUT_S).topics.get(topic)
    if found is None or found.error is not None:
        raise RuntimeError(f"topic {topic}: {getattr(found, 'error', 'missing')}")


def _redis(settings: Settings) -> None:
    import redis

    client = redis.Redis.from_url(
        str(settings.redis_url), socket_connect_timeout=TIMEOUT_S, socket_timeout=TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()


def checks_of(built: App, keys: KeyStore) -> dict[str, str]:
    """Each configured service: ``ok`` or ``failed: <error>``."""
    found: dict[str, str] = {}

    def check(name: str, probe: Callable[[], object]) -> None:
        try:
            probe()
            found[name] = "ok"
        except Exception as exc:
            found[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"

    check("read_models", lambda: built.runtime.read_store.query("SELECT 1"))
    check("keys", keys.ping)
    check("object_store", lambda: _objects(built))
    if not built.settings.embedded:
        check("kafka", lambda: _kafka(built))
    if built.settings.redis_url:
        check("redis", lambda: _redis(built.settings))
    return found


@router.get(
    "/health/ready",
    response_model=Health,
    responses={503: {"model": Problem, "description": "A service is not ready"}},
)
async def ready(request: Request) -> Any:
    """Each configured service answers (read models, key store, object store, Kafka,
    Redis): 200 ``ready``, 200 ``degraded`` when only Redis (an accelerator) is down,
    else a 503 problem naming the services that failed, with every check."""
    built: App = request.app.state.datrix
    keys: KeyStore = request.app.state.keys
    checks = await run_in_threadpool(checks_of, built, keys)
    failed = [name for name, value in checks.items() if value != "ok"]
    if not failed:
        return Health(status="ready", checks=checks)
    if all(name in OPTIONAL for name in failed):
        return Health(status="degraded", checks=checks)
    return problems.problem_response(
        request,
        503,
        "not ready: " + ", ".join(failed),
        extensions={"checks": checks},
    )
