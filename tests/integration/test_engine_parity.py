"""The Spark engine reports the same numbers as the Polars engine for the checks both run.

Tolerances: counts (rows, nulls, distinct values, duplicates, outliers, their row
positions) must be equal. Quantiles are exact in both engines (Spark's ``percentile`` is the
same linear interpolation as Polars'), so they agree to rounding; min/max are exact; mean
and std differ only by summation order (measured ~1e-15 relative), checked at 1e-9.
Both engines run every detector, so every score (consistency and overall included) is
compared.

The accuracy and drift findings (outliers by z-score/IQR and IsolationForest vote, sentinel
codes, impossible negatives, drift against a previous version) must match too: counts and
row positions equal, and the drift statistics (PSI, KS D and p) within 1e-9 (both engines
compute them on the driver from the same evenly spaced samples, so they are in fact equal).

The text and row-linkage detectors (near duplicates, PII, case/whitespace variants, mixed
date formats, type mismatches) and the missingness class of each column must match
exactly: same issue types, columns, affected counts, rows and descriptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine
from datrix.jobs.report import ScanOptions, ScanReport

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("spark_on_cluster")]

SHARED_ISSUE_TYPES = frozenset(
    {
        "null_values",
        "exact_duplicates",
        "outliers",
        "constant_column",
        "sentinel_values",
        "impossible_values",
        "drift",
        "near_duplicates",
        "pii_detected",
        "inconsistent_format",
        "type_mismatch",
        "skewed_distribution",
        "high_cardinality",
    }
)
REL_TOL = 1e-9


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[ScanReport, ScanReport]:
    out: Path = tmp_path_factory.mktemp("parity")
    generate(20_000, out, seed=11)
    path = out / "dirty.parquet"
    # The previous version: other rows from the same generator, with heights 15 cm lower
    # and a different mix of account statuses, so two columns drift.
    before = tmp_path_factory.mktemp("parity-previous")
    generate(15_000, before, seed=12)
    previous = before / "previous.parquet"
    frame = pl.read_parquet(before / "dirty.parquet")
    status = pl.when(pl.col("record_id") % 2 == 0).then(pl.lit("active"))
    frame.with_columns(
        pl.col("height_cm") - 15.0,
        status.otherwise(pl.col("account_status")).alias("account_status"),
    ).write_parquet(previous)
    options = ScanOptions(previous_path=previous, previous_version=1)
    return PolarsScanEngine().scan(path, options), SparkScanEngine().scan(path, options)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, str) or isinstance(b, str):  # a date column's ISO min / max
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=1e-12)


def _issues(report: ScanReport) -> dict[tuple[str, str | None], tuple[int, Sequence[int]]]:
    return {
        (i.type, i.column): (i.affected_count, report.affected_rows.get(i.id, []))
        for i in report.issues
        if i.type in SHARED_ISSUE_TYPES
    }


def test_shape_and_profiles_match(reports: tuple[ScanReport, ScanReport]) -> None:
    polars, spark = reports
    assert spark.engine == "spark"
    assert (spark.rows, spark.columns) == (polars.rows, polars.columns) == (20_000, 50)
    assert [p.name for p in spark.column_profiles] == [p.name for p in polars.column_profiles]
    for p, s in zip(polars.column_profiles, spark.column_profiles, strict=True):
        assert (s.type, s.null_count, s.null_pct, s.distinct_count) == (
            p.type,
            p.null_count,
            p.null_pct,
            p.distinct_count,
        ), p.name
        assert s.extra["top_values"] == p.extra["top_values"], p.name
        for key in ("min", "max", "mean", "std", "p25", "p50", "p75"):
            assert (key in s.extra) == (key in p.extra), (p.name, key)
            if key in p.extra:
                assert _close(s.extra[key], p.extra[key]), (p.name, key)
        assert s.extra.get("nan_count") == p.extra.get("nan_count"), p.name
        assert s.extra.get("missingness") == p.extra.get("missingness"), p.name
        assert ("drift" in s.extra) == ("drift" in p.extra), p.name
        if "drift" in p.extra:
            ours, theirs = s.extra["drift"], p.extra["drift"]
            assert set(ours) == set(theirs), p.name
            for key, value in theirs.items():
                assert _close(ours[key], value), (p.name, key, ours[key], value)


def test_shared_issues_match(reports: tuple[ScanReport, ScanReport]) -> None:
    polars, spark = reports
    expected = _issues(polars)
    assert {i.type for i in spark.issues} <= SHARED_ISSUE_TYPES
    assert _issues(spark) == expected
    # the generated data has every kind of shared issue but constant columns
    assert {t for t, _ in expected} >= {
        "null_values",
        "exact_duplicates",
        "outliers",
        "sentinel_values",
        "drift",
        "near_duplicates",
        "pii_detected",
        "inconsistent_format",
    }
    assert {c for t, c in expected if t == "drift"} == {"height_cm", "account_status"}
    by_key = {(i.type, i.column): i for i in polars.issues}
    for issue in spark.issues:
        twin = by_key[(issue.type, issue.column)]
        assert (issue.severity, issue.impact_score, issue.affected_pct) == (
            twin.severity,
            twin.impact_score,
            twin.affected_pct,
        )
        assert issue.description == twin.description


def test_scores_match_where_both_engines_measure(reports: tuple[ScanReport, ScanReport]) -> None:
    polars, spark = reports
    assert spark.score == polars.score
    missing = {p.name: p.extra.get("missingness") for p in polars.column_profiles}
    assert {"MCAR", "MAR", "MNAR"} <= set(missing.values())


def test_label_column_and_unknown_label(tmp_path: Path) -> None:
    path = tmp_path / "small.parquet"
    pl.DataFrame(
        {
            "x": [1.0, 2.0, float("nan"), None, 2.0, 2.0, 1e9],
            "k": ["a", "a", "b", None, "a", "a", "c"],
            "c": [7, 7, 7, 7, 7, 7, 7],
        }
    ).write_parquet(path)
    options = ScanOptions(label_column="k")
    polars = PolarsScanEngine().scan(path, options)
    spark = SparkScanEngine().scan(path, options)
    assert spark.score.as_dict() == polars.score.as_dict()
    assert [(i.id, i.type, i.column, i.affected_count) for i in spark.issues] == [
        (i.id, i.type, i.column, i.affected_count) for i in polars.issues
    ]
    assert spark.affected_rows == polars.affected_rows
    assert [p.extra["top_values"] for p in spark.column_profiles] == [
        p.extra["top_values"] for p in polars.column_profiles
    ]
    with pytest.raises(ValueError, match="label column"):
        SparkScanEngine().scan(path, ScanOptions(label_column="missing"))


def test_accuracy_and_drift_findings_on_a_small_frame(tmp_path: Path) -> None:
    """Every new finding at once, small enough to compare whole reports."""
    import numpy as np

    rng = np.random.default_rng(1)
    n = 3000
    x = rng.normal(50, 5, n)
    x[[5, 77]] = [500.0, -400.0]
    days = rng.integers(0, 100, n)
    days[rng.random(n) < 0.03] = -1
    price = np.round(rng.lognormal(3, 0.5, n), 2)
    price[[10, 20, 30]] = [-12.5, -3.0, -40.0]
    city = rng.choice(["a", "b", "c"], n)
    path, previous = tmp_path / "v2.parquet", tmp_path / "v1.parquet"
    pl.DataFrame({"x": x, "days_open": days, "price": price, "city": city}).write_parquet(path)
    pl.DataFrame(
        {
            "x": rng.normal(40, 5, n),
            "days_open": rng.integers(0, 100, n),
            "price": np.round(rng.lognormal(3, 0.5, n), 2),
            "city": rng.choice(["a", "b", "c"], n, p=[0.8, 0.1, 0.1]),
        }
    ).write_parquet(previous)
    options = ScanOptions(previous_path=previous, previous_version=1)
    polars = PolarsScanEngine().scan(path, options)
    spark = SparkScanEngine().scan(path, options)
    assert {(i.type, i.column) for i in polars.issues} == {
        ("outliers", "x"),
        ("outliers", "price"),
        ("sentinel_values", "days_open"),
        ("impossible_values", "price"),
        ("drift", "x"),
        ("drift", "city"),
    }
    assert spark.issues == polars.issues
    assert spark.affected_rows == polars.affected_rows
    assert spark.score == polars.score
    assert [p.extra.get("drift") for p in spark.column_profiles] == [
        p.extra.get("drift") for p in polars.column_profiles
    ]


def test_sample_positions_are_polars_gather_every() -> None:
    """The Spark engine's text sample picks the rows Polars' ``drop_nulls().gather_every``
    does (here with a step above 1: more non-null values than ``pii.SAMPLE_SIZE``)."""
    import numpy as np

    from datrix.jobs.quality.pii import SAMPLE_SIZE
    from datrix.jobs.quality.spark_engine import _sample_positions

    rng = np.random.default_rng(3)
    n = 2 * SAMPLE_SIZE + 777
    values = pl.Series("v", np.arange(n)).scatter(np.flatnonzero(rng.random(n) < 0.2), None)
    present = int(values.is_not_null().sum())
    step = max(1, -(-present // SAMPLE_SIZE))
    expected = values.drop_nulls().gather_every(step).to_numpy()
    nulls = np.flatnonzero(values.is_null().to_numpy()).tolist()
    assert np.array_equal(_sample_positions(present, nulls), expected)
    assert np.array_equal(_sample_positions(5, []), np.arange(5))


def test_text_and_linkage_findings_on_a_small_frame(tmp_path: Path) -> None:
    """Near duplicates, PII, case variants, mixed dates, type mismatches and missingness
    classes, with nulls in the text columns, compared as whole reports."""
    import numpy as np

    rng = np.random.default_rng(5)
    n = 2000
    first = rng.choice(["anna", "bert", "carla", "dirk", "eva", "fritz", "gina"], n)
    last = rng.choice([f"name{i}" for i in range(300)], n)
    email = [f"{a}.{b}{i}@example.com" for i, (a, b) in enumerate(zip(first, last, strict=True))]
    city = rng.choice(["Berlin", "Paris", "Rome", "Oslo"], n).astype(object)
    city[rng.random(n) < 0.05] = "berlin "
    city[rng.random(n) < 0.03] = "PARIS"
    joined = [
        f"2024-{m:02d}-{d:02d}"
        for m, d in zip(rng.integers(1, 13, n), rng.integers(1, 29, n), strict=True)
    ]
    joined = np.array(joined, dtype=object)
    swap = rng.random(n) < 0.04
    joined[swap] = [f"{v[8:10]}/{v[5:7]}/{v[:4]}" for v in joined[swap]]
    joined[rng.random(n) < 0.01] = "unknown"
    amount = np.round(rng.lognormal(4, 1, n), 2).astype(str).astype(object)
    amount[rng.random(n) < 0.02] = "n/a"
    income = rng.normal(50_000, 8_000, n)
    age = rng.integers(18, 80, n).astype(float)
    frame = pl.DataFrame(
        {
            "first": first,
            "last": last,
            "email": email,
            "city": list(city),
            "joined": list(joined),
            "amount": list(amount),
            "age": age,
            "income": income,
        }
    )
    # near duplicates: copies of earlier rows with one typo, and nulls to classify
    copies = frame.head(40).with_columns(
        pl.col("email").str.replace("@", "@@"), pl.col("income") + 1.0
    )
    frame = pl.concat([frame, copies]).with_columns(
        pl.when(pl.col("age") > 70).then(None).otherwise(pl.col("income")).alias("income"),
        pl.when(pl.int_range(pl.len()) % 17 == 0)
        .then(None)
        .otherwise(pl.col("email"))
        .alias("email"),
        pl.when(pl.int_range(pl.len()) % 23 == 0)
        .then(None)
        .otherwise(pl.col("city"))
        .alias("city"),
    )
    path = tmp_path / "text.parquet"
    frame.write_parquet(path)
    polars = PolarsScanEngine().scan(path, ScanOptions())
    spark = SparkScanEngine().scan(path, ScanOptions())
    found = {(i.type, i.column) for i in polars.issues}
    assert found >= {
        ("near_duplicates", None),
        ("pii_detected", "email"),
        ("inconsistent_format", "city"),
        ("inconsistent_format", "joined"),
        ("type_mismatch", "joined"),
        ("type_mismatch", "amount"),
    }
    assert spark.issues == polars.issues
    assert spark.affected_rows == polars.affected_rows
    assert spark.score == polars.score
    assert [p.extra.get("missingness") for p in spark.column_profiles] == [
        p.extra.get("missingness") for p in polars.column_profiles
    ]
    assert {p.name: p.extra["missingness"] for p in polars.column_profiles}["income"] == "MAR"


def test_date_checks_and_profiles_on_a_small_frame(tmp_path: Path) -> None:
    """Native dates and timestamps (naive and zoned) and date text (ISO dates, offsets):
    the same types, ranges, histograms, placeholder dates, future timestamps and
    impossible birth dates from both engines (issue 14, item 14)."""
    import datetime as dt

    import numpy as np

    rng = np.random.default_rng(9)
    n = 1500
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    stamps = [start + dt.timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 10**6, n))]
    stamps[700] = dt.datetime(2041, 3, 1, 12, tzinfo=dt.UTC)
    births = [
        (dt.date(1945, 1, 1) + dt.timedelta(days=int(d))).isoformat()
        for d in rng.integers(0, 22_000, n)
    ]
    for i in range(0, n, 150):
        births[i] = "1900-01-01"
    births[3], births[4] = "2030-02-02", "1870-07-07"
    offsets = [s.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat() for s in stamps]
    frame = pl.DataFrame(
        {
            "created_at": pl.Series(stamps).dt.convert_time_zone("Europe/Berlin"),
            "local_time": pl.Series([s.replace(tzinfo=None) for s in stamps]),
            "day": [s.date() for s in stamps],
            "dob": births,
            "sent": offsets,
            "n": rng.normal(0, 1, n),
        }
    )
    path = tmp_path / "dates.parquet"
    frame.write_parquet(path)
    polars = PolarsScanEngine().scan(path, ScanOptions())
    spark = SparkScanEngine().scan(path, ScanOptions())
    found = {(i.type, i.column) for i in polars.issues}
    assert found >= {
        ("sentinel_values", "dob"),
        ("impossible_values", "dob"),
        ("impossible_values", "created_at"),
        ("impossible_values", "local_time"),
        ("impossible_values", "day"),
        ("impossible_values", "sent"),
    }
    types = {p.name: p.type for p in polars.column_profiles}
    assert types == {
        "created_at": "datetime",
        "local_time": "datetime",
        "day": "date",
        "dob": "date",
        "sent": "datetime",
        "n": "float",
    }
    date_keys = ("inferred_from", "timezone", "min", "max", "histogram", "histogram_excludes")

    def dated(report: ScanReport) -> list[tuple[str, str, dict[str, Any]]]:
        return [
            (p.name, p.type, {k: p.extra.get(k) for k in date_keys}) for p in report.column_profiles
        ]

    assert dated(spark) == dated(polars)
    assert spark.issues == polars.issues
    assert spark.affected_rows == polars.affected_rows
    assert spark.score == polars.score
