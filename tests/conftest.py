"""The unit tier runs on two processes.

``pytest -m "not integration"`` is CPU-bound (model fits, scans in job processes) and
single-threaded per test: on the 2-core machine it takes ~75 s serially and ~45 s on two
pytest-xdist workers, and it must stay under a minute. So when the marker expression
selects the unit tier and no ``-n`` was given, this sets ``-n 2`` before xdist reads it.
``make test`` runs the integration tier on two workers too (``-n 2 --dist loadfile``: its
tests share the Kafka, Postgres and S3 services, each isolated by a topic prefix, schema
and object prefix of its own), then the tests marked ``serial`` (they stop a shared
service) alone. ``-n 0`` runs the unit tier serially (e.g. to debug with ``--pdb``, which
xdist refuses).
"""

from __future__ import annotations

import os

import pytest

UNIT_TIER = "not integration"
UNIT_WORKERS = 2


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    if not config.pluginmanager.hasplugin("xdist") or "PYTEST_XDIST_WORKER" in os.environ:
        return
    option = config.option
    if getattr(option, "markexpr", "").strip() != UNIT_TIER:
        return
    if (os.cpu_count() or 1) < UNIT_WORKERS:
        return
    if option.numprocesses is None and not option.collectonly and not option.usepdb:
        option.numprocesses = UNIT_WORKERS
