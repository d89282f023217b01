"""The monitor's slot lag bookkeeping and tombstone count, offline (the real connector,
database and broker: tests/integration/test_stream_slot_lag.py, test_stream_monitor_cdc.py)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from datrix.aggregates.stream import metrics_problem
from datrix.jobs.streams.metrics import RecentIdentities, WindowAccumulator, frame_of
from datrix.runtime.worker.slot_lag import POSTGRES_CLASS, SlotLag, slot_source


def debezium(prefix: str, slot: str, **extra: str) -> dict[str, str]:
    return {
        "connector.class": POSTGRES_CLASS,
        "topic.prefix": prefix,
        "slot.name": slot,
        "database.hostname": "db.example",
        "database.port": "6432",
        "database.dbname": "shop",
        "database.user": "cdc",
        **extra,
    }


def test_the_connector_whose_prefix_starts_the_topic_names_the_slot() -> None:
    configs = {
        "short": debezium("shop", "s_short"),
        "long": debezium("shop.eu", "s_long", **{"database.password": "pw"}),
        "other": debezium("shopping", "s_other"),
        "file": {"connector.class": "FileStreamSource", "topic.prefix": "shop"},
    }
    found = slot_source("shop.eu.public.orders", configs)
    assert found is not None
    assert (found.connector, found.slot) == ("long", "s_long")
    assert found.conninfo == {
        "host": "db.example",
        "port": "6432",
        "dbname": "shop",
        "user": "cdc",
        "password": "pw",
    }
    assert "pw" not in found.where
    assert slot_source("shop.public.orders", configs).slot == "s_short"  # type: ignore[union-attr]
    # "shop" is no prefix of "shoppingcart.x" (a prefix ends at a dot)
    assert slot_source("shoppingcart.public.t", {"short": configs["short"]}) is None
    assert slot_source("shop.public.orders", {"file": configs["file"]}) is None


def test_no_connect_url_or_no_connector_is_no_lag_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    lag = SlotLag("t.public.x", None, "s", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "datrix.worker.monitor"):
        for _ in range(3):
            assert lag.sample() is None
            now[0] += 2
    assert [r.getMessage() for r in caplog.records] == [
        "stream s: no replication slot lag: DATRIX_CONNECT_URL is not set "
        "(the slot is found through Kafka Connect)"
    ]
    lookups: list[str] = []

    def none(url: str) -> dict[str, dict[str, str]]:
        lookups.append(url)
        return {}

    lag = SlotLag("t.public.x", "http://connect:8083", "s", clock=lambda: now[0], configs=none)
    for _ in range(12):  # 12 s: the connector is looked up again every 10 s
        assert lag.sample() is None
        now[0] += 1
    assert lookups == ["http://connect:8083"] * 2
    assert lag.worst(0, 10**15) is None


def test_a_window_reports_the_largest_sample_from_its_start_to_its_close() -> None:
    lag = SlotLag("t.public.x", None, "s")
    lag.samples.extend([(1_000, 50), (2_000, 900), (3_000, 100), (9_000, 5_000)])
    assert lag.worst(1_500, 3_500) == 900
    assert lag.worst(2_500, 8_000) == 100
    assert lag.worst(9_500, 12_000) is None


def test_tombstones_are_counted_apart_from_the_records() -> None:
    acc = WindowAccumulator(0, 1_000)
    acc.add({"id": 1}, 0, 10, 20)
    acc.tombstones += 2
    metrics = acc.finish({})
    assert (metrics.count, metrics.tombstones) == (1, 2)
    assert metrics_problem(metrics) is None
    assert metrics_problem(replace(metrics, tombstones=-1)) == (
        "record, duplicate, poisoned and tombstone counts cannot be negative"
    )


def test_a_partitions_recent_identities_span_its_windows_and_forget_the_oldest() -> None:
    recent = RecentIdentities(capacity=3)
    first, second = WindowAccumulator(0, 1_000), WindowAccumulator(1_000, 2_000)
    first.seen = second.seen = recent
    assert [first.add({"k": k}, k, k, 5, identity=k) for k in (1, 2, 1)] == [True, True, False]
    assert [second.add({"k": k}, k, 1_000 + k, 1_005, identity=k) for k in (2, 3, 4)] == [
        False,
        True,
        True,
    ]
    assert len(recent) == 3 and 1 not in recent  # the oldest forgotten
    assert second.add({"k": 1}, 9, 1_009, 1_010, identity=1)  # so 1 is new again
    assert (first.finish({}).duplicates, second.finish({}).duplicates) == (1, 1)
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        RecentIdentities(0)


def test_a_frame_is_the_same_whether_rows_share_their_field_order_or_not() -> None:
    same = [{"a": 1, "b": "x", "c": None}, {"a": 2, "b": None, "c": 1.5}]
    shuffled = [{"a": 1, "b": "x", "c": None}, {"c": 1.5, "a": 2, "b": None}]
    ragged = [{"a": 1, "b": "x"}, {"a": 2, "b": None, "c": 1.5}]
    expected = {"a": [1, 2], "b": ["x", None], "c": [None, 1.5]}
    for rows in (same, shuffled, ragged):
        assert frame_of(rows).to_dict(as_series=False) == expected
    mixed = [{"v": 1, "w": {"k": 1}}, {"v": 2.5, "w": "text"}]  # no one Polars type: fallbacks
    assert frame_of(mixed).to_dict(as_series=False) == {
        "v": [1.0, 2.5],
        "w": ['{"k":1}', "text"],
    }
    assert frame_of([]).shape == (0, 0)
