"""``datrix fix``, ``rollback``, ``provenance``, ``versions`` and ``scan DATASET`` end to
end (embedded default): each a real CLI process, from the scan of a dirty CSV to a
preview, an apply (a new version, re-scanned), its provenance and its rollback (the
version before, checksum for checksum); bad input is one line and exit 2; and the same
commands on a pseudo-terminal, as a person at a terminal runs them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import DATRIX, Cli, Run
from tests.integration.terminal import OSC, run_in_terminal

pytestmark = pytest.mark.integration

SHA256 = re.compile(r"[0-9a-f]{64}")
SCORE_KEYS = {"overall", "completeness", "consistency", "accuracy", "distribution"}


def dirty_csv(path: Path, rows: int = 240) -> Path:
    """Exact duplicates (the last 6 rows repeat earlier ones), empty amounts (every 7th
    row), a city written in variants of one spelling: each issue has a default fix."""
    lines = ["id,amount,city,email"]
    for i in range(rows):
        amount = "" if i % 7 == 3 else str(10 + i % 13)
        city = ("Paris", "paris", " Paris", "Berlin", "Berlin", "berlin")[i % 6]
        lines.append(f"{i},{amount},{city},user{i}@example.com")
    lines += lines[10:16]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Scanned:
    cli: Cli
    scan: dict[str, Any]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scanned]:
    root = tmp_path_factory.mktemp("cli-fix")
    cli = Cli(root / "home")
    run = cli("scan", str(dirty_csv(root / "dirty.csv")), "--format", "json")
    assert run.code == 0, run.stderr
    yield Scanned(cli, run.json())


def _one_line_error(run: Run, *fragments: str) -> None:
    """Bad input: exit 2, stdout empty, one line on stderr naming what was wrong."""
    assert run.code == 2, (run.code, run.stdout, run.stderr)
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datrix: "), run.stderr
    assert "Traceback" not in run.stderr and "internal error" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_scan_fix_provenance_rollback(scanned: Scanned) -> None:
    cli, scan = scanned.cli, scanned.scan
    scan_id = scan["scan_id"]
    found = {i["type"] for i in scan["issues"]}
    assert {"exact_duplicates", "null_values", "inconsistent_format"} <= found, found

    # a preview: per fix what would change; no version written
    preview = cli("fix", scan_id, "--preview", "--format", "json")
    assert preview.code == 0, preview.stderr
    doc = preview.json()
    assert isinstance(doc["fix_id"], str) and doc["fixes"], doc
    assert all(
        isinstance(f["cells_changed"], int) and isinstance(f["rows_removed"], int)
        for f in doc["fixes"]
    )
    assert any(f["rows_removed"] == 6 for f in doc["fixes"]), doc["fixes"]  # the duplicates
    versions = cli("versions", "dirty", "--format", "json")
    assert versions.code == 0, versions.stderr
    assert [v["version"] for v in versions.json()] == [1]

    # the apply: a new version, re-scanned; the JSON of the contract
    applied = cli("fix", scan_id[:8], "--apply", "--all", "--format", "json")
    assert applied.code == 0, applied.stderr
    result = applied.json()
    assert {"fix_id", "version", "fixes", "score_before", "score_after", "issues_gone"} <= set(
        result
    )
    assert isinstance(result["fix_id"], str) and result["version"] == 2
    assert isinstance(result["fixes"], list) and result["fixes"]
    for fix in result["fixes"]:
        assert isinstance(fix["cells_changed"], int) and isinstance(fix["rows_removed"], int)
    for key in ("score_before", "score_after"):
        assert set(result[key]) >= SCORE_KEYS, result[key]
        assert all(isinstance(result[key][k], int | float) for k in SCORE_KEYS)
    assert result["score_after"]["overall"] > result["score_before"]["overall"], result
    assert isinstance(result["issues_gone"], list) and result["issues_gone"]
    assert "exact_duplicates" in str(result["issues_gone"])
    fix_id = result["fix_id"]

    # versions: oldest first, {version, checksum, created_at, cause}
    listed = cli("versions", "dirty", "--format", "json").json()
    assert [v["version"] for v in listed] == [1, 2]
    assert [v["cause"] for v in listed] == ["upload", "fix"]
    for v in listed:
        assert {"version", "checksum", "created_at", "cause"} <= set(v)
        assert SHA256.fullmatch(v["checksum"]), v
    assert listed[0]["checksum"] != listed[1]["checksum"]
    table = cli("versions", "dirty")
    assert table.code == 0 and "Versions of dirty" in table.stdout and fix_id in table.stdout

    # provenance of the fixed version: every change, filters by column and row
    every = cli("provenance", "dirty", "--format", "json", "--limit", "10000")
    assert every.code == 0, every.stderr
    prov = every.json()
    assert prov["total"] == len(prov["items"]) > 0
    assert sum(f["cells_changed"] for f in result["fixes"]) + 6 >= prov["total"]
    removed = [p for p in prov["items"] if p["column"] is None]
    assert len(removed) == 6 and {p["rule"] for p in removed} == {"dedupe.exact"}
    for item in prov["items"]:
        assert item["fix_id"] == fix_id and 0 <= item["confidence"] <= 1
    city = [p for p in prov["items"] if p["column"] == "city"]
    assert city, prov["items"][:5]
    by_column = cli("provenance", "dirty", "--version", "2", "--column", "city", "--format", "json")
    assert by_column.json()["total"] == len(city)
    one = city[0]["row_id"]
    by_row = cli("provenance", "dirty", "--row", str(one), "--format", "json").json()
    assert by_row["items"] and {p["row_id"] for p in by_row["items"]} == {one}
    shown = cli("provenance", "dirty", "--column", "city")
    assert shown.code == 0 and "Provenance of dirty" in shown.stdout
    assert f"{len(city):,} change" in shown.stdout

    # `datrix scan NAME` scans the dataset's latest version (the fixed one)
    rescan = cli("scan", "dirty", "--format", "json")
    assert rescan.code == 0, rescan.stderr
    assert rescan.json()["version"] == 2
    assert rescan.json()["dataset_id"] == scan["dataset_id"]
    assert "exact_duplicates" not in {i["type"] for i in rescan.json()["issues"]}

    # rollback: a new version, byte for byte the one before the fix
    back = cli("rollback", "dirty", fix_id, "--format", "json")
    assert back.code == 0, back.stderr
    assert back.json()["version"] == 3 and back.json()["restored_version"] == 1
    after = cli("versions", "dirty", "--format", "json").json()
    assert [v["cause"] for v in after] == ["upload", "fix", "rollback"]
    assert after[2]["checksum"] == after[0]["checksum"]
    # the restored version was re-scanned: its scan finds the duplicates again
    scans = cli("scans", "dirty", "--format", "json").json()
    assert scans[-1]["dataset_version"] == 3 and scans[-1]["status"] == "completed"
    again = cli("rollback", "dirty", fix_id)  # twice: refused, with the reason
    _one_line_error(again, "rolled back")


def test_bad_input_is_one_line_and_exit_2(scanned: Scanned) -> None:
    cli, scan_id = scanned.cli, scanned.scan["scan_id"]
    _one_line_error(cli("fix", "0000dead", "--preview"), "no scan 0000dead")
    _one_line_error(cli("fix", scan_id, "--issues", "I999", "--preview"), "I999")
    _one_line_error(cli("fix", scan_id, "--preview", "--apply"), "--preview and --apply")
    _one_line_error(cli("fix", scan_id, "--issues", "I001", "--all"), "--issues and --all")
    _one_line_error(cli("fix", scan_id, "--option", "pii"), "KEY=VALUE")
    _one_line_error(cli("fix", scan_id, "--option", "pii=shred"), "--option", "shred")
    _one_line_error(cli("fix", scan_id, "--option", "colour=red"), "unknown fix option")
    _one_line_error(cli("fix", scan_id, "--issues", " , "), "--issues")
    _one_line_error(cli("versions", "no-such-dataset"), "no-such-dataset")
    _one_line_error(cli("provenance", "no-such-dataset"), "no-such-dataset")
    _one_line_error(cli("rollback", "dirty", "not-a-fix"), "not-a-fix")
    _one_line_error(cli("scan", "no-such-file-or-dataset.csv"), "no such file")
    _one_line_error(cli("scan", "dirty", "--name", "other"), "--name", "registered dataset")


def test_fix_and_versions_on_a_terminal(
    scanned: Scanned, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cli = scanned.cli
    data = tmp_path_factory.mktemp("tty")
    scan = cli("scan", str(dirty_csv(data / "tty.csv", 120)), "--format", "json")
    assert scan.code == 0, scan.stderr
    scan_id = scan.json()["scan_id"]
    preview = run_in_terminal([DATRIX, "fix", scan_id, "--preview"], cli.env())
    assert preview.code == 0, preview.text[-3000:]
    assert "internal error" not in preview.text and not OSC.search(preview.raw)
    assert "Datrix fix" in preview.text and "nothing written" in preview.text
    assert "exact_duplicates" in preview.text and "would change" in preview.text
    applied = run_in_terminal([DATRIX, "fix", scan_id, "--apply"], cli.env())
    assert applied.code == 0, applied.text[-3000:]
    assert "v1 -> v2" in applied.text and "Scores before -> after" in applied.text
    assert "issues gone" in applied.text and "rollback tty" in applied.text
    listed = run_in_terminal([DATRIX, "versions", "tty"], cli.env())
    assert listed.code == 0, listed.text[-3000:]
    assert "Versions of tty" in listed.text and "upload" in listed.text and "fix" in listed.text
    bad = run_in_terminal([DATRIX, "fix", scan_id, "--preview", "--apply"], cli.env())
    assert bad.code == 2 and bad.text.strip().startswith("datrix: "), bad.text


def test_readme_fix_example_runs(tmp_path: Path) -> None:
    """README.md's "Fix it" commands, as written, in a fresh folder (its ``.venv/bin/datrix``
    this checkout's CLI): every one succeeds, and they end with version 3 restoring
    version 1 and re-scanned."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    found = re.search(r"<!-- fix-example -->\s*```bash\n(.*?)```", readme, re.S)
    assert found, "README.md has no fix-example block"
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "datrix").symlink_to(DATRIX)
    cli = Cli(tmp_path / "home")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", found.group(1)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=cli.env(),
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Datrix fix" in done.stdout and "Scores before -> after" in done.stdout
    versions = cli("versions", "shop", "--format", "json").json()
    assert [v["cause"] for v in versions] == ["upload", "fix", "rollback"]
    assert versions[2]["checksum"] == versions[0]["checksum"]
    scans = cli("scans", "shop", "--format", "json").json()
    assert [s["dataset_version"] for s in scans] == [1, 2, 3, 3]
    assert all(s["status"] == "completed" for s in scans)
