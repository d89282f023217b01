"""Job budgets from the environment (``load_settings`` of a given mapping), and the owned
temp folders under DATRIX_HOME/tmp."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datrix.streams import scratch
from datrix.streams.settings import DEFAULT_JOB_TIMEOUT_S, SettingsError, load_settings


def test_budget_defaults_and_values() -> None:
    settings = load_settings({})
    assert settings.job_timeout_s == DEFAULT_JOB_TIMEOUT_S
    assert settings.job_memory_mb > 0  # 80 % of this machine's memory
    settings = load_settings({"DATRIX_JOB_TIMEOUT_S": "2.5", "DATRIX_JOB_MEMORY_MB": "0"})
    assert (settings.job_timeout_s, settings.job_memory_mb) == (2.5, 0)


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e999"])
def test_bad_budgets_are_refused_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^DATRIX_JOB_TIMEOUT_S must be a number"):
        load_settings({"DATRIX_JOB_TIMEOUT_S": value})


def test_sweep_keeps_live_folders_and_unowned_young_ones(tmp_path: Path) -> None:
    live = scratch.owned_tempdir(tmp_path, "ingest-")
    young = tmp_path / "being-created"  # a folder whose owner has not locked it yet
    young.mkdir()
    assert scratch.sweep(tmp_path) == []
    assert live.exists() and young.exists()
    scratch.release(live)
    assert not live.exists()


def test_a_sweep_between_creating_and_locking_the_owner_file_costs_a_retry_not_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process sweeps after ``owned_tempdir`` created ``.owner`` but before it
    locked it: the sweep takes the free lock and removes the folder. The owner must notice
    (its locked file is no longer in the folder) and make a new one, never hand out a
    folder that is gone (a first scan's ingest then failed with FileNotFoundError)."""
    real_flock = scratch.fcntl.flock
    swept: list[str] = []

    def flock_after_a_sweep(fd: int, operation: int) -> None:
        if not swept:
            code = (
                "from pathlib import Path; from datrix.streams import scratch; "
                f"print(len(scratch.sweep(Path({str(tmp_path)!r}))))"
            )
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            swept.append(done.stdout.strip())
        real_flock(fd, operation)

    monkeypatch.setattr(scratch.fcntl, "flock", flock_after_a_sweep)
    path = scratch.owned_tempdir(tmp_path, "ingest-")
    monkeypatch.setattr(scratch.fcntl, "flock", real_flock)
    assert swept == ["1"]  # the other process did remove the first folder
    assert (path / scratch.OWNER).exists()
    assert scratch.sweep(tmp_path) == [] and path.exists()  # the new one is held
    scratch.release(path)
