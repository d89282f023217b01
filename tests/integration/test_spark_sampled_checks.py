"""The Spark engine's checks on samples (issue 11 item 2), with the caps lowered so the
files stay small: labels above ``labels.MAX_ROWS`` labelled rows are assessed on a seeded
sample stratified by label, drawn where the data is, and the label finding states its size
(at or below the cap both engines assess the same rows: test_label_scan.py); missingness
above ``missingness.SAMPLE_ROWS`` rows classifies the same sampled rows as Polars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality import labels, missingness, spark_engine
from datrix.jobs.quality.label_quality import LabelSample
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine, _label_rows, spark_session
from datrix.jobs.report import ScanOptions

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("spark_on_cluster")]

ROWS = 1_200
CAP = 400


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame, set[int]]:
    """Three informative columns, an 80/20 label, 8 % of the labels flipped."""
    rng = np.random.default_rng(11)
    y = (rng.random(ROWS) < 0.2).astype(np.int64)
    x = rng.normal(size=(ROWS, 3)) + 3.0 * y[:, None]
    flipped = rng.choice(ROWS, size=ROWS * 8 // 100, replace=False)
    noisy_y = y.copy()
    noisy_y[flipped] = 1 - noisy_y[flipped]
    frame = pl.DataFrame(
        {"a": x[:, 0].round(4), "b": x[:, 1].round(4), "c": x[:, 2].round(4)}
    ).with_columns(pl.Series("label", np.where(noisy_y == 1, "yes", "no")))
    path = tmp_path_factory.mktemp("label-sample") / "noisy.parquet"
    frame.write_parquet(path)
    return path, frame, {int(i) for i in flipped}


def test_sample_is_stratified_seeded_and_holds_the_sampled_rows(
    noisy: tuple[Path, pl.DataFrame, set[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, frame, _ = noisy
    monkeypatch.setattr(labels, "MAX_ROWS", CAP)
    spark = spark_session()
    raw = spark.read.parquet(str(path))
    sample = _label_rows(spark, raw, "label", 0)
    assert isinstance(sample, LabelSample)
    assert sample.labelled == ROWS and sample.frame.height == len(sample.positions)
    shares = frame["label"].value_counts().sort("label")
    picked = sample.frame["label"].value_counts().sort("label")
    # every class keeps round(CAP * its share) rows, as labels._fit_sample
    expected = [round(CAP * n / ROWS) for n in shares["count"]]
    assert picked["count"].to_list() == expected and sum(expected) == CAP
    assert np.all(np.diff(sample.positions) > 0)
    assert sample.frame.equals(frame[sample.positions.tolist()])
    again = _label_rows(spark, raw, "label", 0)
    other = _label_rows(spark, raw, "label", 1)
    assert isinstance(again, LabelSample) and isinstance(other, LabelSample)
    assert again.positions.tolist() == sample.positions.tolist()
    assert other.positions.tolist() != sample.positions.tolist()


def test_label_finding_above_the_cap_states_its_sample(
    noisy: tuple[Path, pl.DataFrame, set[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _, flipped = noisy
    monkeypatch.setattr(labels, "MAX_ROWS", CAP)
    report = SparkScanEngine().scan(path, ScanOptions(label_column="label"))
    found = [i for i in report.issues if i.type == "label_issues"]
    assert len(found) == 1
    issue = found[0]
    assert issue.description.endswith(
        f"assessed on a stratified sample of {CAP:,} of {ROWS:,} labelled rows"
    )
    rows = set(report.affected_rows[issue.id])
    assert issue.affected_count == len(rows) > 0
    # positions in the file, not in the sample: mostly the flipped rows
    assert max(rows) < ROWS
    assert len(rows & flipped) >= 0.7 * len(rows)


def test_missingness_above_its_sample_size_agrees_with_polars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above ``SAMPLE_ROWS`` the Spark engine fetches the rows Polars' seeded sample picks
    and classifies them as they are (it used to pass the table's row count, which made
    ``assess`` sample again, out of range: every 1M-row scan failed)."""
    monkeypatch.setattr(missingness, "SAMPLE_ROWS", 500)
    monkeypatch.setattr(spark_engine, "MISSINGNESS_ROWS", 500)
    rng = np.random.default_rng(5)
    n = 2_000
    x = rng.normal(size=n)
    frame = pl.DataFrame(
        {
            "x": x.round(4),
            "mar": pl.Series(rng.normal(size=n).round(4)).scatter(np.flatnonzero(x > 0.8), None),
            "mcar": pl.Series(rng.normal(size=n).round(4)).scatter(
                rng.choice(n, size=300, replace=False), None
            ),
        }
    )
    path = tmp_path / "missing.parquet"
    frame.write_parquet(path)
    polars = PolarsScanEngine().scan(path, ScanOptions())
    spark = SparkScanEngine().scan(path, ScanOptions())
    classes = {p.name: p.extra.get("missingness") for p in polars.column_profiles}
    assert classes["mar"] == "MAR" and classes["mcar"] == "MCAR"
    assert {p.name: p.extra.get("missingness") for p in spark.column_profiles} == classes
