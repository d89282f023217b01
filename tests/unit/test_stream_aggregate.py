"""The stream aggregate's decider (pure: no I/O): registration rules, windows and their
threshold alerts per partition, snapshots, removal, replay and the Avro round trip; and the
command processor dropping a window resubmitted under its window id."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates import stream
from datrix.aggregates.common import Event, Meta, Rejected
from datrix.aggregates.stream import (
    AddStreamSnapshot,
    Breach,
    CloseStreamWindow,
    FieldMetrics,
    RegisterStream,
    RemoveStream,
    SchemaChange,
    Stream,
    StreamQualityDegraded,
    StreamQualityRecovered,
    StreamRegistered,
    StreamRemoved,
    StreamSnapshotted,
    StreamThresholds,
    StreamWindowClosed,
    WindowMetrics,
    epoch_ms,
    stream_id_for,
    window_id_for,
)
from datrix.streams.event_store import sqlite_event_store
from datrix.streams.messages import (
    command_envelope,
    decode_command,
    decode_envelope,
    decode_event,
    encode_envelope,
    event_envelope,
)
from datrix.streams.processor import CommandProcessor

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "acme"
SID = stream_id_for(TENANT, "orders")
DATASET = uuid.UUID("0b5c5e0e-9f0b-4a47-8f57-3a4c8a2b1c0d")
THRESHOLDS = StreamThresholds(max_null_rate=0.1, max_lag_seconds=30.0, min_records=5)


def meta(tenant: str = TENANT) -> Meta:
    return Meta(command_id=uuid.uuid4(), time=T0, tenant=tenant)


def register(**change: Any) -> RegisterStream:
    values: dict[str, Any] = {
        "stream_id": SID,
        "name": "orders",
        "topic": "shop.orders",
        "format": "json",
        "key_field": "order_id",
        "window_seconds": 60,
        "grace_seconds": 10,
        "snapshot_every_seconds": 3600,
        "start_from": "earliest",
        "thresholds": THRESHOLDS,
    }
    values.update(change)
    return RegisterStream(**values)


def field(name: str = "amount", **change: Any) -> FieldMetrics:
    values: dict[str, Any] = {
        "name": name,
        "type": "float",
        "nulls": 1,
        "null_rate": 0.01,
        "distinct": 95,
        "hll": bytes(range(256)) * 4,  # 1,024 registers of HyperLogLog(p=10)
        "minimum": 0.5,
        "maximum": 99.5,
        "mean": 50.0,
        "stddev": 28.9,
        "bins": (0.0, 25.0, 50.0, 75.0, 100.0),
        "counts": (25, 25, 24, 25),
        "psi": 0.02,
    }
    values.update(change)
    return FieldMetrics(**values)


def metrics(**change: Any) -> WindowMetrics:
    values: dict[str, Any] = {
        "count": 100,
        "rate_per_second": 100 / 60,
        "first_offset": 1000,
        "last_offset": 1102,
        "fields": (
            field(),
            field(
                "status",
                type="string",
                minimum=None,
                maximum=None,
                mean=None,
                stddev=None,
                bins=(),
                counts=(),
                psi=None,
            ),
        ),
        "schema_changes": (),
        "max_lag_seconds": 2.5,
        "mean_lag_seconds": 0.75,
        "duplicates": 2,
        "poisoned": 1,
        "slot_lag_bytes": None,
    }
    values.update(change)
    return WindowMetrics(**values)


def window(
    partition: int = 0, start: datetime = T0, m: WindowMetrics | None = None, **change: Any
) -> CloseStreamWindow:
    values: dict[str, Any] = {
        "stream_id": SID,
        "window_id": window_id_for(SID, partition, epoch_ms(start)),
        "partition": partition,
        "window_start": start,
        "window_end": start + timedelta(seconds=60),
        "metrics": m if m is not None else metrics(),
    }
    values.update(change)
    return CloseStreamWindow(**values)


def bad(**change: Any) -> WindowMetrics:
    """The default metrics with one field's metrics changed."""
    return metrics(fields=(field(**change),))


class Log:
    """An aggregate's events, decided and folded as the processor does."""

    def __init__(self, *commands: Any) -> None:
        self.events: list[Event] = []
        for command in commands:
            self.run(command)

    @property
    def state(self) -> Stream | None:
        state: Stream | None = None
        for event in self.events:
            state = stream.evolve(state, event)
        return state

    def run(self, command: Any, tenant: str = TENANT) -> list[Event]:
        decided = stream.AGGREGATE.decide(command, self.state, meta(tenant), {})
        self.events.extend(decided)
        return decided


def refuses(log: Log, command: Any, match: str, tenant: str = TENANT) -> None:
    """``command`` is refused with a reason matching ``match`` and records nothing."""
    before = list(log.events)
    with pytest.raises(Rejected, match=match):
        log.run(command, tenant)
    assert log.events == before


def registered() -> Log:
    return Log(register())


# ---- ids ------------------------------------------------------------------------------
def test_ids_are_deterministic_and_distinct() -> None:
    assert stream_id_for("acme", "orders") == SID
    assert stream_id_for("other", "orders") != SID
    assert stream_id_for("acme", "orders2") != SID
    first = window_id_for(SID, 0, epoch_ms(T0))
    assert first == window_id_for(SID, 0, 1772366400000)
    assert first != window_id_for(SID, 1, epoch_ms(T0))
    assert first != window_id_for(SID, 0, epoch_ms(T0 + timedelta(seconds=60)))
    assert first != window_id_for(stream_id_for("acme", "other"), 0, epoch_ms(T0))


def test_epoch_ms_is_exact_and_zone_independent() -> None:
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert epoch_ms(plus_two) == epoch_ms(T0) == 1_772_366_400_000
    assert epoch_ms(T0 + timedelta(microseconds=999)) == epoch_ms(T0)
    assert epoch_ms(datetime(1970, 1, 1, tzinfo=UTC) - timedelta(milliseconds=1)) == -1


# ---- registration ---------------------------------------------------------------------
def test_registration_records_the_settings_as_given() -> None:
    log = Log()
    (event,) = log.run(register(name="  orders ", key_field=" order_id "))
    assert isinstance(event, StreamRegistered)
    assert (event.originator_id, event.originator_version, event.stream_id) == (SID, 1, SID)
    assert (event.tenant, event.name, event.topic, event.format) == (
        TENANT,
        "orders",
        "shop.orders",
        "json",
    )
    assert (event.key_field, event.window_seconds, event.grace_seconds) == ("order_id", 60, 10)
    assert (event.snapshot_every_seconds, event.start_from) == (3600, "earliest")
    assert event.thresholds == THRESHOLDS
    state = log.state
    assert state is not None
    assert (state.name, state.removed, state.degraded, state.windows) == (
        "orders",
        False,
        frozenset(),
        0,
    )


@pytest.mark.parametrize("fmt", stream.FORMATS)
def test_every_format_can_be_registered(fmt: str) -> None:
    (event,) = Log().run(register(format=fmt, key_field=None, snapshot_every_seconds=None))
    assert isinstance(event, StreamRegistered)
    assert (event.format, event.key_field, event.snapshot_every_seconds) == (fmt, None, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"format": "csv"}, "stream format 'csv' is not one of json, json-schema, debezium"),
        ({"start_from": "now"}, "starts from earliest or latest, not 'now'"),
        ({"window_seconds": 0}, r"lasts 1 second to 1 day \(86,400 s\), not 0 s"),
        ({"window_seconds": 86_401}, "not 86,401 s"),
        ({"grace_seconds": -1}, "grace period is 0 to 86,400 s, not -1 s"),
        ({"snapshot_every_seconds": 30}, "every whole number of windows .60 s., not every 30 s"),
        ({"snapshot_every_seconds": 90}, "not every 90 s"),
        ({"key_field": "  "}, "key field, when given, needs a name"),
        ({"name": " ", "stream_id": stream_id_for(TENANT, "")}, "needs a non-empty name"),
        ({"name": "a\nb", "stream_id": stream_id_for(TENANT, "a\nb")}, "printable text"),
        ({"name": "x" * 201, "stream_id": stream_id_for(TENANT, "x" * 201)}, "at most 200"),
        ({"topic": ""}, "is not a Kafka topic name"),
        ({"topic": "orders topic"}, "'orders topic' is not a Kafka topic name"),
        ({"topic": ".."}, "is not a Kafka topic name"),
        ({"topic": "x" * 250}, "is not a Kafka topic name"),
        ({"topic": "__consumer_offsets"}, "is internal .* prefix '__'"),
        ({"topic": "datrix.events"}, "is internal .* prefix 'datrix.'"),
        ({"thresholds": StreamThresholds(max_null_rate=1.5)}, "max_null_rate is a rate between"),
        (
            {"thresholds": StreamThresholds(max_duplicate_rate=2.0)},
            "max_duplicate_rate is a rate between 0 and 1, not 2.0",
        ),
        ({"thresholds": StreamThresholds(max_lag_seconds=-1.0)}, "cannot be negative"),
        ({"thresholds": StreamThresholds(min_records=-3)}, "min_records cannot be negative"),
        (
            {"thresholds": StreamThresholds(max_psi=float("nan"))},
            "max_psi must be a finite number",
        ),
        (
            {"thresholds": StreamThresholds(max_slot_lag_bytes=float("inf"))},  # type: ignore[arg-type]
            "max_slot_lag_bytes must be a finite number",
        ),
        ({"stream_id": uuid.uuid4()}, "is not the id of the name 'orders'"),
    ],
)
def test_a_registration_is_refused_with_its_reason(change: dict[str, Any], reason: str) -> None:
    refuses(Log(), register(**change), reason)


def test_a_name_is_registered_once_per_tenant() -> None:
    log = registered()
    refuses(log, register(topic="other.topic"), rf"stream 'orders' \({SID}\) is already registered")
    # Another tenant's name of the same spelling is another stream, registered on its own id.
    other = stream_id_for("globex", "orders")
    theirs = Log()
    (event,) = theirs.run(register(stream_id=other), tenant="globex")
    assert isinstance(event, StreamRegistered)
    assert (event.originator_id, event.tenant) == (other, "globex")


def test_another_tenants_stream_answers_as_unknown() -> None:
    log = registered()
    # Their registration under our id is refused as a wrong id, not as "already registered".
    refuses(log, register(), "is not the id of the name 'orders'", tenant="globex")
    refuses(log, window(), f"stream {SID} is not registered", tenant="globex")
    refuses(log, RemoveStream(SID, None), f"stream {SID} is not registered", tenant="globex")


def test_commands_of_an_unregistered_stream_are_refused() -> None:
    log = Log()
    refuses(log, window(), f"stream {SID} is not registered")
    refuses(log, RemoveStream(SID, "gone"), f"stream {SID} is not registered")
    snapshot = AddStreamSnapshot(SID, uuid.uuid4(), 1, T0, T0 + timedelta(hours=1))
    refuses(log, snapshot, f"stream {SID} is not registered")


# ---- windows --------------------------------------------------------------------------
def test_a_healthy_window_is_recorded_alone() -> None:
    log = registered()
    command = window()
    (event,) = log.run(command)
    assert isinstance(event, StreamWindowClosed)
    assert (event.originator_version, event.stream_id, event.window_id) == (
        2,
        SID,
        command.window_id,
    )
    assert (event.partition, event.window_start, event.window_end) == (
        0,
        T0,
        T0 + timedelta(seconds=60),
    )
    assert event.metrics == command.metrics
    state = log.state
    assert state is not None
    assert (state.windows, state.records, state.last_window_end, state.degraded) == (
        1,
        100,
        T0 + timedelta(seconds=60),
        frozenset(),
    )


def test_a_breach_degrades_the_partition_once_and_a_clean_window_recovers_it() -> None:
    log = registered()
    nulls = metrics(fields=(field(nulls=40, null_rate=0.4),))
    first = log.run(window(0, T0, nulls))
    assert [type(e) for e in first] == [StreamWindowClosed, StreamQualityDegraded]
    degraded = first[1]
    assert isinstance(degraded, StreamQualityDegraded)
    assert (degraded.originator_version, degraded.window_id, degraded.partition) == (
        3,
        first[0].window_id,  # type: ignore[attr-defined]
        0,
    )
    assert degraded.breaches == (Breach("null_rate", "amount", 0.4, 0.1),)
    state = log.state
    assert state is not None and state.degraded == frozenset({0})

    # Still breaching: no second alert while the partition stays degraded.
    again = log.run(window(0, T0 + timedelta(minutes=1), nulls))
    assert [type(e) for e in again] == [StreamWindowClosed]

    # Partition 1 is judged on its own windows: healthy, no event besides the window.
    other = log.run(window(1, T0))
    assert [type(e) for e in other] == [StreamWindowClosed]

    clean = log.run(window(0, T0 + timedelta(minutes=2)))
    assert [type(e) for e in clean] == [StreamWindowClosed, StreamQualityRecovered]
    recovered = clean[1]
    assert isinstance(recovered, StreamQualityRecovered)
    assert (recovered.partition, recovered.window_id) == (0, clean[0].window_id)  # type: ignore[attr-defined]
    state = log.state
    assert state is not None
    assert (state.degraded, state.windows, state.records) == (frozenset(), 4, 400)

    # A healthy partition's clean window records nothing more.
    assert [type(e) for e in log.run(window(1, T0 + timedelta(minutes=1)))] == [StreamWindowClosed]


def test_partitions_degrade_and_recover_independently() -> None:
    log = registered()
    few = metrics(count=2, first_offset=5, last_offset=6)
    assert [type(e) for e in log.run(window(0, T0, few))][-1] is StreamQualityDegraded
    assert [type(e) for e in log.run(window(2, T0, few))][-1] is StreamQualityDegraded
    state = log.state
    assert state is not None and state.degraded == frozenset({0, 2})
    assert [type(e) for e in log.run(window(2, T0 + timedelta(minutes=1)))][-1] is (
        StreamQualityRecovered
    )
    state = log.state
    assert state is not None and state.degraded == frozenset({0})


def test_every_threshold_is_checked_in_a_fixed_order() -> None:
    log = Log(
        register(
            thresholds=StreamThresholds(
                max_null_rate=0.2,
                max_lag_seconds=10.0,
                max_psi=0.25,
                max_duplicate_rate=0.1,
                max_slot_lag_bytes=1_000_000,
                min_records=50,
            )
        )
    )
    m = metrics(
        count=40,
        fields=(
            field("a", null_rate=0.5, nulls=20, psi=0.3),
            field("b", null_rate=0.2, nulls=8, psi=0.25),  # at the limits: no breach
            field("c", null_rate=0.3, nulls=12, psi=None),
        ),
        max_lag_seconds=12.5,
        duplicates=10,
        slot_lag_bytes=2_000_000,
    )
    events = log.run(window(0, T0, m))
    alert = events[-1]
    assert isinstance(alert, StreamQualityDegraded)
    assert alert.breaches == (
        Breach("null_rate", "a", 0.5, 0.2),
        Breach("null_rate", "c", 0.3, 0.2),
        Breach("lag_seconds", None, 12.5, 10.0),
        Breach("psi", "a", 0.3, 0.25),
        Breach("duplicate_rate", None, 10 / 50, 0.1),
        Breach("slot_lag_bytes", None, 2_000_000.0, 1_000_000.0),
        Breach("records", None, 40.0, 50.0),
    )
    assert {b.metric for b in alert.breaches} == set(stream.METRIC_OF_THRESHOLD.values())


def test_unset_thresholds_and_missing_metrics_never_breach() -> None:
    log = Log(register(thresholds=StreamThresholds()))
    m = metrics(count=0, first_offset=-1, last_offset=-1, fields=(field(null_rate=1.0),))
    assert [type(e) for e in log.run(window(0, T0, m))] == [StreamWindowClosed]
    checked = Log(register(thresholds=StreamThresholds(max_lag_seconds=1.0, max_psi=0.1)))
    quiet = metrics(max_lag_seconds=None, mean_lag_seconds=None, fields=(field(psi=None),))
    assert [type(e) for e in checked.run(window(0, T0, quiet))] == [StreamWindowClosed]
    nothing = Log(register(thresholds=StreamThresholds(max_duplicate_rate=0.0)))
    empty = metrics(count=0, duplicates=0, fields=())
    assert [type(e) for e in nothing.run(window(0, T0, empty))] == [StreamWindowClosed]


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (window(partition=-1), "a topic partition is a number from 0, not -1"),
        (
            window(window_end=T0 + timedelta(seconds=30)),
            "has windows of 60 s; .* lasts 30 s",
        ),
        (window(window_id=uuid.uuid4()), "is not the id of partition 0's window"),
        (
            window(window_id=window_id_for(SID, 1, epoch_ms(T0))),
            "is not the id of partition 0's window",
        ),
        (
            window(
                window_start=T0.replace(tzinfo=None),
                window_end=T0.replace(tzinfo=None) + timedelta(seconds=60),
            ),
            "need a time zone",
        ),
        (window(m=metrics(count=-1)), "counts cannot be negative"),
        (window(m=metrics(duplicates=-1)), "counts cannot be negative"),
        (window(m=metrics(rate_per_second=float("nan"))), "rate must be a non-negative number"),
        (window(m=metrics(first_offset=9, last_offset=3)), "offsets run forwards"),
        (window(m=metrics(slot_lag_bytes=-5)), "slot lag cannot be negative"),
        (window(m=metrics(max_lag_seconds=float("inf"))), "lags must be finite"),
        (window(m=metrics(fields=(field(), field()))), "'amount' is reported twice"),
        (window(m=bad(type="decimal")), "type 'decimal', not one of int, float, string"),
        (window(m=bad(null_rate=1.2)), "null rate 1.2 is not between 0 and 1"),
        (window(m=bad(nulls=-1)), "counts cannot be negative"),
        (window(m=bad(mean=float("nan"))), "summaries must be finite numbers"),
        (window(m=bad(psi=-0.1)), "PSI cannot be negative"),
        (window(m=bad(counts=(1, 2))), "5 histogram edges make 4 bins, but 2 counts"),
        (window(m=bad(bins=(), counts=(3,))), "histogram counts without edges"),
        (window(m=bad(bins=(0.0, 2.0, 1.0), counts=(1, 1))), "edges cannot decrease"),
        (
            window(m=metrics(schema_changes=(SchemaChange("moved", "a", None, None, "?"),))),
            "schema change 'moved' of column 'a' is not one of added, removed",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_window_is_refused_with_its_reason(command: CloseStreamWindow, reason: str) -> None:
    refuses(registered(), command, reason)


def test_a_constant_huge_value_has_equal_histogram_edges_and_is_accepted() -> None:
    """The monitor's edges around a constant v are (v - 0.5, v + 0.5): equal for v >= 1e17
    in float64 (an epoch in nanoseconds), and the window is still recorded."""
    v = 1.7e18
    assert v - 0.5 == v + 0.5
    huge = bad(
        type="int",
        minimum=v,
        maximum=v,
        mean=v,
        stddev=None,
        bins=(v - 0.5, v + 0.5),
        counts=(100,),
        psi=None,
    )
    (event,) = registered().run(window(0, T0, huge))
    assert isinstance(event, StreamWindowClosed)
    assert event.metrics.fields[0].bins == (v, v)


def test_windows_may_arrive_out_of_order_across_partitions() -> None:
    log = registered()
    log.run(window(1, T0 + timedelta(minutes=5)))
    log.run(window(0, T0))
    state = log.state
    assert state is not None
    assert (state.windows, state.last_window_end) == (2, T0 + timedelta(minutes=6))


# ---- snapshots and removal ------------------------------------------------------------
def test_snapshots_follow_each_other() -> None:
    log = registered()
    ds = uuid.uuid4()
    first = AddStreamSnapshot(SID, ds, 1, T0, T0 + timedelta(hours=1))
    (event,) = log.run(first)
    assert isinstance(event, StreamSnapshotted)
    assert (event.dataset_id, event.version, event.window_start, event.window_end) == (
        ds,
        1,
        T0,
        T0 + timedelta(hours=1),
    )
    refuses(log, first, "is snapshotted up to .* would count records twice")
    refuses(
        log,
        AddStreamSnapshot(SID, ds, 2, T0 + timedelta(hours=1), T0 + timedelta(hours=1)),
        "ends after it starts",
    )
    refuses(log, AddStreamSnapshot(SID, ds, 0, T0, T0), "numbered from 1, not 0")
    (later,) = log.run(AddStreamSnapshot(SID, ds, 2, T0 + timedelta(hours=1), T0 + timedelta(2)))
    assert isinstance(later, StreamSnapshotted)
    state = log.state
    assert state is not None and state.last_snapshot_end == T0 + timedelta(days=2)


def test_a_stream_without_a_snapshot_period_takes_no_snapshot() -> None:
    log = Log(register(snapshot_every_seconds=None))
    refuses(
        log,
        AddStreamSnapshot(SID, uuid.uuid4(), 1, T0, T0 + timedelta(hours=1)),
        "takes no snapshots",
    )


def test_a_removed_stream_takes_no_windows_or_snapshots_and_keeps_its_name() -> None:
    log = registered()
    (removed,) = log.run(RemoveStream(SID, "topic retired"))
    assert isinstance(removed, StreamRemoved)
    assert (removed.reason, removed.stream_id, removed.originator_version) == (
        "topic retired",
        SID,
        2,
    )
    state = log.state
    assert state is not None and state.removed
    refuses(log, window(), "'orders' was removed; it takes no windows or snapshots")
    refuses(
        log,
        AddStreamSnapshot(SID, uuid.uuid4(), 1, T0, T0 + timedelta(hours=1)),
        "was removed; it takes no windows",
    )
    refuses(log, RemoveStream(SID, None), "'orders' is already removed")
    refuses(log, register(), "'orders' was removed; its name cannot be registered again")


# ---- replay and the codec -------------------------------------------------------------
def scenario() -> Log:
    log = registered()
    log.run(window(0, T0, metrics(count=1, first_offset=0, last_offset=0)))
    log.run(window(1, T0))
    log.run(window(0, T0 + timedelta(minutes=1)))
    log.run(AddStreamSnapshot(SID, DATASET, 1, T0, T0 + timedelta(hours=1)))
    log.run(window(1, T0 + timedelta(minutes=1), metrics(max_lag_seconds=99.0)))
    log.run(RemoveStream(SID, None))
    return log


def test_replay_is_deterministic() -> None:
    log = scenario()
    assert [type(e).__name__ for e in log.events] == [
        "StreamRegistered",
        "StreamWindowClosed",
        "StreamQualityDegraded",
        "StreamWindowClosed",
        "StreamWindowClosed",
        "StreamQualityRecovered",
        "StreamSnapshotted",
        "StreamWindowClosed",
        "StreamQualityDegraded",
        "StreamRemoved",
    ]
    assert [e.originator_version for e in log.events] == list(range(1, 11))
    first, second = log.state, log.state
    assert first == second
    assert first is not None
    assert (first.version, first.windows, first.records, first.degraded, first.removed) == (
        10,
        4,
        301,
        frozenset({1}),
        True,
    )
    # The same commands decided again give the same events (ids and time come from outside).
    assert scenario().events == log.events


def test_evolve_refuses_events_out_of_order() -> None:
    log = registered()
    state = log.state
    (closed,) = stream.decide(window(), state, meta())
    skipped = dataclasses.replace(closed, originator_version=5)
    with pytest.raises(ValueError, match="event version 5 does not follow 1"):
        stream.evolve(state, skipped)
    with pytest.raises(ValueError, match="StreamWindowClosed before StreamRegistered"):
        stream.evolve(None, closed)
    with pytest.raises(ValueError, match="StreamRegistered on an existing stream"):
        stream.evolve(state, log.events[0])


def full_window() -> CloseStreamWindow:
    changes = (
        SchemaChange("added", "coupon", None, "string", "A new field coupon (string)."),
        SchemaChange("retyped", "amount", "int", "float", "amount changed from int to float."),
        SchemaChange("removed", "legacy", "bool", None, "The field legacy is gone."),
    )
    return window(
        3,
        T0,
        metrics(
            schema_changes=changes,
            slot_lag_bytes=123_456,
            fields=(
                field(hll=bytes(range(256)) * 4),
                field(
                    "empty",
                    type="null",
                    nulls=100,
                    null_rate=1.0,
                    distinct=0,
                    hll=b"",
                    minimum=None,
                    maximum=None,
                    mean=None,
                    stddev=None,
                    bins=(),
                    counts=(),
                    psi=None,
                ),
            ),
        ),
    )


def test_a_full_window_survives_the_codec_as_command_and_events() -> None:
    command = full_window()
    env = command_envelope(command, subject=SID, tenant=TENANT, actor="monitor", time=T0)
    wire = decode_envelope(encode_envelope(env))
    back = decode_command(wire.data)
    assert back == command
    assert isinstance(back, CloseStreamWindow)
    assert back.metrics.fields[0].hll == bytes(range(256)) * 4
    assert back.window_start.tzinfo is not None

    log = Log(register(thresholds=StreamThresholds(max_null_rate=0.5)))
    events = log.run(command)
    assert [type(e) for e in events] == [StreamWindowClosed, StreamQualityDegraded]
    for event in [*log.events]:
        decoded = decode_event(decode_envelope(encode_envelope(event_envelope(event, wire))))
        assert decoded == event


def test_every_stream_command_and_event_has_a_schema() -> None:
    from datrix.streams.messages import NAMES

    for cls in (*stream.AGGREGATE.commands, *stream.AGGREGATE.events):
        assert NAMES[cls] == f"datrix.stream.{cls.__name__}"
        path = Path(stream.__file__).resolve().parents[1] / "schemas" / "avro"
        assert (path / f"datrix.stream.{cls.__name__}.avsc").is_file()


# ---- idempotence through the processor ------------------------------------------------
def test_a_window_resubmitted_under_its_window_id_is_dropped(tmp_path: Path) -> None:
    """The monitor submits a window with command_id = window_id: recomputed after a crash,
    the same window is a duplicate command and records nothing more."""
    store = sqlite_event_store(tmp_path / "events.db")
    proc = CommandProcessor(store)
    name = "command-processor:streams"
    reg = command_envelope(register(), subject=SID, tenant=TENANT, actor="test", time=T0)
    assert proc.process(name, 1, reg).outcome == "applied"
    command = window(0, T0, metrics(count=1, first_offset=0, last_offset=0))
    for position in (2, 3):
        env = command_envelope(
            command,
            subject=SID,
            tenant=TENANT,
            actor="monitor",
            time=T0,
            command_id=command.window_id,
        )
        outcome = proc.process(name, position, env).outcome
        assert outcome == ("applied" if position == 2 else "duplicate")
    types = [e.type for e in store.load(SID)]
    assert types == [
        "datrix.stream.StreamRegistered",
        "datrix.stream.StreamWindowClosed",
        "datrix.stream.StreamQualityDegraded",
    ]
