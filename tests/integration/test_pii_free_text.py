"""PII inside free text, as a user meets it: ``datrix bench generate --free-text``, then
``datrix scan`` (CLI in a subprocess, embedded default) reports the comment column with
exactly the planted rows and the kinds, and no personal value reaches the report, the
HTML page, the event store or the read models; the Spark engine finds the same."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.spark_engine import SparkScanEngine
from datrix.jobs.report import ScanOptions
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("free_text")
    cli = Cli(out / "home")
    run = cli(
        "bench", "generate", "--rows", "3000", "--out", str(out), "--seed", "4", "--free-text"
    )
    assert run.code == 0, run.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    return out, truth


def planted_values(out: Path, truth: dict[str, Any]) -> list[str]:
    """Some of the personal values inside the notes (e-mails, IBANs, cards as written)."""
    notes = pl.read_parquet(out / "dirty.parquet", columns=["comment"])["comment"]
    found = []
    for row in truth["free_text"]["rows"]["email"][:5] + truth["free_text"]["rows"]["iban"][:5]:
        found += re.findall(r"\S+@\S+\w|[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,}", notes[row])
    assert len(found) >= 10
    return found


def test_scan_reports_the_planted_rows_and_no_values(
    generated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, truth = generated
    cli = Cli(tmp_path / "home")
    page = tmp_path / "report.html"
    run = cli("scan", str(out / "dirty.csv"), "--format", "json", "--html", str(page))
    assert run.code == 0, run.stderr
    doc = run.json()
    pii = {i["column"]: i for i in doc["issues"] if i["type"] == "pii_detected"}
    assert set(pii) == {*truth["pii_columns"], "comment"}
    issue = pii["comment"]
    info = truth["free_text"]
    assert issue["affected_count"] == len(info["pii_rows"])
    for kind, rows in info["rows"].items():
        assert f"[{kind}]: {len(rows):,}" in issue["description"], (kind, issue["description"])
    rows = cli("rows", doc["scan_id"], issue["id"])
    assert rows.code == 0, rows.stderr
    assert [int(line) for line in rows.stdout.split()] == info["pii_rows"]

    html = page.read_text()
    databases = sorted((tmp_path / "home").rglob("*.db"))  # events, read models
    assert databases
    stores = b"".join(p.read_bytes() for p in databases)
    for value in planted_values(out, truth):
        assert value not in run.stdout, value
        assert value not in html, value
        assert value.encode() not in stores, value


@pytest.mark.usefixtures("spark_on_cluster")
def test_spark_finds_what_polars_finds(generated: tuple[Path, dict[str, Any]]) -> None:
    out, _ = generated
    reports = [
        engine().scan(out / "dirty.parquet", ScanOptions())
        for engine in (PolarsScanEngine, SparkScanEngine)
    ]
    found = [
        {
            (i.column, i.description, tuple(r.affected_rows.get(i.id, [])))
            for i in r.issues
            if i.type == "pii_detected"
        }
        for r in reports
    ]
    assert found[0] == found[1]
    assert "comment" in {column for column, _, _ in found[0]}
    masked = [[p for p in r.column_profiles if p.extra.get("pii_masked")] for r in reports]
    assert masked[0] == masked[1] and masked[0]
