"""Every valid file scans (issue 14, item 13): awkward column types through the CLI, and
the same profiles from the Spark engine as from the Polars engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datrix.jobs.ingest import ingest
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine
from datrix.jobs.report import ScanOptions
from tests.awkward_types import ROWS, awkward_frame, write_mixed_json
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def test_cli_scans_a_csv_of_20_digit_ids(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "accounts.csv"
    ids = [12_345_678_901_234_567_890 + 10**15 * i for i in range(40)]
    src.write_text(
        "account_id,amount\n" + "".join(f"{v},{i}\n" for i, v in enumerate(ids)),
        encoding="utf-8",
    )
    run = cli("scan", str(src), "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    profile = {p["name"]: p for p in doc["column_profiles"]}["account_id"]
    assert profile["stored_as"] == "decimal(38,0): 128-bit integers"
    assert profile["distinct_count"] == 40
    assert doc["rows"] == 40


@pytest.mark.parametrize("kind", ["parquet", "json", "jsonl"])
def test_cli_scans_awkward_types(cli: Cli, tmp_path: Path, kind: str) -> None:
    if kind == "parquet":
        src = tmp_path / "awkward.parquet"
        awkward_frame().write_parquet(src)
    else:
        src = write_mixed_json(tmp_path / f"mixed.{kind}", lines=kind == "jsonl")
    html = tmp_path / "report.html"
    run = cli("scan", str(src), "--format", "json", "--html", str(html))
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["rows"] == ROWS
    assert doc["score"]["overall"] is not None
    assert all(p["type"] for p in doc["column_profiles"])
    assert html.stat().st_size > 0
    noted = {p["name"] for p in doc["column_profiles"] if "stored_as" in p}
    expected = (
        {"account_id", "wait", "opens_at", "nothing", "big_unsigned"}
        if kind == "parquet"
        else {"code", "score", "meta", "empty"}
    )
    assert noted == expected
    report = cli("report", doc["scan_id"], "--format", "json")
    assert report.code == 0 and json.loads(report.stdout)["rows"] == ROWS


@pytest.mark.usefixtures("spark_on_cluster")
def test_spark_profiles_awkward_types_as_polars(tmp_path: Path) -> None:
    sources = [tmp_path / "awkward.parquet", write_mixed_json(tmp_path / "m.jsonl", True)]
    awkward_frame().write_parquet(sources[0])
    for i, src in enumerate(sources):
        work = tmp_path / f"work{i}"
        work.mkdir()
        stored = ingest(src, work).parquet_path
        polars = PolarsScanEngine().scan(stored, ScanOptions())
        spark = SparkScanEngine().scan(stored, ScanOptions())
        assert spark.rows == polars.rows == ROWS

        def shape(report: object) -> list[tuple[object, ...]]:
            return [
                (p.name, p.type, p.null_count, p.distinct_count, p.extra.get("stored_as"))
                for p in report.column_profiles  # type: ignore[attr-defined]
            ]

        assert shape(spark) == shape(polars)
        assert [(i.type, i.column, i.affected_count) for i in spark.issues] == [
            (i.type, i.column, i.affected_count) for i in polars.issues
        ]
