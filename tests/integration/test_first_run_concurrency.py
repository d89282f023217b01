"""Many CLI processes started together on an empty state folder: the first-run set-up of
the SQLite stores (tables, migrations, the event store's tracking migration) is serialised,
so every process ends with exit 0 and the state is consistent (issue 14, item 11: one of
six concurrent first scans used to end with ``IntegrityError: Failed to record tracking
for __migration__ 1``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

PROCESSES = 6
ROUNDS = 3

# The real CLI entry point, started only once every process has imported everything and
# says so: without that barrier, interpreter start-up spreads the processes over a second
# and the race is rarely hit.
_BARRIER_MAIN = """
import sys, time
from pathlib import Path
from datrix.gateway.cli import main
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.001)
main(sys.argv[3:])
"""


def _start_together(cli: Cli, tmp: Path, argvs: list[list[str]]) -> list[tuple[int, str]]:
    go = tmp / "go"
    procs = []
    for i, argv in enumerate(argvs):
        ready = tmp / f"ready-{i}"
        procs.append(
            (
                ready,
                subprocess.Popen(
                    [sys.executable, "-c", _BARRIER_MAIN, str(ready), str(go), *argv],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=cli.env(),
                    stdin=subprocess.DEVNULL,
                ),
            )
        )
    deadline = time.monotonic() + 300
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "the CLI processes did not start"
        assert all(p.poll() is None for _, p in procs), "a CLI process died while starting"
        time.sleep(0.01)
    go.touch()
    out = []
    for _, proc in procs:
        _stdout, stderr = proc.communicate(timeout=600)
        out.append((proc.returncode, stderr))
    return out


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_many_first_scans_at_once_on_an_empty_folder(tmp_path: Path, round_: int) -> None:
    cli = Cli(tmp_path / "home")  # does not exist yet: every process starts from nothing
    files = []
    for i in range(PROCESSES):
        path = tmp_path / f"part{i}.csv"
        path.write_text("id,value\n" + "".join(f"{r},{r * i}\n" for r in range(20)))
        files.append(path)
    results = _start_together(
        cli, tmp_path, [["scan", str(p), "--name", p.stem, "--format", "json"] for p in files]
    )
    for code, stderr in results:
        assert code == 0, stderr

    datasets = cli("datasets", "--format", "json")
    assert datasets.code == 0, datasets.stderr
    assert sorted(d["name"] for d in datasets.json()) == sorted(p.stem for p in files)
    for d in datasets.json():
        scans = cli("scans", d["id"], "--format", "json").json()
        assert [s["status"] for s in scans] == ["completed"]
    replay = cli("replay", "--verify")
    assert replay.code == 0, replay.stdout + replay.stderr
    assert cli("audit", "verify").code == 0
