"""Kafka mode on the tier's Spark cluster (issue 11 item 3): with DATRIX_SPARK_MASTER set
for the workers, a scan job with ``--engine spark`` runs as an application on the
standalone cluster: it finds what the Polars engine finds, the master lists it FINISHED
once the jobs role's process ends (its session lives as long as the process), and its
executors, run by the cluster's workers, read the dataset version at the local path the
jobs role materialised it to (one host: one file system; several hosts: docs/security.md
and deploy/local/README.md, S3A)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from datrix.jobs.bench.generate import generate
from tests.integration.conftest import SPARK_TEST_ENV, KafkaCli, spark_state

pytestmark = pytest.mark.integration


def spark_work_dir() -> Path:
    """The cluster's state folder, as deploy/local/lib.sh names it (executors' logs are
    under worker-N/work/APP/EXECUTOR)."""
    if os.environ.get("DATRIX_SPARK_STATE"):
        return Path(os.environ["DATRIX_SPARK_STATE"])
    state = os.environ.get("DATRIX_STATE") or str(Path.home() / ".cache" / "datrix" / "state")
    return Path(state) / "spark"


def findings(doc: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (i["type"], i["column"] or "", i["affected_count"], i["impact_score"])
        for i in doc["issues"]
    )


def test_a_spark_scan_job_runs_on_the_cluster(
    kafka_cli: KafkaCli, spark_master: str, tmp_path: Path
) -> None:
    generate(800, tmp_path, seed=5)
    data = str(tmp_path / "dirty.parquet")
    assert kafka_cli.extra is not None
    kafka_cli.extra.update({"DATRIX_SPARK_MASTER": spark_master, **SPARK_TEST_ENV})
    before = {a["id"] for a in spark_state()["completedapps"]}
    kafka_cli.start_worker()

    on_spark = kafka_cli("scan", data, "--name", "s", "--engine", "spark", "--format", "json")
    assert on_spark.code == 0, on_spark.stderr
    polars = kafka_cli("scan", data, "--name", "p", "--engine", "polars", "--format", "json")
    assert polars.code == 0, polars.stderr
    spark_doc, polars_doc = on_spark.json(), polars.json()
    assert findings(spark_doc) == findings(polars_doc)
    assert {"exact_duplicates", "near_duplicates"} <= {i["type"] for i in polars_doc["issues"]}
    assert spark_doc["score"] == polars_doc["score"] and spark_doc["rows"] == 800

    # The jobs role's session ends with its process: the master then lists the app done.
    kafka_cli.stop_workers()
    work = spark_work_dir()
    marker = str(kafka_cli.worker_home(0))  # the job's scratch folder, where it materialised
    deadline = time.monotonic() + 60
    ours: list[dict[str, Any]] = []
    while not ours:
        new = [a for a in spark_state()["completedapps"] if a["id"] not in before]
        ours = [
            a
            for a in new
            if any(
                marker in log.read_text(errors="replace")
                for log in work.glob(f"worker-*/work/{a['id']}/*/stderr")
            )
        ]
        if not ours:
            assert time.monotonic() < deadline, (
                f"no application of this test's jobs worker completed on {spark_master}"
                f" (new: {[a['id'] for a in new]}; executors' logs under {work})"
            )
            time.sleep(0.5)
    assert [(a["name"], a["state"]) for a in ours] == [("datrix-scan", "FINISHED")]
    assert ours[0]["memoryperexecutor"] == 512
