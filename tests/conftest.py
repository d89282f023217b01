"""The unit tier runs on two processes.

``pytest -m "not integration"`` is CPU-bound (model fits, scans in job processes) and
single-threaded per test: on the 2-core machine it takes ~75 s serially and ~45 s on two
pytest-xdist workers, and it must stay under a minute. So when the marker expression
selects the unit tier and no ``-n`` was given, this sets ``-n 2 --dist worksteal`` before
xdist reads it.
``make test`` runs the integration tier on two workers too (``-n 2 --dist loadfile``: its
tests share the Kafka, Postgres and S3 services, each isolated by a topic prefix, schema
and object prefix of its own), then the tests marked ``serial`` (they stop a shared
service) alone. ``-n 0`` runs the unit tier serially (e.g. to debug with ``--pdb``, which
xdist refuses).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

UNIT_TIER = "not integration"
UNIT_WORKERS = 2


def _markexpr(config: pytest.Config) -> str:
    """The ``-m`` expression, its spaces normalised."""
    return " ".join(str(getattr(config.option, "markexpr", "") or "").split())


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("xdist") or "PYTEST_XDIST_WORKER" in os.environ:
        return
    option = config.option
    if _markexpr(config) != UNIT_TIER:
        return
    if (os.cpu_count() or 1) < UNIT_WORKERS:
        return
    if option.numprocesses is None and not option.collectonly and not option.usepdb:
        option.numprocesses = UNIT_WORKERS
        if getattr(option, "dist", "no") in ("no", "load"):
            # a few tests take 5-10 s among a thousand of under one: a worker that runs
            # out of tests takes some of the other's rather than waiting for it to end
            option.dist = "worksteal"


# The integration tier's slowest files, with their seconds in CI (stop 19's `--durations`:
# the sum of their tests, setup included, rounded). `--dist loadfile` hands a worker a whole
# file at a time, in the order of the collection when `--no-loadscope-reorder` is given
# (else by the number of tests: the many quick files first, the few slow ones last, and
# one worker runs a slow file alone at the end while the other waits). Scheduling the
# longest first keeps the two workers busy to the end. A file not listed counts as short;
# a wrong figure costs balance, never a test.
SLOW_FILES = {
    "test_label_accuracy.py": 180,
    "test_producer_auth.py": 160,
    "test_schema_change.py": 150,
    "test_kafka_mode.py": 150,
    "test_label_scan.py": 140,
    "test_cli_fix.py": 120,
    "test_jobs.py": 120,
    "test_first_run_concurrency.py": 110,
    "test_api_read.py": 100,
    "test_kafka_mode_spark.py": 150,
    "test_spark_cluster.py": 100,
    "test_kafka_faults.py": 100,
    "test_engine_parity.py": 90,
    "test_transforms_parity.py": 80,
    "test_spark_near_duplicates.py": 70,
    "test_crash_safety.py": 60,
    "test_cli_e2e.py": 60,
    "test_stream_monitor.py": 50,
    "test_fix_job_spark.py": 45,
    "test_stream_snapshots.py": 40,
    "test_local_registry.py": 35,
    "test_k8s_spark_conf.py": 30,
}


def _slowest_first(items: list[pytest.Item]) -> None:
    """The slowest files first (see SLOW_FILES); the order within a file is kept."""
    items.sort(key=lambda item: -SLOW_FILES.get(item.path.name, 0))


# Each tier collects only its own folder: `pytest -m "not integration"` does not import
# tests/integration (schemathesis, Spark, the services' clients: ~5 s a process), nor does
# `pytest -m "integration ..."` import tests/unit. That holds only while the folders agree
# with the marker, which ``pytest_collection_modifyitems`` below enforces.
TESTS = Path(__file__).parent
INTEGRATION = TESTS / "integration"
UNIT = TESTS / "unit"


def _tier_skips(config: pytest.Config) -> Path | None:
    expr = _markexpr(config)
    if expr == UNIT_TIER:
        return INTEGRATION
    if expr == "integration" or expr.startswith("integration and "):
        return UNIT
    return None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    skipped = _tier_skips(config)
    return True if skipped is not None and collection_path == skipped else None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test in tests/unit marked integration, or one in tests/integration not marked so,
    would run in neither tier: an error at collection, not a silently lost test."""
    for item in items:
        marked = item.get_closest_marker("integration") is not None
        if item.path.is_relative_to(UNIT) and marked:
            raise pytest.UsageError(
                f"{item.nodeid} is marked integration: move it to tests/integration"
            )
        if item.path.is_relative_to(INTEGRATION) and not marked:
            raise pytest.UsageError(f"{item.nodeid} is not marked integration (pytestmark)")
    _slowest_first(items)
