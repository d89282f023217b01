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


def test_label_issues_are_found_and_measured(cli: Cli, noisy: tuple[Path, set[int]]) -> None:
    path, flipped = noisy
    doc = _scan(cli, path)
    labels = [i for i in doc["issues"] if i["type"] == "label_issues"]
    assert len(labels) == 1 and labels[0]["column"] == "diagnosis"
    assert labels[0]["dimension"] == "label_quality"
    rows = cli("rows", doc["scan_id"], labels[0]["id"])
    found = {int(r) for r in rows.stdout.split()}
    hits = len(found & flipped)
    precision, recall = hits / len(found), hits / len(flipped)
    assert 2 * precision * recall / (precision + recall) >= 0.8
    # wrong labels cost label quality; fixing them measurably helps a model
    assert doc["score"]["label_quality"] < 90
    assert "measured" in labels[0]["description"]
    assert labels[0]["impact_score"] > 50
    assert doc["issues"][0]["type"] == "label_issues"  # ranked first by measured impact


def test_missing_label_column_is_one_clear_error(cli: Cli, noisy: tuple[Path, set[int]]) -> None:
    path, _ = noisy
    run = cli("scan", str(path), "--label", "nope")
    assert run.code == 2
    assert "nope" in run.stderr and "Traceback" not in run.stderr


def test_spark_engine_agrees_on_labels(cli: Cli, noisy: tuple[Path, set[int]]) -> None:
    path, _ = noisy
    polars_doc = _scan(cli, path, "--engine", "polars")
    spark_doc = _scan(cli, path, "--engine", "spark")

    def labels(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (i["type"], i["column"], i["affected_count"], i["impact_score"])
            for i in doc["issues"]
            if i["type"] == "label_issues" or "measured" in i["description"]
        ]

    assert labels(spark_doc) == labels(polars_doc)
    assert spark_doc["score"]["label_quality"] == polars_doc["score"]["label_quality"]
