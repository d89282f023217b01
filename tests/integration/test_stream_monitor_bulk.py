"""The monitor's bulk path (``StreamMonitor._take_flat``: a ``json`` micro-batch of flat
objects without keys decoded in one call) against the real broker and PostgreSQL: a
backlog of 12,000 records in two windows, written by a plain confluent-kafka producer, is
read by the monitor running in this process (so the records it took in bulk can be
counted) beside a worker whose processor and projector land its windows in the read
model. Checked: most of the backlog went through the bulk path, and the windows' counts,
offsets, null rates, summaries and distinct counts are exactly those of the records.
Equality with the record-by-record path on the same messages: tests/unit/test_stream_bulk.py."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from datrix.runtime.worker.common import WorkerContext
from datrix.runtime.worker.monitor import BATCH, Batch, StreamMonitor, active_streams
from datrix.streams.kafka import topics_for
from datrix.streams.registry import core_registry
from datrix.streams.settings import load_settings
from tests.integration.conftest import KafkaCli
from tests.integration.test_stream_monitor import (
    DataTopic,
    add_stream,
    null_rates,
    owner,
    wait_for,
    windows_of,
)

pytestmark = pytest.mark.integration
WINDOW_MS = 10_000
PER_WINDOW = 6_000


class Counting(StreamMonitor):
    """The monitor, counting the records its bulk path took."""

    in_bulk = 0

    def _take_flat(self, messages: list[Any], batches: dict[int, Batch], now_ms: int) -> list[Any]:
        rest = super()._take_flat(messages, batches, now_ms)
        self.in_bulk += len(messages) - len(rest)
        return rest


def test_a_backlog_of_flat_json_is_taken_in_bulk_and_measured_exactly(
    kafka_cli: KafkaCli,
) -> None:
    tenant = "bulk-test"
    kafka_cli.extra = {**(kafka_cli.extra or {}), "DATRIX_TENANT": tenant}
    kafka_cli.start_worker("processor,relay,projector")  # the monitor: this process
    topic = DataTopic(kafka_cli, partitions=1)
    base = (int(time.time() * 1000) - 120_000) // WINDOW_MS * WINDOW_MS  # two minutes ago
    for w in range(2):
        for i in range(PER_WINDOW):
            doc = {"id": i, "v": None if i % 4 == 0 else i * 0.5, "name": f"n{i % 7}"}
            topic.send(0, base + w * WINDOW_MS + i, json.dumps(doc).encode())
    topic.flush()
    stream_id = add_stream(
        kafka_cli,
        tenant,
        topic.name,
        "bulk",
        "--format",
        "json",
        "--window",
        "10s",
        "--grace",
        "1s",
    )
    store = owner(kafka_cli)
    spec = wait_for(
        lambda: active_streams(store).get(stream_id),
        lambda s: s is not None,
        "the stream in the read model",
    )

    settings = load_settings({**kafka_cli.env(), **(kafka_cli.worker_env or {})})
    registry = core_registry()
    registry.install()
    stop = threading.Event()
    monitor = Counting(
        WorkerContext(settings, topics_for(settings), stop, registry=registry), spec, stop
    )
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    try:
        found = wait_for(
            lambda: windows_of(store, tenant, stream_id),
            lambda w: len(w) >= 2,
            "the monitor closed 2 windows",
        )
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    # at least one whole micro-batch went through the bulk path (the rest, with the
    # partition EOF once the backlog was read, record by record)
    assert monitor.in_bulk >= BATCH, monitor.in_bulk

    assert sorted(found) == [(0, base), (0, base + WINDOW_MS)]
    for w in range(2):
        metrics = found[(0, base + w * WINDOW_MS)]["metrics"]
        assert metrics["count"] == PER_WINDOW and metrics["poisoned"] == 0
        assert (metrics["first_offset"], metrics["last_offset"]) == (
            w * PER_WINDOW,
            (w + 1) * PER_WINDOW - 1,
        )
        assert null_rates(found[(0, base + w * WINDOW_MS)]) == {"id": 0.0, "name": 0.0, "v": 0.25}
        fields = {f["name"]: f for f in metrics["fields"]}
        assert (fields["v"]["type"], fields["v"]["minimum"], fields["v"]["maximum"]) == (
            "float",
            0.5,
            (PER_WINDOW - 1) * 0.5,
        )
        assert fields["name"]["distinct"] == 7
        assert abs(fields["id"]["distinct"] - PER_WINDOW) <= 0.1 * PER_WINDOW  # HLL, p=10
