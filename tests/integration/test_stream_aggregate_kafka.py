"""The stream aggregate in Kafka mode, on the real broker and PostgreSQL: a stream is
registered and its windows closed through the runtime (``KafkaRuntime.submit``, as the
monitor does, each window under ``command_id = window_id``); a window resubmitted with its
id records nothing more; a breach degrades the partition and a clean window recovers it;
the worker's processor refuses a window of an unregistered stream with a readable reason;
the events in the event store decode to what was submitted, the read models (``streams``,
``stream_windows``, ``stream_alerts``) and the audit trail show them, and a replay of the
read models stays identical. The decider's rules: tests/unit/test_stream_aggregate.py."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from datrix.aggregates.stream import (
    Breach,
    CloseStreamWindow,
    RegisterStream,
    StreamQualityDegraded,
    StreamThresholds,
    StreamWindowClosed,
    epoch_ms,
    stream_id_for,
    window_id_for,
)
from datrix.projections.queries import Views
from datrix.projections.read_models import streams as stream_views
from datrix.streams.event_store import postgres_event_store
from datrix.streams.messages import decode_event
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli
from tests.unit.test_stream_aggregate import field, metrics

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_windows_through_kafka_are_recorded_once_and_alert_per_partition(
    kafka_cli: KafkaCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from datrix.runtime.kafka import KafkaRuntime

    # every role but a stream monitor: the windows here are the test's own
    kafka_cli.start_worker("processor,relay,projector")
    for key, value in kafka_cli.env().items():
        if key.startswith("DATRIX_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "client-home"))
    rt = KafkaRuntime(load_settings())
    tenant = rt.settings.tenant
    sid = stream_id_for(tenant, "orders")
    views = Views(rt.read_store, tenant)

    registration = RegisterStream(
        stream_id=sid,
        name="orders",
        topic="shop.orders",
        format="json",
        key_field="order_id",
        window_seconds=60,
        grace_seconds=5,
        snapshot_every_seconds=None,
        start_from="earliest",
        thresholds=StreamThresholds(max_null_rate=0.1, min_records=5),
    )

    def at(minute: int, partition: int = 0, **change: object) -> CloseStreamWindow:
        moment = START + timedelta(minutes=minute)
        return CloseStreamWindow(
            stream_id=sid,
            window_id=window_id_for(sid, partition, epoch_ms(moment)),
            partition=partition,
            window_start=moment,
            window_end=moment + timedelta(seconds=60),
            metrics=metrics(**change),
        )

    healthy = at(0)
    breaching = at(1, fields=(field(nulls=30, null_rate=0.3),))
    recovering = at(2)
    other_partition = at(0, partition=1)
    submitted = [rt.submit(registration, sid)]
    for command in (healthy, breaching, breaching, other_partition, recovering):
        submitted.append(rt.submit(command, sid, command_id=command.window_id))
    stray_id = stream_id_for(tenant, "never-registered")
    stray = CloseStreamWindow(
        stray_id, uuid.uuid4(), 0, START, START + timedelta(minutes=1), metrics()
    )
    refused = rt.submit(stray, stray_id)

    ids = {str(e.id) for e in submitted} | {str(refused.id)}
    assert len(ids) == 6  # the resubmitted window kept its id

    def answered() -> bool:
        return all(views.command_status(i) is not None for i in ids)

    rt.wait_for(answered, timeout=90)
    for command_id in ids - {str(refused.id)}:
        assert views.command_status(command_id) == {"status": "accepted", "reason": None}
    assert views.command_status(str(refused.id)) == {
        "status": "rejected",
        "reason": f"stream {stray_id} is not registered",
    }

    env = kafka_cli.env()
    store = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    history = store.load(sid)
    assert [e.type.rsplit(".", 1)[-1] for e in history] == [
        "StreamRegistered",
        "StreamWindowClosed",
        "StreamWindowClosed",
        "StreamQualityDegraded",
        "StreamWindowClosed",
        "StreamWindowClosed",
        "StreamQualityRecovered",
    ]
    assert [e.sequence for e in history] == list(range(1, 8))
    decoded = [decode_event(e) for e in history]
    windows = [e for e in decoded if isinstance(e, StreamWindowClosed)]
    assert Counter(w.window_id for w in windows) == Counter(
        {
            healthy.window_id: 1,
            breaching.window_id: 1,
            other_partition.window_id: 1,
            recovering.window_id: 1,
        }
    )
    by_id = {w.window_id: w for w in windows}
    for command in (healthy, breaching, other_partition, recovering):
        closed = by_id[command.window_id]
        assert (closed.partition, closed.window_start, closed.window_end) == (
            command.partition,
            command.window_start,
            command.window_end,
        )
        assert closed.metrics == command.metrics  # HLL bytes, histograms and all
    (degraded,) = [e for e in decoded if isinstance(e, StreamQualityDegraded)]
    assert (degraded.window_id, degraded.partition) == (breaching.window_id, 0)
    assert degraded.breaches == (Breach("null_rate", "amount", 0.3, 0.1),)
    assert store.load(stray_id) == []

    # the projector went through them: the read models (one row per window, one per
    # alert, the stream's totals) and the audit trail; a replay rebuilds the same tables
    def projected() -> bool:
        types = Counter(a["event_type"] for a in views.audit())
        row = stream_views.stream_row(rt.read_store, tenant, "orders")
        return (
            types["datrix.stream.StreamWindowClosed"] == 4
            and row is not None
            and (
                row["windows"] == 4
                and len(stream_views.alerts(rt.read_store, tenant, str(sid))) == 2
            )
        )

    rt.wait_for(projected, timeout=60)
    row = stream_views.stream_row(rt.read_store, tenant, str(sid))
    assert row is not None
    assert (row["name"], row["topic"], row["format"], row["status"]) == (
        "orders",
        "shop.orders",
        "json",
        "active",
    )
    assert (row["windows"], row["records"], row["degraded_partitions"]) == (4, 400, [])
    alerts = stream_views.alerts(rt.read_store, tenant, str(sid))
    assert [(a["kind"], a["partition_number"], a["window_id"]) for a in alerts] == [
        ("degraded", 0, str(breaching.window_id)),
        ("recovered", 0, str(recovering.window_id)),
    ]
    assert alerts[0]["breaches"] == [
        {"metric": "null_rate", "field": "amount", "value": 0.3, "limit": 0.1}
    ]
    rows = stream_views.windows_between(
        rt.read_store,
        tenant,
        str(sid),
        START.isoformat(),
        (START + timedelta(minutes=2)).isoformat(),
    )
    assert sorted(
        (str(r["window_id"]), r["partition_number"], r["record_count"]) for r in rows
    ) == sorted(
        (str(c.window_id), c.partition, 100)
        for c in (healthy, breaching, other_partition, recovering)
    )
    audit_types = Counter(a["event_type"] for a in views.audit())
    assert audit_types["datrix.stream.StreamRegistered"] == 1
    assert audit_types["datrix.stream.StreamQualityDegraded"] == 1
    assert audit_types["datrix.stream.StreamQualityRecovered"] == 1
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert "identical" in replay.stdout
