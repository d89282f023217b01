"""Reading the output: ids work when typed (any unique prefix, shown whole), label quality
is n/a without a label and the overall names what it averaged, JSON holds objects (not
JSON in strings), plurals, hints that name the CLI as it was started, huge weights, and
the HTML report's header, cards and null strip."""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from datrix.jobs.bench.generate import generate
from tests.integration.conftest import DATRIX, Cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reading-output")
    generate(2_000, out, seed=13)
    return out / "dirty.csv"


@pytest.fixture
def scanned(cli: Cli, data: Path) -> dict[str, Any]:
    run = cli("scan", str(data), "--name", "customers", "--format", "json")
    assert run.code == 0, run.stderr
    doc: dict[str, Any] = run.json()
    return doc


def _words(text: str) -> str:
    return " ".join(text.split())


def test_ids_accept_any_unique_prefix(cli: Cli, scanned: dict[str, Any]) -> None:
    scan_id, dataset_id = scanned["scan_id"], scanned["dataset_id"]
    for prefix in (scan_id[:4], scan_id[:8].upper(), scan_id):
        run = cli("report", prefix, "--format", "json")
        assert run.code == 0, run.stderr
        assert run.json()["scan_id"] == scan_id
    issues = cli("issues", scan_id[:6], "--format", "json")
    assert issues.code == 0, issues.stderr
    assert issues.json() == scanned["issues"]
    scans = cli("scans", dataset_id[:5], "--format", "json")
    assert scans.code == 0, scans.stderr
    assert [s["id"] for s in scans.json()] == [scan_id]
    dup = next(i for i in scanned["issues"] if i["type"] == "exact_duplicates")
    whole = cli("rows", scan_id, dup["id"])
    short = cli("rows", scan_id[:6], dup["id"].lower())  # I00x as i00x
    assert short.code == 0, short.stderr
    assert short.stdout == whole.stdout and whole.stdout.strip()

    # an ambiguous prefix is refused (exit 2), naming the candidates
    ambiguous = cli("rows", scan_id, "I0")
    assert ambiguous.code == 2
    assert "ambiguous" in ambiguous.stderr and "I001" in ambiguous.stderr
    twins = ["abcdef00-0000-4000-8000-000000000001", "abcdef00-0000-4000-8000-000000000002"]
    with sqlite3.connect(cli.home / "readmodels.db") as db:
        for twin in twins:  # two scans whose ids share a prefix
            db.execute(
                "INSERT INTO quality_scans (id, tenant, dataset_id, dataset_version, status, "
                "engine, created_at) VALUES (?, 'default', ?, 1, 'completed', 'polars', '')",
                (twin, dataset_id),
            )
    run = cli("report", "abcdef00")
    assert run.code == 2
    assert len(run.stderr.strip().splitlines()) == 1
    assert "ambiguous" in run.stderr and all(t in run.stderr for t in twins)
    missing = cli("report", "0123zz")
    assert (missing.code, missing.stderr) == (2, "datrix: no scan 0123zz\n")


def test_tables_show_whole_ids(cli: Cli, scanned: dict[str, Any]) -> None:
    datasets = cli("datasets")
    assert scanned["dataset_id"] in datasets.stdout
    scans = cli("scans", "customers")
    assert scanned["scan_id"] in scans.stdout
    assert "…" not in scans.stdout.split("\n", 3)[-1].split("│")[0]
    report = cli("report", scanned["scan_id"][:8])
    assert scanned["scan_id"] in report.stdout
    ids = re.findall(r"^\s*(I\d{3})\s*│", report.stdout, flags=re.M)
    assert ids and ids == [i["id"] for i in scanned["issues"][: len(ids)]]


def test_label_quality_is_na_without_a_label_and_overall_names_its_dimensions(
    cli: Cli, scanned: dict[str, Any], data: Path
) -> None:
    assert scanned["score"]["label_quality"] is None
    assert scanned["label_column"] is None
    assert scanned["overall_dimensions"] == [
        "completeness",
        "consistency",
        "accuracy",
        "distribution",
    ]
    table = _words(cli("report", scanned["scan_id"]).stdout)
    assert re.search(r"label quality .*? n/a", table)
    assert "overall: weighted mean of completeness, consistency, accuracy, distribution" in table
    # a dimension weighted 0 is not averaged
    run = cli("scan", str(data), "--name", "w", "--weights", "accuracy=0", "--format", "json")
    assert run.code == 0, run.stderr
    assert run.json()["overall_dimensions"] == ["completeness", "consistency", "distribution"]
    assert run.json()["weights"]["accuracy"] == 0


def test_json_issue_count_is_an_object(cli: Cli, scanned: dict[str, Any]) -> None:
    scans = cli("scans", "customers", "--format", "json").json()
    counts = scans[0]["issue_count"]
    assert isinstance(counts, dict)
    assert set(counts) == {"critical", "warning", "info"}
    assert sum(counts.values()) == len(scanned["issues"])


def test_missingness_class_shows_in_the_issue_table(cli: Cli, scanned: dict[str, Any]) -> None:
    classes = {c["name"]: c["missingness"] for c in scanned["column_profiles"]}
    nulls = [i for i in scanned["issues"] if i["type"] == "null_values"]
    assert nulls and all(i["missingness"] == classes[i["column"]] for i in nulls)
    table = cli("issues", scanned["scan_id"]).stdout
    for issue in nulls:
        row = next(line for line in table.splitlines() if line.strip().startswith(issue["id"]))
        assert f"null_values ({issue['missingness']})" in row


def test_counts_of_one_are_singular(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "one.csv").write_text("a\n1\n")
    run = cli("scan", str(tmp_path / "one.csv"))
    assert run.code == 0, run.stderr
    assert "1 row x 1 column" in run.stdout
    # issue descriptions too: one null, one exact duplicate row
    rows = "".join(f"{i},{'' if i == 3 else i}\n" for i in range(19)) + "18,18\n"
    (tmp_path / "twenty.csv").write_text("a,b\n" + rows)
    doc = cli("scan", str(tmp_path / "twenty.csv"), "--format", "json").json()
    found = {i["type"]: i["description"] for i in doc["issues"]}
    assert found["null_values"] == "1 null value in column 'b' (5.00% of rows)"
    assert found["exact_duplicates"].startswith("1 row (5.00% of rows) repeats an earlier row")


def test_hints_name_the_command_as_it_was_started(cli: Cli) -> None:
    venv_bin = Path(DATRIX).parent
    cwd = venv_bin.parent.parent
    typed = os.path.relpath(DATRIX, cwd)  # e.g. .venv/bin/datrix
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if Path(p) != venv_bin
    )
    env = {**cli.env(), "PATH": path}
    run = subprocess.run(
        [typed, "demo", "--rows", "300"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    text = _words(run.stdout)
    assert f"try: {typed} audit verify, {typed} replay --verify" in text
    assert re.search(rf"\.\.\. \d+ more: {re.escape(typed)} issues [0-9a-f-]{{36}}", text)
    # on PATH: just "datrix"
    on_path = subprocess.run(
        ["datrix", "demo", "--rows", "300"],
        env={**cli.env(), "PATH": f"{venv_bin}{os.pathsep}{path}"},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert on_path.returncode == 0, on_path.stderr
    assert "try: datrix audit verify, datrix replay --verify" in _words(on_path.stdout)


def test_huge_weights_do_not_overflow_the_overall(cli: Cli, data: Path) -> None:
    run = cli(
        "scan",
        str(data),
        "--weights",
        "completeness=1e308,accuracy=1e308",
        "--format",
        "json",
    )
    assert run.code == 0, run.stderr
    score = run.json()["score"]
    assert score["overall"] == pytest.approx(
        (score["completeness"] + score["accuracy"]) / 2, abs=0.11
    )
    assert score["overall"] < 100


def test_html_report_header_cards_and_null_strip(cli: Cli, data: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    run = cli("scan", str(data), "--name", "customers", "--html", str(page), "--format", "json")
    assert run.code == 0, run.stderr
    doc = run.json()
    html = page.read_text(encoding="utf-8")
    header = html[html.index("<header>") : html.index("</header>")]
    assert doc["scan_id"] in header and doc["scanned_at"] in header
    assert "n/a" in html and "not assessed" in html  # label quality without --label
    assert "overall: weighted mean of completeness, consistency, accuracy, distribution" in html
    # the missingness class of every column with nulls, on its card
    for col in doc["column_profiles"]:
        if col["null_count"]:
            card = html[html.index(f"<h3>{col['name']} ") :][:2000]
            assert f"<span>missing</span><span>{col['missingness']}</span>" in card
    # category cards list the spellings that differ only in case or whitespace
    country = html[html.index("<h3>country ") :]
    country = country[: country.index('<div class="col">')]
    spellings = re.findall(r'<span class="spelling">&lsquo;(.*?)&rsquo;</span>', country)
    assert len(spellings) >= 2
    assert len({s.strip().lower() for s in spellings}) < len(spellings)
    # id-like integers are written as they are, without thousands separators
    record = html[html.index("<h3>record_id ") :][:1500]
    low = min(int(x) for x in re.findall(r"<span>min</span><span>(\d+)</span>", record))
    assert low >= 1_000_000  # e.g. 1000001, not 1,000,001
    assert not re.search(r"<span>max</span><span>\d{1,3},", record)


def test_null_strip_samples_rows_evenly_without_aliasing(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "periodic.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["every_tenth", "full"])
        for i in range(2_000):
            w.writerow(["" if i % 10 == 0 else i, i])
    page = tmp_path / "periodic.html"
    assert cli("scan", str(path), "--html", str(page)).code == 0
    html = page.read_text(encoding="utf-8")
    strip = html[html.index('<svg class="nullmatrix"') :]
    strip = strip[: strip.index("</svg>")]
    cell = float(re.search(r'<rect x="170" y="1" width="([\d.]+)"', strip).group(1)) / 200
    red = [float(w) for w in re.findall(r'width="([\d.]+)" height="10" fill="#c62828"', strip)]
    # about 10 % of 200 sampled rows, scattered: many short marks, not a few long blocks
    assert 10 <= len(red) <= 35
    assert max(red) <= 3 * cell + 0.05
    assert 12 <= sum(red) / cell <= 30


def test_scan_options_in_the_read_model_match_the_migration_backfill(
    cli: Cli, tmp_path: Path
) -> None:
    """Migration 6 fills label_column and weights_json of earlier scans from their
    ScanRequested audit entry; it must write exactly what the projector writes, or
    `replay --verify` would differ on upgraded state folders."""
    from datrix.projections.migrations import MIGRATIONS

    path = tmp_path / "labelled.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["x", "y", "label"])
        for i in range(300):
            w.writerow([i % 17, (i * 7) % 13, "a" if (i % 17) < 8 else "b"])
    run = cli(
        "scan",
        str(path),
        "--label",
        "label",
        "--weights",
        "accuracy=0.3,distribution=1e-3",
        "--format",
        "json",
    )
    assert run.code == 0, run.stderr
    doc = run.json()
    assert doc["label_column"] == "label" and doc["score"]["label_quality"] is not None
    assert "label_quality" in doc["overall_dimensions"]
    assert cli("scan", str(path), "--name", "plain").code == 0
    backfill = next(m for m in MIGRATIONS if m.version == 6).sqlite[-1]
    with sqlite3.connect(cli.home / "readmodels.db") as db:
        before = db.execute("SELECT id, label_column, weights_json FROM quality_scans").fetchall()
        assert {(b[1], b[2] is None) for b in before} == {("label", False), (None, True)}
        db.execute("UPDATE quality_scans SET label_column = NULL, weights_json = NULL")
        db.execute(backfill)
        after = db.execute("SELECT id, label_column, weights_json FROM quality_scans").fetchall()
    assert sorted(after) == sorted(before)
    verify = cli("replay", "--verify")
    assert verify.code == 0, verify.stdout + verify.stderr
