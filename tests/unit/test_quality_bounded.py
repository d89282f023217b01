"""A bounded scan (Parquet read per pass, streaming or a chunk of rows at a time) reports
exactly what the in-memory scan reports on the same file.

Counts, rows, descriptions, top values, quantiles, min/max, missingness and drift must be
equal; mean and std may differ by summation order only (the streaming engine adds in
another order), checked at 1e-9 relative.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.engine import ScanTuning
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.report import ScanOptions, ScanReport
from datrix.streams.settings import SettingsError, load_settings

ROWS = 8_000
CHUNK_ROWS = 1_500  # not a divisor of ROWS: the last chunk is short


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out: Path = tmp_path_factory.mktemp("bounded")
    generate(ROWS, out, seed=21)
    before = tmp_path_factory.mktemp("bounded-previous")
    generate(6_000, before, seed=22)
    previous = before / "previous.parquet"
    frame = pl.read_parquet(before / "dirty.parquet")
    frame.with_columns(pl.col("height_cm") - 15.0).write_parquet(previous)
    return out / "dirty.parquet", previous


PROGRESS: list[tuple[str, int, int]] = []  # what the bounded scan reported


@pytest.fixture(scope="module")
def reports(
    data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[ScanReport, ScanReport]:
    path, previous = data
    options = ScanOptions(previous_path=previous, previous_version=1)
    in_memory = PolarsScanEngine().scan(path, options)
    # what DATRIX_SCAN_IN_MEMORY_MB=0 and DATRIX_SCAN_CHUNK_ROWS give a scan
    tuning = ScanTuning.from_settings(
        load_settings({"DATRIX_SCAN_IN_MEMORY_MB": "0", "DATRIX_SCAN_CHUNK_ROWS": str(CHUNK_ROWS)})
    )
    assert ScanTable.open(path, tuning.in_memory_mb, tuning.chunk_rows).bounded
    bounded = PolarsScanEngine(tuning).scan(
        path, options, lambda phase, done, total: PROGRESS.append((phase, done, total))
    )
    return in_memory, bounded


def test_bounded_passes_report_rows_read(reports: tuple[ScanReport, ScanReport]) -> None:
    rows = [(phase, done) for phase, done, total in PROGRESS if total == ROWS]
    assert (("duplicates", CHUNK_ROWS) in rows) and (("outliers", ROWS) in rows)
    assert PROGRESS[-1] == ("score", 4, 4)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


def test_profiles_match(reports: tuple[ScanReport, ScanReport]) -> None:
    in_memory, bounded = reports
    assert (bounded.rows, bounded.columns) == (in_memory.rows, in_memory.columns) == (ROWS, 50)
    for m, b in zip(in_memory.column_profiles, bounded.column_profiles, strict=True):
        assert (b.name, b.type, b.null_count, b.distinct_count) == (
            m.name,
            m.type,
            m.null_count,
            m.distinct_count,
        )
        assert set(b.extra) == set(m.extra), m.name
        for key, value in m.extra.items():
            if key == "drift":
                for k, v in value.items():
                    assert _close(b.extra[key][k], v), (m.name, key, k)
            else:
                assert _close(b.extra[key], value), (m.name, key, b.extra[key], value)


def test_issues_and_scores_match(reports: tuple[ScanReport, ScanReport]) -> None:
    in_memory, bounded = reports
    assert [(i.type, i.column) for i in bounded.issues] == [
        (i.type, i.column) for i in in_memory.issues
    ]
    types = {i.type for i in in_memory.issues}
    assert {"exact_duplicates", "near_duplicates", "pii_detected", "outliers"} <= types
    assert {"inconsistent_format", "null_values", "drift"} <= types
    for m, b in zip(in_memory.issues, bounded.issues, strict=True):
        assert (b.affected_count, b.description, b.severity) == (
            m.affected_count,
            m.description,
            m.severity,
        ), m.type
        assert _close(b.impact_score, m.impact_score), m.type
        assert bounded.affected_rows.get(b.id, []) == list(in_memory.affected_rows.get(m.id, []))
    for dimension, value in vars(in_memory.score).items():
        assert _close(getattr(bounded.score, dimension), value), dimension


def test_table_chunks_cover_every_row_once(data: tuple[Path, Path]) -> None:
    path, _ = data
    table = ScanTable.open(path, in_memory_mb=0, chunk_rows=CHUNK_ROWS)
    starts = [(start, chunk.height) for start, chunk in table.chunks(["record_id"])]
    assert starts[0][0] == 0 and sum(h for _, h in starts) == table.rows == ROWS
    assert all(a + h == b for (a, h), (b, _) in itertools.pairwise(starts))
    picked = np.array([3, 1_499, 1_500, 7_999], dtype=np.int64)
    whole = pl.read_parquet(path, columns=["record_id"])
    assert table.gather(["record_id"], picked).equals(whole[picked])


def test_rowset_behaves_like_a_sorted_list() -> None:
    dense = RowSet.from_mask(np.arange(1_000) % 3 == 0)
    sparse = RowSet.from_indices([9, 2, 2, 500], 1_000)
    assert dense.nbytes == 125 and len(dense) == 334 and dense[:3] == [0, 3, 6]
    assert dense == list(range(0, 1_000, 3)) and 999 in dense and 998 not in dense
    assert list(sparse) == [2, 9, 500] and sparse[1] == 9 and 500 in sparse
    assert sparse == RowSet.from_indices(np.array([2, 9, 500]), 1_000)
    assert not RowSet.empty(10) and RowSet.empty(10) == []
    joined = RowSet.concat_masks([np.array([True, False]), np.array([False, True])])
    assert joined.tolist() == [0, 3]
    with pytest.raises(ValueError, match="out of range"):
        RowSet.from_indices([1_000], 1_000)


def test_many_rows_are_bounded_however_small(data: tuple[Path, Path]) -> None:
    path, _ = data
    assert not ScanTable.open(path).bounded  # 8,000 rows of 50 columns fit both limits
    few = load_settings({"DATRIX_SCAN_IN_MEMORY_ROWS": str(ROWS - 1)})
    assert ScanTable.open(path, in_memory_rows=few.scan_in_memory_rows).bounded
    with pytest.raises(SettingsError, match=r"^DATRIX_SCAN_IN_MEMORY_ROWS must be a number"):
        load_settings({"DATRIX_SCAN_IN_MEMORY_ROWS": "many"})


def test_odd_types_scan_the_same_bounded(tmp_path: Path) -> None:
    """Lists, categoricals, dates, datetimes, an all-null column, NaN, 0 and 1 rows."""
    n = 3_000
    frame = pl.DataFrame(
        {
            "id": list(range(n)),
            "nothing": pl.Series([None] * n, dtype=pl.Float64),
            "flag": [i % 3 == 0 for i in range(n)],
            "day": pl.date_range(pl.date(2024, 1, 1), pl.date(2032, 3, 18), eager=True)[:n],
            "tags": [[i % 5, i % 7] for i in range(n)],
            "kind": pl.Series([("a", "b", "c")[i % 3] for i in range(n)], dtype=pl.Categorical),
            "text": [None if i % 10 == 0 else f"Item {i % 50}" for i in range(n)],
            "x": [float(i % 97) if i % 13 else float("nan") for i in range(n)],
        }
    )
    for rows in (n, 1, 0):
        path = tmp_path / f"odd-{rows}.parquet"
        frame.head(rows).write_parquet(path)
        in_memory = PolarsScanEngine().scan(path, ScanOptions())
        bounded_tuning = ScanTuning(in_memory_mb=0, chunk_rows=777)
        bounded = PolarsScanEngine(bounded_tuning).scan(path, ScanOptions())
        assert [(i.type, i.column, i.affected_count) for i in bounded.issues] == [
            (i.type, i.column, i.affected_count) for i in in_memory.issues
        ], rows
        for m, b in zip(in_memory.column_profiles, bounded.column_profiles, strict=True):
            assert (b.null_count, b.distinct_count) == (m.null_count, m.distinct_count), rows
            assert b.extra["top_values"] == m.extra["top_values"], (rows, m.name)
