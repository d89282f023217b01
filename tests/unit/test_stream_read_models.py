"""The stream read models (``streams``, ``stream_windows``, ``stream_alerts``) and the
merged window view of ``gateway/streams.py``, offline: events decided by the stream
aggregate, encoded and decoded as on the log, projected on SQLite."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from datrix.aggregates import stream
from datrix.aggregates.common import Event, Meta
from datrix.gateway import streams as stream_services
from datrix.gateway.errors import UserInputError
from datrix.projections.read_models.streams import (
    READ_MODEL,
    alerts,
    degraded_partitions,
    stream_row,
    window_starts,
    windows_between,
)
from datrix.projections.store import SQLiteReadStore
from datrix.runtime.registry import default_registry
from datrix.streams.messages import command_envelope, decode_event, event_envelope
from tests.stream_windows import T0, close_window

TENANT = "acme"


def meta() -> Meta:
    return Meta(command_id=uuid.uuid4(), time=T0, tenant=TENANT)


def register(name: str = "orders", **thresholds: Any) -> stream.RegisterStream:
    return stream.RegisterStream(
        stream_id=stream.stream_id_for(TENANT, name),
        name=name,
        topic="shop.orders",
        format="json",
        key_field="id",
        window_seconds=60,
        grace_seconds=10,
        snapshot_every_seconds=None,
        start_from="earliest",
        thresholds=stream.StreamThresholds(**thresholds),
    )


def clean(n: int, base: int = 0) -> list[dict[str, Any]]:
    return [{"id": base + i, "amount": float(i), "city": f"c{i % 7}"} for i in range(n)]


def holey(n: int, base: int = 0) -> list[dict[str, Any]]:
    """Half the amounts missing."""
    return [{"id": base + i, "amount": None if i % 2 else 1.0, "city": "x"} for i in range(n)]


def history() -> list[Event]:
    """A stream with a null-rate threshold: windows 0-3 on partitions 0 and 1; partition 1
    degrades in window 1 and recovers in window 3."""
    command = register(max_null_rate=0.2)
    events: list[Event] = []
    state: stream.Stream | None = None

    def decide(c: Any) -> None:
        nonlocal state
        for event in stream.decide(c, state, meta()):
            events.append(event)
            state = stream.evolve(state, event)

    decide(command)
    sid = command.stream_id
    for index in range(4):
        decide(close_window(sid, 0, index, clean(10, 1000 * index)))
        records = holey(6, 1000 * index + 500) if index in (1, 2) else clean(6, 1000 * index + 500)
        decide(close_window(sid, 1, index, records))
    return events


def envelopes(events: list[Event]) -> list[Any]:
    registry = default_registry()
    cause = command_envelope(
        register(),
        subject=register().stream_id,
        tenant=TENANT,
        actor="t",
        time=T0,
        table=registry.table,
    )
    return [event_envelope(e, cause, registry.table) for e in events]


def project(path: Path, envs: list[Any]) -> SQLiteReadStore:
    store = SQLiteReadStore(path)
    registry = default_registry()
    with registry.installed(), store.transaction() as tx:
        for env in envs:
            event = decode_event(env, table=registry.table)
            READ_MODEL.handlers[type(event)](tx, env, event)
    return store


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            table: sorted(db.execute(f"SELECT * FROM {table}").fetchall())
            for table in READ_MODEL.tables
        }
    finally:
        db.close()


def test_the_rows_are_the_same_whatever_order_the_events_are_projected_in(
    tmp_path: Path,
) -> None:
    envs = envelopes(history())
    in_order = project(tmp_path / "in-order.db", envs)
    expected = dump(tmp_path / "in-order.db")
    # registration last, windows and alerts shuffled, and everything projected twice
    rest = envs[1:]
    for seed in range(3):
        shuffled = list(rest)
        random.Random(seed).shuffle(shuffled)
        path = tmp_path / f"shuffled-{seed}.db"
        project(path, [*shuffled, envs[0], *reversed(shuffled)])
        assert dump(path) == expected
    row = stream_row(in_order, TENANT, "orders")
    assert row is not None
    assert (row["windows"], row["records"], row["status"]) == (8, 64, "active")
    assert row["last_window_end"] == "2026-12-01T12:04:00+00:00"
    assert row["degraded_partitions"] == []  # partition 1 recovered in window 3
    found = alerts(in_order, TENANT, row["stream_id"])
    assert [(a["kind"], a["partition_number"]) for a in found] == [
        ("degraded", 1),
        ("recovered", 1),
    ]
    assert found[0]["breaches"][0]["metric"] == "null_rate"
    assert found[0]["breaches"][0]["field"] == "amount"
    assert found[0]["window_start"] == "2026-12-01T12:01:00+00:00"


def test_a_partition_whose_latest_alert_degraded_it_is_degraded(tmp_path: Path) -> None:
    envs = envelopes(history())
    # up to window 2: partition 1 degraded, not recovered yet
    cut = next(i for i, e in enumerate(envs) if e.type.endswith("StreamQualityRecovered"))
    store = project(tmp_path / "p.db", envs[: cut - 1])
    row = stream_row(store, TENANT, "orders")
    assert row is not None and row["degraded_partitions"] == [1]
    assert degraded_partitions(None) == []


def test_a_window_merges_its_partitions(tmp_path: Path) -> None:
    store = project(tmp_path / "m.db", envelopes(history()))
    sid = str(stream.stream_id_for(TENANT, "orders"))
    starts = window_starts(store, TENANT, sid, limit=2)
    assert starts == ["2026-12-01T12:03:00+00:00", "2026-12-01T12:02:00+00:00"]
    rows = windows_between(store, TENANT, sid, "2026-12-01T12:01:00+00:00", starts[-1])
    one = stream_services.merge([r for r in rows if r["window_start"].endswith("12:01:00+00:00")])
    assert one["partitions"] == [0, 1] and one["count"] == 16
    # 3 of partition 1's 6 amounts are null, none of partition 0's 10
    assert one["null_rate"]["amount"] == pytest.approx(3 / 16)
    # ids are all different: 16; cities c0..c6 on partition 0 and "x" on 1: 8
    assert one["distinct"]["id"] == 16
    assert one["distinct"]["city"] == 8
    amounts = [float(i) for i in range(10)] + [1.0] * 3
    mean = sum(amounts) / len(amounts)
    assert one["fields"]["amount"]["mean"] == pytest.approx(mean)
    spread = (sum((a - mean) ** 2 for a in amounts) / len(amounts)) ** 0.5
    assert one["fields"]["amount"]["stddev"] == pytest.approx(spread)
    assert (one["fields"]["amount"]["minimum"], one["fields"]["amount"]["maximum"]) == (0.0, 9.0)


def test_the_union_of_sketches_counts_a_value_seen_on_two_partitions_once() -> None:
    from tests.stream_windows import sketch

    left = stream_services.base64.b64encode(sketch(list(range(0, 3000)))).decode()
    right = stream_services.base64.b64encode(sketch(list(range(2000, 5000)))).decode()
    union = stream_services.distinct_of([left, right])
    assert abs(union - 5000) / 5000 < 0.1  # p=10: a few per cent of error
    with pytest.raises(ValueError, match="registers"):
        stream_services.distinct_of([stream_services.base64.b64encode(b"\x00" * 16).decode()])


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m", 60), ("1h", 3600), ("1d", 86400), ("90", 90), (" 2M ", 120)],
)
def test_durations(text: str, seconds: int) -> None:
    assert stream_services.whole_seconds(text, "--window", 1, 86400) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "not a duration"),
        ("-1s", "not a duration"),
        ("0s", "from 1s to 1d"),
        ("2d", "from 1s to 1d"),
        ("1500ms", "whole number"),
    ],
)
def test_bad_durations_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        stream_services.whole_seconds(text, "--window", 1, 86400)


# ---- registration checks (gateway/streams.py): what a read can foresee, offline ---------
class _Runtime:
    """The two things ``check_registration`` reads of a runtime: its settings and the
    read store (a real SQLite one). Kafka mode is a setting: no broker is reached."""

    def __init__(self, path: Path, kafka: bool) -> None:
        from datrix.streams.settings import load_settings

        env = {"DATRIX_HOME": str(path / "home"), "DATRIX_TENANT": TENANT}
        if kafka:
            env["DATRIX_KAFKA_BOOTSTRAP"] = "127.0.0.1:1"
        self.settings = load_settings(env)
        self.read_store = project(path / "rm.db", envelopes(history()))


def _check(rt: Any, **change: Any) -> stream.RegisterStream:
    wanted: dict[str, Any] = {
        "topic": "shop.orders",
        "name": "payments",
        "format": "json",
        "key_field": None,
        "window_seconds": 60,
        "grace_seconds": 10,
        "snapshot_every_seconds": None,
        "start_from": "earliest",
        "thresholds": stream.StreamThresholds(),
        **change,
    }
    return stream_services.check_registration(rt, **wanted)


def test_registration_is_checked_before_it_is_submitted(tmp_path: Path) -> None:
    rt = _Runtime(tmp_path, kafka=True)
    command = _check(rt, name="  payments ", key_field=" id ")
    assert (command.name, command.key_field) == ("payments", "id")
    assert command.stream_id == stream.stream_id_for(TENANT, "payments")
    for change, message in (
        ({"name": "orders"}, "a stream named 'orders' exists"),
        ({"topic": "datrix.events"}, "internal"),
        ({"topic": "bad topic"}, "not a Kafka topic name"),
        ({"format": "xml"}, "format 'xml' is not one of"),
        ({"start_from": "now"}, "start from 'now'"),
        ({"window_seconds": 0}, "from 1s to 1d"),
        ({"grace_seconds": -1}, "grace period"),
        ({"snapshot_every_seconds": 0}, "snapshots"),
        ({"key_field": " "}, "key field"),
        ({"thresholds": stream.StreamThresholds(max_null_rate=2)}, "between 0 and 1"),
        ({"name": ""}, "non-empty name"),
    ):
        with pytest.raises(UserInputError, match=message):
            _check(rt, **change)


def test_streams_need_kafka_mode_to_be_registered(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="streams need Kafka mode"):
        _check(_Runtime(tmp_path, kafka=False))


def test_the_latest_snapshot_is_the_one_ending_last_in_any_order(tmp_path: Path) -> None:
    from datetime import timedelta

    command = dataclasses.replace(register("snapped"), snapshot_every_seconds=120)
    state = stream.evolve(None, stream.decide(command, None, meta())[0])
    registered = stream.decide(command, None, meta())
    snaps: list[Event] = []
    dataset_id = uuid.uuid4()
    for version in (1, 2):
        start = T0 + timedelta(minutes=2 * (version - 1))
        snap = stream.AddStreamSnapshot(
            command.stream_id, dataset_id, version, start, start + timedelta(minutes=2)
        )
        (event,) = stream.decide(snap, state, meta())
        state = stream.evolve(state, event)
        snaps.append(event)
    envs = envelopes([*registered, *snaps])
    rows = []
    for name, order in (("in-order", envs), ("reversed", [envs[0], *reversed(envs[1:])])):
        store = project(tmp_path / f"{name}.db", order)
        rows.append(stream_row(store, TENANT, "snapped"))
    assert rows[0] == rows[1]
    assert rows[0] is not None
    assert (rows[0]["last_snapshot_dataset"], rows[0]["last_snapshot_version"]) == (
        str(dataset_id),
        2,
    )
    assert rows[0]["last_snapshot_end"] == "2026-12-01T12:04:00+00:00"
