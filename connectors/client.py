"""A small client of Kafka Connect's REST API (httpx): create, list with status, status,
config, pause, resume, restart and delete connectors.

Every failure is a ``ConnectError`` whose message is one readable line: Connect's own
error body (``{"error_code": 400, "message": "Connector configuration is invalid and
contains the following 2 error(s):\\n..."}``) folded onto one line, or, when nothing
answers, which URL was tried and how to start Connect (``ConnectUnreachable``).
A worker that is rebalancing answers 409 for a moment (a fresh worker, a connector just
added): those requests are retried until ``timeout`` has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from datrix.connectors.configs import Connector

RUNNING: Final = "RUNNING"
_RETRY_409: Final = ("rebalance", "stale configuration", "momentarily")


class ConnectError(Exception):
    """Connect refused a request, or answered something that is not Connect's API."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectUnreachable(ConnectError):
    """Nothing (or nothing in time) answered at the Connect URL."""


class ConnectorNotFound(ConnectError):
    """No connector of that name (404)."""


def one_line(text: str, limit: int = 600) -> str:
    """``text`` on one line: lines joined with '; ', runs of blanks folded, cut at
    ``limit`` characters."""
    parts = [" ".join(line.split()) for line in text.splitlines()]
    joined = "; ".join(p for p in parts if p)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


@dataclass(frozen=True)
class TaskStatus:
    id: int
    state: str
    worker_id: str
    trace: str | None

    @property
    def failure(self) -> str | None:
        """The first line of the task's stack trace (its error), when it failed."""
        return _first_line(self.trace)


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    type: str  # "source" | "sink" | "" (not known yet)
    state: str  # RUNNING | PAUSED | STOPPED | FAILED | UNASSIGNED | RESTARTING
    worker_id: str
    trace: str | None
    tasks: tuple[TaskStatus, ...]

    @property
    def failure(self) -> str | None:
        """The connector's or the first failed task's error, on one line."""
        first = _first_line(self.trace)
        if first is not None:
            return first
        return next((t.failure for t in self.tasks if t.failure is not None), None)

    @property
    def running(self) -> bool:
        """The connector and every task (at least one) run."""
        return (
            self.state == RUNNING
            and bool(self.tasks)
            and all(t.state == RUNNING for t in self.tasks)
        )

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> ConnectorStatus:
        try:
            connector = doc["connector"]
            return cls(
                name=str(doc["name"]),
                type=str(doc.get("type") or ""),
                state=str(connector["state"]),
                worker_id=str(connector.get("worker_id") or ""),
                trace=connector.get("trace"),
                tasks=tuple(
                    TaskStatus(
                        id=int(t["id"]),
                        state=str(t["state"]),
                        worker_id=str(t.get("worker_id") or ""),
                        trace=t.get("trace"),
                    )
                    for t in doc.get("tasks") or ()
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConnectError(f"Kafka Connect answered a status without {exc}") from None


def _first_line(trace: str | None) -> str | None:
    if not trace:
        return None
    line = trace.strip().splitlines()[0] if trace.strip() else ""
    return one_line(line) or None


class ConnectClient:
    """Kafka Connect's REST API at ``url`` (``DATRIX_CONNECT_URL``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._clock = clock
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.url,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
            headers={"Accept": "application/json"},
        )

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the API ----------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``GET /``: the worker's version and Kafka cluster id."""
        return self._object(self._request("GET", "/"))

    def plugins(self) -> list[str]:
        """The connector classes installed on the worker."""
        return [str(p["class"]) for p in self._json(self._request("GET", "/connector-plugins"))]

    def validate(self, connector: Connector) -> list[str]:
        """What Connect (and the connector: Debezium connects to the database) finds wrong
        with the config, as ``key: error`` lines; empty when it is fine."""
        cls = connector.config.get("connector.class", "")
        path = f"/connector-plugins/{quote(cls, safe='')}/config/validate"
        config = {**connector.config, "name": connector.name}
        doc = self._object(self._request("PUT", path, json=config))
        errors: list[str] = []
        for item in doc.get("configs") or ():
            value = item.get("value") if isinstance(item, dict) else None
            if not isinstance(value, dict):
                continue
            for error in value.get("errors") or ():
                errors.append(f"{value.get('name')}: {one_line(str(error))}")
        return errors

    def create(self, connector: Connector) -> dict[str, Any]:
        """Validate the config (a ``ConnectError`` listing what is wrong), then create the
        connector (409: one of that name exists)."""
        errors = self.validate(connector)
        if errors:
            raise ConnectError(
                f"connector {connector.name} not created, its configuration is invalid: "
                + one_line("; ".join(errors)),
                400,
            )
        return self._object(self._request("POST", "/connectors", json=connector.body()))

    def names(self) -> list[str]:
        return sorted(str(n) for n in self._json(self._request("GET", "/connectors")))

    def connectors(self) -> list[ConnectorStatus]:
        """Every connector with its status, by name."""
        doc = self._object(self._request("GET", "/connectors", params={"expand": "status"}))
        found = []
        for name, parts in sorted(doc.items()):
            status = parts.get("status") if isinstance(parts, dict) else None
            if isinstance(status, dict):
                found.append(ConnectorStatus.of(status))
            else:  # listed before its status was written
                found.append(ConnectorStatus(name, "", "UNASSIGNED", "", None, ()))
        return found

    def status(self, name: str) -> ConnectorStatus:
        return ConnectorStatus.of(self._json(self._request("GET", f"{self._path(name)}/status")))

    def config(self, name: str) -> dict[str, str]:
        doc = self._object(self._request("GET", f"{self._path(name)}/config"))
        return {str(k): str(v) for k, v in doc.items()}

    def pause(self, name: str) -> None:
        self._request("PUT", f"{self._path(name)}/pause")

    def resume(self, name: str) -> None:
        self._request("PUT", f"{self._path(name)}/resume")

    def restart(self, name: str, *, include_tasks: bool = True, only_failed: bool = False) -> None:
        params = {
            "includeTasks": str(include_tasks).lower(),
            "onlyFailed": str(only_failed).lower(),
        }
        self._request("POST", f"{self._path(name)}/restart", params=params)

    def delete(self, name: str) -> None:
        self._request("DELETE", self._path(name))

    def wait(
        self, name: str, until: Callable[[ConnectorStatus], bool], timeout: float
    ) -> ConnectorStatus:
        """Poll the connector's status until ``until`` holds; a ``ConnectError`` with the
        last state (and its failure) after ``timeout`` seconds, or at once when the
        connector or a task FAILED."""
        deadline = self._clock() + timeout
        last: ConnectorStatus | None = None
        while True:
            try:
                last = self.status(name)
            except ConnectorNotFound:
                last = None  # created, its status not written yet
            if last is not None and until(last):
                return last
            if last is not None and last.failure is not None:
                raise ConnectError(f"connector {name} failed: {last.failure}")
            if self._clock() >= deadline:
                state = "no status yet" if last is None else f"state {_states(last)}"
                raise ConnectError(f"connector {name} did not get there in {timeout:g}s ({state})")
            self._sleep(0.25)

    # -- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _path(name: str) -> str:
        if not name or name in (".", ".."):
            raise ConnectError(f"not a connector name: {name!r}")
        return "/connectors/" + quote(name, safe="")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = self._clock() + self.timeout
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TimeoutException:
                raise ConnectUnreachable(
                    f"Kafka Connect at {self.url} did not answer {method} {path} within "
                    f"{self.timeout:g}s"
                ) from None
            except httpx.TransportError as exc:
                reason = one_line(str(exc)) or type(exc).__name__
                raise ConnectUnreachable(
                    f"cannot reach Kafka Connect at {self.url} ({reason}): "
                    "start it with deploy/local/up connect, or set DATRIX_CONNECT_URL"
                ) from None
            if response.is_success:
                return response
            message = _error_message(response)
            if (
                response.status_code == 409
                and any(w in message.lower() for w in _RETRY_409)
                and self._clock() < deadline
            ):
                self._sleep(0.5)
                continue
            if response.status_code == 404:
                raise ConnectorNotFound(message, 404)
            raise ConnectError(message, response.status_code)

    @classmethod
    def _object(cls, response: httpx.Response) -> dict[str, Any]:
        doc = cls._json(response)
        if not isinstance(doc, dict):
            raise ConnectError(
                f"{response.request.url} answered {type(doc).__name__} where Kafka Connect "
                "answers an object: is DATRIX_CONNECT_URL a Kafka Connect worker?"
            )
        return doc

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise ConnectError(
                f"{response.request.url} answered {response.status_code} with something that is "
                "not JSON: is DATRIX_CONNECT_URL a Kafka Connect worker?"
            ) from None


def _error_message(response: httpx.Response) -> str:
    """Connect's ``{"error_code", "message"}`` on one line; else the status and the start
    of the body."""
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return "Kafka Connect: " + (one_line(doc["message"]) or f"HTTP {response.status_code}")
    body = one_line(response.text, 200)
    return f"Kafka Connect answered HTTP {response.status_code}" + (f": {body}" if body else "")


def _states(status: ConnectorStatus) -> str:
    tasks = ", ".join(f"task {t.id} {t.state}" for t in status.tasks) or "no tasks"
    return f"{status.state}, {tasks}"
