"""OpenLineage run events of scans, end to end (issue 13, item 7; runtime/lineage.py): the
CLI (a subprocess) scans with ``DATRIX_OPENLINEAGE_URL`` set and every event it emits is a
valid OpenLineage run event (the vendored spec and facet schemas, tests/unit/test_lineage.py)
whose facets agree with the scan's own report.

- embedded default, file transport: two versions of a file give START and COMPLETE per
  scan (one run id each), the metrics equal the report's, the second version's assertions
  include drift; a later command emits nothing again (the policy's position);
- Kafka mode, kafka:// transport: the worker's ``policies`` role emits the same events to
  a topic of the deployment's broker, read back and validated;
- a window the stream monitor closes is a COMPLETE run on that topic, its input the data
  topic, with the window's metrics and the null-rate threshold it breaks.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from datrix.runtime.lineage import run_id
from datrix.streams.kafka import records_to_end
from datrix.streams.settings import load_settings
from tests.integration.conftest import Cli, KafkaCli
from tests.integration.test_kafka_faults import start_running_worker, wait_until
from tests.unit.test_lineage import openlineage_errors

pytestmark = pytest.mark.integration


def write_csv(path: Path, rows: int, shift: float = 0.0) -> Path:
    lines = ["id,amount,city"]
    for i in range(rows):
        amount = "" if i % 10 == 0 else f"{(i % 37) * 1.5 + shift:.2f}"
        lines.append(f"{i},{amount},{['Oslo', 'Lima', 'Pune'][i % 3]}")
    path.write_text("\n".join(lines) + "\n")
    return path


def check_scan(events: list[dict[str, Any]], report: dict[str, Any], name: str) -> None:
    """START then COMPLETE of the report's scan, valid, with the report's numbers."""
    mine = [e for e in events if e["run"]["runId"] == str(run_id(uuid.UUID(report["scan_id"])))]
    assert [e["eventType"] for e in mine] == ["START", "COMPLETE"]
    for event in mine:
        assert openlineage_errors(event) == []
        [dataset] = event["inputs"]
        assert dataset["name"] == name
        assert dataset["facets"]["version"]["datasetVersion"] == str(report["version"])
    facets = mine[1]["inputs"][0]["inputFacets"]
    metrics = facets["dataQualityMetrics"]
    assert metrics["rowCount"] == report["rows"]
    for column in report["column_profiles"]:
        got = metrics["columnMetrics"][column["name"]]
        assert (got["nullCount"], got["distinctCount"]) == (
            column["null_count"],
            column["distinct_count"],
        )
    failed = {
        (a["assertion"], a.get("column"))
        for a in facets["dataQualityAssertions"]["assertions"]
        if not a["success"]
    }
    assert failed == {(i["type"], i["column"]) for i in report["issues"]}


def test_embedded_scans_emit_valid_run_events_to_a_file(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "lineage.jsonl"
    env = cli.env

    def with_lineage() -> dict[str, str]:
        return {**env(), "DATRIX_OPENLINEAGE_URL": f"file://{out}"}

    cli.env = with_lineage  # type: ignore[method-assign]
    first = cli(
        "scan", str(write_csv(tmp_path / "v1.csv", 300)), "--name", "sales", "--format", "json"
    )
    assert first.code == 0, first.stderr
    second = cli(
        "scan",
        str(write_csv(tmp_path / "v2.csv", 300, shift=40.0)),
        "--name",
        "sales",
        "--format",
        "json",
    )
    assert second.code == 0, second.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 4
    check_scan(events, first.json(), "sales")
    check_scan(events, second.json(), "sales")
    assertions = events[3]["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert "drift" in {a["assertion"] for a in assertions}  # version 2: checked against v1
    assert {e["inputs"][0]["namespace"] for e in events} == {"datrix://default"}
    # later processes catch up without emitting anything again
    assert cli("datasets").code == 0
    assert len(out.read_text().splitlines()) == 4


def test_kafka_mode_emits_run_events_to_a_topic(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    env = kafka_cli.extra or {}
    topic = f"{env['DATRIX_TOPIC_PREFIX']}openlineage"
    kafka_cli.worker_env = {
        **(kafka_cli.worker_env or {}),
        "DATRIX_OPENLINEAGE_URL": f"kafka://{topic}",
    }
    start_running_worker(kafka_cli)
    run = kafka_cli(
        "scan",
        str(write_csv(tmp_path / "k.csv", 200)),
        "--name",
        "orders",
        "--format",
        "json",
        timeout=300,
    )
    assert run.code == 0, run.stderr
    report = run.json()
    settings = load_settings(env)

    def read() -> list[dict[str, Any]]:
        found = records_to_end(settings, topic, "lineage-test", wait=10)
        if found is None:
            return []
        return [json.loads(m.value()) for m in found[1]]

    events: list[dict[str, Any]] = []

    def complete() -> bool:
        events[:] = read()
        return any(e["eventType"] == "COMPLETE" for e in events)

    wait_until(complete, "the COMPLETE run event is on the topic", timeout=120)
    check_scan(events, report, "orders")
    tenant = load_settings(env).tenant
    assert {e["inputs"][0]["namespace"] for e in events} == {f"datrix://{tenant}"}


def test_a_closed_stream_window_is_a_run_event_on_the_topic(kafka_cli: KafkaCli) -> None:
    """The monitor closes a window of a registered stream; the policies role emits it as
    a COMPLETE run whose input is the data topic, with the window's metrics and the
    null-rate threshold it breaks."""
    from tests.integration.test_stream_monitor import WINDOW_MS, DataTopic

    env = kafka_cli.extra or {}
    topic = f"{env['DATRIX_TOPIC_PREFIX']}openlineage"
    tenant = f"lineage-{uuid.uuid4().hex[:6]}"
    kafka_cli.extra = {**env, "DATRIX_TENANT": tenant}
    kafka_cli.worker_env = {
        **(kafka_cli.worker_env or {}),
        "DATRIX_OPENLINEAGE_URL": f"kafka://{topic}",
    }
    kafka_cli.start_worker("processor,relay,projector,monitor,policies")
    data = DataTopic(kafka_cli, partitions=1)
    base = (int(time.time() * 1000) - 120_000) // WINDOW_MS * WINDOW_MS  # in the past
    for i in range(10):
        value = {"id": i, "v": None if i < 3 else i * 1.5}
        data.send(0, base + i, json.dumps(value).encode())
    data.flush()
    added = kafka_cli(
        "streams", "add", data.name, "--name", "readings", "--format", "json",
        "--window", "2s", "--grace", "1s", "--max-null-rate", "0.2",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    settings = load_settings(env)
    windows: list[dict[str, Any]] = []

    def emitted() -> bool:
        found = records_to_end(settings, topic, "lineage-test", wait=10)
        events = [json.loads(m.value()) for m in found[1]] if found else []
        windows[:] = [e for e in events if e["job"]["name"] == "stream.readings.partition-0"]
        return bool(windows)

    wait_until(emitted, "the window's run event is on the topic", timeout=120)
    [event] = windows
    assert openlineage_errors(event) == []
    assert event["eventType"] == "COMPLETE"
    [dataset] = event["inputs"]
    assert dataset["name"] == data.name
    assert dataset["namespace"] == f"kafka://{env['DATRIX_KAFKA_BOOTSTRAP'].split(',')[0]}"
    metrics = dataset["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == 10
    assert metrics["columnMetrics"]["v"]["nullCount"] == 3
    failed = [
        (a["assertion"], a.get("column"))
        for a in dataset["inputFacets"]["dataQualityAssertions"]["assertions"]
        if not a["success"]
    ]
    assert failed == [("max_null_rate", "v")]
