"""Run a requested job and turn its outcome into the command that reports it back.

A job never raises to its caller: a bad dataset or an engine failure becomes a
``FailScan`` command with the reason, so the scan aggregate records a failure instead of
the worker crashing. Result command ids derive from the job id, so re-running a job after a
crash resubmits the same command and the command log drops the copy.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
import uuid
from collections.abc import Callable

import polars as pl

from aggregates.scan import (
    ColumnSummary,
    CompleteScan,
    FailScan,
    IssueSummary,
    JobRequested,
    ScoreCard,
)
from jobs.engine import ProgressFn, ScanEngine, no_progress
from jobs.report import DEFAULT_WEIGHTS, ScanOptions, ScanReport
from streams.ports import ObjectStore


def _polars_engine() -> ScanEngine:
    from jobs.quality.polars_engine import PolarsScanEngine

    engine: ScanEngine = PolarsScanEngine()
    return engine


def _spark_engine() -> ScanEngine:
    from jobs.quality.spark_engine import SparkScanEngine

    engine: ScanEngine = SparkScanEngine()
    return engine


ENGINES: dict[str, Callable[[], ScanEngine]] = {"polars": _polars_engine, "spark": _spark_engine}


def result_command_id(job_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(job_id, "result")


def store_report(report: ScanReport, tenant: str, objects: ObjectStore) -> tuple[str, str]:
    """Persist the full report (JSON) and its affected rows (Parquet); return the report's
    (uri, sha256). Both objects are content-addressed, so reruns write nothing new."""
    schema = {"issue_id": pl.String, "row": pl.UInt64}
    frame = pl.concat(
        [
            pl.DataFrame({"row": pl.Series(rows, dtype=pl.UInt64)}).select(
                pl.lit(issue_id, dtype=pl.String).alias("issue_id"), "row"
            )
            for issue_id, rows in report.affected_rows.items()
        ]
        or [pl.DataFrame(schema=schema)]
    )
    buf = io.BytesIO()
    frame.write_parquet(buf, statistics=False)
    rows_uri, rows_sha = objects.put_bytes(tenant, buf.getvalue(), ".rows.parquet")
    document = dataclasses.asdict(dataclasses.replace(report, affected_rows={}))
    document.pop("affected_rows")
    document["affected_rows_uri"] = rows_uri
    document["affected_rows_sha256"] = rows_sha
    body = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()
    return objects.put_bytes(tenant, body, ".report.json")


def load_report(report_uri: str, objects: ObjectStore) -> ScanReport:
    """Rebuild the full report (affected rows included) from its stored objects."""
    from jobs.report import ColumnProfile, Issue, Scores

    doc = json.loads(objects.read_bytes(report_uri))
    frame = pl.read_parquet(objects.local_path(doc["affected_rows_uri"]))
    rows: dict[str, list[int]] = {}
    for issue_id, group in frame.group_by("issue_id", maintain_order=True):
        rows[str(issue_id[0])] = sorted(int(r) for r in group["row"])
    return ScanReport(
        rows=doc["rows"],
        columns=doc["columns"],
        score=Scores(**doc["score"]),
        column_profiles=[ColumnProfile(**c) for c in doc["column_profiles"]],
        issues=[Issue(**i) for i in doc["issues"]],
        affected_rows=rows,
        engine=doc.get("engine", "polars"),
    )


def affected_rows(report_uri: str, issue_id: str, objects: ObjectStore) -> list[int]:
    document = json.loads(objects.read_bytes(report_uri))
    frame = pl.read_parquet(objects.local_path(document["affected_rows_uri"]))
    return [int(r) for r in frame.filter(pl.col("issue_id") == issue_id)["row"].sort()]


def scan_options(job: JobRequested, objects: ObjectStore) -> ScanOptions:
    """The engine options a job asks for. The previous version's object is the drift
    baseline; when it is no longer in the store (erased, or a store that lost it) the scan
    runs without drift checks instead of failing."""
    previous = None
    if job.previous_object_uri is not None:
        try:
            path = objects.local_path(job.previous_object_uri)
        except (OSError, ValueError, KeyError):
            path = None
        previous = path if path is not None and path.is_file() else None
    return ScanOptions(
        label_column=job.label_column,
        # dimensions the request leaves out keep their default weight
        weights={**DEFAULT_WEIGHTS, **(job.weights or {})},
        seed=job.seed,
        previous_path=previous,
        previous_version=job.previous_version if previous is not None else None,
    )


def run_scan_job(
    job: JobRequested, objects: ObjectStore, progress: ProgressFn = no_progress
) -> CompleteScan | FailScan:
    started = time.monotonic()
    try:
        engine_factory = ENGINES.get(job.engine)
        if engine_factory is None:
            raise RuntimeError(f"engine {job.engine!r} is not available in this worker")
        engine = engine_factory()
        report = engine.scan(
            objects.local_path(job.object_uri), scan_options(job, objects), progress
        )
        report_uri, report_sha = store_report(report, job.tenant, objects)
    except Exception as exc:
        return FailScan(
            scan_id=job.originator_id,
            job_id=job.job_id,
            error_type=type(exc).__name__,
            message=(str(exc).splitlines() or [""])[0][:500],
        )
    s = report.score
    return CompleteScan(
        scan_id=job.originator_id,
        job_id=job.job_id,
        engine=report.engine,
        rows=report.rows,
        columns=report.columns,
        score=ScoreCard(
            s.overall, s.completeness, s.consistency, s.accuracy, s.distribution, s.label_quality
        ),
        issues=tuple(
            IssueSummary(
                i.id,
                i.type,
                i.column,
                i.dimension,
                i.severity,
                i.description,
                i.affected_count,
                i.affected_pct,
                i.impact_score,
                i.fix_available,
            )
            for i in report.issues
        ),
        column_profiles=tuple(
            ColumnSummary(
                c.name,
                c.type,
                c.null_count,
                c.null_pct,
                c.distinct_count,
                json.dumps(c.extra, sort_keys=True, default=str),
            )
            for c in report.column_profiles
        ),
        report_uri=report_uri,
        report_sha256=report_sha,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
