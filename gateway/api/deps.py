"""What every route depends on: the caller (its API key, checked, rate-limited, and the
runtime of the key's tenant), the per-tenant runtimes and what this process submitted.

A route declares the permission it needs with one of the ``Annotated`` callers below
(``DatasetReader``, ``ScanRunner``, ...) or ``allowed("some:permission")``: a missing or
bad key is a 401, a role without the permission a 403 before anything is looked up, and
the runtime it gets is its key's tenant's, so another tenant's resource is simply not found.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from datrix.gateway import services
from datrix.gateway.api.keys import ApiKey, KeyStore
from datrix.gateway.api.models import Accepted
from datrix.gateway.api.problems import ApiProblem
from datrix.gateway.api.ratelimit import RateLimiter
from datrix.gateway.api.redis_ratelimit import RedisRateLimiter
from datrix.gateway.errors import Unreachable
from datrix.runtime.bootstrap import App, bootstrap
from datrix.streams.settings import SettingsError


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
    """Commands this process handed in and scans and fixes it requested, per tenant, so
    that their status reads ``queued`` before the read models know them (lost on restart:
    then a not yet processed command is a 404 until it is processed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commands: set[tuple[str, str]] = set()
        self._scans: dict[tuple[str, str], tuple[str, str]] = {}  # -> (dataset, command)
        self._fixes: dict[tuple[str, str], tuple[str, str]] = {}  # -> (dataset, mode)

    def command(self, tenant: str, command_id: str) -> None:
        with self._lock:
            self._commands.add((tenant, command_id))

    def scan(self, tenant: str, scan_id: str, dataset_id: str, command_id: str) -> None:
        with self._lock:
            self._commands.add((tenant, command_id))
            self._scans[(tenant, scan_id)] = (dataset_id, command_id)

    def fix(self, tenant: str, fix_id: str, dataset_id: str, mode: str, command_id: str) -> None:
        with self._lock:
            self._commands.add((tenant, command_id))
            self._fixes[(tenant, fix_id)] = (dataset_id, mode)

    def fix_of(self, tenant: str, fix_id: str) -> tuple[str, str] | None:
        """(dataset id, mode) of a fix this process handed in for ``tenant``."""
        with self._lock:
            return self._fixes.get((tenant, fix_id))

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
    limiter: RateLimiter | RedisRateLimiter = request.app.state.limiter
    wait = limiter.take(key.id)
    if wait > 0:
        raise ApiProblem(
            429,
            f"this API key made more than {limiter.rate:g} requests per second; "
            "retry after the Retry-After seconds",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return key


def allowed(permission: str) -> Callable[..., Caller]:
    """A dependency: the caller, when its key's role has ``permission`` (else 403)."""

    def check(request: Request, key: Annotated[ApiKey, Depends(_authenticated)]) -> Caller:
        if not key.may(permission):
            raise ApiProblem(403, f"the role {key.role!r} lacks the permission {permission!r}")
        tenants: Tenants = request.app.state.tenants
        return Caller(key, tenants.runtime(key.tenant))

    return check


DatasetReader = Annotated[Caller, Depends(allowed("datasets:read"))]
QualityReader = Annotated[Caller, Depends(allowed("quality:read"))]
CommandReader = Annotated[Caller, Depends(allowed("commands:read"))]
ScanRunner = Annotated[Caller, Depends(allowed("scans:run"))]
DatasetWriter = Annotated[Caller, Depends(allowed("datasets:write"))]


def accepted(response: Response, location: str, body: Accepted) -> Accepted:
    response.status_code = 202
    response.headers["Location"] = location
    return body
