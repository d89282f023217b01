"""The Polars engine against the generator's ground truth (20,000 rows): near duplicates,
PII columns, case-variant columns, type mismatches, outliers and the sentinel code.

What the generator does to text columns besides the planted problems, and what the
detectors should therefore (not) say:

* near-duplicate copies get a typo in ``first_name`` or ``last_name`` and sometimes an extra
  space in ``customer_note``. A typo is a different spelling, not a case/whitespace variant,
  and ``customer_note`` is free text (nearly every value distinct), which the
  case/whitespace check leaves alone: the extra spaces belong to the near-duplicate
  finding. So exactly ``case_variant_columns`` are flagged ``inconsistent_format``.
* dates are ISO strings throughout and numbers in text form (``zip_code``,
  ``credit_card_number``) are all digits: no ``type_mismatch`` anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.near_duplicates import find_near_duplicates
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.profiling import profile_columns
from datrix.jobs.report import ScanOptions, ScanReport

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("accuracy")
    truth = generate(20_000, out, seed=23)
    return out / "dirty.parquet", truth


@pytest.fixture(scope="module")
def report(generated: tuple[Path, dict[str, Any]]) -> ScanReport:
    return PolarsScanEngine().scan(generated[0], ScanOptions())


def by_column(report: ScanReport, type_: str) -> dict[str | None, Any]:
    return {i.column: i for i in report.issues if i.type == type_}


def test_near_duplicate_pairs(generated: tuple[Path, dict[str, Any]]) -> None:
    path, truth = generated
    source = pl.read_parquet(path).lazy()
    schema = dict(source.collect_schema())
    rows, stats = profile_columns(source, schema)
    redundant = duplicate_rows(source, list(schema))
    found = set(find_near_duplicates(source, schema, stats, rows, redundant).pairs)
    expected = {(a, b) for a, b in truth["near_duplicates"]["pairs"]}
    hits = len(found & expected)
    recall, precision = hits / len(expected), hits / max(1, len(found))
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    assert not {row for pair in found for row in pair} & set(redundant)  # exact copies


def test_near_duplicate_issue(report: ScanReport, generated: tuple[Path, dict[str, Any]]) -> None:
    truth = generated[1]
    issue = by_column(report, "near_duplicates")[None]
    found = set(report.affected_rows[issue.id])
    expected = {r for pair in truth["near_duplicates"]["pairs"] for r in pair}
    hits = len(found & expected)
    assert hits / len(expected) >= 0.9 and hits / len(found) >= 0.9
    assert not found & set(truth["exact_duplicates"]["rows"])  # exact copies stay exact
    assert issue.affected_count == len(found)


def test_pii_columns_exactly(report: ScanReport, generated: tuple[Path, dict[str, Any]]) -> None:
    truth = generated[1]
    found = by_column(report, "pii_detected")
    assert set(found) == set(truth["pii_columns"])
    for column, kind in truth["pii_columns"].items():
        kinds = re.findall(r"\[(\w+)\]", found[column].description)
        assert kinds == [kind], found[column].description
        assert found[column].affected_count == report.rows - truth["nulls"][column]
        assert found[column].severity == "warning"


def test_case_variant_columns_exactly(
    report: ScanReport, generated: tuple[Path, dict[str, Any]]
) -> None:
    path, truth = generated
    found = by_column(report, "inconsistent_format")
    assert set(found) == set(truth["case_variant_columns"])
    frame = pl.read_parquet(path)
    for column in truth["case_variant_columns"]:
        # the clean categories are capitalised words; every other spelling is a variant
        values = frame[column]
        variant = values.is_not_null() & (
            (values != values.str.strip_chars()) | (values != values.str.to_titlecase())
        )
        expected = variant.arg_true().to_list()
        assert report.affected_rows[found[column].id] == expected


def test_no_type_mismatch(report: ScanReport) -> None:
    assert not by_column(report, "type_mismatch")


def test_earlier_findings_unchanged(
    report: ScanReport, generated: tuple[Path, dict[str, Any]]
) -> None:
    truth = generated[1]
    exact = by_column(report, "exact_duplicates")[None]
    assert report.affected_rows[exact.id] == truth["exact_duplicates"]["rows"]
    assert set(by_column(report, "constant_column")) == set(truth["constant_columns"])
    assert 0.0 <= report.score.consistency <= 100.0


def test_outliers_per_injected_column(
    report: ScanReport, generated: tuple[Path, dict[str, Any]]
) -> None:
    """Recall >= 0.8 at precision >= 0.5 for every column with injected outliers."""
    truth = generated[1]
    found = by_column(report, "outliers")
    assert len(truth["outliers"]) >= 3  # planted in several columns: never a vacuous pass
    for column, rows in truth["outliers"].items():
        assert column in found, column
        flagged = set(report.affected_rows[found[column].id])
        hits = len(flagged & set(rows))
        recall, precision = hits / len(rows), hits / len(flagged)
        assert recall >= 0.8 and precision >= 0.5, (column, recall, precision)
        assert found[column].dimension == "accuracy"


def test_sentinel_code_exactly(report: ScanReport, generated: tuple[Path, dict[str, Any]]) -> None:
    truth = generated[1]
    found = by_column(report, "sentinel_values")
    # numeric codes, and the date form of the check (test_date_problems)
    assert set(found) == set(truth["sentinel"]) | set(truth["placeholder_dates"])
    for column, planted in truth["sentinel"].items():
        assert report.affected_rows[found[column].id] == planted["rows"]
        assert f"{planted['value']:g} (" in found[column].description
    # the codes are placeholders, not outliers or impossible negatives as well
    assert not set(by_column(report, "impossible_values")) & set(truth["sentinel"])
    assert not set(by_column(report, "outliers")) & set(truth["sentinel"])


def test_date_problems(report: ScanReport, generated: tuple[Path, dict[str, Any]]) -> None:
    """Placeholder birth dates, impossible birth dates and future purchase dates: recall
    and precision 1 on the planted rows; the text date columns are typed."""
    truth = generated[1]
    placeholders = by_column(report, "sentinel_values")
    for column, planted in truth["placeholder_dates"].items():
        assert report.affected_rows[placeholders[column].id] == planted["rows"]
        assert f"{planted['value']} (" in placeholders[column].description
    impossible = by_column(report, "impossible_values")
    for column, rows in truth["impossible_dates"].items():
        flagged = set(report.affected_rows[impossible[column].id])
        hits = len(flagged & set(rows))
        recall, precision = hits / len(rows), hits / len(flagged)
        assert recall == 1.0 and precision == 1.0, (column, recall, precision)
    assert not set(impossible) & {"signup_date"}
    types = {p.name: p.type for p in report.column_profiles}
    for column, kind in truth["column_types"].items():
        if kind == "date":
            assert types[column] == "date", column


def test_no_drift_without_a_previous_version(report: ScanReport) -> None:
    assert not by_column(report, "drift")
