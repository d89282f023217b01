"""The fix aggregate: one preview or apply of fixes for the issues of one completed scan.

A fix (id ``fix_id``, chosen at the edge) is requested with ``PreviewFix`` or ``ApplyFix``
against a dataset and a scan of it; both commands load the dataset and the scan and are
keyed (Kafka) by the dataset id, so they never overtake the versions they decide on. The
decider checks what can be checked without data: the scan is this tenant's, of that
dataset, completed; the dataset is not deleted; an apply starts from the dataset's latest
version (the scan must have checked it); the issue ids name issues of the scan that have a
mechanical fix (none given: every fixable issue; none fixable: nothing to fix). It records
``FixRequested`` and the job event ``FixJobRequested`` (``kind="fix"``), which the fix job
(``jobs/fixes.py``) answers with ``CompleteFix`` (``FixPreviewed`` for a preview,
``FixCompleted`` for an apply) or ``FailFix`` (``FixFailed``), exactly once, and only for the
job it requested.

The new dataset version is not this aggregate's: the policy ``fix-versions`` turns
``FixCompleted`` into the dataset's ``AddFixedVersion`` (aggregates/dataset.py), so the
event carries what the version needs (dataset, base version, scan, engine, label column,
score weights: the re-scan of the new version is run as the fixed scan was).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal
from uuid import UUID

from datrix.aggregates.common import (
    AggregateSpec,
    Command,
    Event,
    Meta,
    Rejected,
    check_follows,
    next_version,
)
from datrix.aggregates.dataset import Dataset
from datrix.aggregates.scan import Scan

NAMESPACE = "datrix.fix"
MODES = ("preview", "apply")
# Issue types with a default fix (``jobs/transforms/specs.spec_for_issue``; repeated here
# because aggregates import nothing from the compute layer). Others are refused by name.
FIXABLE_TYPES = frozenset(
    {
        "exact_duplicates",
        "near_duplicates",
        "null_values",
        "outliers",
        "sentinel_values",
        "impossible_values",
        "inconsistent_format",
        "type_mismatch",
        "pii_detected",
    }
)


# ---- commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewFix(Command):
    """What the fixes would change, computed by the fix job; writes no version."""

    fix_id: UUID
    dataset_id: UUID
    scan_id: UUID
    issue_ids: tuple[str, ...] = ()  # empty: every fixable issue of the scan
    options: dict[str, str] | None = None


@dataclass(frozen=True)
class ApplyFix(Command):
    """Fix the issues into a new dataset version (with a provenance object)."""

    fix_id: UUID
    dataset_id: UUID
    scan_id: UUID
    issue_ids: tuple[str, ...] = ()
    options: dict[str, str] | None = None


@dataclass(frozen=True)
class CompleteFix(Command):
    """The fix job's result. A preview leaves the object and provenance fields empty and
    points ``preview_uri`` at its JSON; an apply names the new version's Parquet and its
    provenance Parquet."""

    fix_id: UUID
    job_id: UUID
    mode: str
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    provenance_uri: str
    provenance_sha256: str
    cells_changed: int
    rows_removed: int
    per_fix_json: str
    preview_uri: str | None = None


@dataclass(frozen=True)
class FailFix(Command):
    fix_id: UUID
    job_id: UUID
    error_type: str
    message: str


# ---- events ---------------------------------------------------------------------------
class FixRequested(Event):
    tenant: str
    dataset_id: UUID
    scan_id: UUID
    base_version: int
    issue_ids: tuple[str, ...]  # resolved: the issues the fix covers
    options: dict[str, str] | None
    mode: str
    engine: str = "polars"
    label_column: str | None = None
    weights: dict[str, float] | None = None  # the scan's score weights (its re-scan's)


class FixJobRequested(Event):
    """The fix job (kind ``fix``): the version to fix and the scan report naming the rows."""

    job_id: UUID
    kind: str
    engine: str
    tenant: str
    dataset_id: UUID
    version: int
    object_uri: str
    object_sha256: str
    scan_id: UUID
    report_uri: str
    issue_ids: tuple[str, ...]
    options: dict[str, str] | None
    mode: str
    attempt: int


class FixPreviewed(Event):
    job_id: UUID
    cells_changed: int
    rows_removed: int
    per_fix_json: str
    preview_uri: str | None


class FixCompleted(Event):
    """A fix applied: its version's objects, and what the dataset's new version needs."""

    job_id: UUID
    dataset_id: UUID
    base_version: int
    scan_id: UUID
    engine: str
    label_column: str | None
    object_uri: str
    object_sha256: str
    rows: int
    columns: int
    size_bytes: int
    schema_json: str
    provenance_uri: str
    provenance_sha256: str
    cells_changed: int
    rows_removed: int
    per_fix_json: str
    weights: dict[str, float] | None = None


class FixFailed(Event):
    job_id: UUID
    error_type: str
    message: str


# ---- state ----------------------------------------------------------------------------
FixStatus = Literal["running", "completed", "failed"]


@dataclass(frozen=True)
class Fix:
    id: UUID
    version: int
    tenant: str
    dataset_id: UUID
    scan_id: UUID
    base_version: int
    mode: str
    status: FixStatus
    engine: str = "polars"
    label_column: str | None = None
    job_id: UUID | None = None
    weights: dict[str, float] | None = None


def job_id_for(fix_id: UUID, attempt: int) -> UUID:
    return uuid.uuid5(fix_id, f"job-{attempt}")


def decide(
    command: Command,
    state: Fix | None,
    meta: Meta,
    dataset: Dataset | None = None,
    scan: Scan | None = None,
) -> list[Event]:
    if isinstance(command, PreviewFix | ApplyFix):
        return _request(command, state, meta, dataset, scan)
    if state is None or state.tenant != meta.tenant:
        raise Rejected(f"fix {getattr(command, 'fix_id', '?')} was never requested")
    if isinstance(command, CompleteFix | FailFix):
        if state.status != "running":
            raise Rejected(f"fix {state.id} already {state.status}; it ends only once")
        if command.job_id != state.job_id:
            raise Rejected(f"job {command.job_id} is not the job of fix {state.id}")
        at: dict[str, Any] = {
            "originator_id": state.id,
            "originator_version": next_version(state.version),
            "timestamp": meta.time,
        }
        if isinstance(command, FailFix):
            return [
                FixFailed(
                    **at,
                    job_id=command.job_id,
                    error_type=command.error_type,
                    message=command.message,
                )
            ]
        if command.mode != state.mode:
            raise Rejected(
                f"fix {state.id} was requested as {state.mode}; a {command.mode} result "
                "does not answer it"
            )
        if min(command.cells_changed, command.rows_removed, command.rows, command.columns) < 0:
            raise Rejected("counts in a fix result cannot be negative")
        if state.mode == "preview":
            return [
                FixPreviewed(
                    **at,
                    job_id=command.job_id,
                    cells_changed=command.cells_changed,
                    rows_removed=command.rows_removed,
                    per_fix_json=command.per_fix_json,
                    preview_uri=command.preview_uri,
                )
            ]
        if not command.object_uri or not command.object_sha256 or not command.provenance_uri:
            raise Rejected(f"an applied fix needs its version and provenance objects ({state.id})")
        return [
            FixCompleted(
                **at,
                job_id=command.job_id,
                dataset_id=state.dataset_id,
                base_version=state.base_version,
                scan_id=state.scan_id,
                engine=state.engine,
                label_column=state.label_column,
                object_uri=command.object_uri,
                object_sha256=command.object_sha256,
                rows=command.rows,
                columns=command.columns,
                size_bytes=command.size_bytes,
                schema_json=command.schema_json,
                provenance_uri=command.provenance_uri,
                provenance_sha256=command.provenance_sha256,
                cells_changed=command.cells_changed,
                rows_removed=command.rows_removed,
                per_fix_json=command.per_fix_json,
                weights=state.weights,
            )
        ]
    raise Rejected(f"the fix aggregate does not handle {type(command).__name__}")


def _request(
    command: PreviewFix | ApplyFix,
    state: Fix | None,
    meta: Meta,
    dataset: Dataset | None,
    scan: Scan | None,
) -> list[Event]:
    mode = "preview" if isinstance(command, PreviewFix) else "apply"
    if state is not None:
        raise Rejected(f"fix id {command.fix_id} was already used; a new fix needs a new id")
    if scan is None or scan.tenant != meta.tenant:
        # another tenant's scan answers as a missing one: its ids must not be probeable
        raise Rejected(f"scan {command.scan_id} was never requested")
    if dataset is None or dataset.tenant != meta.tenant:
        raise Rejected(f"dataset {command.dataset_id} is not registered")
    if scan.dataset_id != dataset.id:
        raise Rejected(f"scan {scan.id} is a scan of another dataset, not of {dataset.id}")
    if dataset.deleted:
        raise Rejected(f"dataset {dataset.id} is deleted; it cannot be fixed")
    if scan.status != "completed":
        raise Rejected(f"scan {scan.id} is {scan.status}; only a completed scan can be fixed")
    base = dataset.get_version(scan.dataset_version)
    if base is None or scan.report_uri is None:
        raise Rejected(f"scan {scan.id} names no version of dataset {dataset.id}")
    latest = dataset.latest
    if mode == "apply" and latest is not None and latest.version != base.version:
        raise Rejected(
            f"scan {scan.id} checked version {base.version} of dataset {dataset.name!r}, whose "
            f"latest version is {latest.version}; scan the latest version and fix that"
        )
    issue_ids = _issues(command.issue_ids, scan)
    requested = FixRequested(
        originator_id=command.fix_id,
        originator_version=1,
        timestamp=meta.time,
        tenant=meta.tenant,
        dataset_id=dataset.id,
        scan_id=scan.id,
        base_version=base.version,
        issue_ids=issue_ids,
        options=command.options,
        mode=mode,
        engine=scan.engine,
        label_column=scan.label_column,
        weights=scan.weights,
    )
    job = FixJobRequested(
        originator_id=command.fix_id,
        originator_version=2,
        timestamp=meta.time,
        job_id=job_id_for(command.fix_id, 1),
        kind="fix",
        engine=scan.engine,
        tenant=meta.tenant,
        dataset_id=dataset.id,
        version=base.version,
        object_uri=base.object_uri,
        object_sha256=base.object_sha256,
        scan_id=scan.id,
        report_uri=scan.report_uri,
        issue_ids=issue_ids,
        options=command.options,
        mode=mode,
        attempt=1,
    )
    return [requested, job]


def _issues(wanted: tuple[str, ...], scan: Scan) -> tuple[str, ...]:
    """The issue ids a fix covers: ``wanted`` (checked), or every fixable issue."""
    by_id = {issue.id: issue for issue in scan.issues}
    if not wanted:
        fixable = tuple(i.id for i in scan.issues if i.type in FIXABLE_TYPES)
        if not fixable:
            raise Rejected(f"nothing to fix: scan {scan.id} found no issue with a fix")
        return fixable
    unknown = [i for i in wanted if i not in by_id]
    if unknown:
        raise Rejected(f"scan {scan.id} has no issue {', '.join(unknown)}")
    if len(set(wanted)) != len(wanted):
        raise Rejected("an issue id is given twice")
    unfixable = [f"{i} ({by_id[i].type})" for i in wanted if by_id[i].type not in FIXABLE_TYPES]
    if unfixable:
        raise Rejected(
            f"no fix exists for issue {', '.join(unfixable)}; fixable types: "
            + ", ".join(sorted(FIXABLE_TYPES))
        )
    return tuple(wanted)


def evolve(state: Fix | None, event: Event) -> Fix:
    if isinstance(event, FixRequested):
        if state is not None:
            raise ValueError("FixRequested on an existing fix")
        return Fix(
            id=event.originator_id,
            version=1,
            tenant=event.tenant,
            dataset_id=event.dataset_id,
            scan_id=event.scan_id,
            base_version=event.base_version,
            mode=event.mode,
            status="running",
            engine=event.engine,
            label_column=event.label_column,
            weights=event.weights,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before FixRequested")
    check_follows(state.version, event)
    if isinstance(event, FixJobRequested):
        return replace(state, version=event.originator_version, job_id=event.job_id)
    if isinstance(event, FixPreviewed | FixCompleted):
        return replace(state, version=event.originator_version, status="completed")
    if isinstance(event, FixFailed):
        return replace(state, version=event.originator_version, status="failed")
    raise ValueError(f"the fix aggregate does not apply {type(event).__name__}")


def _decide(
    command: Command, state: Fix | None, meta: Meta, related: Mapping[str, Any]
) -> list[Event]:
    return decide(command, state, meta, related.get("dataset"), related.get("scan"))


_LOADS = {"dataset": "dataset_id", "scan": "scan_id"}

AGGREGATE = AggregateSpec(
    name="fix",
    namespace=NAMESPACE,
    commands=(PreviewFix, ApplyFix, CompleteFix, FailFix),
    events=(FixRequested, FixJobRequested, FixPreviewed, FixCompleted, FixFailed),
    id_field="fix_id",
    decide=_decide,
    evolve=evolve,
    # a fix decides against its dataset and scan, and is keyed by the dataset
    loads={PreviewFix: _LOADS, ApplyFix: _LOADS},
    routing={PreviewFix: "dataset_id", ApplyFix: "dataset_id"},
)
