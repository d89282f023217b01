"""A window's metrics (jobs/streams/metrics.py): counts, null rates, HyperLogLog in
datasketch's layout, numeric summaries, histograms on the baseline's edges and PSI,
freshness, duplicates, schema changes against the previous window."""

from __future__ import annotations

import random
import uuid

import numpy as np
import polars as pl
from datasketch import HyperLogLog

from datrix.aggregates.stream import metrics_problem
from datrix.jobs.streams.metrics import (
    MAX_FIELDS,
    MIN_BASELINE,
    Baseline,
    WindowAccumulator,
    baselines_from,
    frame_of,
    histogram,
    hll_count,
    hll_registers,
    psi,
)


def window(rows: list[dict[str, object] | None], batch: int = 7) -> WindowAccumulator:
    acc = WindowAccumulator(10_000, 12_000)
    for offset, row in enumerate(rows):
        acc.add(row, 100 + offset, event_ms=10_000 + offset, processing_ms=10_500 + 2 * offset)
        if offset % batch == batch - 1:
            acc.fold()  # micro-batches: the result does not depend on where they end
    return acc


def test_counts_null_rates_and_types() -> None:
    rows: list[dict[str, object] | None] = [
        {"id": i, "name": None if i % 4 == 0 else f"n{i % 3}", "score": i / 2} for i in range(20)
    ]
    rows[5] = {"id": 5}  # a row without two fields: they are null in it
    rows.append(None)  # a record without a row image (a Debezium delete)
    m = window(rows).finish({})
    assert metrics_problem(m) is None
    assert (m.count, m.first_offset, m.last_offset, m.duplicates) == (21, 100, 120, 0)
    assert m.rate_per_second == 21 / 2
    by = {f.name: f for f in m.fields}
    assert [f.name for f in m.fields] == ["id", "name", "score"]
    assert (by["id"].type, by["id"].nulls, by["id"].null_rate) == ("int", 0, 0.0)
    assert (by["name"].type, by["name"].nulls) == ("string", 6)  # 0,4,8,12,16 and row 5
    assert by["name"].null_rate == 6 / 20
    assert (by["score"].type, by["score"].nulls) == ("float", 1)
    assert by["name"].distinct == 3 and by["id"].distinct == 20
    assert (by["id"].minimum, by["id"].maximum, by["id"].mean) == (0.0, 19.0, 9.5)
    assert abs(by["id"].stddev - float(np.std(np.arange(20), ddof=1))) < 1e-9  # type: ignore[operator]
    # freshness: processing - event = 500 + offset ms
    assert m.max_lag_seconds == 0.52 and abs(m.mean_lag_seconds - 0.51) < 1e-9  # type: ignore[operator]


def test_micro_batch_boundaries_do_not_change_the_metrics() -> None:
    rng = random.Random(3)
    rows: list[dict[str, object] | None] = [
        {"a": rng.choice([None, 1, 2, 3]), "b": rng.gauss(0, 1), "c": rng.choice("xyz")}
        for _ in range(500)
    ]
    assert window(rows, batch=1).finish({}) == window(rows, batch=500).finish({})
    assert window(rows, batch=13).finish({}) == window(rows, batch=64).finish({})


def test_duplicates_by_identity_are_dropped_and_counted() -> None:
    acc = WindowAccumulator(0, 1000)
    assert acc.add({"k": 1}, 0, 0, 0, identity=hash((b"k1", "lsn:1")))
    assert not acc.add({"k": 1}, 1, 0, 0, identity=hash((b"k1", "lsn:1")))
    assert acc.add({"k": 1}, 2, 0, 0, identity=hash((b"k1", "lsn:2")))
    assert acc.add({"k": 1}, 3, 0, 0, identity=None)
    m = acc.finish({})
    assert (m.count, m.duplicates) == (3, 1)


def test_hll_registers_are_datasketch_compatible_and_mergeable() -> None:
    values = pl.Series([str(uuid.UUID(int=i)) for i in range(50_000)])
    hashes = values.hash(1).to_numpy()
    one, two = hll_registers(hashes[:30_000]), hll_registers(hashes[20_000:])
    merged = HyperLogLog(reg=one.copy())
    merged.merge(HyperLogLog(reg=two.copy()))
    assert abs(merged.count() - 50_000) / 50_000 < 0.1  # p=10: ~3 % standard error
    assert hll_count(np.maximum(one, two)) == round(merged.count())
    assert hll_count(hll_registers(hashes[:5])) == 5  # small counts: linear counting, exact
    assert hll_count(hll_registers(hashes[:0])) == 0


def test_hll_bytes_round_trip() -> None:
    acc = WindowAccumulator(0, 1000)
    for i in range(300):
        acc.add({"v": i % 100}, i, 0, 0)
    field = acc.finish({}).fields[0]
    assert len(field.hll) == 1024 and abs(field.distinct - 100) <= 5
    again = HyperLogLog(reg=np.frombuffer(field.hll, dtype=np.int8).copy())
    assert round(again.count()) == field.distinct


def test_histograms_reuse_the_baseline_edges_and_psi_measures_drift() -> None:
    rng = np.random.default_rng(5)
    first = window([{"x": float(v)} for v in rng.normal(0, 1, 1000)]).finish({})
    base = first.fields[0]
    assert base.psi is None and len(base.bins) == 11 and sum(base.counts) == 1000
    baselines = baselines_from([first.fields])
    assert baselines == {"x": Baseline(base.bins, base.counts)}
    same = window([{"x": float(v)} for v in rng.normal(0, 1, 1000)]).finish(baselines)
    moved = window([{"x": float(v)} for v in rng.normal(1.5, 1, 1000)]).finish(baselines)
    assert same.fields[0].bins == base.bins and sum(same.fields[0].counts) == 1000
    assert same.fields[0].psi is not None and same.fields[0].psi < 0.1
    assert moved.fields[0].psi is not None and moved.fields[0].psi > 1.0
    # a later baseline never replaces the first one
    assert baselines_from([first.fields, moved.fields]) == baselines


def test_a_baseline_needs_enough_values() -> None:
    few = window([{"x": 1.0}] * (MIN_BASELINE - 1)).finish({})
    assert few.fields[0].psi is None and few.fields[0].bins == (0.5, 1.5)
    assert baselines_from([few.fields]) == {}


def test_histogram_puts_outside_values_in_the_end_bins() -> None:
    assert histogram(np.array([-5.0, 0.0, 0.5, 1.0, 1.5, 2.0, 9.0]), (0.0, 1.0, 2.0)) == (3, 4)
    assert psi((10, 10), (10, 10)) == 0.0


def test_schema_changes_against_the_previous_window() -> None:
    before = window([{"id": i, "v": i, "gone": "x"} for i in range(20)]).finish({})
    after = window([{"id": i, "v": f"t{i}", "new": 1.5, "gone": None} for i in range(20)])
    changes = after.finish({}, previous=before.fields).schema_changes
    assert {(c.kind, c.column, c.before, c.after) for c in changes} == {
        ("added", "new", None, "float"),
        ("retyped", "v", "int", "string"),
        # all null now: no type to compare, but it gained nulls
        ("nullability", "gone", "not null", "nullable"),
    }
    assert window([{"id": 1}]).finish({}).schema_changes == ()  # no previous window


def test_mixed_types_in_one_field_are_kept_as_text() -> None:
    frame = frame_of([{"a": {"x": 1}}, {"a": "s"}, {"b": 2}])
    assert frame.schema["a"] == pl.String and frame["a"].to_list() == ['{"x":1}', "s", None]
    m = window([{"a": {"x": 1}}, {"a": "s"}]).finish({})
    assert metrics_problem(m) is None


def test_fields_past_the_cap_are_not_measured() -> None:
    acc = WindowAccumulator(0, 1000)
    acc.add({f"f{i}": i for i in range(MAX_FIELDS + 5)}, 0, 0, 0)
    m = acc.finish({})
    assert len(m.fields) == MAX_FIELDS and len(acc.fields_dropped) == 5
    assert metrics_problem(m) is None


def test_add_many_is_add_record_by_record() -> None:
    rows: list[dict[str, object] | None] = [{"a": i % 3, "b": None} for i in range(50)]
    rows[7] = None  # a record without a row image
    one, many = WindowAccumulator(0, 1000), WindowAccumulator(0, 1000)
    for i, row in enumerate(rows):
        one.add(row, 10 + i, i, 100)
    many.add_many(rows[:20], list(range(10, 30)), list(range(20)), 100)
    many.add_many(rows[20:], list(range(30, 60)), list(range(20, 50)), 100)
    assert one.finish({}) == many.finish({})
    keyed = WindowAccumulator(0, 1000)
    keyed.add_many([{"a": 1}] * 3, [0, 1, 2], [0, 0, 0], 5, [7, 7, None])
    assert (keyed.finish({}).count, keyed.duplicates) == (2, 1)
