"""The CLI end to end on generated data with ground truth (embedded default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    truth = generate(20_000, out, seed=11)
    return out, truth


def test_scan_report_matches_ground_truth(cli: Cli, bench: tuple[Path, dict[str, Any]]) -> None:
    out, truth = bench
    run = cli("scan", str(out / "dirty.csv"), "--name", "dirty", "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()  # exactly one JSON document on stdout
    assert set(doc) == {
        "dataset_id",
        "version",
        "scan_id",
        "read_as",
        "scanned_at",
        "rows",
        "columns",
        "label_column",
        "score",
        "overall_dimensions",
        "weights",
        "column_profiles",
        "issues",
    }
    assert doc["version"] == 1
    assert doc["read_as"] == "read as CSV: delimiter ',', quote '\"', decimal '.', header yes"
    assert doc["rows"] == truth["rows"] and doc["columns"] == truth["columns"]
    assert set(doc["score"]) == {
        "overall",
        "completeness",
        "consistency",
        "accuracy",
        "distribution",
        "label_quality",
    }
    # no --label: label quality not assessed (null), and the overall says what it averaged
    assert doc["label_column"] is None and doc["score"]["label_quality"] is None
    assert doc["overall_dimensions"] == ["completeness", "consistency", "accuracy", "distribution"]
    assert all(0 <= v <= 100 for k, v in doc["score"].items() if k != "label_quality")

    dups = [i for i in doc["issues"] if i["type"] == "exact_duplicates"]
    assert len(dups) == 1
    assert dups[0]["affected_count"] == truth["exact_duplicates"]["count"]
    nulls = {c["name"]: c["null_count"] for c in doc["column_profiles"]}
    assert nulls == truth["nulls"]
    for issue in doc["issues"]:
        assert set(issue) == {
            "id",
            "type",
            "column",
            "dimension",
            "severity",
            "description",
            "affected_count",
            "affected_pct",
            "impact_score",
            "fix_available",
            "missingness",
        }
        if issue["type"] == "null_values":  # the class of the column's missingness
            assert issue["missingness"] in ("MCAR", "MAR", "MNAR")
        else:
            assert issue["missingness"] is None
    impacts = [i["impact_score"] for i in doc["issues"]]
    assert impacts == sorted(impacts, reverse=True)

    # affected rows of the duplicate issue are exactly the injected redundant copies
    rows = cli("rows", doc["scan_id"], dups[0]["id"])
    assert rows.code == 0, rows.stderr
    assert [int(x) for x in rows.stdout.split()] == sorted(truth["exact_duplicates"]["rows"])

    # the same file from Parquet gives the same counts
    pq = cli("scan", str(out / "dirty.parquet"), "--name", "dirty-pq", "--format", "json").json()
    assert {c["name"]: c["null_count"] for c in pq["column_profiles"]} == truth["nulls"]


def test_lists_audit_and_replay(
    cli: Cli, bench: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = bench
    first = cli("scan", str(out / "dirty.csv"), "--name", "sales", "--format", "json").json()
    # a changed file under the same name becomes version 2
    changed = tmp_path / "changed.csv"
    frame = pl.read_csv(out / "dirty.csv", infer_schema_length=10000).head(5000)
    frame.write_csv(changed)
    second = cli("scan", str(changed), "--name", "sales", "--format", "json").json()
    assert second["dataset_id"] == first["dataset_id"] and second["version"] == 2
    assert second["rows"] == 5000

    datasets = cli("datasets", "--format", "json").json()
    assert [(d["name"], d["latest_version"]) for d in datasets] == [("sales", 2)]
    scans = cli("scans", "sales", "--format", "json").json()
    assert [s["id"] for s in scans] == [first["scan_id"], second["scan_id"]]
    issues = cli("issues", first["scan_id"], "--format", "json").json()
    assert issues == first["issues"]
    assert cli("datasets").code == 0 and cli("issues", first["scan_id"]).code == 0

    log = cli("audit", "log", "--dataset", "sales", "--format", "json").json()
    types = [e["event_type"] for e in log]
    assert types.count("datrix.scan.ScanCompleted") == 2
    assert types[0] == "datrix.dataset.DatasetRegistered"

    verify = cli("audit", "verify")
    assert verify.code == 0, verify.stderr
    assert "intact" in verify.stdout

    replay = cli("replay", "--verify")
    assert replay.code == 0, replay.stderr + replay.stdout
    assert "identical" in replay.stdout

    # tamper with one audit row: verify must fail and name it
    db = sqlite3.connect(cli.home / "readmodels.db")
    db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    db.commit()
    db.close()
    tampered = cli("audit", "verify")
    assert tampered.code == 1
    assert "entry 3" in tampered.stderr and "Traceback" not in tampered.stderr
    # ... and the read models no longer equal a replay
    assert cli("replay", "--verify").code == 1


def test_demo_prints_a_report(cli: Cli) -> None:
    run = cli("demo", "--rows", "2000")
    assert run.code == 0, run.stderr
    assert "Datrix quality report" in run.stdout
    assert "exact_duplicates" in run.stdout


def test_unknown_ids_are_clear_errors(cli: Cli) -> None:
    for args in (
        ("scans", "nope"),
        ("issues", "nope"),
        ("rows", "nope", "I001"),
        ("audit", "log", "--dataset", "nope"),
    ):
        run = cli(*args)
        assert run.code == 2, args
        assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_replay_as_of_shows_the_past(cli: Cli, tmp_path: Path) -> None:
    import time
    from datetime import UTC, datetime

    first = tmp_path / "a.csv"
    first.write_text("x,y\n1,2\n3,4\n")
    assert cli("scan", str(first), "--name", "early").code == 0

    def next_second(after: datetime) -> datetime:
        """--as-of has whole seconds: wait until the clock is in a later second."""
        while (now := datetime.now(UTC)).replace(microsecond=0) <= after:
            time.sleep(0.05)
        return now.replace(microsecond=0)

    cut = next_second(datetime.now(UTC).replace(microsecond=0))  # after every early event
    between = cut.strftime("%Y-%m-%d %H:%M:%S")
    next_second(cut)  # the late scans' events come after the cut's whole second
    second = tmp_path / "b.csv"
    second.write_text("x,y\n5,6\n")
    assert cli("scan", str(second), "--name", "late").code == 0
    assert cli("scan", str(second), "--name", "early").code == 0  # version 2, after the cut

    past = cli("replay", "--as-of", between)
    assert past.code == 0, past.stderr
    assert "│ early" in past.stdout and "│ late" not in past.stdout
    assert "│ early │ active │ 1 " in past.stdout  # version 2 came after the cut
    now = cli("replay")
    assert now.code == 0
    assert cli("replay", "--verify", "--as-of", between).code == 2  # the two do not mix


def test_scan_writes_a_self_contained_html_report(
    cli: Cli, bench: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = bench
    page = tmp_path / "report.html"
    run = cli("scan", str(out / "dirty.parquet"), "--html", str(page), "--format", "json")
    assert run.code == 0, run.stderr
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<!doctype html>")
    for issue in run.json()["issues"]:
        assert issue["id"] in html
    assert "http://" not in html and "https://" not in html
    bad = cli(
        "scan", str(out / "dirty.parquet"), "--html", str(tmp_path / "no" / "such" / "x.html")
    )
    assert bad.code == 2 and "cannot write" in bad.stderr


class BoundedCli(Cli):
    """The CLI with every scan in bounded memory: tiny chunks, several near-dup segments."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env["DATRIX_SCAN_IN_MEMORY_MB"] = "0"
        env["DATRIX_SCAN_CHUNK_ROWS"] = "3000"
        env["DATRIX_NEAR_DUP_SEGMENT_ROWS"] = "7000"
        return env


def test_bounded_scan_end_to_end(bench: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, truth = bench
    cli = BoundedCli(tmp_path / "home")
    page = tmp_path / "report.html"
    run = cli("scan", str(out / "dirty.csv"), "--html", str(page), "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["rows"] == truth["rows"]
    assert {c["name"]: c["null_count"] for c in doc["column_profiles"]} == truth["nulls"]
    by_type = {(i["type"], i["column"]): i for i in doc["issues"]}
    dups = by_type[("exact_duplicates", None)]
    assert dups["affected_count"] == truth["exact_duplicates"]["count"]
    assert "segments of rows" in by_type[("near_duplicates", None)]["description"]
    pii = {c for t, c in by_type if t == "pii_detected"}
    assert pii == set(truth["pii_columns"])
    for column in pii:  # dense row sets come back whole from the rows object
        issue = by_type[("pii_detected", column)]
        rows = cli("rows", doc["scan_id"], issue["id"])
        assert rows.code == 0, rows.stderr
        assert len(rows.stdout.split()) == issue["affected_count"]
    html = page.read_text()
    assert all(issue["id"] in html for issue in doc["issues"])
