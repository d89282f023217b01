"""The registry a process runs with: the core aggregates, the scan job kind, the fix job
kind and its policies (``runtime/fixes.py``), and the extensions named in the settings
(``DATRIX_EXTENSIONS=pkg.module,other.module``; each module has ``register(registry) ->
None``).

Every process that encodes, decodes or handles Datrix messages builds it from its own
settings: the CLI (through its runtime), each ``datrix worker`` and each job process.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from datrix.aggregates.common import Command
from datrix.aggregates.scan import (
    FailScan,
    JobRequested,
    RequestScan,
    ScanCancelled,
    ScanCompleted,
    ScanFailed,
)
from datrix.jobs.engine import ScanTuning
from datrix.projections.read_model import ReadModel
from datrix.projections.read_models import CORE_READ_MODELS
from datrix.runtime import fixes, lineage, stream_snapshots
from datrix.streams.ports import ObjectStore, ProgressFn
from datrix.streams.registry import JobKind, Query, Registry, RegistryError, core_registry
from datrix.streams.settings import Settings, SettingsError

if TYPE_CHECKING:
    from datrix.jobs.runner import EngineFactory


def _scan_failed(job: JobRequested, error_type: str, message: str) -> FailScan:
    return FailScan(
        scan_id=job.originator_id, job_id=job.job_id, error_type=error_type, message=message
    )


def _scan_actor(job: JobRequested) -> str:
    return f"worker:{job.engine}"


def _scan_notice(job: JobRequested, query: Query) -> str:
    short = str(job.originator_id)[:8]
    fixed = query(
        "SELECT fix_id, rescan_id FROM fixes WHERE rescan_id = ? OR rollback_rescan_id = ?",
        (str(job.originator_id), str(job.originator_id)),
    )
    if fixed:  # requested by the policy rescan-after-fix: no process held it
        after = "fix" if fixed[0][1] == str(job.originator_id) else "rollback of fix"
        return f"re-scanning v{job.version} after {after} {str(fixed[0][0])[:8]} (scan {short})"
    rows = query(
        "SELECT d.name, v.row_count FROM dataset_versions v "
        "LEFT JOIN datasets d ON d.id = v.dataset_id "
        "WHERE v.dataset_id = ? AND v.version = ?",
        (str(job.dataset_id), job.version),
    )
    name, count = rows[0] if rows else (None, None)
    size = f"{count:,} rows" if isinstance(count, int) else "size unknown"
    of = f" of dataset {name!r} v{job.version}" if name else ""
    return (
        f"finishing interrupted scan {short}{of} ({size}); "
        f"`datrix jobs cancel {short}` ends it instead"
    )


def scan_job_kind(engines: Mapping[str, EngineFactory] | None = None) -> JobKind:
    """The scan job: ``run_scan_job`` on ``engines`` (default ``datrix.jobs.runner.ENGINES``;
    tests pass stand-in engines) with the engines' tuning from the job's settings."""

    def run(
        job: JobRequested, objects: ObjectStore, progress: ProgressFn, settings: Settings
    ) -> Command:
        from datrix.jobs.runner import run_scan_job  # numpy, pyarrow: in the job's process

        return run_scan_job(job, objects, progress, ScanTuning.from_settings(settings), engines)

    return JobKind(
        name="scan",
        event=JobRequested,
        run=run,
        failed=_scan_failed,
        ended=(ScanCompleted, ScanFailed, ScanCancelled),
        requested_by=(RequestScan,),
        actor=_scan_actor,
        notice=_scan_notice,
    )


SCAN_JOB = scan_job_kind()


def default_registry() -> Registry:
    """The core: the dataset, scan and fix aggregates, the scan, fix and stream-snapshot
    job kinds, the fix and stream-snapshot policies."""
    registry = core_registry()
    registry.add_job_kind(SCAN_JOB)
    fixes.register(registry)
    stream_snapshots.register(registry)
    return registry


def load_registry(settings: Settings) -> Registry:
    """The default registry plus the extension modules of ``settings.extensions``."""
    registry = default_registry()
    lineage.register(registry, settings)  # DATRIX_OPENLINEAGE_URL: run events of scans
    for name in settings.extensions:
        try:
            module: Any = importlib.import_module(name)
        except ImportError as exc:
            raise SettingsError(f"DATRIX_EXTENSIONS: cannot import {name!r}: {exc}") from exc
        register = getattr(module, "register", None)
        if not callable(register):
            raise SettingsError(
                f"DATRIX_EXTENSIONS: module {name!r} has no register(registry) function"
            )
        register(registry)
        registry.extensions.append(name)
    return registry


def read_models_of(registry: Registry) -> tuple[ReadModel, ...]:
    """What the projector keeps in a process with ``registry``: the core read models, then
    the extensions' in the order they were registered."""
    for model in registry.read_models:
        if not isinstance(model, ReadModel):
            raise RegistryError(
                f"{type(model).__name__} {model.name!r} is not a "
                "datrix.projections.read_model.ReadModel"
            )
    return (*CORE_READ_MODELS, *registry.read_models)
