"""Schema changes are quality issues (issue 13, 3b): through the CLI, a new version that
drops a column, adds one and turns an integer column into text is reported (it used to
scan with no issue at all); the schema contract makes any later change critical; the Spark
engine reports the same issue as the Polars engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine
from datrix.jobs.report import ScanOptions
from tests.integration.conftest import Cli, KafkaCli

pytestmark = pytest.mark.integration

N = 3_000


def customers(seed: int, n: int = N) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": np.arange(n) + seed * n,
            "age": rng.integers(18, 90, n),
            "zip_code": rng.integers(10_000, 99_999, n),
            "segment": rng.choice(["gold", "silver", "bronze"], n),
            "email": [f"user{i}@example.org" for i in range(n)],
        }
    )


def changed(seed: int, n: int = N) -> pl.DataFrame:
    """The issue's example: email dropped, loyalty_points added, zip_code as text."""
    rng = np.random.default_rng(seed + 100)
    return (
        customers(seed, n)
        .drop("email")
        .with_columns(
            pl.col("zip_code").cast(pl.String) + "-" + pl.lit("0000"),
            loyalty_points=pl.Series(np.round(rng.normal(500, 80, n), 1)),
        )
    )


def schema_issues(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in doc["issues"] if i["type"] == "schema_change"]


def scan(cli: Cli, frame: pl.DataFrame, path: Path) -> dict[str, Any]:
    frame.write_csv(path)
    run = cli("scan", str(path), "--name", "customers", "--format", "json")
    assert run.code == 0, run.stderr
    doc: dict[str, Any] = run.json()
    return doc


def test_a_dropped_added_and_retyped_column_is_a_schema_change_issue(
    cli: Cli, tmp_path: Path
) -> None:
    first = scan(cli, customers(1), tmp_path / "v1.csv")
    assert first["version"] == 1 and schema_issues(first) == []
    doc = scan(cli, changed(2), tmp_path / "v2.csv")
    assert doc["version"] == 2
    [issue] = schema_issues(doc)
    assert issue["dimension"] == "consistency" and issue["column"] is None
    assert issue["severity"] == "warning" and issue["affected_pct"] == 100.0
    assert issue["description"] == (
        "the schema changed since version 1 (3 changes in 3 columns): "
        "column 'zip_code' changed type from integer to string; "
        "column 'email' (string) was removed; "
        "column 'loyalty_points' (float) was added"
    )
    # ranked by impact like the others: above every info finding, with a consistency cost
    ranked = [i["impact_score"] for i in doc["issues"]]
    assert ranked == sorted(ranked, reverse=True)
    assert doc["score"]["consistency"] < first["score"]["consistency"]
    # the stored report says the same
    report = cli("report", doc["scan_id"], "--format", "json")
    assert report.code == 0 and schema_issues(report.json()) == [issue]


def test_a_frozen_contract_makes_any_change_critical(cli: Cli, tmp_path: Path) -> None:
    scan(cli, customers(1), tmp_path / "v1.csv")
    frozen = cli("datasets", "contract", "customers", "--freeze", "--format", "json")
    assert frozen.code == 0, frozen.stderr
    assert frozen.json()["frozen"] is True and frozen.json()["version"] == 1
    again = cli("datasets", "contract", "customers", "--freeze")
    assert again.code == 2 and again.stderr.count("\n") == 1
    assert "already frozen (as of version 1)" in again.stderr
    neither = cli("datasets", "contract", "customers")
    assert neither.code == 2 and "--freeze or --unfreeze" in neither.stderr

    # version 2 renames a column: a likely rename, critical under the contract
    renamed = scan(cli, customers(2).rename({"segment": "tier"}), tmp_path / "v2.csv")
    [issue] = schema_issues(renamed)
    assert issue["severity"] == "critical"
    assert issue["description"].startswith(
        "the schema contract (frozen as of version 1) is broken: 1 change in 1 column: "
        "column 'segment' looks renamed to 'tier' (confidence "
    )
    assert renamed["issues"][0] == issue  # the most important issue of the scan
    # version 3 has version 2's schema, but the contract is version 1's: still broken
    still = scan(cli, customers(3).rename({"segment": "tier"}), tmp_path / "v3.csv")
    assert [i["severity"] for i in schema_issues(still)] == ["critical"]

    # unfrozen: version 4 is compared with version 3 (the same schema): no issue
    done = cli("datasets", "contract", "customers", "--unfreeze")
    assert done.code == 0, done.stderr
    assert "schema contract of 'customers' unfrozen" in done.stdout
    loose = scan(cli, customers(4).rename({"segment": "tier"}), tmp_path / "v4.csv")
    assert schema_issues(loose) == []
    twice = cli("datasets", "contract", "customers", "--unfreeze")
    assert twice.code == 2 and "is not frozen" in twice.stderr

    listed = cli("datasets", "--format", "json")  # the listing is still the group's default
    assert listed.code == 0 and [d["name"] for d in listed.json()] == ["customers"]


def test_the_contract_in_kafka_mode(kafka_cli: KafkaCli, tmp_path: Path) -> None:
    """Through the broker: the contract's command and event and the scan job's contract
    fields travel as Avro on Kafka, the worker compares with the frozen version (its
    object from S3), and a replay rebuilds the same read models."""
    kafka_cli.start_worker()
    first = scan(kafka_cli, customers(1, 500), tmp_path / "v1.csv")
    frozen = kafka_cli("datasets", "contract", "customers", "--freeze", "--format", "json")
    assert frozen.code == 0, frozen.stderr
    assert frozen.json()["version"] == 1
    doc = scan(kafka_cli, customers(2, 500).drop("email"), tmp_path / "v2.csv")
    assert doc["version"] == 2 and first["dataset_id"] == doc["dataset_id"]
    [issue] = schema_issues(doc)
    assert issue["severity"] == "critical"
    assert "column 'email' (string) was removed" in issue["description"]
    again = kafka_cli("datasets", "contract", "customers", "--freeze")
    assert again.code == 2 and "already frozen (as of version 1)" in again.stderr
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0 and "identical" in replay.stdout, replay.stdout + replay.stderr


@pytest.mark.usefixtures("spark_on_cluster")
def test_the_spark_engine_reports_the_same_schema_change(tmp_path: Path) -> None:
    before, after = tmp_path / "v1.parquet", tmp_path / "v2.parquet"
    customers(1, 500).write_parquet(before)
    changed(2, 500).write_parquet(after)
    options = ScanOptions(previous_path=before, previous_version=1)
    polars = PolarsScanEngine().scan(after, options)
    spark = SparkScanEngine().scan(after, options)
    found = [
        [(i.severity, i.description, i.impact_score) for i in r.issues if i.type == "schema_change"]
        for r in (polars, spark)
    ]
    assert found[0] == found[1] and len(found[0]) == 1
    assert "'zip_code' changed type from integer to string" in found[0][0][1]
    assert polars.score.consistency == spark.score.consistency
