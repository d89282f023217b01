"""``GET /metrics``: the API's Prometheus metrics (text exposition format).

- ``datrix_api_request_duration_seconds{route, method, status}`` (histogram): the time
  from a request's arrival to its answer's start (the headers; for an event stream, its
  opening), labelled with the route's template (``/v1/datasets/{dataset_id}``, never the
  raw path; ``unmatched`` for a path no route has), so the label set is bounded.
- ``datrix_api_commands_submitted_total{type}`` (counter): commands this process handed
  in (a 202 answer; an idempotent replay submits nothing and is not counted).
- ``datrix_commands_processed{type, outcome}`` (gauge, read at scrape from the
  command_status read model, every tenant summed): commands accepted or rejected.
- Lag, at scrape: embedded, ``datrix_commands_pending`` (in the command log, not yet
  processed) and ``datrix_events_unprojected`` (recorded, not yet in the read models);
  Kafka mode, ``datrix_consumer_lag{group}`` (the processor's, the projector's and the
  jobs role's records not yet committed, summed over partitions).

No label names a tenant, a dataset, a key or a path: the metrics say how busy the
service is, never whose data it holds (docs/security.md "/metrics"). ``datrix serve
--workers N`` runs N processes: ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve``) makes
each scrape sum the request and submission metrics of all of them (prometheus-client's
multiprocess mode); the gauges read at scrape are the deployment's, whichever answers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from datrix.runtime.bootstrap import App

log = logging.getLogger("datrix.api")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# what a 202 from each route submitted (route template, method) -> command type
SUBMITTED_BY = {
    ("POST", "/v1/datasets/{dataset_id}/scan"): "datrix.scan.RequestScan",
    ("POST", "/v1/datasets"): "datrix.dataset.AddDatasetVersion",
    ("DELETE", "/v1/datasets/{dataset_id}"): "datrix.dataset.DeleteDataset",
    ("PUT", "/v1/datasets/{dataset_id}/contract"): "datrix.dataset.SetSchemaContract",
    ("DELETE", "/v1/datasets/{dataset_id}/contract"): "datrix.dataset.SetSchemaContract",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Metrics:
    """The API's metrics, in a registry of their own (never the process-global one)."""

    def __init__(self, app: App) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "datrix_api_request_duration_seconds",
            "Time from a request's arrival to its answer's start, by route template",
            ["route", "method", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.submitted = Counter(
            "datrix_api_commands_submitted",
            "Commands this API handed in (202 answers), by command type",
            ["type"],
            registry=self.registry,
        )
        self._state = _StateCollector(app)
        self.registry.register(self._state)

    def exposition(self) -> bytes:
        """The text exposition: every process's (multiprocess mode) or this one's."""
        if not os.environ.get(MULTIPROC_ENV):
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        combined.register(self._state)
        return generate_latest(combined)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).observe(seconds)

    def submitted_by(self, route: str, method: str) -> None:
        self.submitted.labels(SUBMITTED_BY.get((method, route), f"{method} {route}")).inc()


class _StateCollector(Collector):
    """Gauges read from the deployment's state at each scrape."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._warned_at = 0.0

    def collect(self) -> Iterable[GaugeMetricFamily]:
        try:
            yield from self._outcomes()
            yield from self._lag()
        except Exception as exc:  # a scrape never fails the API; say why once a minute
            now = time.monotonic()
            if now - self._warned_at > 60:
                log.warning("metrics: the deployment's state could not be read: %s", exc)
                self._warned_at = now

    def _outcomes(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "datrix_commands_processed",
            "Commands processed, by command type and outcome (every tenant's)",
            labels=["type", "outcome"],
        )
        rows = self.app.runtime.owner_store.query(
            "SELECT command_type, status, COUNT(*) FROM command_status "
            "GROUP BY command_type, status"
        )
        for command_type, status, count in rows:
            family.add_metric([str(command_type), str(status)], float(count))
        yield family

    def _lag(self) -> Iterable[GaugeMetricFamily]:
        runtime: Any = self.app.runtime
        if self.app.settings.embedded:
            from datrix.runtime.embedded import COMMAND_TRACKING

            pending = runtime.commands.head() - runtime.events.position(COMMAND_TRACKING)
            unprojected = runtime.events.head() - runtime.projector.position()
            yield GaugeMetricFamily(
                "datrix_commands_pending",
                "Commands in the command log not yet processed (embedded default)",
                value=max(0, pending),
            )
            yield GaugeMetricFamily(
                "datrix_events_unprojected",
                "Events recorded and not yet projected into the read models",
                value=max(0, unprojected),
            )
            return
        family = GaugeMetricFamily(
            "datrix_consumer_lag",
            "Records not yet committed by the workers' consumer group, per group (Kafka mode)",
            labels=["group"],
        )
        for group, lag in kafka_lag(self.app).items():
            family.add_metric([group], float(lag))
        yield family


def kafka_lag(app: App, timeout: float = 3.0) -> dict[str, int]:
    """The processor's lag on the commands topic, the projector's on the events topic and
    the jobs role's on the jobs topic (what deploy/k8s's autoscalers scale on): high
    watermark minus committed offset, summed over partitions."""
    from confluent_kafka import Consumer, TopicPartition

    from datrix.streams.kafka import client_config, topics_for

    topics = topics_for(app.settings)
    found: dict[str, int] = {}
    for group, topic in (
        ("processor", topics.commands),
        ("projector", topics.events),
        ("jobs", topics.jobs),
    ):
        consumer = Consumer(
            client_config(
                app.settings,
                **{"group.id": f"{topics.prefix}{group}", "enable.auto.commit": False},
            )
        )
        try:
            meta = consumer.list_topics(topic, timeout=timeout)
            partitions = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
            lag = 0
            for tp in consumer.committed(partitions, timeout=timeout):
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
                lag += high - (tp.offset if tp.offset >= 0 else low)
            found[group] = lag
        finally:
            consumer.close()
    return found


class MetricsMiddleware:
    """Times every HTTP request (to its answer's start) under its route's template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answered = False

        def observe(status: int, replayed: bool) -> None:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = str(scope["method"])
            self.metrics.observe(route, method, status, time.perf_counter() - started)
            if status == 202 and not replayed:
                self.metrics.submitted_by(route, method)

        async def timed(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                headers = dict(message.get("headers") or [])
                observe(int(message["status"]), headers.get(b"idempotent-replayed") == b"true")
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            if not answered:  # the app failed before answering: the server answers 500
                observe(500, False)
