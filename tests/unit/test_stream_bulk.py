"""The monitor's bulk path for a json stream's micro-batch (``StreamMonitor._take_flat``)
against its record-by-record path (``_take``), on real confluent-kafka ``Message``
objects, offline; and the garbage-collector setting a monitor runs with."""

from __future__ import annotations

import gc
import json
import threading
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from datrix.jobs.streams.formats import decode_json
from datrix.jobs.streams.window import PartitionWindows
from datrix.runtime.worker.common import WorkerContext
from datrix.runtime.worker.monitor import (
    GC_GEN0_THRESHOLD,
    Batch,
    Partition,
    StreamMonitor,
    StreamSpec,
    collect_less,
)
from datrix.streams.kafka import topics_for
from datrix.streams.settings import load_settings

NOW_MS = 1_700_000_100_000


def monitor() -> StreamMonitor:
    settings = load_settings({"DATRIX_KAFKA_BOOTSTRAP": "127.0.0.1:9"})  # never reached
    ctx = WorkerContext(settings, topics_for(settings), threading.Event())
    spec = StreamSpec(uuid.uuid4(), "t", "s", "data", "json", None, 10, 1, "earliest")
    mon = StreamMonitor(ctx, spec, threading.Event())
    for partition in (0, 1):  # assigned already: no event store to read
        windows = PartitionWindows(10_000, 1_000, mon._accumulator)
        mon.parts[partition] = Partition(windows)
    return mon


def message(partition: int, offset: int, value: bytes | None, **kw: Any) -> Message:
    kw.setdefault("timestamp", (1, 1_700_000_000_000 + offset))  # 1: CreateTime
    return Message(topic="data", partition=partition, offset=offset, value=value, **kw)


def contents(batches: dict[int, Batch]) -> dict[int, tuple[Any, ...]]:
    return {
        p: (b.times, b.offsets, b.values, b.identities, b.last_offset)
        for p, b in sorted(batches.items())
    }


def flat(i: int) -> bytes:
    return json.dumps({"id": i, "x": None if i % 3 else i / 2, "s": f"v{i}"}).encode()


def test_bulk_fills_the_batches_exactly_as_record_by_record() -> None:
    messages = [message(i % 2, 100 + i, flat(i)) for i in range(40)]
    messages[7] = message(1, 107, flat(7), timestamp=(0, -1))  # no timestamp: now
    bulk, one_by_one = monitor(), monitor()
    got: dict[int, Batch] = {}
    assert bulk._take_flat(messages, got, NOW_MS) == []
    expected: dict[int, Batch] = {}
    one_by_one._take(messages, expected, NOW_MS, decode_json, None)  # type: ignore[arg-type]
    assert contents(got) == contents(expected)
    assert got[1].times[3] == NOW_MS  # message 7 is partition 1's fourth
    assert all(not p.caught_up for p in bulk.parts.values())


@pytest.mark.parametrize(
    "odd",
    [
        message(0, 5, flat(5), key=b"k"),  # a key: identities to check
        message(0, 5, None, error=KafkaError(KafkaError._PARTITION_EOF)),
    ],
    ids=["key", "eof"],
)
def test_a_micro_batch_with_a_key_or_an_eof_goes_record_by_record(odd: Message) -> None:
    messages = [message(0, i, flat(i)) for i in range(5)] + [odd]
    batches: dict[int, Batch] = {}
    assert monitor()._take_flat(messages, batches, NOW_MS) is messages
    assert batches == {}


def test_only_the_partition_with_a_record_that_is_no_flat_object_goes_record_by_record() -> None:
    messages = [message(i % 2, i, flat(i)) for i in range(10)]
    messages[4] = message(0, 4, b'{"nested": {"a": 1}}')
    batches: dict[int, Batch] = {}
    rest = monitor()._take_flat(messages, batches, NOW_MS)
    assert [(m.partition(), m.offset()) for m in rest] == [(0, i) for i in range(0, 10, 2)]
    assert list(batches) == [1] and batches[1].offsets == [1, 3, 5, 7, 9]


def test_collect_less_raises_the_first_threshold_and_never_lowers_it() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        collect_less()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, 10, 10)
        gc.set_threshold(GC_GEN0_THRESHOLD * 2, 5, 5)
        collect_less()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD * 2, 5, 5)
    finally:
        gc.set_threshold(*before)


def placed(mon: StreamMonitor) -> dict[int, tuple[Any, ...]]:
    """Partition 0's windows: start -> what their accumulators were given."""
    windows = mon.parts[0].windows
    return {
        start: (
            w.latest,
            w.first_offset,
            w.acc.offsets,
            w.acc.lags,
            w.acc.pending,
            w.acc.duplicates,
        )
        for start, w in windows.open.items()
    } | {-1: windows.late}


@pytest.mark.parametrize("in_order", [True, False], ids=["in-time-order", "out-of-order"])
def test_placing_a_micro_batch_is_placing_its_records_one_by_one(in_order: bool) -> None:
    """``_place`` (a window's records a group at a time) gives the record-by-record
    placement: windows, offsets, lags, rows, duplicates, latest times, late records."""
    import random

    rng = random.Random(3)
    base = 1_700_000_000_000
    times = sorted(base + rng.randrange(0, 35_000) for _ in range(300))  # 4 windows of 10 s
    if not in_order:
        rng.shuffle(times)
    rows = [{"i": i} for i in range(300)]
    # duplicates: in time order only (out of order, the grouping takes a window's records
    # together, so which copy of a repeated identity counts as the duplicate can differ)
    identities = [rng.choice([None, 1, 2, 3, i]) if in_order else i for i in range(300)]

    batched, one_by_one = monitor(), monitor()
    for mon in (batched, one_by_one):  # an earlier window closed: its records are late
        early = mon.parts[0].windows.place(base - 10_000, 0)
        assert early is not None
        mon.parts[0].windows.close(early)
    late_times = [base - 5_000, *times[:150], base - 1, *times[150:]]
    offsets = list(range(1, len(late_times) + 1))
    values = [{"late": 1}, *rows[:150], {"late": 2}, *rows[150:]]
    idents = [None, *identities[:150], None, *identities[150:]]

    batch = Batch(batched.parts[0])
    batch.times, batch.offsets, batch.values = list(late_times), list(offsets), list(values)
    batch.identities = list(idents)
    batched._place(batch, NOW_MS)
    assert batch.times == [] and batch.identities is None

    part = one_by_one.parts[0]
    for at, offset, row, identity in zip(late_times, offsets, values, idents, strict=True):
        window = part.windows.place(at, offset)
        if window is not None:
            window.acc.seen = part.recent
            window.acc.add(row, offset, at, NOW_MS, identity)
    assert placed(batched) == placed(one_by_one)
    assert len(placed(batched)) == 5 and placed(batched)[-1] == 2  # 4 windows; 2 late
