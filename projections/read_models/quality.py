"""Read model ``quality``: ``quality_scans``, ``quality_issues`` and ``columns``."""

from __future__ import annotations

import json
from typing import Any

from datrix.aggregates import scan
from datrix.projections.read_model import ReadModel
from datrix.projections.store import Tx
from datrix.streams.messages import Envelope


def _requested(tx: Tx, env: Envelope, event: scan.ScanRequested) -> str | None:
    tx.execute(
        "INSERT INTO quality_scans (id, tenant, dataset_id, dataset_version, status, "
        "engine, label_column, weights_json, created_at) "
        "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
        (
            env.subject,
            env.tenant,
            str(event.dataset_id),
            event.version,
            event.engine,
            event.label_column,
            # as the audit summary writes it (migration 6 fills earlier scans from it)
            None
            if event.weights is None
            else json.dumps(event.weights, sort_keys=True, separators=(",", ":")),
            env.time.isoformat(),
        ),
    )
    return str(event.dataset_id)


def _scan_dataset(tx: Tx, scan_id: str) -> str | None:
    """The dataset of a scan, as its ScanRequested recorded it (a round trip, so only the
    scan's later events ask)."""
    row = tx.fetch_one("SELECT dataset_id FROM quality_scans WHERE id = ?", (scan_id,))
    return str(row[0]) if row else None


def _job_requested(tx: Tx, env: Envelope, event: scan.JobRequested) -> str | None:
    ds = _scan_dataset(tx, env.subject)
    tx.execute(
        "UPDATE quality_scans SET status = 'running', job_id = ? WHERE id = ?",
        (str(event.job_id), env.subject),
    )
    return ds


def _ended(tx: Tx, env: Envelope, event: scan.ScanFailed | scan.ScanCancelled) -> str | None:
    ds = _scan_dataset(tx, env.subject)
    error = (
        f"cancelled by {event.cancelled_by}"
        if isinstance(event, scan.ScanCancelled)
        else f"{event.error_type}: {event.message}"
    )
    tx.execute(
        "UPDATE quality_scans SET status = 'failed', error = ?, completed_at = ? WHERE id = ?",
        (error, env.time.isoformat(), env.subject),
    )
    return ds


def _completed(tx: Tx, env: Envelope, event: scan.ScanCompleted) -> str | None:
    scan_dataset = _scan_dataset(tx, env.subject)
    ds = scan_dataset or ""
    s = event.score
    counts: dict[str, int] = {"critical": 0, "warning": 0, "info": 0}
    for issue in event.issues:
        counts[issue.severity] = counts.get(issue.severity, 0) + 1
    tx.execute(
        "UPDATE quality_scans SET status = 'completed', engine = ?, overall_score = ?, "
        "completeness_score = ?, consistency_score = ?, accuracy_score = ?, "
        "distribution_score = ?, label_quality_score = ?, row_count = ?, column_count = ?, "
        "issue_count = ?, report_uri = ?, report_sha256 = ?, scan_duration_ms = ?, "
        "completed_at = ? WHERE id = ?",
        (
            event.engine,
            s.overall,
            s.completeness,
            s.consistency,
            s.accuracy,
            s.distribution,
            s.label_quality,
            event.rows,
            event.columns,
            json.dumps(counts, sort_keys=True),
            event.report_uri,
            event.report_sha256,
            event.duration_ms,
            env.time.isoformat(),
            env.subject,
        ),
    )
    for issue in event.issues:
        tx.execute(
            "INSERT INTO quality_issues (scan_id, issue_id, tenant, dataset_id, column_name, "
            "issue_type, dimension, severity, description, affected_count, affected_pct, "
            "impact_score, fix_available, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,'open')",
            (
                env.subject,
                issue.id,
                env.tenant,
                ds,
                issue.column,
                issue.type,
                issue.dimension,
                issue.severity,
                issue.description,
                issue.affected_count,
                issue.affected_pct,
                issue.impact_score,
                int(issue.fix_available),
            ),
        )
    for position, col in enumerate(event.column_profiles):
        tx.execute(
            "INSERT INTO columns (scan_id, position, tenant, dataset_id, name, type, "
            "null_count, null_pct, distinct_count, extra_json) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                env.subject,
                position,
                env.tenant,
                ds,
                col.name,
                col.type,
                col.null_count,
                col.null_pct,
                col.distinct_count,
                col.extra_json,
            ),
        )
    return scan_dataset


def _completed_summary(record: dict[str, Any]) -> dict[str, Any]:
    """A completed scan's audit entry names how many issues it found, not the issues and
    column profiles themselves (the report and the read models hold those)."""
    record.pop("column_profiles", None)
    issues = record.pop("issues", [])
    record["issue_count"] = len(issues)
    return record


READ_MODEL = ReadModel(
    name="quality",
    tables={
        "quality_scans": "id",
        "quality_issues": "scan_id, issue_id",
        "columns": "scan_id, position",
    },
    handlers={
        scan.ScanRequested: _requested,
        scan.JobRequested: _job_requested,
        scan.ScanCompleted: _completed,
        scan.ScanFailed: _ended,
        scan.ScanCancelled: _ended,
    },
    audit_summaries={scan.ScanCompleted: _completed_summary},
)
