"""Fixes end to end (issue 10): preview, apply, provenance, determinism, rollback and its
chaining rule, the automatic re-scan, a generated dirty dataset, a SIGKILL mid-apply, and
Kafka mode. The embedded runtime runs in this process (jobs in child processes, as the CLI
runs them); the SIGKILL and bench tests run the real CLI in a subprocess."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.gateway import fixes, services
from datrix.gateway.errors import UserInputError
from datrix.jobs.fixes import CRASH_POINT
from datrix.runtime.bootstrap import bootstrap
from datrix.streams.faults import FAULT_ENV
from datrix.streams.messages import active_types, use_types
from datrix.streams.settings import Settings, load_settings
from tests.integration.conftest import DATRIX, Cli, KafkaCli

pytestmark = pytest.mark.integration

ROW_ID = "__row__"


@pytest.fixture(autouse=True)
def restore_types() -> Iterator[None]:
    before = active_types()
    yield
    use_types(before)


def people_csv(path: Path, rows: int = 400, seed: int = 1) -> Path:
    """Nulls in ``age``, spelling variants in ``city``, ten exact duplicate rows."""
    rng = random.Random(seed)
    lines = ["id,name,age,city,score"]
    for i in range(rows):
        age = "" if i % 9 == 0 else str(20 + rng.randint(0, 40))
        city = rng.choice(["Paris", "Paris", "Paris", "paris", "PARIS ", "Berlin", "berlin"])
        lines.append(f"{i},n{i % 37},{age},{city},{rng.randint(0, 100)}")
    lines += lines[1:11]
    path.write_text("\n".join(lines) + "\n")
    return path


def runtime(home: Path) -> Any:
    return bootstrap(Settings(home=home)).runtime


def scan(rt: Any, csv: Path, name: str) -> dict[str, Any]:
    outcome = services.scan_file(rt, csv, name=name, engine="polars")
    return services.views(rt).scan(outcome.scan_id) or {}


def issue_types(rt: Any, scan_id: str) -> dict[str, str]:
    """issue id -> (type) of a scan's issues."""
    return {str(i["issue_id"]): str(i["issue_type"]) for i in services.views(rt).issues(scan_id)}


def issue_of(rt: Any, scan_id: str, kind: str) -> str:
    return next(i for i, t in issue_types(rt, scan_id).items() if t == kind)


def version_frame(rt: Any, dataset_id: str, version: int, folder: Path) -> pl.DataFrame:
    (uri,) = rt.read_store.query(
        "SELECT object_uri FROM dataset_versions WHERE dataset_id = ? AND version = ?",
        (dataset_id, version),
    )[0]
    return pl.read_parquet(rt.objects.local_copy(str(uri), folder))


def apply(rt: Any, scan_id: str, issues: list[str] | None = None) -> fixes.FixOutcome:
    submitted = fixes.submit_fix(rt, scan_id, issues, preview=False)
    return fixes.await_fix(rt, submitted.fix_id)


@dataclass
class Applied:
    rt: Any
    dataset_id: str
    scan: dict[str, Any]
    preview: fixes.FixOutcome
    versions_after_preview: list[dict[str, Any]]
    outcome: fixes.FixOutcome
    folder: Path


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> Applied:
    """One dataset scanned, every fixable issue previewed, then applied."""
    root = tmp_path_factory.mktemp("applied")
    rt = runtime(root / "home")
    scanned = scan(rt, people_csv(root / "people.csv"), "people")
    preview = fixes.await_fix(rt, fixes.submit_fix(rt, scanned["id"], None, preview=True).fix_id)
    after_preview = fixes.dataset_versions(rt, "people")
    outcome = apply(rt, scanned["id"])
    return Applied(
        rt, scanned["dataset_id"], scanned, preview, after_preview, outcome, root / "files"
    )


def test_a_preview_writes_no_version_and_counts_what_it_would_change(applied: Applied) -> None:
    preview = applied.preview
    assert preview.status == "previewed" and preview.version is None
    assert [v["version"] for v in applied.versions_after_preview] == [1]
    assert preview.preview is not None and preview.cells_changed
    assert preview.rows_removed == 10  # the ten planted duplicates
    assert {f["type"] for f in preview.per_fix} >= {
        "null_values",
        "inconsistent_format",
        "exact_duplicates",
    }
    sample = preview.preview["sample"]
    assert 0 < len(sample) <= 20 and all("before" in row for row in sample)
    # the apply changed exactly what the preview announced
    assert (applied.outcome.cells_changed, applied.outcome.rows_removed) == (
        preview.cells_changed,
        preview.rows_removed,
    )


def test_an_apply_makes_a_new_version_with_cause_fix_and_rescans_it(applied: Applied) -> None:
    outcome, rt = applied.outcome, applied.rt
    assert (outcome.status, outcome.base_version, outcome.version) == ("completed", 1, 2)
    versions = fixes.dataset_versions(rt, "people")
    assert [(v["version"], v["cause"], v["fix_id"]) for v in versions] == [
        (1, "upload", None),
        (2, "fix", outcome.fix_id),
    ]
    assert all(len(v["checksum"]) == 64 for v in versions)
    assert versions[0]["checksum"] != versions[1]["checksum"]
    # the automatic re-scan of the new version no longer reports the fixed issues
    assert outcome.rescan_id is not None
    rescan = services.views(rt).scan(outcome.rescan_id)
    assert rescan is not None and rescan["dataset_version"] == 2
    fixed = {f["type"] for f in outcome.per_fix}
    assert not fixed & set(issue_types(rt, outcome.rescan_id).values())
    gone = {g["type"] for g in outcome.issues_gone or []}
    assert fixed <= gone
    assert outcome.score_before is not None and outcome.score_after is not None
    assert outcome.score_after["overall"] > outcome.score_before["overall"]
    assert outcome.score_after["completeness"] == 100.0
    doc = fixes.fix_document(outcome)
    assert doc["version"] == 2 and doc["fixes"] == outcome.per_fix
    assert fixes.fix_status(rt, outcome.fix_id[:8]) == doc


def test_every_changed_cell_has_exactly_one_provenance_row(applied: Applied) -> None:
    rt, outcome = applied.rt, applied.outcome
    before = version_frame(rt, applied.dataset_id, 1, applied.folder).with_row_index(ROW_ID)
    after = version_frame(rt, applied.dataset_id, 2, applied.folder)
    rows, total = fixes.provenance_rows(rt, "people", 2, None, None, 0, 10_000)
    assert total == len(rows) > 0
    assert {r["fix_id"] for r in rows} == {outcome.fix_id}
    assert all(0 < r["confidence"] <= 1 for r in rows)
    removed = {r["row_id"] for r in rows if r["column"] is None}
    assert len(removed) == outcome.rows_removed == 10
    cells = Counter((r["row_id"], r["column"]) for r in rows if r["column"] is not None)
    assert max(cells.values()) == 1  # one row per changed cell
    # compare the versions cell by cell: the kept rows of v1, in order, are the rows of v2
    kept = before.filter(~pl.col(ROW_ID).is_in(sorted(removed)))
    assert kept.height == after.height
    changed = set()
    for column in after.columns:
        old = kept[column].cast(pl.String)
        new = after[column].cast(pl.String)
        differs = (old != new) | (old.is_null() != new.is_null())
        changed |= {(int(r), column) for r in kept[ROW_ID].filter(differs.fill_null(True))}
    assert changed == set(cells)
    # and the old and new values are the cells' values
    by_cell = {(r["row_id"], r["column"]): r for r in rows if r["column"] is not None}
    index = {int(r): n for n, r in enumerate(kept[ROW_ID])}
    for (row, column), found in list(by_cell.items())[:200]:
        assert found["old_value"] == kept[column].cast(pl.String)[index[row]]
        assert found["new_value"] == after[column].cast(pl.String)[index[row]]
    # filters and pages
    one = next(iter(cells))
    assert fixes.provenance_rows(rt, "people", 2, one[0], one[1], 0, 10)[1] == 1
    page, counted = fixes.provenance_rows(rt, "people", None, None, "city", 5, 3)
    assert len(page) == 3 and counted == sum(1 for _, c in cells if c == "city")
    assert fixes.provenance_rows(rt, "people", 1, None, None, 0, 10) == ([], 0)  # an upload


def test_the_same_input_and_fix_give_the_same_checksum(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "home")
    csv = people_csv(tmp_path / "people.csv")
    first = apply(rt, scan(rt, csv, "first")["id"])
    second = apply(rt, scan(rt, csv, "second")["id"])
    assert first.fix_id != second.fix_id
    a, b = fixes.dataset_versions(rt, "first"), fixes.dataset_versions(rt, "second")
    assert a[0]["checksum"] == b[0]["checksum"]
    assert a[1]["checksum"] == b[1]["checksum"]  # the fixed versions: byte for byte equal


def test_rollbacks_restore_exact_content_and_undo_newest_first(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "home")
    scanned = scan(rt, people_csv(tmp_path / "people.csv"), "people")
    # three chained fixes, each on the re-scan of the version the one before made
    one = apply(rt, scanned["id"], [issue_of(rt, scanned["id"], "null_values")])
    assert one.rescan_id is not None
    two = apply(rt, one.rescan_id, [issue_of(rt, one.rescan_id, "inconsistent_format")])
    assert two.rescan_id is not None
    three = apply(rt, two.rescan_id, [issue_of(rt, two.rescan_id, "exact_duplicates")])
    assert [one.version, two.version, three.version] == [2, 3, 4]
    checksums = {v["version"]: v["checksum"] for v in fixes.dataset_versions(rt, "people")}

    with pytest.raises(UserInputError) as refused:
        fixes.rollback_fix(rt, "people", two.fix_id)
    assert f"fix {three.fix_id} (version 4) built on it" in str(refused.value)

    undone = []
    for outcome in (three, two, one):
        done = fixes.rollback_fix(rt, "people", outcome.fix_id[:8])
        rt.drain()  # its automatic re-scan
        assert done["restored_version"] == outcome.base_version
        assert done["checksum"] == checksums[outcome.base_version]  # byte for byte
        undone.append(done["version"])
        rescan = services.views(rt).scan(str(done["rescan_id"]))
        assert rescan is not None and rescan["status"] == "completed"
    assert undone == [5, 6, 7]
    versions = fixes.dataset_versions(rt, "people")
    assert [v["cause"] for v in versions] == ["upload", "fix", "fix", "fix", *["rollback"] * 3]
    assert versions[-1]["checksum"] == versions[0]["checksum"]
    with pytest.raises(UserInputError, match="already rolled back"):
        fixes.rollback_fix(rt, "people", one.fix_id)
    assert fixes.fix_status(rt, one.fix_id)["status"] == "rolled_back"  # type: ignore[index]
    replayed = services.replay(rt, verify=True)
    assert replayed.identical and "fixes" in replayed.tables


def test_refusals_come_back_with_their_reason(tmp_path: Path) -> None:
    rt = runtime(tmp_path / "home")
    csv = people_csv(tmp_path / "people.csv")
    first = scan(rt, csv, "people")
    constant = tmp_path / "clean.csv"
    constant.write_text("a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(50)))
    clean = scan(rt, constant, "clean")
    submitted = fixes.submit_fix(rt, clean["id"], None, preview=True)
    with pytest.raises(UserInputError, match="nothing to fix"):
        fixes.await_fix(rt, submitted.fix_id)
    done = apply(rt, first["id"])
    # the same request again follows the apply it already made
    again = fixes.submit_fix(rt, first["id"], None, preview=False)
    assert str(again.fix_id) == done.fix_id
    # other issues of the old scan: refused, the scan's version is no longer the latest
    other = fixes.submit_fix(
        rt, first["id"], [issue_of(rt, first["id"], "null_values")], preview=False
    )
    with pytest.raises(UserInputError, match="scan the latest version"):
        fixes.await_fix(rt, other.fix_id)


def test_fixes_raise_the_score_of_the_generated_dirty_dataset(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = cli("bench", "generate", "--rows", "3000", "--out", str(data), "--seed", "3")
    assert made.code == 0, made.stderr
    scanned = cli("scan", str(data / "dirty.csv"), "--name", "dirty", "--format", "json")
    assert scanned.code == 0, scanned.stderr
    fixed = cli("fix", scanned.json()["scan_id"], "--all", "--apply", "--format", "json")
    assert fixed.code == 0, fixed.stderr
    doc = fixed.json()
    assert doc["version"] == 2
    assert doc["score_after"]["overall"] > doc["score_before"]["overall"]
    assert doc["issues_gone"]
    versions = cli("versions", "dirty", "--format", "json")
    assert [v["cause"] for v in versions.json()] == ["upload", "fix"]


@pytest.mark.parametrize("point", [CRASH_POINT, "job-result-logged", "events-recorded"])
def test_a_sigkill_during_an_apply_leaves_no_version_or_a_whole_one(
    cli: Cli, tmp_path: Path, point: str
) -> None:
    csv = people_csv(tmp_path / "people.csv")
    scanned = cli("scan", str(csv), "--name", "people", "--format", "json")
    assert scanned.code == 0, scanned.stderr
    scan_id = scanned.json()["scan_id"]
    proc = subprocess.run(
        [DATRIX, "fix", scan_id, "--all", "--apply", "--format", "json"],
        capture_output=True,
        text=True,
        env={**cli.env(), FAULT_ENV: f"kill@{point}"},
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {proc.stderr}"
    listed = cli("versions", "people", "--format", "json")
    assert listed.code == 0, listed.stderr
    seen = listed.json()
    # killed before the version: none; otherwise a whole one (its object readable)
    assert [v["cause"] for v in seen] in (["upload"], ["upload", "fix"])
    rerun = cli("fix", scan_id, "--all", "--apply", "--format", "json")
    assert rerun.code == 0, rerun.stderr
    if point == CRASH_POINT:  # the job died with its objects stored: the re-run redoes it
        assert "finishing interrupted fix" in rerun.stderr
    doc = rerun.json()
    assert doc["version"] == 2 and doc["score_after"] is not None
    finished = cli("versions", "people", "--format", "json").json()
    assert [v["cause"] for v in finished] == ["upload", "fix"]
    # the same bytes as an apply that was never interrupted
    clean = Cli(tmp_path / "clean-home")
    first = clean("scan", str(csv), "--name", "people", "--format", "json").json()["scan_id"]
    assert clean("fix", first, "--all", "--apply", "--format", "json").code == 0
    assert (
        clean("versions", "people", "--format", "json").json()[1]["checksum"]
        == finished[1]["checksum"]
    )
    assert cli("replay", "--verify").code == 0


def test_fixes_in_kafka_mode(
    kafka_cli: KafkaCli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The workers run the fix job, the policies add the version and request the re-scan,
    the projector keeps the fixes read model; a rollback restores the checksum."""
    from datrix.runtime.kafka import KafkaRuntime

    kafka_cli.start_worker()
    for key, value in kafka_cli.env().items():
        if key.startswith("DATRIX_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("DATRIX_HOME", str(tmp_path / "client-home"))
    scanned = kafka_cli(
        "scan", str(people_csv(tmp_path / "people.csv")), "--name", "people", "--format", "json"
    )
    assert scanned.code == 0, scanned.stderr
    rt = KafkaRuntime(load_settings())
    submitted = fixes.submit_fix(rt, scanned.json()["scan_id"], None, preview=False)
    outcome = fixes.await_fix(rt, submitted.fix_id, timeout=300)
    assert (outcome.status, outcome.version) == ("completed", 2)
    assert outcome.score_after is not None and outcome.score_before is not None
    assert outcome.score_after["overall"] > outcome.score_before["overall"]
    rows, total = fixes.provenance_rows(rt, "people", 2, None, None, 0, 50)
    assert total > 0 and len(rows) == min(50, total)
    done = fixes.rollback_fix(rt, "people", outcome.fix_id, timeout=120)
    versions = fixes.dataset_versions(rt, "people")
    assert [v["cause"] for v in versions] == ["upload", "fix", "rollback"]
    assert done["checksum"] == versions[0]["checksum"] == versions[2]["checksum"]
    listed = kafka_cli("versions", "people", "--format", "json")
    assert listed.code == 0 and json.loads(listed.stdout)[1]["fix_id"] == outcome.fix_id
    replay = kafka_cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert uuid.UUID(str(done["rescan_id"]))
