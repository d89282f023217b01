"""Drift against the previous version: PSI and KS on their own, then through the engine
(a shifted column drifts, an unchanged version does not) and the job runner."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from datrix.aggregates.scan import JobRequested
from datrix.jobs.quality import drift
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport
from datrix.jobs.runner import scan_options

N = 5000


def version(seed: int, shift: float = 0.0, city_p: list[float] | None = None) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "order_id": np.arange(seed * N, (seed + 1) * N),  # a key: new ids every version
            "height": np.round(rng.normal(170 + shift, 10, N), 1),
            "visits": rng.poisson(4, N),
            "city": rng.choice(["Oslo", "Rome", "Lima"], N, p=city_p or [0.5, 0.3, 0.2]),
            "note": [f"free text {i}" for i in rng.integers(0, 10**9, N)],
        }
    )


def scan_v2(tmp_path: Path, before: pl.DataFrame, after: pl.DataFrame) -> ScanReport:
    before.write_parquet(tmp_path / "v1.parquet")
    after.write_parquet(tmp_path / "v2.parquet")
    options = ScanOptions(previous_path=tmp_path / "v1.parquet", previous_version=1)
    return PolarsScanEngine().scan(tmp_path / "v2.parquet", options)


def drift_issues(report: ScanReport) -> dict[str | None, str]:
    return {i.column: i.description for i in report.issues if i.type == "drift"}


def test_psi_of_equal_and_of_moved_shares() -> None:
    same = np.array([0.25, 0.25, 0.5])
    assert drift.psi(same, same) == 0.0
    moved = drift.psi(np.array([0.5, 0.5]), np.array([0.9, 0.1]))
    assert moved == pytest.approx(0.4 * np.log(1.8) + (-0.4) * np.log(0.2))
    # an emptied bin counts (floored share) instead of dividing by zero
    assert np.isfinite(drift.psi(np.array([0.5, 0.5]), np.array([1.0, 0.0])))


def test_numeric_drift_on_a_shift_and_on_a_fresh_sample() -> None:
    rng = np.random.default_rng(1)
    before = rng.normal(0, 1, 20_000)
    shifted = drift.numeric_drift("x", before, rng.normal(0.5, 1, 20_000))
    assert shifted is not None and shifted.drifted
    assert shifted.psi > drift.PSI_THRESHOLD and shifted.ks_statistic is not None
    assert shifted.ks_statistic > drift.KS_MIN_STATISTIC
    fresh = drift.numeric_drift("x", before, rng.normal(0, 1, 20_000))
    assert fresh is not None and not fresh.drifted
    assert fresh.psi < 0.01 and fresh.ks_pvalue is not None and fresh.ks_pvalue > 0.001
    assert drift.numeric_drift("x", before[:10], before[:10]) is None  # too few values


def test_a_tiny_shift_on_a_large_sample_is_not_drift() -> None:
    # p is below 0.001, but D is far below 0.1: nobody cares about this shift
    rng = np.random.default_rng(2)
    found = drift.numeric_drift("x", rng.normal(0, 1, 100_000), rng.normal(0.03, 1, 100_000))
    assert found is not None and found.ks_pvalue is not None
    assert found.ks_pvalue < drift.KS_PVALUE and not found.drifted


def test_categorical_drift() -> None:
    before = pa.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200 + [None] * 50)
    moved = drift.categorical_drift("k", before, pa.array(["a"] * 100 + ["b"] * 900))
    assert moved is not None and moved.drifted and "'b'" in moved.change
    steady = drift.categorical_drift("k", before, pa.array(["a"] * 52 + ["b"] * 29 + ["c"] * 19))
    assert steady is not None and not steady.drifted
    free_text = pa.array([f"t{i}" for i in range(1000)])
    assert drift.categorical_drift("k", free_text, free_text) is None


def test_a_shifted_column_drifts(tmp_path: Path) -> None:
    report = scan_v2(tmp_path, version(1), version(2, shift=12.0))
    found = drift_issues(report)
    assert set(found) == {"height"}
    assert "version 1" in found["height"] and "PSI" in found["height"]
    issue = next(i for i in report.issues if i.type == "drift")
    assert (issue.dimension, issue.severity, issue.affected_count) == ("distribution", "warning", 0)
    assert not issue.fix_available
    profiles = {p.name: p.extra for p in report.column_profiles}
    assert profiles["height"]["drift"]["drifted"] is True
    assert profiles["height"]["drift"]["against_version"] == 1
    assert profiles["visits"]["drift"]["drifted"] is False
    assert "drift" not in profiles["order_id"]  # a key is not compared
    assert "drift" not in profiles["note"]  # free text is not a category
    assert report.score.distribution == pytest.approx(100 * (1 - 1 / 5))


def test_an_unchanged_version_does_not_drift(tmp_path: Path) -> None:
    report = scan_v2(tmp_path, version(1), version(2))
    assert drift_issues(report) == {}
    assert report.score.distribution == 100.0


def test_a_categorical_shift_drifts(tmp_path: Path) -> None:
    report = scan_v2(tmp_path, version(1), version(2, city_p=[0.1, 0.2, 0.7]))
    assert set(drift_issues(report)) == {"city"}


def test_no_previous_version_no_drift(tmp_path: Path) -> None:
    version(1).write_parquet(tmp_path / "v1.parquet")
    report = PolarsScanEngine().scan(tmp_path / "v1.parquet", ScanOptions())
    assert drift_issues(report) == {}
    assert all("drift" not in p.extra for p in report.column_profiles)


class Objects:
    def __init__(self, root: Path) -> None:
        self.root = root

    def local_copy(self, uri: str, folder: Path) -> Path:
        return self.root / uri


def job(previous: str | None, weights: dict[str, float] | None = None) -> JobRequested:
    from datetime import UTC, datetime

    return JobRequested(
        originator_id=uuid.uuid4(),
        originator_version=2,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        job_id=uuid.uuid4(),
        kind="scan",
        engine="polars",
        tenant="t",
        dataset_id=uuid.uuid4(),
        version=2,
        object_uri="v2.parquet",
        object_sha256="0" * 64,
        label_column=None,
        seed=0,
        attempt=1,
        weights=weights,
        previous_version=1 if previous else None,
        previous_object_uri=previous,
    )


def test_the_runner_hands_the_previous_version_and_weights_to_the_engine(tmp_path: Path) -> None:
    (tmp_path / "v1.parquet").write_bytes(b"x")
    objects = Objects(tmp_path)
    options = scan_options(job("v1.parquet", {"accuracy": 1.0}), objects, tmp_path)  # type: ignore[arg-type]
    assert options.previous_path == tmp_path / "v1.parquet" and options.previous_version == 1
    assert options.weights["accuracy"] == 1.0 and options.weights["completeness"] == 0.25
    # the baseline object is gone: scan without drift rather than fail
    gone = scan_options(job("missing.parquet"), objects, tmp_path)  # type: ignore[arg-type]
    assert (gone.previous_path, gone.previous_version) == (None, None)
    assert scan_options(job(None), objects, tmp_path).previous_path is None  # type: ignore[arg-type]
