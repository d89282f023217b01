"""SIGKILL the CLI at several moments of a scan; the next run finishes the work and
nothing is lost or applied twice."""

from __future__ import annotations

import collections
import sqlite3
import time
from pathlib import Path

import pytest

from jobs.bench.generate import generate
from streams.event_store import sqlite_event_store
from streams.runtime import COMMAND_TRACKING
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

KILL_AFTER_S = (0.4, 1.0, 1.8, 2.6, 3.5, 5.0)


def test_sigkill_mid_scan_then_rerun(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    generate(150_000, data, seed=5)
    killed = 0
    for delay in KILL_AFTER_S:
        proc = cli.popen("scan", str(data / "dirty.csv"), "--name", "big")
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
            killed += 1
        proc.communicate()
    assert killed >= 3, "the scans finished too fast to be interrupted; raise the row count"

    final = cli("scan", str(data / "dirty.csv"), "--name", "big", "--format", "json")
    assert final.code == 0, final.stderr
    assert final.json()["rows"] == 150_000

    replay = cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert cli("audit", "verify").code == 0

    # every command in the log was processed exactly once
    store = sqlite_event_store(cli.home / "events.db")
    commands = sqlite3.connect(cli.home / "commands.db")
    n_commands = commands.execute("SELECT COUNT(*) FROM commands").fetchone()[0]
    assert store.position(COMMAND_TRACKING) == n_commands
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
