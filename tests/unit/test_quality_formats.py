"""Format checks: case/whitespace variants, mixed date formats and type mismatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from datrix.jobs.quality import formats
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import Issue, ScanOptions, ScanReport


def scan(tmp_path: Path, frame: pl.DataFrame) -> ScanReport:
    path = tmp_path / "data.parquet"
    frame.write_parquet(path)
    return PolarsScanEngine().scan(path, ScanOptions())


def issues_of(report: ScanReport, type_: str) -> dict[str, Issue]:
    return {i.column or "": i for i in report.issues if i.type == type_}


def test_case_and_whitespace_variants(tmp_path: Path) -> None:
    variants = ["berlin", " Berlin ", "Berlin  ", "PARIS", "Rome", None]
    cities = [*(["Berlin"] * 30), *(["Paris"] * 30), *variants]
    n = len(cities)
    frame = pl.DataFrame(
        {
            "city": cities,
            "status": ["active", "inactive"] * (n // 2),  # no variants
            # free text: whitespace differences are not a second category here
            "note": [f"call back {i}" if i % 2 else f"call  back {i}" for i in range(n)],
            "n": list(range(n)),
        }
    )
    report = scan(tmp_path, frame)
    found = issues_of(report, "inconsistent_format")
    assert set(found) == {"city"}
    issue = found["city"]
    assert report.affected_rows[issue.id] == [60, 61, 62, 63]
    assert issue.affected_count == 4
    assert issue.dimension == "consistency" and issue.fix_available
    assert "2 categories" in issue.description
    assert report.score.consistency < 100.0


def test_canonical_is_the_commonest_spelling(tmp_path: Path) -> None:
    values = ["NEW YORK"] * 5 + ["New York"] * 3 + ["new  york"] + ["Boston"] * 8
    report = scan(tmp_path, pl.DataFrame({"c": values, "i": list(range(len(values)))}))
    issue = issues_of(report, "inconsistent_format")["c"]
    assert report.affected_rows[issue.id] == [5, 6, 7, 8]
    assert "for 'NEW YORK'" in issue.description


def date_values(n: int) -> list[str]:
    days = np.datetime64("2020-01-01") + np.arange(n)
    return [str(d) for d in days]


def test_mixed_date_formats(tmp_path: Path) -> None:
    iso = date_values(60)
    mixed: list[str | None] = list(iso)
    mixed[5] = "06/01/2020"
    mixed[7] = "08.01.2020"
    mixed[9] = "2020-01-10 12:30:00"
    mixed[11] = None
    frame = pl.DataFrame({"when": mixed, "clean": iso, "i": list(range(60))})
    report = scan(tmp_path, frame)
    found = issues_of(report, "inconsistent_format")
    assert set(found) == {"when"}
    assert report.affected_rows[found["when"].id] == [5, 7, 9]
    assert "YYYY-MM-DD" in found["when"].description
    assert not issues_of(report, "type_mismatch")


def test_type_mismatch_numbers_and_dates(tmp_path: Path) -> None:
    n = 100
    numbers: list[str | None] = [str(i * 1.5) for i in range(n)]
    numbers[3], numbers[50], numbers[51] = "N/A", "", None
    dates: list[str | None] = list(date_values(n))
    dates[10] = "unknown"
    dates[20] = "2020-02-30"  # the right shape, not a date
    half = [str(i) if i % 2 else f"item {i}" for i in range(n)]
    zips = [f"{i:05d}" for i in range(n)]  # numbers in text form, all of them: fine
    frame = pl.DataFrame({"amount": numbers, "day": dates, "half": half, "zip": zips})
    report = scan(tmp_path, frame)
    found = issues_of(report, "type_mismatch")
    assert set(found) == {"amount", "day"}
    assert report.affected_rows[found["amount"].id] == [3, 50]
    assert "'N/A'" in found["amount"].description and "not numbers" in found["amount"].description
    assert report.affected_rows[found["day"].id] == [10, 20]
    assert found["day"].dimension == "consistency" and found["day"].fix_available


def test_type_mismatch_found_beyond_the_sample(tmp_path: Path) -> None:
    """The sample decides that a column is numeric; the bad values are found anywhere."""
    values = [str(i) for i in range(120_000)]
    values[77_777] = "seventy"
    report = scan(tmp_path, pl.DataFrame({"v": values}))
    issue = issues_of(report, "type_mismatch")["v"]
    assert report.affected_rows[issue.id] == [77_777]


def test_date_formats_classifier() -> None:
    values = pl.Series(["2024-01-31", "31/01/2024", "01/31/2024", "31.01.2024", "x", None])
    assert formats.date_formats(values).tolist() == [0, 2, 2, 3, -1, -1]


def test_categorical_columns_rule() -> None:
    from datrix.jobs.quality.profiling import ColumnStats

    stats = [
        ColumnStats("few", "string", 0, 5),
        ColumnStats("free", "string", 0, 80),  # 80 of 100 values distinct: free text
        ColumnStats("one", "string", 0, 1),
        ColumnStats("num", "integer", 0, 5),
        ColumnStats("typed", "string", 0, 5),
    ]
    assert formats.categorical_columns(stats, 100, {"typed": "number"}) == ["few"]


def test_categorical_dtypes(tmp_path: Path) -> None:
    values = ["Oslo"] * 20 + ["oslo ", "Rome"] * 5 + [None]
    frame = pl.DataFrame(
        {
            "cat": pl.Series(values, dtype=pl.Categorical),
            "enum": pl.Series(values, dtype=pl.Enum(["Oslo", "oslo ", "Rome"])),
        }
    )
    report = scan(tmp_path, frame)
    found = issues_of(report, "inconsistent_format")
    assert set(found) == {"cat", "enum"}
    assert report.affected_rows[found["cat"].id] == list(range(20, 30, 2))
