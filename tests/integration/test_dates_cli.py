"""Dates are dates, through the CLI (issue 14, item 14): a CSV of ISO dates and
timestamps with offsets is typed at scan time, checked, and shown by time in the HTML."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


def test_cli_types_and_checks_dates(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "customers.csv"
    lines = ["customer,dob,created_at,joined"]
    for i in range(300):
        dob = (dt.date(1950, 1, 1) + dt.timedelta(days=60 * i)).isoformat()
        created = (dt.datetime(2025, 1, 1, 9) + dt.timedelta(hours=13 * i)).isoformat()
        joined = (dt.date(2024, 1, 1) + dt.timedelta(days=i)).isoformat()
        if i % 50 == 7:
            dob = "1900-01-01"
        if i == 20:
            dob = "2031-06-01"  # born after the file's latest time
        if i == 40:
            created = "2045-01-01T00:00:00"
        if i in (60, 61):
            joined = f"{joined[8:10]}/{joined[5:7]}/{joined[:4]}"  # another format
        lines.append(f"c{i},{dob},{created}+02:00,{joined}")
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    html = tmp_path / "report.html"
    run = cli("scan", str(src), "--format", "json", "--html", str(html))
    assert run.code == 0, run.stderr
    doc = run.json()
    types = {p["name"]: p["type"] for p in doc["column_profiles"]}
    assert types == {
        "customer": "string",
        "dob": "date",
        "created_at": "datetime",
        "joined": "date",
    }
    issues = {(i["type"], i["column"]): i for i in doc["issues"]}
    placeholder = issues[("sentinel_values", "dob")]
    assert placeholder["affected_count"] == 6
    assert "1900-01-01 (6x)" in placeholder["description"]
    assert issues[("impossible_values", "dob")]["affected_count"] == 1
    assert issues[("impossible_values", "created_at")]["affected_count"] == 1
    # the raw text is kept: the format-variant check still sees the other format
    assert issues[("inconsistent_format", "joined")]["affected_count"] == 2
    rows = cli("rows", doc["scan_id"], issues[("impossible_values", "created_at")]["id"])
    assert rows.code == 0 and rows.stdout.split() == ["40"]
    page = html.read_text(encoding="utf-8")
    assert 'aria-label="values of created_at by time"' in page
    assert "UTC offsets" in page and "typed from" in page
    # typed at scan time: the stored version keeps the text as written
    stored = [
        pl.read_parquet(p)
        for p in (cli.home / "objects").rglob("*.parquet")
        if "dob" in pl.read_parquet_schema(p)
    ]
    assert len(stored) == 1
    assert stored[0]["dob"].dtype == pl.String
    assert stored[0]["created_at"][0] == "2025-01-01T09:00:00+02:00"
