"""Job budgets from the environment (``load_settings`` of a given mapping), and the owned
temp folders under DATRIX_HOME/tmp."""

from __future__ import annotations

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
