"""SIGKILL the CLI at named moments of a scan; the next run finishes the work and nothing
is lost or applied twice.

The kills are deterministic (``DATRIX_TEST_JOB_FAULT=kill@POINT``, ``streams/faults.py``):
each run dies at one crash point of the embedded runtime or one phase of the scan's job,
whatever the machine's speed, and each run starts from what the previous one left."""

from __future__ import annotations

import collections
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest

from datrix.jobs.bench.generate import generate
from datrix.runtime.embedded import COMMAND_TRACKING
from datrix.streams.event_store import sqlite_event_store
from datrix.streams.faults import FAULT_ENV, RUNTIME_POINTS
from tests.integration.conftest import DATRIX, Cli

pytestmark = pytest.mark.integration

ROWS = 20_000
# in this order, each run resuming what the one before left:
KILL_AT = (
    "command-logged",  # the dataset's registration is logged, nothing processed
    "events-recorded",  # run 2 processes it (events recorded), dies before projecting
    "read-models-updated",  # run 3 projects them, dies after committing
    "duplicates",  # run 4 adds a version and requests the scan; its job dies mid-way
    "job-result-logged",  # run 5 reruns that job, dies with its result logged unprocessed
    "profile",  # run 6 completes that scan, scans a new version; its job dies at its start
)


def test_sigkill_mid_scan_then_rerun(cli: Cli, tmp_path: Path) -> None:
    assert set(KILL_AT) >= set(RUNTIME_POINTS)  # every crash point of the runtime is tried
    data = tmp_path / "data"
    generate(ROWS, data, seed=5)
    stderr: list[str] = []
    for point in KILL_AT:
        proc = subprocess.run(
            [DATRIX, "scan", str(data / "dirty.csv"), "--name", "big"],
            capture_output=True,
            text=True,
            env={**cli.env(), FAULT_ENV: f"kill@{point}"},
            stdin=subprocess.DEVNULL,
            timeout=600,
        )
        assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {proc.stderr}"
        stderr.append(proc.stderr)
    # runs 5 and 7 find a job whose CLI died and finish it, saying so
    assert "finishing interrupted scan" in stderr[4]

    final = cli("scan", str(data / "dirty.csv"), "--name", "big", "--format", "json")
    assert final.code == 0, final.stderr
    assert final.json()["rows"] == ROWS
    assert "finishing interrupted scan" in final.stderr

    replay = cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert cli("audit", "verify").code == 0

    # every command in the log was processed exactly once
    store = sqlite_event_store(cli.home / "events.db")
    commands = sqlite3.connect(cli.home / "commands.db")
    n_commands = commands.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
    head = commands.execute("SELECT MAX(position) FROM commands").fetchone()[0]
    assert store.position(COMMAND_TRACKING) == head
    events = store.read(0, 1_000_000)
    causes = {env.causation_id for _, env in events}
    assert len(causes) == n_commands
    # no aggregate got a once-only event twice
    once = collections.Counter(
        (env.subject, env.type)
        for _, env in events
        if env.type
        in (
            "datrix.dataset.DatasetRegistered",
            "datrix.scan.ScanRequested",
            "datrix.scan.ScanCompleted",
            "datrix.scan.ScanFailed",
        )
    )
    assert max(once.values()) == 1
    # every requested scan ended (the interrupted ones were finished by later runs)
    requested = sum(1 for _, e in events if e.type == "datrix.scan.ScanRequested")
    ended = sum(
        1 for _, e in events if e.type in ("datrix.scan.ScanCompleted", "datrix.scan.ScanFailed")
    )
    assert requested == ended
