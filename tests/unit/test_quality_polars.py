"""The Polars scan engine on small Parquet files: exact counts, ordering, scores, edges."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.engine import ScanEngine
from datrix.jobs.quality import detection
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.scoring import (
    ScoreInputs,
    dimension_scores,
    impact_score,
    overall_score,
    severity_for,
)
from datrix.jobs.report import DIMENSIONS, ISSUE_TYPES, Issue, ScanOptions, ScanReport


def scan(tmp_path: Path, frame: pl.DataFrame, options: ScanOptions | None = None) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, options or ScanOptions())


def only(report: ScanReport, type_: str, column: str | None = None) -> Issue:
    found = [i for i in report.issues if i.type == type_ and i.column == column]
    assert len(found) == 1, report.issues
    return found[0]


def types_of(report: ScanReport) -> list[tuple[str, str | None]]:
    return [(i.type, i.column) for i in report.issues]


def test_engine_satisfies_protocol() -> None:
    engine: ScanEngine = PolarsScanEngine()
    assert engine.name == "polars"


def test_column_profiles(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "i": [1, None, 3, 3],
            "f": [0.5, 1.5, None, None],
            "s": ["a", "b", "b", None],
            "b": [True, False, True, True],
            "d": [dt.date(2024, 1, 1), dt.date(2024, 1, 2), None, dt.date(2024, 1, 1)],
            "t": [dt.datetime(2024, 1, 1, 12), None, None, None],
            "l": [[1], [2], [1], None],
        }
    )
    report = scan(tmp_path, frame)
    assert (report.rows, report.columns) == (4, 7)
    profiles = {p.name: p for p in report.column_profiles}
    assert [p.name for p in report.column_profiles] == frame.columns
    expected = {
        "i": ("integer", 1, 25.0, 2),
        "f": ("float", 2, 50.0, 2),
        "s": ("string", 1, 25.0, 2),
        "b": ("boolean", 0, 0.0, 2),
        "d": ("date", 1, 25.0, 2),
        "t": ("datetime", 3, 75.0, 1),
        "l": ("other", 1, 25.0, 2),
    }
    for name, (type_, nulls, pct, distinct) in expected.items():
        p = profiles[name]
        assert (p.type, p.null_count, p.null_pct, p.distinct_count) == (
            type_,
            nulls,
            pct,
            distinct,
        ), name
    i = profiles["i"].extra
    assert (i["min"], i["max"]) == (1, 3)
    assert i["mean"] == pytest.approx(7 / 3)
    assert (i["p25"], i["p50"], i["p75"]) == (2.0, 3.0, 3.0)  # linear interpolation
    assert i["top_values"] == [{"value": 3, "count": 2}, {"value": 1, "count": 1}]
    assert profiles["d"].extra["top_values"] == [
        {"value": "2024-01-01", "count": 2},
        {"value": "2024-01-02", "count": 1},
    ]
    assert "mean" not in profiles["s"].extra
    document = dataclasses.asdict(dataclasses.replace(report, affected_rows={}))
    json.dumps(document, allow_nan=False)  # JSON-friendly throughout (rows are stored apart)


def test_null_pct_is_rounded_to_three_decimals(tmp_path: Path) -> None:
    report = scan(tmp_path, pl.DataFrame({"a": [1, None, 3]}))
    assert report.column_profiles[0].null_pct == 33.333
    assert only(report, "null_values", "a").affected_pct == 33.333


def test_top_values_are_five_with_deterministic_ties(tmp_path: Path) -> None:
    values = ["z"] * 3 + ["q", "c", "m", "a", "x", "b"] + [None] * 4
    report = scan(tmp_path, pl.DataFrame({"s": values}))
    top = report.column_profiles[0].extra["top_values"]
    assert top == [
        {"value": "z", "count": 3},
        {"value": "a", "count": 1},
        {"value": "b", "count": 1},
        {"value": "c", "count": 1},
        {"value": "m", "count": 1},
    ]


def test_null_values_issue(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1, None, 3, None, 5, 6, 7, 8, 9, 10], "b": list(range(10))})
    report = scan(tmp_path, frame)
    issue = only(report, "null_values", "a")
    assert issue.affected_count == 2
    assert issue.affected_pct == 20.0
    assert issue.dimension == "completeness"
    assert issue.severity == "critical"
    assert issue.fix_available
    assert report.affected_rows[issue.id] == [1, 3]
    assert not [i for i in report.issues if i.type == "null_values" and i.column == "b"]


DUPLICATES = pl.DataFrame(
    {
        "n": [1, 1, 1, 2, 2, 2, 3, 3, None, None, 4],
        "s": ["a", "a", "a", None, "", None, "x", "x", None, None, "y"],
        "f": [1.0, 1.0, 1.0, 2.5, 2.5, 2.5, 0.1 + 0.2, 0.3, None, None, 1.0],
    }
)
# rows 1, 2 repeat row 0 (a triple); row 4 differs from row 3 only by "" vs null and is no
# duplicate; row 5 repeats row 3 (nulls compare equal); row 7 differs from row 6 by a float
# ulp; row 9 (all null) repeats row 8.
EXPECTED_REDUNDANT = [1, 2, 5, 9]


def test_exact_duplicates(tmp_path: Path) -> None:
    report = scan(tmp_path, DUPLICATES)
    issue = only(report, "exact_duplicates")
    assert issue.column is None
    assert issue.dimension == "consistency"
    assert issue.affected_count == len(EXPECTED_REDUNDANT)
    assert issue.affected_pct == round(100 * 4 / 11, 3)
    assert report.affected_rows[issue.id] == EXPECTED_REDUNDANT
    assert issue.fix_available


def test_duplicates_are_verified_beyond_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every row hashing alike (a collision everywhere) must not create false duplicates."""

    def colliding(columns: Sequence[str]) -> pl.Expr:
        return pl.int_range(pl.len(), dtype=pl.UInt64) * 0

    monkeypatch.setattr(detection, "row_hashes", colliding)
    report = scan(tmp_path, DUPLICATES)
    issue = only(report, "exact_duplicates")
    assert report.affected_rows[issue.id] == EXPECTED_REDUNDANT


def test_no_duplicates_no_issue(tmp_path: Path) -> None:
    report = scan(tmp_path, pl.DataFrame({"a": [1, 2, 3], "b": ["x", "x", None]}))
    assert "exact_duplicates" not in [i.type for i in report.issues]


def test_outliers_on_a_planted_column(tmp_path: Path) -> None:
    base = list(range(1000))  # uniform: Q1 = 249.75, Q3 = 749.25, no natural outliers
    planted: list[int | None] = list(base)
    planted[10] = 10_000
    planted[500] = -5_000
    planted[700] = None
    frame = pl.DataFrame(
        {
            "clean": [float(v) for v in base],
            "planted": planted,
            "flat": [0] * 990 + [1] * 10,  # IQR 0: skipped, not a flood of 10 "outliers"
            "label": ["a"] * 1000,
        }
    )
    report = scan(tmp_path, frame)
    issue = only(report, "outliers", "planted")
    assert issue.affected_count == 2
    assert issue.dimension == "accuracy"
    assert issue.severity == "info"
    assert report.affected_rows[issue.id] == [10, 500]
    assert [i.column for i in report.issues if i.type == "outliers"] == ["planted"]
    assert report.score.accuracy < 100.0


def test_nan_is_not_an_outlier(tmp_path: Path) -> None:
    values = [float(v) for v in range(100)] + [float("nan"), float("inf")]
    report = scan(tmp_path, pl.DataFrame({"f": values}))
    issue = only(report, "outliers", "f")
    assert report.affected_rows[issue.id] == [101]
    extra = report.column_profiles[0].extra
    assert extra["nan_count"] == 1
    assert extra["max"] is None  # +inf is not JSON; the outlier issue carries it


def test_constant_column(tmp_path: Path) -> None:
    frame = pl.DataFrame({"k": ["same", None, "same", "same"], "v": [1, 2, 3, 4]})
    report = scan(tmp_path, frame)
    issue = only(report, "constant_column", "k")
    assert issue.dimension == "distribution"
    assert issue.affected_count == 0
    assert not issue.fix_available  # which constant to keep or drop is a person's call
    assert issue.id not in report.affected_rows
    assert report.score.distribution == 50.0
    assert "constant_column" not in [i.type for i in scan(tmp_path, frame[:1]).issues]


def test_ordering_and_ids_are_deterministic(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "a": [None, None, None, 4, 5, 6, 7, 8, 9, 10] * 3,
            "b": [None, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 3,
            "c": ["k"] * 30,
            "d": [None] * 15 + list(range(15)),
        }
    )
    first = scan(tmp_path, frame)
    second = scan(tmp_path, frame)
    assert first == second
    assert [i.id for i in first.issues] == [f"I{n:03d}" for n in range(1, len(first.issues) + 1)]
    keys = [(-i.impact_score, i.type, i.column or "") for i in first.issues]
    assert keys == sorted(keys)
    assert types_of(first)[0] == ("null_values", "d")  # 50 % nulls: the biggest impact
    assert {i.type for i in first.issues} <= set(ISSUE_TYPES)
    for issue in first.issues:
        assert 0.0 <= issue.impact_score <= 100.0
        rows = first.affected_rows.get(issue.id, [])
        assert rows == sorted(rows)
        assert len(rows) == (issue.affected_count if issue.type != "constant_column" else 0)


def test_scores_stay_in_bounds_on_bad_data(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [None] * 6, "b": ["x"] * 6}, schema={"a": pl.Int64, "b": pl.String})
    report = scan(tmp_path, frame)
    for value in report.score.as_dict().values():
        assert 0.0 <= value <= 100.0
        assert round(value, 1) == value
    assert report.score.consistency == 0.0  # 5 of 6 rows are redundant
    assert report.score.completeness == pytest.approx(100 * (1 - (0.75 * 0.5 + 0.25)), abs=0.05)
    assert report.score.label_quality == 100.0


def test_clean_data_scores_100(tmp_path: Path) -> None:
    report = scan(tmp_path, pl.DataFrame({"a": [1, 2, 3, 4], "b": ["w", "x", "y", "z"]}))
    assert report.issues == []
    assert set(report.score.as_dict().values()) == {100.0}


def test_zero_rows(tmp_path: Path) -> None:
    frame = pl.DataFrame(schema={"a": pl.Int64, "s": pl.String, "d": pl.Date})
    report = scan(tmp_path, frame)
    assert (report.rows, report.columns) == (0, 3)
    assert report.issues == []
    assert report.affected_rows == {}
    assert set(report.score.as_dict().values()) == {100.0}
    assert [(p.null_count, p.null_pct, p.distinct_count) for p in report.column_profiles] == [
        (0, 0.0, 0)
    ] * 3
    json.dumps(dataclasses.asdict(report), allow_nan=False)


def test_single_column(tmp_path: Path) -> None:
    report = scan(tmp_path, pl.DataFrame({"x": ["a", "b", "a", None]}))
    assert (report.rows, report.columns) == (4, 1)
    assert sorted(types_of(report)) == [("exact_duplicates", None), ("null_values", "x")]
    assert report.affected_rows[only(report, "exact_duplicates").id] == [2]


def test_overall_drops_label_weight_without_label(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1, None, 3, 4], "y": ["p", "q", None, "q"]})
    weights = {"completeness": 0.4, "consistency": 0.3, "accuracy": 0.1, "distribution": 0.1}
    weights["label_quality"] = 0.1
    plain = scan(tmp_path, frame, ScanOptions(weights=weights))
    s = plain.score
    expected = (0.4 * s.completeness + 0.3 * s.consistency + 0.1 * s.accuracy) / 0.9
    expected += 0.1 * s.distribution / 0.9
    assert s.overall == pytest.approx(expected, abs=0.06)
    labelled = scan(tmp_path, frame, ScanOptions(label_column="y", weights=weights))
    assert labelled.score.label_quality == 75.0
    assert labelled.score.overall < s.overall
    with pytest.raises(ValueError, match="label column"):
        scan(tmp_path, frame, ScanOptions(label_column="missing"))


def test_progress_reports_each_phase(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []

    def progress(phase: str, done: int, total: int) -> None:
        calls.append((phase, done, total))

    path = tmp_path / "p.parquet"
    pl.DataFrame({"a": [1, 2, 2]}).write_parquet(path)
    PolarsScanEngine().scan(path, ScanOptions(), progress)
    assert [c[0] for c in calls] == ["profile", "duplicates", "outliers", "score", "score"]
    assert [c[1] for c in calls] == [0, 1, 2, 3, 4]
    assert {c[2] for c in calls} == {4}


def test_severity_and_impact_formulas() -> None:
    assert severity_for(0.2) == "critical"
    assert severity_for(0.1999) == "warning"
    assert severity_for(0.05) == "warning"
    assert severity_for(0.0499) == "info"
    shares = [i / 1000 for i in range(1001)]
    impacts = [impact_score(s, severity_for(s)) for s in shares]
    assert impacts == sorted(impacts)
    assert impacts[0] == 15.0 and impacts[-1] == 100.0


def test_dimension_scores_and_weights() -> None:
    empty = dimension_scores(ScoreInputs(rows=0, columns=3))
    assert set(empty.values()) == {100.0}
    dims = dimension_scores(
        ScoreInputs(
            rows=100,
            columns=4,
            null_cells=40,
            worst_column_null_share=0.4,
            redundant_rows=10,
            numeric_cells=200,
            outlier_cells=2,
            constant_columns=1,
        )
    )
    assert dims["completeness"] == pytest.approx(100 * (1 - (0.75 * 0.1 + 0.25 * 0.4)))
    assert dims["consistency"] == pytest.approx(80.0)
    assert dims["accuracy"] == pytest.approx(90.0)
    assert dims["distribution"] == pytest.approx(75.0)
    assert dims["label_quality"] == 100.0
    weights: dict[str, Any] = dict.fromkeys(DIMENSIONS, 1.0)
    assert overall_score(dims, weights, has_label=False) == pytest.approx(
        sum(dims[d] for d in DIMENSIONS[:4]) / 4
    )
    with pytest.raises(ValueError):
        overall_score(dims, {"label_quality": 1.0}, has_label=False)
    with pytest.raises(ValueError):
        overall_score(dims, {"completeness": -1.0}, has_label=False)
