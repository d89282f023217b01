"""`deploy/local/up spark` (issue 11 item 3): a Spark standalone master and two workers
from pyspark's own distribution, on a state folder and ports of this test's own: `up`
twice starts nothing, `status` knows it, `down` stops it. Scans on a cluster run on the
integration tier's (tests/integration/conftest.py ``spark_master``); here, the tier's one
scan on ``local[*]``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from datrix.jobs.bench.generate import generate
from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
WORKERS = 2


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive ports free on 127.0.0.1 (the master's web UI
    and the workers' take consecutive ports)."""
    for base in range(27100, 29000, 10):
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports between 27100 and 29000")


@dataclass
class Cluster:
    env: dict[str, str]
    master: str
    webui: int

    def script(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LOCAL / name), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui}/json/", timeout=10) as r:
            doc: dict[str, Any] = json.load(r)
        return doc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = _free_ports(WORKERS + 2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATRIX_", "SPARK_"))}
    env.update(
        DATRIX_STATE=str(tmp_path_factory.mktemp("spark-state")),
        DATRIX_SPARK_PORT=str(base),
        DATRIX_SPARK_WEBUI_PORT=str(base + 1),  # the workers': base + 2, base + 3
        DATRIX_SPARK_WORKERS=str(WORKERS),
        DATRIX_PYTHON=sys.executable,
    )
    up = subprocess.run(
        [str(LOCAL / "up"), "spark"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    started = Cluster(env, f"spark://127.0.0.1:{base}", base + 1)
    try:
        assert up.returncode == 0, up.stderr
        assert up.stdout.splitlines() == [f"export DATRIX_SPARK_MASTER={started.master}"]
        yield started
    finally:
        down = started.script("down", "spark")
        assert down.returncode == 0, down.stderr


@dataclass
class ClusterCli(Cli):
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra}


def test_up_spark_is_idempotent_and_status_knows_it(cluster: Cluster) -> None:
    again = cluster.script("up", "spark")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"export DATRIX_SPARK_MASTER={cluster.master}"
    assert again.stderr.count("already running") == 1 + WORKERS  # nothing started twice
    status = cluster.script("status", "spark")
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"{WORKERS} workers alive" in status.stdout and cluster.master in status.stdout
    state = cluster.state()
    assert state["status"] == "ALIVE" and state["aliveworkers"] == WORKERS
    assert state["cores"] == WORKERS


def test_scan_on_local_finds_what_polars_finds(tmp_path: Path) -> None:
    """The integration tier's one Spark scan on ``local[*]`` (no master: the default), so
    both modes stay covered. Scans on a standalone cluster: the tier's (conftest
    ``spark_master``), in test_kafka_mode_spark.py (a Kafka-mode job: the application
    FINISHED on the master, its executors' logs), test_label_scan.py (the CLI) and the
    in-process parity tests (``spark_on_cluster``)."""
    generate(600, tmp_path, seed=3)
    data = str(tmp_path / "dirty.parquet")

    def scan(engine: str, **env: str) -> dict[str, Any]:
        cli = ClusterCli(tmp_path / engine, extra=env)
        run = cli("scan", data, "--engine", engine, "--format", "json")
        assert run.code == 0, run.stderr
        doc: dict[str, Any] = run.json()
        return doc

    on_local = scan("spark", DATRIX_SPARK_DRIVER_MEMORY="512m")  # the driver
    polars = scan("polars")

    def findings(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(
            (i["type"], i["column"] or "", i["affected_count"], i["impact_score"])
            for i in doc["issues"]
        )

    assert findings(on_local) == findings(polars)
    assert {"exact_duplicates", "near_duplicates"} <= {i["type"] for i in polars["issues"]}
    assert on_local["score"] == polars["score"]
    assert on_local["rows"] == polars["rows"] == 600
