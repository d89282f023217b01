from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from jobs.quality.impact import (
    FULL_SCALE_DELTA,
    MIN_NOISE,
    ROW_ID,
    SAMPLE_ROWS,
    canonical_spelling,
    drop_rows,
    impute,
    measure_finding_impacts,
    measure_impacts,
    null_cells,
    sample_with_ids,
    score_delta,
    standard_fix,
    winsorize,
)
from jobs.quality.issues import Finding


def _planted(n: int, seed: int = 0) -> tuple[pl.DataFrame, dict[str, list[int]]]:
    """y depends on x0 and x1 only. 30 % of x0 (informative) and of x4 (noise) are null,
    10 % of the labels are flipped, and 5 % of the rows repeat earlier ones."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    null_x0 = np.sort(rng.choice(n, int(0.3 * n), replace=False))
    null_x4 = np.sort(rng.choice(n, int(0.3 * n), replace=False))
    flipped = np.sort(rng.choice(n, int(0.1 * n), replace=False))
    y[flipped] = 1 - y[flipped]
    x0 = x[:, 0].copy()
    x0[null_x0] = np.nan
    x4 = x[:, 4].copy()
    x4[null_x4] = np.nan
    frame = pl.DataFrame(
        {"x0": x0, "x1": x[:, 1], "x2": x[:, 2], "x3": x[:, 3], "x4": x4, "y": y}
    ).with_columns(pl.col("x0").fill_nan(None), pl.col("x4").fill_nan(None))
    dup_count = n // 20
    dups = frame.head(dup_count)
    frame = pl.concat([frame, dups])
    rows = {
        "null_x0": null_x0.tolist(),
        "null_x4": null_x4.tolist(),
        "labels": flipped.tolist(),
        "duplicates": list(range(n, n + dup_count)),
    }
    return frame, rows


def test_missing_label_column_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="label column 'y'"):
        measure_impacts(pl.DataFrame({"x": [1, 2]}), "y", {})


def test_score_delta_mapping() -> None:
    assert score_delta(-0.03) == 0.0
    assert score_delta(0.0) == 0.0
    assert score_delta(MIN_NOISE) == 0.0  # within the noise
    assert score_delta(FULL_SCALE_DELTA) == 100.0
    assert score_delta(0.2) == 100.0
    mid = score_delta(0.026)
    assert 49.0 <= mid <= 51.0
    # A larger standard error shrinks the same delta's score.
    assert score_delta(0.02, stderr=0.01) < score_delta(0.02)
    assert score_delta(0.02) < score_delta(0.03) < score_delta(0.04)


def test_harmful_issues_score_high_and_harmless_ones_zero() -> None:
    frame, rows = _planted(3_000)
    fixes = {
        "null_x0": standard_fix("null_values", "x0", rows["null_x0"], label="y"),
        "null_x4": standard_fix("null_values", "x4", rows["null_x4"], label="y"),
        "labels": standard_fix("label_issues", None, rows["labels"], label="y"),
        "duplicates": standard_fix("exact_duplicates", None, rows["duplicates"], label="y"),
    }
    assert all(fix is not None for fix in fixes.values())
    measured = measure_impacts(frame, "y", {k: v for k, v in fixes.items() if v}, seed=0)
    assert set(measured) == set(fixes)
    # One baseline for all.
    assert len({m.before for m in measured.values()}) == 1
    # Nulls in the column the label depends on cost accuracy; so does label noise.
    assert measured["null_x0"].delta > 0.02 and measured["null_x0"].impact_score >= 30
    assert measured["labels"].delta > 0.04 and measured["labels"].impact_score >= 80
    # Nulls in a column the label ignores, and repeated rows, cost nothing measurable.
    assert measured["null_x4"].impact_score == 0.0
    assert measured["duplicates"].impact_score == 0.0
    assert measured["duplicates"].rows_after == 3_000
    assert measured["null_x0"].rows_after == 3_150 - 900  # the listed null rows dropped


def test_measurement_is_deterministic_for_a_seed() -> None:
    frame, rows = _planted(1_500, seed=2)
    fixes = {"labels": drop_rows(rows["labels"])}
    a = measure_impacts(frame, "y", fixes, seed=7)["labels"]
    b = measure_impacts(frame, "y", fixes, seed=7)["labels"]
    assert (a.before, a.after, a.impact_score) == (b.before, b.after, b.impact_score)


def test_large_frames_are_sampled() -> None:
    frame, rows = _planted(1_000_000, seed=3)
    started = time.perf_counter()
    measured = measure_impacts(
        frame, "y", {"labels": drop_rows(rows["labels"]), "x4": impute("x4")}, seed=0
    )
    elapsed = time.perf_counter() - started
    assert measured["labels"].rows_before == SAMPLE_ROWS
    assert measured["labels"].impact_score >= 80
    assert measured["x4"].impact_score == 0.0
    assert elapsed < 60  # a few seconds on an idle 2-core machine


def test_unmeasurable_baseline_or_fix_is_left_out() -> None:
    one_class = pl.DataFrame({"x": np.arange(100.0), "y": [1] * 100})
    assert measure_impacts(one_class, "y", {"f": lambda f: f}) == {}
    frame, _ = _planted(500)
    out = measure_impacts(frame, "y", {"all": lambda f: f.head(5), "same": lambda f: f})
    assert set(out) == {"same"}
    assert out["same"].delta == 0.0 and out["same"].impact_score == 0.0


def test_sample_keeps_order_and_row_ids() -> None:
    frame = pl.DataFrame({"v": np.arange(10_000)})
    sample = sample_with_ids(frame, 1_000, seed=1)
    assert sample.height == 1_000
    ids = sample[ROW_ID].to_numpy()
    assert (np.diff(ids) > 0).all()
    assert (sample["v"].to_numpy() == ids).all()
    assert sample_with_ids(frame.head(10), 1_000, 1)[ROW_ID].to_list() == list(range(10))


def _with_ids(frame: pl.DataFrame) -> pl.DataFrame:
    return sample_with_ids(frame, frame.height, 0)


def test_standard_fixes() -> None:
    frame = _with_ids(
        pl.DataFrame(
            {
                "num": [1.0, None, 3.0, 100.0, 5.0, None],
                "int": [1, None, 3, 4, 5, 6],
                "cat": ["Red", "red ", "red", None, "Blue", "blue"],
                "mostly_null": [None, None, None, None, 1.0, 2.0],
                "y": [0, 1, 0, 1, 0, 1],
            }
        )
    )
    # Label nulls, constant columns and PII have no fix worth measuring.
    assert standard_fix("null_values", "y", [1], label="y") is None
    assert standard_fix("constant_column", "num", []) is None
    assert standard_fix("pii_detected", "cat", [1]) is None
    assert standard_fix("exact_duplicates", None, []) is None
    # Nulls: drop the rows while that keeps most of them, else impute.
    nulls = standard_fix("null_values", "num", [1, 5], label="y")
    assert nulls is not None and nulls(frame)[ROW_ID].to_list() == [0, 2, 3, 4]
    heavy = standard_fix("null_values", "mostly_null", [0, 1, 2, 3], label="y")
    assert heavy is not None and heavy(frame)["mostly_null"].to_list() == [1.5] * 4 + [1.0, 2.0]
    assert impute("int")(frame)["int"].to_list() == [1, 4, 3, 4, 5, 6]
    assert impute("cat")(frame)["cat"].null_count() == 0
    # Outliers: only the listed values are clipped, to the others' range.
    out = winsorize("num", [3])(frame)["num"].to_list()
    assert out == [1.0, None, 3.0, 5.0, 5.0, None]
    # Format variants: the commonest spelling per trimmed, case-folded value.
    spelled = canonical_spelling("cat")(frame)["cat"].to_list()
    assert spelled[:3] == [spelled[0]] * 3 and spelled[3] is None
    assert spelled[0] in {"Red", "red ", "red"} and spelled[4] == spelled[5]
    fmt = standard_fix("inconsistent_format", "cat", [0, 1])
    assert fmt is not None and fmt(frame)["cat"].n_unique() == 3
    # Type mismatches: the listed cells become null.
    assert null_cells("int", [0, 2])(frame)["int"].to_list() == [None, None, None, 4, 5, 6]
    # Row-dropping types.
    for kind in ("exact_duplicates", "near_duplicates", "label_issues"):
        fix = standard_fix(kind, None, [0, 4])
        assert fix is not None and fix(frame)[ROW_ID].to_list() == [1, 2, 3, 5]


def test_measure_finding_impacts_measures_the_top_estimates_only() -> None:
    frame, rows = _planted(2_000, seed=4)
    total = frame.height
    findings = [
        Finding("null_values", "x4", "completeness", "x4 nulls", 600, rows["null_x4"]),
        Finding("constant_column", "x2", "distribution", "constant", 0),
        Finding("label_issues", "y", "label_quality", "labels", 200, rows["labels"]),
        Finding("null_values", "x0", "completeness", "x0 nulls", 600, rows["null_x0"]),
        Finding("exact_duplicates", None, "consistency", "dups", 100, rows["duplicates"]),
    ]
    measured = measure_finding_impacts(frame, "y", findings, limit=2, seed=0)
    # The two 30 % null findings have the highest estimates (critical); ties keep order.
    assert set(measured) == {0, 3}
    assert measured[3].impact_score > measured[0].impact_score == 0.0
    everything = measure_finding_impacts(frame, "y", findings, limit=10, seed=0)
    assert set(everything) == {0, 2, 3, 4}  # the constant column has no fix to measure
    assert everything[2].impact_score >= 80
    assert total == 2_100
