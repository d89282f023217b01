"""Private state on disk (issue 12, item 10): whatever the umask it is started with,
``umask 000`` included, the CLI keeps ``DATRIX_HOME`` its owner's alone (folders 0700,
files 0600), and it warns once about an existing home that others can reach.

The CLI runs as users run it: a subprocess, started by ``sh`` with the umask set."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from datrix.streams.faults import FAULT_ENV
from datrix.streams.private_state import open_home, private_umask

DATRIX = str(Path(sys.executable).with_name("datrix"))
CSV = "id,name,email\n1,Ann,ann@example.com\n2,Bob,bob@example\n2,Bob,bob@example\n"


def datrix(
    home: Path, *args: str, umask: int = 0o000, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATRIX_")}
    env["DATRIX_HOME"] = str(home)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        ["sh", "-c", f'umask {umask:03o} && exec "$0" "$@"', DATRIX, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def modes(root: Path) -> dict[str, int]:
    """Every folder and file under ``root`` (itself included) -> its permission bits."""
    found = {".": stat.S_IMODE(root.lstat().st_mode)}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def open_to_others(found: dict[str, int]) -> dict[str, str]:
    return {path: f"{mode:04o}" for path, mode in found.items() if mode & 0o077}


def test_scan_under_umask_000_leaves_nothing_readable_by_others(tmp_path: Path) -> None:
    home = tmp_path / "state" / "home"  # a missing parent too
    data = tmp_path / "people.csv"
    data.write_text(CSV)

    # a scan whose CLI and job are killed mid-job leaves its job's scratch folder behind
    killed = datrix(home, "scan", str(data), "--name", "people", fault="kill@profile")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    found = modes(home)
    names = {Path(p).name for p in found}
    assert {"commands.db", "events.db", "readmodels.db", "setup.lock", "engine.lock"} <= names
    assert "stderr.log" in names and ".owner" in names  # the job's scratch folder
    assert any(p.startswith("objects/") and p.endswith(".parquet") for p in found)
    assert open_to_others(found) == {}
    assert found["."] == 0o700 and stat.S_IMODE(home.parent.stat().st_mode) == 0o700

    # the next run finishes that scan and writes an HTML report; a replay's files too
    page = tmp_path / "report.html"
    done = datrix(
        home, "scan", str(data), "--name", "people", "--format", "json", "--html", str(page)
    )
    assert done.returncode == 0, done.stderr
    assert "finishing interrupted scan" in done.stderr
    assert json.loads(done.stdout)["rows"] == 3
    replay = datrix(home, "replay", "--verify", "--keep")
    assert replay.returncode == 0, replay.stdout + replay.stderr
    found = modes(home)
    assert any(p.endswith(".report.json") for p in found)
    assert any(p.startswith("replay/") and p.endswith(".db") for p in found)
    assert any(p.startswith("jobs/") for p in found)
    assert open_to_others(found) == {}
    # a report written outside the home holds the same data: the owner's alone too
    assert stat.S_IMODE(page.stat().st_mode) == 0o600
    assert "warning" not in done.stderr + replay.stderr


def test_existing_open_home_warns_once_and_is_left_as_it_is(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    home.mkdir()
    home.chmod(0o755)
    run = datrix(home, "datasets", umask=0o022)
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "DATRIX_HOME" in line]
    assert warnings == [
        f"warning: DATRIX_HOME {home} is open to other users (mode 0755); it holds your "
        f"datasets and reports: run chmod 700 {home} to make it private"
    ]
    # not changed behind the user's back (it may be shared on purpose) ...
    assert stat.S_IMODE(home.stat().st_mode) == 0o755
    # ... but what Datrix creates in it is private all the same
    assert open_to_others({k: v for k, v in modes(home).items() if k != "."}) == {}


@pytest.mark.parametrize(("before", "after"), [(0o000, 0o077), (0o022, 0o077), (0o277, 0o277)])
def test_the_umask_is_only_tightened(before: int, after: int, tmp_path: Path) -> None:
    saved = os.umask(before)
    try:
        assert private_umask() == before
        assert os.umask(saved) == after
    finally:
        os.umask(saved)


def test_open_home_in_process(tmp_path: Path) -> None:
    saved = os.umask(0)
    try:
        assert open_home(tmp_path / "a" / "b") is None
        assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700
        for mode in (0o750, 0o711, 0o701):  # group or others, read or only enter
            (tmp_path / "c").mkdir(exist_ok=True)
            (tmp_path / "c").chmod(mode)
            message = open_home(tmp_path / "c")
            assert message is not None and f"(mode {mode:04o})" in message
        (tmp_path / "c").chmod(0o700)  # the fix the warning names
        assert open_home(tmp_path / "c") is None
    finally:
        os.umask(saved)
