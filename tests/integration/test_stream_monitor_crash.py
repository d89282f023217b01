"""A stream monitor SIGKILLed in the middle of its windows resumes without double counting:
after the restart, every window's metrics equal a recomputation from the topic in one pass,
and each window is recorded once (real broker and PostgreSQL, the worker as a subprocess).

The records carry timestamps a few minutes ahead, so no window closes on the wall clock:
only a record far enough ahead (stream time) closes one. Window 0 (12 records, the PSI
baseline) closes while windows 1 and 2 are open and partly read; the worker is killed; more
records of window 2 and one that closes both are written; a fresh worker takes over from
the committed offset (the first record of window 1) and closes windows 1 and 2, window 1
with its PSI against window 0 and its schema change, both read back from the event store."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest

from datrix.aggregates.stream import StreamWindowClosed, epoch_ms, stream_id_for, window_id_for
from datrix.jobs.streams.formats import decoder_for
from datrix.jobs.streams.metrics import WindowAccumulator, baselines_from
from datrix.projections.read_models import streams as stream_views
from datrix.streams.event_store import postgres_event_store
from datrix.streams.kafka import records_to_end
from datrix.streams.messages import decode_event
from tests.integration.conftest import KafkaCli
from tests.integration.test_stream_monitor import DataTopic, owner, wait_for, windows_of

pytestmark = pytest.mark.integration
WINDOW_MS = 2000
ROLES = "processor,relay,projector,monitor"
LAGS = ("max_lag_seconds", "mean_lag_seconds")  # processing time: differs on every run


def recompute(topic: DataTopic, windows: list[int]) -> dict[int, dict[str, object]]:
    """The windows' metrics computed from the topic's records in one pass, as the read
    model holds them (without the lags)."""
    found = records_to_end(topic.settings, topic.name, "recompute")
    assert found is not None
    decode = decoder_for("json")
    accs = {start: WindowAccumulator(start, start + WINDOW_MS) for start in windows}
    for msg in found[1]:
        at = msg.timestamp()[1]
        start = at - at % WINDOW_MS
        if start in accs:
            decoded = decode(msg.value())
            assert decoded.values is not None
            identity = hash((decoded.values["id"], msg.value()))
            accs[start].add(decoded.values, msg.offset(), at, 0, identity)
    out: dict[int, dict[str, object]] = {}
    baselines: dict[str, object] = {}
    previous = None
    for start in windows:
        metrics = accs[start].finish(baselines, previous)  # type: ignore[arg-type]
        for name, baseline in baselines_from([metrics.fields]).items():
            baselines.setdefault(name, baseline)
        previous = metrics.fields
        doc = stream_views.metrics_document(metrics)
        out[start] = {k: v for k, v in doc.items() if k not in LAGS}
    return out


def test_a_sigkilled_monitor_resumes_without_double_counting(kafka_cli: KafkaCli) -> None:
    tenant = "monitor-crash"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    first = kafka_cli.start_worker(ROLES)
    topic = DataTopic(kafka_cli, partitions=1)
    base = (int(time.time() * 1000) + 300_000) // WINDOW_MS * WINDOW_MS  # 5 minutes ahead
    w0, w1, w2 = base, base + WINDOW_MS, base + 2 * WINDOW_MS

    def send(at: int, i: int, v: object, **extra: object) -> None:
        topic.send(0, at, json.dumps({"id": i, "v": v, **extra}).encode())

    for i in range(12):
        send(w0 + i, i, float(i))
    for i in range(7):
        send(w1 + i, 100 + i, None if i < 2 else float(i + 20), extra="x")
    send(w1 + 50, 103, 23.0, extra="x")  # a duplicate delivery of id 103 (same key, same value)
    for i in range(3):
        send(w2 + i, 200 + i, float(i))
    topic.flush()

    added = kafka_cli(
        "streams", "add", topic.name, "--name", "crashy", "--format", "json",
        "--key", "id", "--window", "2s", "--grace", "1s",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    stream_id = stream_id_for(tenant, "crashy")
    store = owner(kafka_cli)
    wait_for(
        lambda: windows_of(store, tenant, stream_id),
        lambda w: (0, w0) in w,
        "window 0 closed (the monitor has read into window 2)",
    )
    assert set(windows_of(store, tenant, stream_id)) == {(0, w0)}  # 1 and 2 are open
    first.kill()  # SIGKILL, mid-window
    first.wait(timeout=30)

    for i in range(3, 7):
        send(w2 + i, 200 + i, float(i))
    send(base + 6 * WINDOW_MS, 999, 1.0)  # stream time past windows 1 and 2 (+ grace)
    topic.flush()
    kafka_cli.start_worker(ROLES)
    found = wait_for(
        lambda: windows_of(store, tenant, stream_id),
        lambda w: {(0, w1), (0, w2)} <= set(w),
        "windows 1 and 2 closed by the restarted monitor",
        timeout=60,
    )

    counts = {start: found[(0, start)]["metrics"]["count"] for start in (w0, w1, w2)}
    assert counts == {w0: 12, w1: 7, w2: 7}
    assert found[(0, w1)]["metrics"]["duplicates"] == 1
    expected = recompute(topic, [w0, w1, w2])
    for start in (w0, w1, w2):
        got = {k: v for k, v in found[(0, start)]["metrics"].items() if k not in LAGS}
        assert got == expected[start], start
    fields = {f["name"]: f for f in found[(0, w1)]["metrics"]["fields"]}
    assert fields["v"]["psi"] is not None and fields["v"]["bins"]  # against window 0
    changes = found[(0, w1)]["metrics"]["schema_changes"]  # against window 0
    assert {(c["kind"], c["column"]) for c in changes} == {("nullability", "v"), ("added", "extra")}

    # each window recorded once, and the stream's total counts each record once
    env = kafka_cli.env()
    events = postgres_event_store(env["DATRIX_DATABASE_URL"], env["DATRIX_DATABASE_SCHEMA"])
    closed = Counter(
        event.window_id
        for event in map(decode_event, events.load(stream_id))
        if isinstance(event, StreamWindowClosed)
    )
    assert closed == {window_id_for(stream_id, 0, start): 1 for start in (w0, w1, w2)}
    row = stream_views.stream_row(store, tenant, "crashy")
    assert row is not None and row["records"] == 26
    assert epoch_ms(datetime.fromisoformat(str(row["last_window_end"]))) == w2 + WINDOW_MS
    assert uuid.UUID(str(row["stream_id"])) == stream_id
