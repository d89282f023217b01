"""OpenLineage run events for scans and closed stream windows (issue 13, item 7), so that
DataHub, Marquez or any OpenLineage consumer sees Datrix's quality results beside the
lineage of the data.

Off by default; ``DATRIX_OPENLINEAGE_URL`` turns it on (``http(s)://...``: a Marquez or
DataHub endpoint, path default ``/api/v1/lineage``; ``file:///path``: JSON lines;
``kafka://topic`` on the deployment's broker; ``console``: the log). ``register`` adds ONE
policy, ``openlineage``, which both runtimes run like any other (the embedded ``catch_up``
from its own position, the Kafka ``policies`` role), following the scan's events:

- ``ScanRequested`` -> a ``START`` run event;
- ``ScanCompleted`` -> ``COMPLETE`` with the dataset version as the input and its
  ``dataQualityMetrics`` (rowCount, per column nullCount, distinctCount, count, min, max,
  quantiles) and ``dataQualityAssertions`` (one assertion per issue found: success false,
  its column and severity; one per other issue type the scan checked: success true)
  input facets;
- ``ScanFailed`` -> ``FAIL`` with the ``errorMessage`` run facet; ``ScanCancelled`` ->
  ``ABORT``;
- ``StreamWindowClosed`` -> a ``COMPLETE`` run of its own (run id from the window id, the
  ``nominalTime`` facet its start and end; job ``stream.<name>.partition-<n>``) whose input
  is the topic (namespace ``kafka://<first bootstrap server>``) with the window's
  ``dataQualityMetrics`` (record count, per field nulls, distinct, min, max) and one
  ``dataQualityAssertions`` entry per threshold the stream sets (failed per field that
  breaks it, with the value and the limit) plus ``schema_change`` (failed when the window's
  fields changed against the previous window).

Every event of one scan carries the same run id, ``uuid5(RUN_NAMESPACE, scan id)``, and
the event time is the scan event's own: a redelivered or replayed event emits the same
OpenLineage event again, which consumers take as the same run state. The dataset is named
``datrix://<tenant>`` / ``<dataset name>``, read from the scan's and the dataset's own
event streams (an event carries ids, not names). The policy issues no command. Emitting is
best-effort: a consumer that is down costs one warning while it stays down (then one when
it is back) and the events of that time are not resent; the scan itself never waits for it.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from datrix.aggregates.dataset import DatasetRegistered
from datrix.aggregates.scan import (
    IssueSummary,
    ScanCancelled,
    ScanCompleted,
    ScanFailed,
    ScanRequested,
)
from datrix.aggregates.stream import (
    METRIC_OF_THRESHOLD,
    StreamRegistered,
    StreamThresholds,
    StreamWindowClosed,
    breaches,
)
from datrix.jobs.report import ISSUE_TYPES
from datrix.streams.event_store import EventStore, postgres_event_store, sqlite_event_store
from datrix.streams.kafka import client_config
from datrix.streams.messages import Envelope, decode_event
from datrix.streams.registry import Policy, Reaction, Registry
from datrix.streams.settings import Settings

log = logging.getLogger("datrix.lineage")

POLICY = "openlineage"
RUN_NAMESPACE = UUID("0b7d4c3e-6f1a-5e2b-9c8d-3a4f5e6b7c8d")
JOB_NAMESPACE = "datrix"
PRODUCER = "https://github.com/datrix/datrix"
# issue types checked only under a condition: with a label column; against a baseline
LABELS_ONLY = {"label_issues"}
BASELINE_ONLY = {"drift", "schema_change"}


def run_id(scan_id: UUID) -> UUID:
    """The OpenLineage run id of a scan: the same for each of its events and every replay."""
    return uuid.uuid5(RUN_NAMESPACE, str(scan_id))


@dataclass(frozen=True)
class ScanFacts:
    """What the scan's own event does not say: its dataset and version."""

    tenant: str
    dataset_id: UUID
    dataset_name: str
    version: int | None
    label_column: str | None


def transport_for(url: str, settings: Settings) -> Any:
    """The openlineage-python transport ``DATRIX_OPENLINEAGE_URL`` names."""
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import HttpConfig, HttpTransport
    from openlineage.client.transport.kafka import KafkaConfig, KafkaTransport

    if url == "console":
        return ConsoleTransport(ConsoleConfig())
    if url.startswith("file://"):
        return FileTransport(FileConfig(log_file_path=url[len("file://") :], append=True))
    if url.startswith("kafka://"):
        config = client_config(settings, acks="all")
        return KafkaTransport(KafkaConfig(topic=url[len("kafka://") :], config=config, flush=True))
    scheme, rest = url.split("://", 1)
    host, _, path = rest.partition("/")
    return HttpTransport(
        HttpConfig(url=f"{scheme}://{host}", endpoint=path or "api/v1/lineage", timeout=5.0)
    )


class ScanLineage:
    """The ``openlineage`` policy's reaction: one run event per scan event and per closed
    stream window, emitted."""

    def __init__(
        self,
        emit: Callable[[Any], None],
        events: Callable[[], EventStore],
        kafka_namespace: str = "kafka://localhost",
    ) -> None:
        self._emit = emit
        self._events = events
        self._kafka_namespace = kafka_namespace
        self._streams: dict[UUID, StreamRegistered] = {}
        self._store: EventStore | None = None
        self._down = False
        self._lock = threading.Lock()

    def react(self, event: Any, envelope: Envelope) -> Sequence[Reaction]:
        try:
            run_event = self.run_event(event, envelope)
        except Exception as exc:  # a scan whose facts cannot be read: say so, go on
            log.warning("openlineage: no run event for %s: %s", envelope.subject, exc)
            return []
        if run_event is not None:
            self._send(run_event)
        return []

    def _send(self, run_event: Any) -> None:
        try:
            self._emit(run_event)
        except Exception as exc:
            with self._lock:
                if not self._down:
                    log.warning("openlineage: cannot emit run events (%s); retrying", exc)
                self._down = True
            return
        with self._lock:
            if self._down:
                log.warning("openlineage: emitting run events again")
            self._down = False

    def _store_of(self) -> EventStore:
        if self._store is None:
            self._store = self._events()
        return self._store

    def facts(self, scan_id: UUID) -> ScanFacts:
        store = self._store_of()
        requested = next(
            (e for e in map(decode_event, store.load(scan_id)) if isinstance(e, ScanRequested)),
            None,
        )
        if requested is None:
            raise LookupError(f"scan {scan_id} has no ScanRequested")
        registered = next(
            (
                e
                for e in map(decode_event, store.load(requested.dataset_id))
                if isinstance(e, DatasetRegistered)
            ),
            None,
        )
        name = registered.name if registered is not None else str(requested.dataset_id)
        return ScanFacts(
            requested.tenant, requested.dataset_id, name, requested.version, requested.label_column
        )

    def run_event(self, event: Any, envelope: Envelope) -> Any:
        from openlineage.client.event_v2 import (
            InputDataset,
            Job,
            Run,
            RunEvent,
            RunState,
        )
        from openlineage.client.facet_v2 import (
            dataset_version_dataset,
            error_message_run,
            job_type_job,
        )

        if isinstance(event, StreamWindowClosed):
            return self.window_event(event, envelope)
        scan_id = UUID(envelope.subject)
        if isinstance(event, ScanRequested):
            facts = ScanFacts(
                event.tenant,
                event.dataset_id,
                self._dataset_name(event.dataset_id),
                event.version,
                event.label_column,
            )
            state = RunState.START
        elif isinstance(event, ScanCompleted | ScanFailed | ScanCancelled):
            facts = self.facts(scan_id)
            state = {
                ScanCompleted: RunState.COMPLETE,
                ScanFailed: RunState.FAIL,
                ScanCancelled: RunState.ABORT,
            }[type(event)]
        else:
            return None
        run_facets: dict[str, Any] = {}
        if isinstance(event, ScanFailed):
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{event.error_type}: {event.message}", programmingLanguage="python"
            )
        dataset_facets: dict[str, Any] = {}
        if facts.version is not None:
            dataset_facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(facts.version)
            )
        input_facets: dict[str, Any] = {}
        if isinstance(event, ScanCompleted):
            input_facets = quality_facets(event, facts)
        dataset = InputDataset(
            namespace=f"datrix://{facts.tenant}",
            name=facts.dataset_name,
            facets=dataset_facets,
            inputFacets=input_facets,
        )
        return RunEvent(
            eventType=state,
            eventTime=_time(envelope.time),
            run=Run(runId=str(run_id(scan_id)), facets=run_facets),
            job=Job(
                namespace=JOB_NAMESPACE,
                name=f"scan.{facts.dataset_name}",
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="BATCH", integration="DATRIX", jobType="QUALITY_SCAN"
                    )
                },
            ),
            producer=PRODUCER,
            inputs=[dataset],
            outputs=[],
        )

    def stream(self, stream_id: UUID) -> StreamRegistered:
        """The stream's registration (its name, topic, tenant, thresholds), read once."""
        found = self._streams.get(stream_id)
        if found is None:
            for e in map(decode_event, self._store_of().load(stream_id)):
                if isinstance(e, StreamRegistered):
                    found = self._streams[stream_id] = e
                    break
            else:
                raise LookupError(f"stream {stream_id} is not registered")
        return found

    def window_event(self, event: StreamWindowClosed, envelope: Envelope) -> Any:
        """A closed window of a stream: a run of its own (COMPLETE), the topic as the
        input dataset with the window's metrics and one assertion per threshold."""
        from openlineage.client.event_v2 import InputDataset, Job, Run, RunEvent, RunState
        from openlineage.client.facet_v2 import job_type_job, nominal_time_run

        stream = self.stream(event.stream_id)
        dataset = InputDataset(
            namespace=self._kafka_namespace,
            name=stream.topic,
            inputFacets=window_facets(event, stream.thresholds),
        )
        return RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=_time(envelope.time),
            run=Run(
                runId=str(run_id(event.window_id)),
                facets={
                    "nominalTime": nominal_time_run.NominalTimeRunFacet(
                        nominalStartTime=_time(event.window_start),
                        nominalEndTime=_time(event.window_end),
                    )
                },
            ),
            job=Job(
                namespace=JOB_NAMESPACE,
                name=f"stream.{stream.name}.partition-{event.partition}",
                facets={
                    "jobType": job_type_job.JobTypeJobFacet(
                        processingType="STREAMING",
                        integration="DATRIX",
                        jobType="QUALITY_WINDOW",
                    )
                },
            ),
            producer=PRODUCER,
            inputs=[dataset],
            outputs=[],
        )

    def _dataset_name(self, dataset_id: UUID) -> str:
        for e in map(decode_event, self._store_of().load(dataset_id)):
            if isinstance(e, DatasetRegistered):
                return e.name
        return str(dataset_id)


def quality_facets(event: ScanCompleted, facts: ScanFacts) -> dict[str, Any]:
    """``dataQualityMetrics`` and ``dataQualityAssertions`` of a completed scan."""
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as assertions,
    )
    from openlineage.client.facet_v2 import (
        data_quality_metrics_input_dataset as metrics,
    )

    columns = {}
    for c in event.column_profiles:
        extra = _extra(c.extra_json)
        quantiles = {
            q: float(extra[k])
            for q, k in (("0.25", "p25"), ("0.5", "p50"), ("0.75", "p75"))
            if _number(extra.get(k))
        }
        columns[c.name] = metrics.ColumnMetrics(
            nullCount=c.null_count,
            distinctCount=c.distinct_count,
            count=float(event.rows - c.null_count),
            min=float(extra["min"]) if _number(extra.get("min")) else None,
            max=float(extra["max"]) if _number(extra.get("max")) else None,
            quantiles=quantiles or None,
        )
    found: list[Any] = [_assertion(assertions, i) for i in event.issues]
    failed_types = {i.type for i in event.issues}
    for kind in checked_types(facts):
        if kind not in failed_types:
            found.append(assertions.Assertion(assertion=kind, success=True))
    return {
        "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(
            rowCount=event.rows, columnMetrics=columns
        ),
        "dataQualityAssertions": assertions.DataQualityAssertionsDatasetFacet(assertions=found),
    }


def window_facets(event: StreamWindowClosed, thresholds: StreamThresholds) -> dict[str, Any]:
    """``dataQualityMetrics`` and ``dataQualityAssertions`` of one closed window: per
    field nulls, distinct (HyperLogLog), min and max; an assertion per threshold set (per
    field where the metric is), failed where the window breaks it, and one for schema
    changes against the previous window."""
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as assertions,
    )
    from openlineage.client.facet_v2 import (
        data_quality_metrics_input_dataset as metrics,
    )

    m = event.metrics
    columns = {
        f.name: metrics.ColumnMetrics(
            nullCount=f.nulls,
            distinctCount=f.distinct,
            count=float(m.count - f.nulls),
            min=f.minimum,
            max=f.maximum,
        )
        for f in m.fields
    }
    broken = {(b.metric, b.field): b for b in breaches(thresholds, m)}
    found: list[Any] = []
    for threshold, metric in METRIC_OF_THRESHOLD.items():
        limit = getattr(thresholds, threshold)
        if limit is None:
            continue
        for (name, column), b in broken.items():
            if name == metric:
                found.append(
                    assertions.Assertion(
                        assertion=threshold,
                        success=False,
                        column=column,
                        expected=str(limit),
                        actual=str(b.value),
                    )
                )
        if not any(name == metric for name, _column in broken):
            found.append(
                assertions.Assertion(assertion=threshold, success=True, expected=str(limit))
            )
    found.append(
        assertions.Assertion(
            assertion="schema_change",
            success=not m.schema_changes,
            description="; ".join(c.detail for c in m.schema_changes) or None,
        )
    )
    return {
        "dataQualityMetrics": metrics.DataQualityMetricsInputDatasetFacet(
            rowCount=m.count, columnMetrics=columns
        ),
        "dataQualityAssertions": assertions.DataQualityAssertionsDatasetFacet(assertions=found),
    }


def checked_types(facts: ScanFacts) -> list[str]:
    """The issue types a scan of this version checks (label issues only with a label
    column; drift and schema changes only against an earlier version)."""
    return [
        t
        for t in ISSUE_TYPES
        if not (t in LABELS_ONLY and facts.label_column is None)
        and not (t in BASELINE_ONLY and (facts.version or 1) <= 1)
    ]


def _assertion(assertions: Any, issue: IssueSummary) -> Any:
    return assertions.Assertion(
        assertion=issue.type,
        success=False,
        column=issue.column,
        severity=issue.severity,
        name=issue.id,
        description=issue.description,
        actual=str(issue.affected_count),
    )


def _extra(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _time(when: datetime) -> str:
    return when.isoformat()


def register(registry: Registry, settings: Settings) -> None:
    """The one registration: the ``openlineage`` policy, emitting to the settings' URL."""
    url = settings.openlineage_url
    if url is None:
        return
    clients: list[Any] = []

    def emit(run_event: Any) -> None:
        """Build the client on first use: only a process that runs the policies emits
        (the embedded CLI, the Kafka ``policies`` role), so no other opens a file or a
        producer."""
        from openlineage.client import OpenLineageClient

        if not clients:
            clients.append(OpenLineageClient(transport=transport_for(url, settings)))
        clients[0].emit(run_event)

    def events() -> EventStore:
        if settings.embedded:
            return sqlite_event_store(settings.home / "events.db")
        assert settings.database_url is not None
        return postgres_event_store(settings.database_url, settings.database_schema)

    broker = (settings.kafka_bootstrap or "localhost").split(",")[0].strip()
    lineage = ScanLineage(emit, events, kafka_namespace=f"kafka://{broker}")
    registry.add_policy(
        Policy(
            POLICY,
            follows=(ScanRequested, ScanCompleted, ScanFailed, ScanCancelled, StreamWindowClosed),
            react=lineage.react,
        )
    )
