"""OpenLineage run events of scans (issue 13, item 7; runtime/lineage.py), offline: the
events are valid against the OpenLineage JSON schemas (spec 2-0-2 and the facets' own,
vendored from github.com/OpenLineage/OpenLineage ``spec/``, Apache-2.0, into
tests/schemas/openlineage/), carry the scan's quality metrics and assertions, keep one run
id per scan, and emitting never breaks the runtime. End to end (the CLI scanning with the
file transport): tests/integration/test_openlineage.py."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from datrix.aggregates import dataset
from datrix.aggregates.common import Meta
from datrix.aggregates.dataset import dataset_id_for
from datrix.aggregates.scan import (
    ColumnSummary,
    IssueSummary,
    ScanCompleted,
    ScanFailed,
    ScanRequested,
    ScoreCard,
)
from datrix.runtime import lineage
from datrix.runtime.registry import load_registry
from datrix.streams.messages import Envelope, event_envelope
from datrix.streams.settings import load_settings

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "openlineage"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "acme"


def _schemas() -> dict[str, Any]:
    found = {}
    for path in SCHEMAS.glob("*.json"):
        schema = json.loads(path.read_text())
        found[schema["$id"]] = schema
    return found


KNOWN = _schemas()


def _validator(ref: str) -> Any:
    return jsonschema_rs.Draft202012Validator(
        {"$ref": ref},
        retriever=lambda uri: KNOWN[uri],
    )


RUN_EVENT = _validator("https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent")


def openlineage_errors(document: dict[str, Any]) -> list[str]:
    """Why ``document`` is not a valid OpenLineage run event: the spec's RunEvent schema,
    then each facet against the schema its ``_schemaURL`` names (all must be vendored)."""
    errors = [f"{list(e.instance_path)}: {e.message}" for e in RUN_EVENT.iter_errors(document)]
    for facet in _facets(document):
        url = facet["_schemaURL"]
        if url.split("#", 1)[0] not in KNOWN:
            errors.append(f"facet schema {url} is not vendored")
            continue
        errors += [f"{url}: {e.message}" for e in _validator(url).iter_errors(facet)]
    return errors


def _facets(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = [
        *document["run"].get("facets", {}).values(),
        *document["job"].get("facets", {}).values(),
    ]
    for item in [*document.get("inputs", []), *document.get("outputs", [])]:
        found += [*item.get("facets", {}).values(), *item.get("inputFacets", {}).values()]
    return found


class Store:
    """The event streams the emitter reads (an in-memory stand-in of the event store's
    ``load``; the CLI test reads the real one)."""

    def __init__(self) -> None:
        self.streams: dict[uuid.UUID, list[Envelope]] = {}

    def add(self, event: Any) -> Envelope:
        cause = Envelope(
            id=uuid.uuid4(),
            type="x",
            subject=str(event.originator_id),
            time=T0,
            tenant=TENANT,
            actor="ann",
            correlation_id="c",
            data=b"",
        )
        env = event_envelope(event, cause)
        self.streams.setdefault(event.originator_id, []).append(env)
        return env

    def load(self, aggregate_id: uuid.UUID) -> list[Envelope]:
        return self.streams.get(aggregate_id, [])


def scan_events(version: int = 2) -> tuple[Store, Envelope, Envelope, uuid.UUID]:
    store = Store()
    ds, scan_id = dataset_id_for(TENANT, "sales"), uuid.uuid4()
    meta = Meta(uuid.uuid4(), T0, TENANT, "ann")
    [registered] = dataset.decide(dataset.RegisterDataset(ds, "sales"), None, meta)
    store.add(registered)
    requested = store.add(
        ScanRequested(
            originator_id=scan_id,
            originator_version=1,
            timestamp=T0,
            tenant=TENANT,
            dataset_id=ds,
            version=version,
            object_uri="datrix-object://acme/sha256/ab/x.parquet",
            object_sha256="x",
            engine="polars",
            label_column=None,
            seed=0,
            weights=None,
        )
    )
    completed = store.add(
        ScanCompleted(
            originator_id=scan_id,
            originator_version=3,
            timestamp=T0,
            job_id=uuid.uuid4(),
            engine="polars",
            rows=100,
            columns=2,
            score=ScoreCard(90.0, 80.0, 100.0, 95.0, 90.0, 100.0),
            issues=(
                IssueSummary(
                    "I001",
                    "null_values",
                    "amount",
                    "completeness",
                    "warning",
                    "5 nulls",
                    5,
                    5.0,
                    1.0,
                    True,
                ),
            ),
            column_profiles=(
                ColumnSummary(
                    "amount",
                    "float",
                    5,
                    5.0,
                    40,
                    json.dumps({"min": 1.5, "max": 99, "p25": 3, "p50": 7.5, "p75": 20}),
                ),
                ColumnSummary("name", "string", 0, 0.0, 100, "{}"),
            ),
            report_uri="datrix-object://acme/sha256/cd/r.report.json",
            report_sha256="r",
            duration_ms=12,
        )
    )
    return store, requested, completed, scan_id


def emitted(store: Store, *envelopes: Envelope) -> list[dict[str, Any]]:
    from openlineage.client.serde import Serde

    sent: list[Any] = []
    emitter = lineage.ScanLineage(sent.append, lambda: store)  # type: ignore[arg-type,return-value]
    from datrix.streams.messages import decode_event

    for env in envelopes:
        assert emitter.react(decode_event(env), env) == []  # no command, ever
    return [json.loads(Serde.to_json(e)) for e in sent]


def test_a_completed_scan_is_a_valid_run_event_with_quality_facets() -> None:
    store, requested, completed, scan_id = scan_events()
    start, complete = emitted(store, requested, completed)
    for doc in (start, complete):
        assert openlineage_errors(doc) == []
        assert doc["run"]["runId"] == str(lineage.run_id(scan_id))
        assert doc["job"] == {**doc["job"], "namespace": "datrix", "name": "scan.sales"}
        [dataset] = doc["inputs"]
        assert (dataset["namespace"], dataset["name"]) == ("datrix://acme", "sales")
        assert dataset["facets"]["version"]["datasetVersion"] == "2"
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    facets = complete["inputs"][0]["inputFacets"]
    metrics = facets["dataQualityMetrics"]
    assert metrics["rowCount"] == 100
    assert metrics["columnMetrics"]["amount"] == {
        "nullCount": 5,
        "distinctCount": 40,
        "count": 95.0,
        "min": 1.5,
        "max": 99.0,
        "quantiles": {"0.25": 3.0, "0.5": 7.5, "0.75": 20.0},
    }
    assert metrics["columnMetrics"]["name"]["nullCount"] == 0
    assertions = facets["dataQualityAssertions"]["assertions"]
    failed = [a for a in assertions if not a["success"]]
    assert failed == [
        {
            "assertion": "null_values",
            "success": False,
            "column": "amount",
            "severity": "warning",
            "name": "I001",
            "description": "5 nulls",
            "actual": "5",
            "params": {},
        }
    ]
    passed = {a["assertion"] for a in assertions if a["success"]}
    assert "drift" in passed and "schema_change" in passed  # version 2: checked
    assert "label_issues" not in passed  # no label column: not checked
    assert "null_values" not in passed
    # the same scan event again (a redelivery, a replay): the same run event
    assert emitted(store, completed) == [complete]


def test_a_first_version_is_not_checked_for_drift_and_a_failure_is_fail() -> None:
    store, _requested, _completed, scan_id = scan_events(version=1)
    failed = store.add(
        ScanFailed(
            originator_id=scan_id,
            originator_version=3,
            timestamp=T0,
            job_id=uuid.uuid4(),
            error_type="MemoryBudget",
            message="over 512 MB",
        )
    )
    [doc] = emitted(store, failed)
    assert openlineage_errors(doc) == []
    assert doc["eventType"] == "FAIL"
    assert doc["run"]["facets"]["errorMessage"]["message"] == "MemoryBudget: over 512 MB"
    facts = lineage.ScanFacts(TENANT, uuid.uuid4(), "sales", 1, None)
    assert "drift" not in lineage.checked_types(facts)
    assert "schema_change" not in lineage.checked_types(facts)


def test_the_validator_rejects_a_broken_event() -> None:
    store, _requested, completed, _ = scan_events()
    [doc] = emitted(store, completed)
    broken = json.loads(json.dumps(doc))
    broken["inputs"][0]["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["amount"][
        "nullCount"
    ] = "5"
    assert openlineage_errors(broken) != []
    assert openlineage_errors({**doc, "eventTime": 5}) != []


def test_an_unreachable_consumer_is_one_warning_and_the_scan_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, requested, completed, _ = scan_events()
    calls: list[Any] = []

    def down(event: Any) -> None:
        calls.append(event)
        if len(calls) <= 2:
            raise ConnectionError("connection refused")

    from datrix.streams.messages import decode_event

    emitter = lineage.ScanLineage(down, lambda: store)  # type: ignore[arg-type,return-value]
    with caplog.at_level(logging.WARNING, logger="datrix.lineage"):
        for env in (requested, completed, completed):
            assert emitter.react(decode_event(env), env) == []
    assert len(calls) == 3
    assert [r.getMessage() for r in caplog.records] == [
        "openlineage: cannot emit run events (connection refused); retrying",
        "openlineage: emitting run events again",
    ]


def test_it_is_one_registration_off_by_default(tmp_path: Path) -> None:
    assert lineage.POLICY not in load_registry(load_settings({})).policies
    on = load_settings({"DATRIX_OPENLINEAGE_URL": f"file://{tmp_path}/ol.jsonl"})
    policy = load_registry(on).policies[lineage.POLICY]
    assert {t.__name__ for t in policy.follows} == {
        "ScanRequested",
        "ScanCompleted",
        "ScanFailed",
        "ScanCancelled",
        "StreamWindowClosed",
    }


def test_transports_follow_the_url(tmp_path: Path) -> None:
    from openlineage.client.transport.console import ConsoleTransport
    from openlineage.client.transport.file import FileTransport
    from openlineage.client.transport.http import HttpTransport

    settings = load_settings({})
    assert isinstance(lineage.transport_for("console", settings), ConsoleTransport)
    assert isinstance(lineage.transport_for(f"file://{tmp_path}/x.jsonl", settings), FileTransport)
    http = lineage.transport_for("https://marquez:5000", settings)
    assert isinstance(http, HttpTransport)
    assert http.url == "https://marquez:5000" and http.endpoint == "api/v1/lineage"
    assert lineage.transport_for(
        "http://dh:8080/openapi/openlineage/api/v1/lineage", settings
    ).endpoint == ("openapi/openlineage/api/v1/lineage")


def test_a_closed_stream_window_is_a_run_with_its_metrics_and_thresholds() -> None:
    from datrix.aggregates.stream import (
        FieldMetrics,
        SchemaChange,
        StreamRegistered,
        StreamThresholds,
        StreamWindowClosed,
        WindowMetrics,
        window_id_for,
    )

    store = Store()
    stream_id = uuid.uuid4()
    store.add(
        StreamRegistered(
            originator_id=stream_id,
            originator_version=1,
            timestamp=T0,
            stream_id=stream_id,
            tenant=TENANT,
            name="orders",
            topic="shop.orders",
            format="json",
            key_field="id",
            window_seconds=60,
            grace_seconds=5,
            snapshot_every_seconds=None,
            start_from="earliest",
            thresholds=StreamThresholds(max_null_rate=0.1, min_records=10),
        )
    )

    def field(name: str, nulls: int, lo: float | None) -> FieldMetrics:
        return FieldMetrics(
            name, "float", nulls, nulls / 50, 40, b"", lo, 9.0, 5.0, 1.0, (), (), None
        )

    window = window_id_for(stream_id, 2, 1_700_000_000_000)
    closed = store.add(
        StreamWindowClosed(
            originator_id=stream_id,
            originator_version=2,
            timestamp=T0,
            stream_id=stream_id,
            window_id=window,
            partition=2,
            window_start=T0,
            window_end=T0.replace(minute=1),
            metrics=WindowMetrics(
                count=50,
                rate_per_second=0.8,
                first_offset=0,
                last_offset=49,
                fields=(field("amount", 10, 1.0), field("price", 0, None)),
                schema_changes=(
                    SchemaChange("added", "coupon", None, "string", "field coupon added"),
                ),
                max_lag_seconds=2.0,
                mean_lag_seconds=1.0,
                duplicates=0,
                poisoned=0,
                slot_lag_bytes=None,
            ),
        )
    )
    [doc] = emitted(store, closed)
    assert openlineage_errors(doc) == []
    assert doc["eventType"] == "COMPLETE"
    assert doc["run"]["runId"] == str(lineage.run_id(window))
    assert doc["run"]["facets"]["nominalTime"]["nominalStartTime"] == T0.isoformat()
    assert doc["job"]["name"] == "stream.orders.partition-2"
    [topic] = doc["inputs"]
    assert (topic["namespace"], topic["name"]) == ("kafka://localhost", "shop.orders")
    metrics = topic["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 50
    assert metrics["columnMetrics"]["amount"] == {
        "nullCount": 10,
        "distinctCount": 40,
        "count": 40.0,
        "min": 1.0,
        "max": 9.0,
        "quantiles": {},
    }
    assert "min" not in metrics["columnMetrics"]["price"]  # no minimum measured
    got = {
        (a["assertion"], a.get("column"), a["success"])
        for a in topic["inputFacets"]["dataQualityAssertions"]["assertions"]
    }
    assert got == {
        ("max_null_rate", "amount", False),  # 0.2 > 0.1
        ("min_records", None, True),
        ("schema_change", None, False),
    }
