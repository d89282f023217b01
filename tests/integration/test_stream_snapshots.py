"""Stream snapshots (``datrix streams add --snapshot-every``) in Kafka mode against the real
broker, PostgreSQL and S3: a plain confluent-kafka producer writes JSON records with the
record timestamps it chooses (in the past, so each window closes once the monitor has read
the partition to its end) to a two-partition topic, read by two workers' monitors (the
consumer group splits the partitions between them, so a period's windows come from two
processes); windows of 2 s, a snapshot every 4 s (2 windows). Each period becomes a
version of the dataset ``stream:<name>`` (cause ``stream``) whose rows are exactly the
period's records, of both partitions; ``datrix streams status`` names
the latest snapshot and ``datrix scan`` scans the stream's dataset like any other."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import polars as pl
import pytest

from datrix.aggregates.stream import snapshot_dataset_id, stream_id_for
from datrix.streams.object_store import open_object_store
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli
from tests.integration.test_stream_monitor import DataTopic, owner, wait_for

pytestmark = pytest.mark.integration
WINDOW_MS = 2000
EVERY_MS = 4000


def test_each_period_becomes_a_dataset_version_with_its_records(kafka_cli: KafkaCli) -> None:
    tenant = "snapshot-test"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    kafka_cli.start_worker("processor,relay,projector,policies,dispatcher,jobs,monitor")
    kafka_cli.start_worker("monitor")
    topic = DataTopic(kafka_cli, partitions=2)
    base = (int(time.time() * 1000) - 120_000) // EVERY_MS * EVERY_MS  # two minutes ago

    # by period, in snapshot order: by window, then partition
    sent: dict[int, list[dict[str, Any]]] = {0: [], 1: [], 2: []}
    # partition 1 is quiet after window 2: its monitor's quiet mark covers period 1 for it
    counts = {0: (5, 3, 4, 2, 1), 1: (2, 0, 1, 0, 0)}
    for window in range(5):
        for partition in (0, 1):
            for i in range(counts[partition][window]):
                row: dict[str, Any] = {
                    "id": partition * 1000 + window * 10 + i,
                    "amount": None if i == 1 else i * 1.5,
                }
                if window == 2:
                    row["note"] = f"w{window}"  # a column that appears in period 1
                topic.send(partition, base + window * WINDOW_MS + i, json.dumps(row).encode())
                sent[window // 2].append(row)
    topic.flush()

    added = kafka_cli(
        "streams", "add", topic.name, "--name", "sensors", "--format", "json",
        "--window", "2s", "--grace", "1s", "--snapshot-every", "4s",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    store = owner(kafka_cli)
    dataset_id = str(snapshot_dataset_id(tenant, "sensors"))
    versions = wait_for(
        lambda: store.query(
            "SELECT version, object_uri, row_count, cause, source_uri FROM dataset_versions "
            "WHERE dataset_id = ? ORDER BY version",
            (dataset_id,),
        ),
        lambda rows: len(rows) >= 3,
        "three snapshot versions of stream:sensors",
        timeout=50,
    )
    assert [(v[0], v[2], v[3]) for v in versions] == [
        (1, 10, "stream"),
        (2, 7, "stream"),
        (3, 1, "stream"),  # period 2: window 4, covered by the monitors' quiet marks
    ]
    objects = open_object_store(load_settings(kafka_cli.env()))
    for (version, uri, *_rest), period in zip(versions, (0, 1, 2), strict=True):
        frame = pl.read_parquet(io.BytesIO(objects.read_bytes(uri)))
        expected = [{"note": None, **r} if "note" in frame.columns else r for r in sent[period]]
        assert frame.to_dicts() == expected, (version, frame)
    assert str(stream_id_for(tenant, "sensors")) in versions[0][4]

    status = wait_for(
        lambda: kafka_cli("streams", "status", "sensors", "--format", "json").json(),
        lambda doc: doc.get("last_snapshot_version") == 3,
        "streams status names snapshot v3",
    )
    assert status["last_snapshot_dataset"] == dataset_id, status

    scanned = kafka_cli("scan", "stream:sensors", "--format", "json")
    assert scanned.code == 0, scanned.stderr
    report = scanned.json()
    # the latest version, checked against the one before: period 2 lost column 'note'
    assert report["version"] == 3, report
    changes = [i for i in report["issues"] if i["type"] == "schema_change"]
    assert len(changes) == 1 and "'note'" in changes[0]["description"], report["issues"]
