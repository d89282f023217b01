"""A column a PII fix redacted is the fix's intended outcome, not a new defect: a column
whose one value is a redaction marker of the transforms (``<REDACTED>``, ``<EMAIL>``,
...) is not reported as a constant column and does not count as one in the score; a
column of any other single value still is. The Polars engine, in memory and bounded (the
Spark engine: tests/integration/test_quality_redacted_spark.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from datrix.jobs.engine import ScanTuning
from datrix.jobs.quality.pii import SPAN_KINDS
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions, ScanReport
from datrix.jobs.transforms.base import REDACTED
from datrix.jobs.transforms.pii_tokens import placeholder, redaction_markers

ROWS = 40


def redacted_table() -> pl.DataFrame:
    """Every marker as a column's only value (with a null), a constant ``k`` of another
    value, a column of two markers, and a varying key."""
    columns: dict[str, list[object]] = {
        f"m{i}": [None if r == 3 else marker for r in range(ROWS)]
        for i, marker in enumerate(sorted(redaction_markers()))
    }
    columns["k"] = ["same"] * ROWS
    columns["lookalike"] = ["<SECRET>"] * ROWS  # not a marker the transforms write
    columns["two"] = ["<EMAIL>" if r % 2 else "<PHONE>" for r in range(ROWS)]
    columns["v"] = list(range(ROWS))
    return pl.DataFrame(columns)


def constant_columns(report: ScanReport) -> set[str | None]:
    return {i.column for i in report.issues if i.type == "constant_column"}


def test_the_markers_are_the_transforms_own() -> None:
    assert redaction_markers() == {REDACTED, *(placeholder(k) for k in SPAN_KINDS)}
    assert redaction_markers() == {
        "<REDACTED>",
        "<EMAIL>",
        "<PHONE>",
        "<CARD>",
        "<IBAN>",
        "<IP>",
        "<NATIONAL_ID>",
    }


@pytest.mark.parametrize(
    "tuning",
    [ScanTuning(), ScanTuning(in_memory_mb=0, in_memory_rows=0, chunk_rows=16)],
    ids=["in-memory", "bounded"],
)
def test_a_redacted_column_is_not_a_constant_column(tmp_path: Path, tuning: ScanTuning) -> None:
    path = tmp_path / "redacted.parquet"
    redacted_table().write_parquet(path)
    report = PolarsScanEngine(tuning).scan(path, ScanOptions())
    assert constant_columns(report) == {"k", "lookalike"}
    # without the two other constants, nothing lowers the distribution score
    markers_only = redacted_table().drop("k", "lookalike")
    markers_only.write_parquet(path)
    clean = PolarsScanEngine(tuning).scan(path, ScanOptions())
    assert constant_columns(clean) == set()
    assert clean.score.distribution == 100.0
    # the same columns holding another single value are constant columns
    renamed = markers_only.with_columns(
        pl.when(pl.col(c).is_not_null()).then(pl.lit("x")).alias(c)
        for c in markers_only.columns
        if c.startswith("m")
    )
    renamed.write_parquet(path)
    report = PolarsScanEngine(tuning).scan(path, ScanOptions())
    assert constant_columns(report) == {c for c in renamed.columns if c.startswith("m")}
    assert report.score.distribution < 100.0
