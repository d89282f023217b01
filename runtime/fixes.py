"""Fixes in a running process: the ``fix`` job kind and the two policies that carry a fix
through to a new, re-scanned dataset version. ``register(registry)`` is their one
registration (``runtime/registry.py``'s ``default_registry``); the aggregate is a core one
(``aggregates/fix.py``) and so is its read model (``projections/read_models/fixes.py``).

The path of an apply: ``ApplyFix`` -> ``FixRequested`` + ``FixJobRequested`` -> the fix job
(``jobs/fixes.py run_fix_job``: the fixed Parquet and the provenance Parquet) ->
``CompleteFix`` -> ``FixCompleted`` -> policy ``fix-versions`` -> ``AddFixedVersion`` ->
``FixApplied`` (a new version) -> policy ``rescan-after-fix`` -> ``RequestScan`` of that
version (id ``rescan_id_for(fix id)``). ``RollbackFix`` -> ``FixRolledBack`` is re-scanned
the same way. Policy command ids derive from the event, so a re-read event adds nothing.
"""

from __future__ import annotations

from datrix.aggregates.common import Command
from datrix.aggregates.dataset import AddFixedVersion, FixApplied, FixRolledBack
from datrix.aggregates.fix import (
    ApplyFix,
    FailFix,
    FixCompleted,
    FixFailed,
    FixJobRequested,
    FixPreviewed,
    PreviewFix,
)
from datrix.aggregates.scan import RequestScan
from datrix.projections.read_models.fixes import rescan_id_for
from datrix.streams.messages import Envelope
from datrix.streams.ports import ObjectStore, ProgressFn
from datrix.streams.registry import JobKind, Policy, Query, Reaction, Registry
from datrix.streams.settings import Settings


# ---- the job kind ----------------------------------------------------------------------
def _run(
    job: FixJobRequested, objects: ObjectStore, progress: ProgressFn, settings: Settings
) -> Command:
    from datrix.jobs.fixes import run_fix_job  # the compute layer, loaded by the job process

    return run_fix_job(job, objects, progress, settings)


def _failed(job: FixJobRequested, error_type: str, message: str) -> FailFix:
    return FailFix(
        fix_id=job.originator_id, job_id=job.job_id, error_type=error_type, message=message
    )


def _actor(job: FixJobRequested) -> str:
    return f"worker:fix-{job.engine}"


def _notice(job: FixJobRequested, query: Query) -> str:
    rows = query("SELECT name FROM datasets WHERE id = ?", (str(job.dataset_id),))
    name = rows[0][0] if rows else None
    of = f" of dataset {name!r} v{job.version}" if name else f" of version {job.version}"
    return f"finishing interrupted fix {str(job.originator_id)[:8]} ({job.mode}){of}"


FIX_JOB = JobKind(
    name="fix",
    event=FixJobRequested,
    run=_run,
    failed=_failed,
    ended=(FixPreviewed, FixCompleted, FixFailed),
    requested_by=(PreviewFix, ApplyFix),
    actor=_actor,
    notice=_notice,
)


# ---- the policies ----------------------------------------------------------------------
def _new_version(event: FixCompleted, _envelope: Envelope) -> list[Reaction]:
    """A completed apply becomes the dataset's next version."""
    command = AddFixedVersion(
        dataset_id=event.dataset_id,
        fix_id=event.originator_id,
        object_uri=event.object_uri,
        object_sha256=event.object_sha256,
        rows=event.rows,
        columns=event.columns,
        size_bytes=event.size_bytes,
        schema_json=event.schema_json,
        provenance_uri=event.provenance_uri,
        provenance_sha256=event.provenance_sha256,
        base_version=event.base_version,
        scan_id=event.scan_id,
        engine=event.engine,
        label_column=event.label_column,
        weights=event.weights,
    )
    return [Reaction(command, event.dataset_id)]


def _rescan(event: FixApplied | FixRolledBack, _envelope: Envelope) -> list[Reaction]:
    """Scan the version a fix (or its rollback) made, as the fixed scan was run: its
    engine, label column and score weights (so the scores before and after compare)."""
    scan_id = rescan_id_for(event.fix_id, rollback=isinstance(event, FixRolledBack))
    command = RequestScan(
        scan_id=scan_id,
        dataset_id=event.originator_id,
        version=event.version,
        engine=event.engine,
        label_column=event.label_column,
        weights=event.weights,
    )
    return [Reaction(command, scan_id)]


FIX_VERSIONS = Policy(name="fix-versions", follows=(FixCompleted,), react=_new_version)
RESCAN_AFTER_FIX = Policy(
    name="rescan-after-fix", follows=(FixApplied, FixRolledBack), react=_rescan
)


def register(registry: Registry) -> None:
    registry.add_job_kind(FIX_JOB)
    registry.add_policy(FIX_VERSIONS)
    registry.add_policy(RESCAN_AFTER_FIX)
