"""Wide tables: every pass linear in the columns (issue 14, item 2).

The profile of a wide table (more than ``profiling.WIDE_COLUMNS`` columns) runs in column
batches with stacked value counts: it must give the figures of the one-query path. The
missingness tests are capped to ``missingness.MAX_PARTNERS`` partners per column, the
nearest usable ones in schema order, and the null-values finding says so.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality import missingness, profiling
from datrix.jobs.quality.accuracy import Accuracy
from datrix.jobs.quality.assembly import core_findings
from datrix.jobs.quality.profiling import ColumnStats, profile_columns
from datrix.jobs.quality.table import ScanTable, select_by_column


def _wide_frame(columns: int, rows: int, seed: int = 0) -> pl.DataFrame:
    """Every kind the profile handles: integers, floats with NaN and inf, text with case
    variants, booleans, categoricals, dates, lists, all-null columns, nulls."""
    rng = np.random.default_rng(seed)
    series: list[pl.Series] = []
    for j in range(columns):
        name = f"c{j}"
        kind = j % 9
        if kind == 0:
            s = pl.Series(name, rng.integers(0, 50, rows))
        elif kind == 1:
            values = rng.normal(0, 1, rows)
            values[::7] = np.nan
            values[3:4] = np.inf
            s = pl.Series(name, values)
        elif kind == 2:
            s = pl.Series(name, np.array(["red", "Red", " red", "blue"])[rng.integers(0, 4, rows)])
        elif kind == 3:
            s = pl.Series(name, rng.random(rows) < 0.3)
        elif kind == 4:
            s = pl.Series(name, np.array(["x", "y"])[rng.integers(0, 2, rows)]).cast(pl.Categorical)
        elif kind == 5:
            s = pl.Series(name, [None] * rows, dtype=pl.Int64)
        elif kind == 6:
            s = pl.date_range(
                pl.date(2020, 1, 1), pl.date(2020, 1, 1) + pl.duration(days=rows - 1), eager=True
            ).alias(name)
        elif kind == 7:
            s = pl.Series(name, [[int(v), 1] for v in rng.integers(0, 3, rows)])
        else:
            s = pl.Series(name, rng.integers(-5, 5, rows).astype(np.float64))
        if j % 4 == 0 and kind != 5:
            gaps = pl.Series(rng.random(rows) < 0.2)
            s = pl.select(pl.when(gaps).then(None).otherwise(s)).to_series().alias(name)
        series.append(s)
    return pl.DataFrame(series)


def _same(a: ColumnStats, b: ColumnStats) -> bool:
    """Equal, except means and deviations to the last digits (engines sum differently)."""
    if (a.numeric is None) != (b.numeric is None):
        return False
    if a.numeric is not None and b.numeric is not None:
        for x, y in zip(
            dataclasses.astuple(a.numeric), dataclasses.astuple(b.numeric), strict=True
        ):
            if x is None or y is None:
                if x is not y:
                    return False
            elif not (math.isnan(x) and math.isnan(y)) and not math.isclose(
                x, y, rel_tol=1e-12, abs_tol=1e-12
            ):
                return False
    return dataclasses.replace(a, numeric=None) == dataclasses.replace(b, numeric=None)


@pytest.mark.parametrize("rows", [0, 1, 10, 300])
def test_wide_profile_equals_the_one_query_profile(
    monkeypatch: pytest.MonkeyPatch, rows: int
) -> None:
    frame = _wide_frame(profiling.WIDE_COLUMNS + 60, rows)
    schema = dict(frame.schema)
    monkeypatch.setattr(profiling, "STACK_CELLS", 700)  # several stacked queries per type
    wide_rows, wide = profile_columns(ScanTable.in_memory(frame), schema)
    monkeypatch.setattr(profiling, "WIDE_COLUMNS", 10**6)
    one_rows, one = profile_columns(ScanTable.in_memory(frame), schema)
    assert wide_rows == one_rows == rows
    assert [s.name for s in wide] == list(schema)
    differ = [a.name for a, b in zip(wide, one, strict=True) if not _same(a, b)]
    assert differ == []
    if rows:
        text = wide[2]
        assert text.distinct_count == len({v for v in frame["c2"].to_list() if v is not None})
        assert wide[5].distinct_count == 0 and wide[5].top_values == []


def test_wide_bounded_profile_batches_give_the_same_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = _wide_frame(profiling.WIDE_COLUMNS + 30, 400, seed=2)
    path = tmp_path / "wide.parquet"
    frame.write_parquet(path)
    schema = dict(frame.schema)
    table = ScanTable.open(path, in_memory_mb=0)
    assert table.bounded
    batched = profile_columns(table, schema)
    monkeypatch.setattr(profiling, "WIDE_COLUMNS", 10**6)
    whole = profile_columns(table, schema)
    assert batched[0] == whole[0] == 400
    assert all(_same(a, b) for a, b in zip(batched[1], whole[1], strict=True))


def test_select_by_column_equals_select(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _wide_frame(40, 50)
    exprs = [(c, pl.col(c).null_count().alias(f"n:{c}")) for c in frame.columns]
    exprs += [(c, pl.col(c).len().alias(f"l:{c}")) for c in frame.columns[:5]]
    expected = frame.select([e for _, e in exprs])
    monkeypatch.setattr("datrix.jobs.quality.table.MANY_QUERIES", 3)
    monkeypatch.setattr("datrix.jobs.quality.table.BATCH_COLUMNS", 7)
    found = select_by_column(frame, exprs)
    assert found.select(expected.columns).equals(expected)


def test_many_queries_collect_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _wide_frame(30, 20)
    table = ScanTable.in_memory(frame)
    queries = [table.narrow([c]).select(pl.col(c).n_unique()) for c in frame.columns]
    expected = [q.collect() for q in queries]
    monkeypatch.setattr("datrix.jobs.quality.table.MANY_QUERIES", 4)
    found = table.collect_all(queries)
    assert len(found) == len(expected)
    assert all(a.equals(b) for a, b in zip(found, expected, strict=True))


def test_nearest_partners_alternate_sides_and_fill_at_the_ends() -> None:
    partners = ["a", "b", "c", "d", "e", "f"]
    positions = [0, 2, 4, 6, 8, 10]
    nearest = missingness.nearest_partners
    assert nearest(4, partners, positions, 3) == ["b", "d", "a"]  # "c" itself left out
    assert nearest(5, partners, positions, 3) == ["c", "d", "b"]  # not a partner itself
    assert nearest(0, partners, positions, 3) == ["b", "c", "d"]  # first: only after
    assert nearest(10, partners, positions, 2) == ["e", "d"]
    assert nearest(4, partners, positions, 10) == ["b", "d", "a", "e", "f"]


def _mar_frame(columns: int, rows: int = 2_000) -> pl.DataFrame:
    """Numeric noise columns; ``near`` (position 150) has nulls where its neighbour
    ``c152`` is large, ``far`` (position 0) where the last column is large."""
    rng = np.random.default_rng(7)
    data = {f"c{j}": rng.normal(0, 1, rows) for j in range(columns)}
    last = f"c{columns - 1}"
    far = np.where(data[last] > 0.5, np.nan, rng.normal(0, 1, rows))
    near = np.where(data["c152"] > 0.5, np.nan, rng.normal(0, 1, rows))
    names = list(data)
    names[0] = "far"
    names[150] = "near"
    data["c0"], data["c150"] = far, near
    return pl.DataFrame(
        [pl.Series(new, data[old]).fill_nan(None) for new, old in zip(names, data, strict=True)]
    )


def test_missingness_partners_capped_to_the_nearest(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = missingness.MAX_PARTNERS + 120
    frame = _mar_frame(columns)
    schema = dict(frame.schema)
    nulls = ["far", "near"]
    found = missingness.assess(frame.lazy(), schema, nulls, frame.height)
    assert found.classes["near"] == "MAR"  # its cause is among the nearest partners
    assert found.classes["far"] == "MCAR"  # its cause is 219 columns away: not tested
    usable = columns - 1
    assert found.capped == {
        "far": (missingness.MAX_PARTNERS, usable),
        "near": (missingness.MAX_PARTNERS, usable),
    }
    # without the cap every pair is tested, as before
    monkeypatch.setattr(missingness, "MAX_PARTNERS", 10**6)
    whole = missingness.assess(frame.lazy(), schema, nulls, frame.height)
    assert whole.classes["far"] == "MAR" and whole.capped == {}


def test_missingness_unchanged_below_the_cap() -> None:
    dropped = [f"c{j}" for j in range(40, 169) if j != 152]  # keep both causes
    frame = _mar_frame(170).select(pl.all().exclude(dropped))
    nulls = ["far", "near"]
    found = missingness.assess(frame.lazy(), dict(frame.schema), nulls, frame.height)
    assert found.capped == {}
    assert found.classes["far"] == "MAR" and found.classes["near"] == "MAR"


def test_missingness_on_ten_rows_skips_the_tests_that_cannot_pass() -> None:
    frame = _wide_frame(400, 10)
    nulls = [c for c in frame.columns if frame[c].null_count()]
    found = missingness.assess(frame.lazy(), dict(frame.schema), nulls, frame.height)
    assert not missingness._chi2_can_pass(10) and missingness._chi2_can_pass(100)
    assert {found.classes[c] for c in nulls} <= {"MCAR", "MNAR"}


def test_null_finding_says_when_the_missingness_cap_applied() -> None:
    stats = [
        ColumnStats("a", "float", 3, 5),
        ColumnStats("b", "float", 2, 5),
    ]
    findings = core_findings(
        10, stats, [], {}, Accuracy({}, {}, {}, {}), missingness_capped={"a": (100, 4_321)}
    )
    text = {f.column: f.description for f in findings if f.type == "null_values"}
    assert "tested against the 100 nearest of 4,321 other usable columns" in text["a"]
    assert "tested against" not in text["b"]


def test_html_histograms_in_column_batches_equal_one_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datrix.gateway import html_report
    from datrix.jobs.report import ColumnProfile

    frame = _wide_frame(60, 200, seed=3)
    path = tmp_path / "wide.parquet"
    frame.write_parquet(path)
    numeric = [
        ColumnProfile(c, "float", 0, 0.0, 10, {"min": frame[c].min(), "max": frame[c].max()})
        for c in frame.columns
        if frame[c].dtype.is_numeric() and frame[c].null_count() < frame.height
    ]

    def histograms() -> dict[str, tuple[object, ...]]:
        found = html_report._histograms(path, numeric)
        return {k: (h.low, h.high, h.counts, h.below, h.above) for k, h in found.items()}

    monkeypatch.setattr(html_report, "HISTOGRAM_COLUMNS", 3)
    batched = histograms()
    monkeypatch.setattr(html_report, "HISTOGRAM_COLUMNS", 10**6)
    assert batched == histograms()
    assert len(batched) >= 10  # several batches of 3
