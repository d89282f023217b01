"""The Spark engine, like the Polars engine, does not report a column a PII fix redacted
(one redaction marker of the transforms) as a constant column, and still reports a
column of another single value (tests/unit/test_quality_redacted.py for the Polars
engine and the table)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine
from datrix.jobs.report import ScanOptions
from tests.unit.test_quality_redacted import constant_columns, redacted_table

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("spark_on_cluster")]


def test_spark_does_not_report_a_redacted_column_as_constant(tmp_path: Path) -> None:
    path = tmp_path / "redacted.parquet"
    redacted_table().write_parquet(path)
    spark = SparkScanEngine().scan(path, ScanOptions())
    assert constant_columns(spark) == {"k", "lookalike"}
    polars = PolarsScanEngine().scan(path, ScanOptions())
    assert spark.score == polars.score
