"""Drift end to end: scanning version 2 of a dataset checks it against version 1 (the scan
aggregate names the baseline in the job), and ``--weights`` reaches the score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

N = 4000


def write(path: Path, seed: int, shift: float = 0.0) -> Path:
    rng = np.random.default_rng(seed)
    pl.DataFrame(
        {
            "customer_id": np.arange(seed * N, (seed + 1) * N),
            "height_cm": np.round(rng.normal(170 + shift, 10, N), 1),
            "basket_eur": np.round(rng.lognormal(3, 0.6, N), 2),
            "channel": rng.choice(["web", "store", "phone"], N, p=[0.6, 0.3, 0.1]),
        }
    ).write_csv(path)
    return path


def drifts(doc: dict[str, object]) -> list[str | None]:
    issues = doc["issues"]
    assert isinstance(issues, list)
    return [i["column"] for i in issues if i["type"] == "drift"]


def test_a_shifted_version_drifts_and_an_unchanged_one_does_not(cli: Cli, tmp_path: Path) -> None:
    first = cli("scan", str(write(tmp_path / "v1.csv", 1)), "--name", "m", "--format", "json")
    assert first.code == 0, first.stderr
    assert first.json()["version"] == 1 and drifts(first.json()) == []

    # a fresh draw from the same distributions: version 2, nothing drifted
    same = cli("scan", str(write(tmp_path / "v2.csv", 2)), "--name", "m", "--format", "json")
    assert same.code == 0, same.stderr
    assert same.json()["version"] == 2 and drifts(same.json()) == []
    assert same.json()["score"]["distribution"] == 100.0

    # heights moved by one standard deviation: version 3 drifts against version 2
    moved = cli(
        "scan", str(write(tmp_path / "v3.csv", 3, shift=10.0)), "--name", "m", "--format", "json"
    )
    assert moved.code == 0, moved.stderr
    doc = moved.json()
    assert doc["version"] == 3 and drifts(doc) == ["height_cm"]
    issue = next(i for i in doc["issues"] if i["type"] == "drift")
    assert issue["dimension"] == "distribution" and "since version 2" in issue["description"]
    assert doc["score"]["distribution"] < 100.0

    # the stored report carries the statistics of every compared column
    report = cli("report", doc["scan_id"], "--format", "json")
    assert report.code == 0 and drifts(report.json()) == ["height_cm"]


def test_weights_reach_the_overall_score(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 5)
    only = "completeness=0,consistency=0,accuracy=0,distribution=0,label_quality=0"
    run = cli("scan", str(path), "--format", "json", "--weights", only + ",consistency=1")
    assert run.code == 2  # consistency given twice
    assert run.stderr.count("\n") == 1 and "given twice" in run.stderr

    weighted = cli(
        "scan",
        str(path),
        "--format",
        "json",
        "--weights",
        only.replace("consistency=0", "consistency=1"),
    )
    assert weighted.code == 0, weighted.stderr
    score = weighted.json()["score"]
    assert score["overall"] == score["consistency"]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("speed=1", "unknown score dimension 'speed'"),
        ("accuracy=-1", "weight for accuracy must be a number >= 0"),
    ],
)
def test_bad_weights_are_one_line_and_exit_2(
    cli: Cli, tmp_path: Path, weights: str, message: str
) -> None:
    run = cli("scan", str(write(tmp_path / "d.csv", 6)), "--weights", weights)
    assert run.code == 2
    assert run.stderr.startswith("datrix: --weights: ") and message in run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert not (cli.home / "objects").exists() or not any((cli.home / "objects").rglob("*.parquet"))
