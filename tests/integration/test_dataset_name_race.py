"""Concurrent ``datrix scan ... --name sales``: a dataset name is unique per tenant by
construction (issue 8, item 4). The dataset id is ``uuid5(tenant/name)`` and the aggregate
refuses a second RegisterDataset, so racing scans end with ONE dataset, each scan's
version on it, and every process exits 0 (before: each process registered its own random
id, leaving two datasets named ``sales``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cli
from tests.integration.test_first_run_concurrency import _start_together

pytestmark = pytest.mark.integration


def _one_sales_dataset(cli: Cli) -> dict[str, object]:
    datasets = cli("datasets", "--format", "json")
    assert datasets.code == 0, datasets.stderr
    assert [d["name"] for d in datasets.json()] == ["sales"]
    found: dict[str, object] = datasets.json()[0]
    return found


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_scans_of_one_name_make_one_dataset(tmp_path: Path, processes: int) -> None:
    """Different contents under one name: one dataset with one version per scan."""
    cli = Cli(tmp_path / "home")
    files = []
    for i in range(processes):
        path = tmp_path / f"x{i}.csv"
        path.write_text("id,value\n" + "".join(f"{r},{r * (i + 1)}\n" for r in range(20)))
        files.append(path)
    results = _start_together(
        cli, tmp_path, [["scan", str(p), "--name", "sales", "--format", "json"] for p in files]
    )
    for code, stderr in results:
        assert code == 0, stderr

    sales = _one_sales_dataset(cli)
    assert sales["latest_version"] == processes
    scans = cli("scans", "sales", "--format", "json")
    assert scans.code == 0, scans.stderr
    assert [s["status"] for s in scans.json()] == ["completed"] * processes
    assert {s["dataset_version"] for s in scans.json()} <= set(range(1, processes + 1))
    assert cli("replay", "--verify").code == 0
    assert cli("audit", "verify").code == 0


def test_concurrent_scans_of_the_same_file_add_one_version(tmp_path: Path) -> None:
    """``datrix scan x.csv --name sales`` twice at once: one dataset, and the same file
    read the same way is one version whatever the timing (the aggregate drops the twin's
    identical AddDatasetVersion), with both scans on it."""
    cli = Cli(tmp_path / "home")
    path = tmp_path / "x.csv"
    path.write_text("id,value\n" + "".join(f"{r},{r * 3}\n" for r in range(20)))
    argv = ["scan", str(path), "--name", "sales", "--format", "json"]
    for code, stderr in _start_together(cli, tmp_path, [argv, argv]):
        assert code == 0, stderr

    sales = _one_sales_dataset(cli)
    assert sales["latest_version"] == 1
    scans = cli("scans", "sales", "--format", "json").json()
    assert [(s["status"], s["dataset_version"]) for s in scans] == [("completed", 1)] * 2
    # later scans keep the rule: the same file adds nothing, another file is version 2
    assert cli("scan", str(path), "--name", "sales").code == 0
    assert _one_sales_dataset(cli)["latest_version"] == 1
    other = tmp_path / "y.csv"
    other.write_text("id,value\n1,2\n")
    assert cli("scan", str(other), "--name", "sales").code == 0
    assert _one_sales_dataset(cli)["latest_version"] == 2


def test_concurrent_scans_of_one_name_make_one_dataset_in_kafka_mode(
    kafka_cli: Any, tmp_path: Path
) -> None:
    """Kafka mode: both processes' commands about ``sales`` share its key (the uuid5 id), so
    each RegisterDataset precedes its AddDatasetVersion on one partition."""
    kafka_cli.start_worker()
    files = []
    for i in range(2):
        path = tmp_path / f"k{i}.csv"
        path.write_text("id,value\n" + "".join(f"{r},{r + i}\n" for r in range(20)))
        files.append(path)
    results = _start_together(
        kafka_cli,
        tmp_path,
        [["scan", str(p), "--name", "sales", "--format", "json"] for p in files],
    )
    for code, stderr in results:
        assert code == 0, stderr
    assert _one_sales_dataset(kafka_cli)["latest_version"] == 2
    scans = kafka_cli("scans", "sales", "--format", "json").json()
    assert [s["status"] for s in scans] == ["completed", "completed"]
    assert kafka_cli("replay", "--verify").code == 0
