"""A killed scan holds nothing up (issue 14, item 3): queries and replay never run or wait
for jobs; the next scan finishes an interrupted job and says so; ``datrix jobs list`` and
``datrix jobs cancel``; time and memory budgets; temp folders of killed runs are swept.

Scans are killed deterministically: ``DATRIX_TEST_JOB_FAULT=kill@PHASE`` makes the job
process SIGKILL the CLI (and itself) when the job reaches PHASE; ``pause@PHASE`` stops the
job there until something ends it. No test waits on the wall clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from datrix.jobs.bench.generate import generate
from datrix.streams import scratch
from tests.integration.conftest import DATRIX, Cli, Run

pytestmark = pytest.mark.integration

ROWS = 5_000


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("jobs-data")
    generate(ROWS, out, seed=11)
    return out


def run(cli: Cli, *args: str, **env: str) -> Run:
    proc = subprocess.run(
        [DATRIX, *args],
        capture_output=True,
        text=True,
        env={**cli.env(), **env},
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def killed_scan(cli: Cli, data: Path, name: str) -> dict[str, Any]:
    """A scan whose CLI was SIGKILLed in the middle of its job; returns its job row."""
    killed = run(
        cli,
        "scan",
        str(data / "dirty.csv"),
        "--name",
        name,
        **{"DATRIX_TEST_JOB_FAULT": "kill@duplicates"},
    )
    assert killed.code == -9, killed.stderr
    listed = run(cli, "jobs", "list", "--format", "json")
    assert listed.code == 0, listed.stderr
    jobs = [j for j in listed.json() if j["dataset"] == name]
    assert len(jobs) == 1
    return dict(jobs[0])


def test_a_killed_scan_holds_nothing_up_and_the_next_scan_finishes_it(cli: Cli, data: Path) -> None:
    job = killed_scan(cli, data, "big")
    assert job["status"] == "interrupted"
    assert job["rows"] == ROWS and job["version"] == 1
    assert job["started_at"] is not None and job["phase"] is not None
    table = run(cli, "jobs", "list")
    assert job["scan_id"][:8] in table.stdout and "interrupted" in table.stdout

    # queries and replay answer without running the job (the fault switch is off now:
    # had either run it, the scan would have completed)
    replay = run(cli, "replay", "--verify")
    assert replay.code == 0, replay.stderr
    assert "identical" in replay.stdout and "interrupted" not in replay.stderr
    datasets = run(cli, "datasets", "--format", "json")
    assert datasets.code == 0 and [d["name"] for d in datasets.json()] == ["big"]
    still = run(cli, "jobs", "list", "--format", "json").json()
    assert [(j["scan_id"], j["status"]) for j in still] == [(job["scan_id"], "interrupted")]

    # the next scan finishes it first, and says so
    nxt = run(cli, "scan", str(data / "dirty.parquet"), "--name", "small", "--format", "json")
    assert nxt.code == 0, nxt.stderr
    short = job["scan_id"][:8]
    assert f"finishing interrupted scan {short} of dataset 'big' v1 ({ROWS:,} rows)" in (nxt.stderr)
    assert f"datrix jobs cancel {short}" in nxt.stderr
    assert run(cli, "jobs", "list", "--format", "json").json() == []
    scans = run(cli, "scans", "big", "--format", "json").json()
    assert [(s["status"], s["row_count"]) for s in scans] == [("completed", ROWS)]
    # the killed job's temp folder went with the sweep; nothing is left under tmp
    assert list((cli.home / "tmp").iterdir()) == []
    assert run(cli, "replay", "--verify").code == 0
    assert run(cli, "audit", "verify").code == 0


def test_cancel_ends_an_interrupted_scan_as_failed_naming_who(cli: Cli, data: Path) -> None:
    job = killed_scan(cli, data, "stuck")
    prefix = job["scan_id"][:6]
    cancel = run(cli, "jobs", "cancel", prefix, DATRIX_ACTOR="cli:carol")
    assert cancel.code == 0, cancel.stderr
    assert "cancelled by cli:carol" in cancel.stdout
    scans = run(cli, "scans", "stuck", "--format", "json").json()
    assert [(s["status"], s["error"]) for s in scans] == [("failed", "cancelled by cli:carol")]
    report = run(cli, "report", job["scan_id"])
    assert report.code == 1 and "cancelled by cli:carol" in report.stderr

    # the cancel is an event in the log: the audit trail says who, replay reproduces it
    audit = run(cli, "audit", "log", "--format", "json").json()
    cancelled = [a for a in audit if a["event_type"] == "datrix.scan.ScanCancelled"]
    assert [(a["subject"], a["actor"]) for a in cancelled] == [(job["scan_id"], "cli:carol")]
    assert json.loads(cancelled[0]["summary"])["cancelled_by"] == "cli:carol"
    assert run(cli, "replay", "--verify").code == 0
    assert run(cli, "audit", "verify").code == 0

    # a second cancel, or a cancel by the job id of an ended scan, is refused
    again = run(cli, "jobs", "cancel", job["job_id"])
    assert again.code == 2 and again.stderr.startswith("datrix: ")
    assert "already failed" in again.stderr and len(again.stderr.splitlines()) == 1
    # ids that are not there, or not ids at all
    assert run(cli, "jobs", "cancel", "0000000000").code == 2
    bad = run(cli, "jobs", "cancel", "not-an-id!")
    assert bad.code == 2 and "not a job or scan id" in bad.stderr

    # the next scan does not resume a cancelled job
    nxt = run(cli, "scan", str(data / "dirty.parquet"), "--name", "next")
    assert nxt.code == 0, nxt.stderr
    assert "interrupted" not in nxt.stderr
    done = run(cli, "jobs", "list", "--all", "--format", "json").json()
    assert sorted(j["status"] for j in done) == ["completed", "failed"]


def wait_for_job(cli: Cli, proc: subprocess.Popen[str], phase: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        jobs = run(cli, "jobs", "list", "--format", "json").json()
        if jobs and jobs[0]["phase"] == phase:
            return dict(jobs[0])
        time.sleep(0.2)
    raise AssertionError(f"the job never reached {phase}")


def test_cancel_stops_a_running_scan(cli: Cli, data: Path) -> None:
    proc = subprocess.Popen(
        [DATRIX, "scan", str(data / "dirty.csv"), "--name", "running"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**cli.env(), "DATRIX_TEST_JOB_FAULT": "pause@duplicates"},
        stdin=subprocess.DEVNULL,
    )
    try:
        job = wait_for_job(cli, proc, "duplicates")
        assert job["status"] == "running"
        # queries answer while the job runs
        assert run(cli, "datasets", "--format", "json").code == 0
        cancel = run(cli, "jobs", "cancel", job["job_id"][:8], DATRIX_ACTOR="cli:dave")
        assert cancel.code == 0, cancel.stderr
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the scanning CLI saw its scan end, as cancelled
    assert proc.returncode == 1
    assert "cancelled by cli:dave" in err
    scans = run(cli, "scans", "running", "--format", "json").json()
    assert [(s["status"], s["error"]) for s in scans] == [("failed", "cancelled by cli:dave")]
    assert list((cli.home / "tmp").iterdir()) == []
    assert run(cli, "replay", "--verify").code == 0


def test_jobs_past_their_budgets_fail_with_the_reason(cli: Cli, data: Path) -> None:
    csv = str(data / "dirty.csv")
    slow = run(cli, "scan", csv, "--name", "t", DATRIX_JOB_TIMEOUT_S="0.001")
    assert slow.code == 1
    assert "time budget of 0.001 s (DATRIX_JOB_TIMEOUT_S)" in slow.stderr
    big = run(cli, "scan", csv, "--name", "m", DATRIX_JOB_MEMORY_MB="1")
    assert big.code == 1
    assert "over its memory budget of 1 MB (DATRIX_JOB_MEMORY_MB)" in big.stderr
    errors = {
        s["dataset"]: s["error"]
        for s in run(cli, "jobs", "list", "--all", "--format", "json").json()
    }
    assert errors["t"].startswith("JobTimeout: ")
    assert errors["m"].startswith("JobOutOfMemory: ")
    # a job process that dies on its own fails its scan with its last words
    crash = run(cli, "scan", csv, "--name", "c", DATRIX_TEST_JOB_FAULT="crash@duplicates")
    assert crash.code == 1
    assert (
        "JobCrashed: the job process ended without a result (exit code 3): "
        "test fault: crashed at duplicates"
    ) in crash.stderr
    # within budget, the same file scans
    assert run(cli, "scan", csv, "--name", "ok", DATRIX_JOB_TIMEOUT_S="600").code == 0
    for name, value in (("DATRIX_JOB_TIMEOUT_S", "soon"), ("DATRIX_JOB_MEMORY_MB", "-5")):
        bad = run(cli, "scan", csv, **{name: value})
        assert bad.code == 2
        assert (
            bad.stderr
            == f"datrix: {name} must be a number of "
            + ("seconds" if "TIMEOUT" in name else "MB")
            + f" >= 0 (0: no limit), got {value!r}\n"
        )


_ORPHAN = """
import os, sys
from pathlib import Path
from datrix.streams import scratch
folder = scratch.owned_tempdir(Path(sys.argv[1]), "ingest-")
(folder / "part-0.parquet").write_bytes(b"PAR1" + b"x" * 4096)  # half written
print(folder, flush=True)
os.kill(os.getpid(), 9)
"""


def test_temp_folders_of_killed_runs_are_swept_live_ones_kept(cli: Cli, data: Path) -> None:
    tmp = cli.home / "tmp"
    orphan = subprocess.run(
        [sys.executable, "-c", _ORPHAN, str(tmp)],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=120,
    )
    assert orphan.returncode == -9
    dead = Path(orphan.stdout.strip())
    assert (dead / "part-0.parquet").exists()
    live = scratch.owned_tempdir(tmp, "ingest-")  # this test process is its live owner
    try:
        run_ = run(cli, "scan", str(data / "dirty.parquet"), "--name", "after")
        assert run_.code == 0, run_.stderr
        assert not dead.exists()
        assert live.exists()
        assert sorted(tmp.iterdir()) == [live]
    finally:
        scratch.release(live)
    assert not live.exists()
