"""The scan aggregate: one quality scan of one dataset version, and the job that runs it.

Invariants: a scan needs a registered, not deleted dataset and an existing version; score
weights, when given, name known dimensions and are finite numbers >= 0, not all zero; a
scan is requested once; it completes or fails exactly once, and only for the job it
requested; a running scan may be cancelled (it then ends as failed, naming who cancelled
it). Job ids are derived from the scan id (uuid5), so deciding stays deterministic.
The job of a scan of version N > 1 names version N - 1 as the baseline of the drift checks.
"""

from __future__ import annotations

import math
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

ENGINES = ("polars", "spark", "gpu")
# The score dimensions weights may name (the quality engine's ``datrix.jobs.report.DIMENSIONS``;
# repeated here because aggregates import nothing from the compute layer).
SCORE_DIMENSIONS = ("completeness", "consistency", "accuracy", "distribution", "label_quality")


# ---- value objects carried by scan results -------------------------------------------
@dataclass(frozen=True)
class ScoreCard:
    overall: float
    completeness: float
    consistency: float
    accuracy: float
    distribution: float
    label_quality: float


@dataclass(frozen=True)
class IssueSummary:
    id: str
    type: str
    column: str | None
    dimension: str
    severity: str
    description: str
    affected_count: int
    affected_pct: float
    impact_score: float
    fix_available: bool


@dataclass(frozen=True)
class ColumnSummary:
    name: str
    type: str
    null_count: int
    null_pct: float
    distinct_count: int
    extra_json: str


# ---- commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestScan(Command):
    scan_id: UUID
    dataset_id: UUID
    version: int | None = None  # None: the latest version at decision time
    engine: str = "polars"
    label_column: str | None = None
    seed: int = 0
    weights: dict[str, float] | None = None  # None: the engine's default weights


@dataclass(frozen=True)
class CompleteScan(Command):
    scan_id: UUID
    job_id: UUID
    engine: str
    rows: int
    columns: int
    score: ScoreCard
    issues: tuple[IssueSummary, ...]
    column_profiles: tuple[ColumnSummary, ...]
    report_uri: str
    report_sha256: str
    duration_ms: int


@dataclass(frozen=True)
class FailScan(Command):
    scan_id: UUID
    job_id: UUID
    error_type: str
    message: str


@dataclass(frozen=True)
class CancelScan(Command):
    """Stop a scan that has not ended: a queued job is skipped, a running one stopped, and
    the scan ends as failed, saying who cancelled it."""

    scan_id: UUID


# ---- events ---------------------------------------------------------------------------
class ScanRequested(Event):
    tenant: str
    dataset_id: UUID
    version: int
    object_uri: str
    object_sha256: str
    engine: str
    label_column: str | None
    seed: int
    weights: dict[str, float] | None = None


class JobRequested(Event):
    """A heavy step to run outside the processor; its result comes back as a command."""

    job_id: UUID
    kind: str
    engine: str
    tenant: str
    dataset_id: UUID
    version: int
    object_uri: str
    object_sha256: str
    label_column: str | None
    seed: int
    attempt: int
    weights: dict[str, float] | None = None
    # The dataset version before ``version`` (None for version 1): the drift baseline.
    previous_version: int | None = None
    previous_object_uri: str | None = None
    # The dataset's frozen schema contract, when ``version`` came after it: the version
    # frozen, whose schema the scan compares with (any change is critical).
    contract_version: int | None = None
    contract_object_uri: str | None = None


class ScanCompleted(Event):
    job_id: UUID
    engine: str
    rows: int
    columns: int
    score: ScoreCard
    issues: tuple[IssueSummary, ...]
    column_profiles: tuple[ColumnSummary, ...]
    report_uri: str
    report_sha256: str
    duration_ms: int


class ScanFailed(Event):
    job_id: UUID
    error_type: str
    message: str


class ScanCancelled(Event):
    """The scan ended as failed because ``cancelled_by`` cancelled it; its job's result,
    should one still arrive, is refused."""

    job_id: UUID | None
    cancelled_by: str


# ---- state ----------------------------------------------------------------------------
ScanStatus = Literal["running", "completed", "failed"]


@dataclass(frozen=True)
class Scan:
    id: UUID
    version: int
    tenant: str
    dataset_id: UUID
    dataset_version: int
    status: ScanStatus
    job_id: UUID | None = None
    # what a fix of this scan needs (aggregates/fix.py): how it was run, and its findings
    engine: str = "polars"
    label_column: str | None = None
    report_uri: str | None = None
    issues: tuple[IssueSummary, ...] = ()
    weights: dict[str, float] | None = None  # the score weights asked for (None: default)


def job_id_for(scan_id: UUID, attempt: int) -> UUID:
    return uuid.uuid5(scan_id, f"job-{attempt}")


def decide(
    command: Command, state: Scan | None, meta: Meta, dataset: Dataset | None = None
) -> list[Event]:
    if isinstance(command, RequestScan):
        return _request(command, state, meta, dataset)
    if state is None or state.tenant != meta.tenant:
        raise Rejected(f"scan {getattr(command, 'scan_id', '?')} was never requested")
    if isinstance(command, CancelScan):
        if state.status != "running":
            raise Rejected(f"scan {state.id} already {state.status}; there is nothing to cancel")
        return [
            ScanCancelled(
                originator_id=state.id,
                originator_version=next_version(state.version),
                timestamp=meta.time,
                job_id=state.job_id,
                cancelled_by=meta.actor or "unknown",
            )
        ]
    if isinstance(command, CompleteScan | FailScan):
        if state.status != "running":
            raise Rejected(f"scan {state.id} already {state.status}; it ends only once")
        if command.job_id != state.job_id:
            raise Rejected(f"job {command.job_id} is not the job of scan {state.id}")
        if isinstance(command, FailScan):
            return [
                ScanFailed(
                    originator_id=state.id,
                    originator_version=next_version(state.version),
                    timestamp=meta.time,
                    job_id=command.job_id,
                    error_type=command.error_type,
                    message=command.message,
                )
            ]
        if not 0 <= command.score.overall <= 100:
            raise Rejected("an overall score must lie between 0 and 100")
        return [
            ScanCompleted(
                originator_id=state.id,
                originator_version=next_version(state.version),
                timestamp=meta.time,
                job_id=command.job_id,
                engine=command.engine,
                rows=command.rows,
                columns=command.columns,
                score=command.score,
                issues=command.issues,
                column_profiles=command.column_profiles,
                report_uri=command.report_uri,
                report_sha256=command.report_sha256,
                duration_ms=command.duration_ms,
            )
        ]
    raise Rejected(f"the scan aggregate does not handle {type(command).__name__}")


def _request(
    command: RequestScan, state: Scan | None, meta: Meta, dataset: Dataset | None
) -> list[Event]:
    if state is not None:
        raise Rejected(f"scan {command.scan_id} was already requested")
    if dataset is None or dataset.tenant != meta.tenant:
        raise Rejected(f"dataset {command.dataset_id} is not registered")
    if dataset.deleted:
        raise Rejected(f"dataset {dataset.id} is deleted; it cannot be scanned")
    if command.engine not in ENGINES:
        raise Rejected(f"unknown engine {command.engine!r}; use one of {', '.join(ENGINES)}")
    if command.weights is not None:
        _check_weights(command.weights)
    target = dataset.latest if command.version is None else dataset.get_version(command.version)
    if target is None:
        wanted = "any version" if command.version is None else f"version {command.version}"
        raise Rejected(f"dataset {dataset.id} has no {wanted}")
    previous = dataset.previous(target.version)
    contract = dataset.contract_for(target.version)
    requested = ScanRequested(
        originator_id=command.scan_id,
        originator_version=1,
        timestamp=meta.time,
        tenant=meta.tenant,
        dataset_id=dataset.id,
        version=target.version,
        object_uri=target.object_uri,
        object_sha256=target.object_sha256,
        engine=command.engine,
        label_column=command.label_column,
        seed=command.seed,
        weights=command.weights,
    )
    job = JobRequested(
        originator_id=command.scan_id,
        originator_version=2,
        timestamp=meta.time,
        job_id=job_id_for(command.scan_id, 1),
        kind="scan",
        engine=command.engine,
        tenant=meta.tenant,
        dataset_id=dataset.id,
        version=target.version,
        object_uri=target.object_uri,
        object_sha256=target.object_sha256,
        label_column=command.label_column,
        seed=command.seed,
        attempt=1,
        weights=command.weights,
        previous_version=previous.version if previous is not None else None,
        previous_object_uri=previous.object_uri if previous is not None else None,
        contract_version=contract.version if contract is not None else None,
        contract_object_uri=contract.object_uri if contract is not None else None,
    )
    return [requested, job]


def _check_weights(weights: dict[str, float]) -> None:
    for name, weight in weights.items():
        if name not in SCORE_DIMENSIONS:
            raise Rejected(f"unknown score dimension {name!r}; use {', '.join(SCORE_DIMENSIONS)}")
        if not math.isfinite(weight) or weight < 0:
            raise Rejected(f"the weight of {name} must be a finite number >= 0")
    if not any(weight > 0 for weight in weights.values()):
        raise Rejected("score weights must not all be zero")


def evolve(state: Scan | None, event: Event) -> Scan:
    if isinstance(event, ScanRequested):
        if state is not None:
            raise ValueError("ScanRequested on an existing scan")
        return Scan(
            id=event.originator_id,
            version=1,
            tenant=event.tenant,
            dataset_id=event.dataset_id,
            dataset_version=event.version,
            status="running",
            engine=event.engine,
            label_column=event.label_column,
            weights=event.weights,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before ScanRequested")
    check_follows(state.version, event)
    if isinstance(event, JobRequested):
        return replace(state, version=event.originator_version, job_id=event.job_id)
    if isinstance(event, ScanCompleted):
        return replace(
            state,
            version=event.originator_version,
            status="completed",
            report_uri=event.report_uri,
            issues=event.issues,
        )
    if isinstance(event, ScanFailed | ScanCancelled):
        return replace(state, version=event.originator_version, status="failed")
    raise ValueError(f"the scan aggregate does not apply {type(event).__name__}")


def _decide(
    command: Command, state: Scan | None, meta: Meta, related: Mapping[str, Any]
) -> list[Event]:
    return decide(command, state, meta, related.get("dataset"))


AGGREGATE = AggregateSpec(
    name="scan",
    namespace="datrix.scan",
    commands=(RequestScan, CompleteScan, FailScan, CancelScan),
    events=(ScanRequested, JobRequested, ScanCompleted, ScanFailed, ScanCancelled),
    id_field="scan_id",
    decide=_decide,
    evolve=evolve,
    # a scan request decides against its dataset (the version to scan) and shares its key
    loads={RequestScan: {"dataset": "dataset_id"}},
    routing={RequestScan: "dataset_id"},
    namespaces={JobRequested: "datrix.job"},
)
