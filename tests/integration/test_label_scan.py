"""`datrix scan --label`: label issues found by confident learning, measured impacts, and
the same answer from both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    rng = np.random.default_rng(7)
    y = data.target.copy()
    flipped = rng.choice(len(y), size=len(y) // 10, replace=False)
    y[flipped] = 1 - y[flipped]
    names = [f"f{i:02d}" for i in range(data.data.shape[1])]
    frame = pl.DataFrame(data.data, schema=names).with_columns(pl.Series("diagnosis", y))
    path = tmp_path_factory.mktemp("labels") / "cancer.csv"
    frame.write_csv(path)
    return path, {int(i) for i in flipped}


def _scan(cli: Cli, path: Path, *extra: str) -> dict[str, Any]:
    run = cli("scan", str(path), "--label", "diagnosis", "--format", "json", *extra)
    assert run.code == 0, run.stderr
    doc: dict[str, Any] = run.json()
    return doc


@pytest.fixture(scope="module")
def polars_scan(
    noisy: tuple[Path, set[int]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Cli, dict[str, Any]]:
    """One Polars-engine scan of the noisy file (the label check's model fits take most of
    its time), read by the tests that check it and compared with the Spark engine's."""
    cli = Cli(tmp_path_factory.mktemp("polars-scan") / "home")
    return cli, _scan(cli, noisy[0], "--engine", "polars")


def test_label_issues_are_found_and_measured(
    polars_scan: tuple[Cli, dict[str, Any]], noisy: tuple[Path, set[int]]
) -> None:
    _, flipped = noisy
    cli, doc = polars_scan
    labels = [i for i in doc["issues"] if i["type"] == "label_issues"]
    assert len(labels) == 1 and labels[0]["column"] == "diagnosis"
    assert labels[0]["dimension"] == "label_quality"
    rows = cli("rows", doc["scan_id"], labels[0]["id"])
    found = {int(r) for r in rows.stdout.split()}
    hits = len(found & flipped)
    precision, recall = hits / len(found), hits / len(flipped)
    assert 2 * precision * recall / (precision + recall) >= 0.8
    # wrong labels cost label quality; the fix is measured on held-out rows it did not
    # touch (on 569 rows a gain of a point or two is within the noise, so no claim of
    # "50+": the circular protocol claimed that by scoring on the fixed rows)
    assert doc["score"]["label_quality"] < 90
    description = labels[0]["description"]
    assert "measured" in description and "held-out rows the fix did not touch" in description
    assert "look like noise" not in description


def test_missing_label_column_is_one_clear_error(cli: Cli, noisy: tuple[Path, set[int]]) -> None:
    path, _ = noisy
    run = cli("scan", str(path), "--label", "nope")
    assert run.code == 2
    assert "nope" in run.stderr and "Traceback" not in run.stderr


def test_spark_engine_agrees_on_labels(
    cli: Cli,
    spark_master: str,
    noisy: tuple[Path, set[int]],
    polars_scan: tuple[Cli, dict[str, Any]],
) -> None:
    path, _ = noisy
    _, polars_doc = polars_scan
    spark_doc = _scan(cli.on_spark(spark_master), path, "--engine", "spark")  # on the cluster

    def labels(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (i["type"], i["column"], i["affected_count"], i["impact_score"])
            for i in doc["issues"]
            if i["type"] == "label_issues" or "measured" in i["description"]
        ]

    assert labels(spark_doc) == labels(polars_doc)
    assert spark_doc["score"]["label_quality"] == polars_doc["score"]["label_quality"]


def test_random_labels_are_noise_and_fixing_them_gains_nothing(cli: Cli, tmp_path: Path) -> None:
    """Issue 14 item 8: with random labels the scan flagged 43.8 % of rows and claimed
    "fixing moves accuracy from 0.504 to 0.778"."""
    rng = np.random.default_rng(3)
    n = 2_000
    frame = pl.DataFrame(
        {f"x{i}": rng.normal(size=n).round(4) for i in range(5)}
        | {"y": rng.choice(["cat", "dog"], n)}
    )
    path = tmp_path / "random.csv"
    frame.write_csv(path)
    run = cli("scan", str(path), "--label", "y", "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    labels = [i for i in doc["issues"] if i["type"] == "label_issues"]
    assert len(labels) == 1
    issue = labels[0]
    assert issue["severity"] == "critical"
    assert issue["description"].startswith("labels in 'y' look like noise")
    assert "measured: no measurable gain" in issue["description"]
    assert issue["impact_score"] == 0.0
    assert doc["score"]["label_quality"] == 0.0
    assert not any("measured gain" in i["description"] for i in doc["issues"])
