"""The read-model projector: folds events into tables and the audit trail.

Each event is applied in one read-model transaction together with the projector's position,
so a crash anywhere leaves either all of an event's effects or none, and a restart resumes
after the last applied event. Only facts from the events are written (times included), so
replaying the same log always produces identical tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aggregates import dataset, scan
from aggregates.common import Event
from aggregates.outcome import CommandAccepted, CommandRejected
from projections import audit
from projections.store import ReadStore, Tx
from streams.messages import Envelope, decode_event, payload_record

PROJECTOR = "read-models"


def _iso(env: Envelope) -> str:
    return env.time.isoformat()


def _summary(event: Event) -> str:
    record = payload_record(event)
    if isinstance(event, scan.ScanCompleted):
        record.pop("column_profiles", None)
        issues = record.pop("issues", [])
        record["issue_count"] = len(issues)
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


class Projector:
    def __init__(self, store: ReadStore, name: str = PROJECTOR, chain: int = 0) -> None:
        self.store = store
        self.name = name
        self.chain = chain  # the audit chain this projector appends to (a log partition)
        self._head: tuple[int, str] | None = None  # (seq, hash) of the chain's last entry
        self._tenant_seen: dict[str, str] = {}  # tenant -> earliest event time in the batch

    def position(self) -> int:
        return self.store.position(self.name)

    def source_offset(self) -> int | None:
        """Offset in the source log partition of the last record this projector consumed
        (Kafka mode), or None when it has not recorded one."""
        rows = self.store.query(
            "SELECT source_offset FROM projector_position WHERE name = ?", (self.name,)
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def apply_batch(
        self, batch: Sequence[tuple[int, Envelope]], source_offset: int | None = None
    ) -> int:
        """Apply events in order in ONE transaction with the new position; return how many
        were applied (events at or below the stored position are skipped: redelivery).
        ``source_offset``, the log offset of the batch's last record, is stored with them
        so a consumer can resume exactly where the read models are."""
        applied = 0
        self._head = None
        self._tenant_seen = {}
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT position FROM projector_position WHERE name = ?", (self.name,)
            )
            done = int(row[0]) if row is not None else 0
            last = done
            for position, env in batch:
                if position <= last:
                    continue
                self.apply(tx, env)
                last = position
                applied += 1
            self._organisations(tx)
            if last > done or source_offset is not None:
                # Never move either mark backwards (a revoked consumer may finish late).
                tx.execute(
                    "INSERT INTO projector_position (name, position, source_offset) "
                    "VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                    "position = CASE WHEN excluded.position > projector_position.position "
                    "THEN excluded.position ELSE projector_position.position END, "
                    "source_offset = CASE WHEN projector_position.source_offset IS NULL "
                    "OR excluded.source_offset > projector_position.source_offset "
                    "THEN excluded.source_offset ELSE projector_position.source_offset END",
                    (self.name, last, source_offset),
                )
        return applied

    def _organisations(self, tx: Tx) -> None:
        """Tenants are organisations: a tenant's row appears with its first event. Its
        time is the earliest event time seen, whatever order partitions arrive in, so a
        replay (one partition after another) yields the same row as live projection."""
        for tenant, at in sorted(self._tenant_seen.items()):
            tx.execute(
                "INSERT INTO organisations (id, tenant, name, slug, plan, created_at) "
                "VALUES (?, ?, ?, ?, 'starter', ?) ON CONFLICT (id) DO UPDATE SET created_at = "
                "CASE WHEN excluded.created_at < organisations.created_at "
                "THEN excluded.created_at ELSE organisations.created_at END",
                (tenant, tenant, tenant, tenant, at),
            )

    def apply(self, tx: Tx, env: Envelope) -> None:
        event = decode_event(env)
        at = _iso(env)
        if at < self._tenant_seen.get(env.tenant, "~"):
            self._tenant_seen[env.tenant] = at
        dataset_id = self._dispatch(tx, env, event)
        self._audit(tx, env, event, dataset_id, self.chain)

    # -- per event type ------------------------------------------------------------------
    def _dispatch(self, tx: Tx, env: Envelope, event: Event) -> str | None:
        subject = env.subject
        at = _iso(env)
        if isinstance(event, dataset.DatasetRegistered):
            tx.execute(
                "INSERT INTO datasets (id, tenant, name, description, source_type, status, "
                "latest_version, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, 'registered', 0, ?, ?)",
                (subject, env.tenant, event.name, event.description, event.source_type, at, at),
            )
            return subject
        if isinstance(event, dataset.DatasetVersionAdded):
            tx.execute(
                "INSERT INTO dataset_versions (dataset_id, version, tenant, object_uri, "
                "object_sha256, source_uri, source_sha256, format, row_count, column_count, "
                "size_bytes, schema_json, created_at, read_options_json) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    subject,
                    event.version,
                    env.tenant,
                    event.object_uri,
                    event.object_sha256,
                    event.source_uri,
                    event.source_sha256,
                    event.format,
                    event.rows,
                    event.columns,
                    event.size_bytes,
                    event.schema_json,
                    at,
                    event.read_options_json,
                ),
            )
            tx.execute(
                "UPDATE datasets SET status = 'active', latest_version = ?, row_count = ?, "
                "column_count = ?, size_bytes = ?, storage_path = ?, updated_at = ? WHERE id = ?",
                (
                    event.version,
                    event.rows,
                    event.columns,
                    event.size_bytes,
                    event.object_uri,
                    at,
                    subject,
                ),
            )
            return subject
        if isinstance(event, dataset.DatasetDeleted):
            tx.execute(
                "UPDATE datasets SET status = 'deleted', updated_at = ? WHERE id = ?",
                (at, subject),
            )
            return subject
        if isinstance(event, scan.ScanRequested):
            tx.execute(
                "INSERT INTO quality_scans (id, tenant, dataset_id, dataset_version, status, "
                "engine, label_column, weights_json, created_at) "
                "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)",
                (
                    subject,
                    env.tenant,
                    str(event.dataset_id),
                    event.version,
                    event.engine,
                    event.label_column,
                    # as the audit summary writes it (migration 6 fills earlier scans from it)
                    None
                    if event.weights is None
                    else json.dumps(event.weights, sort_keys=True, separators=(",", ":")),
                    at,
                ),
            )
            return str(event.dataset_id)
        if isinstance(event, CommandAccepted | CommandRejected):
            rejected = isinstance(event, CommandRejected)
            tx.execute(
                "INSERT INTO command_status (command_id, tenant, command_type, status, reason, "
                "aggregate_id, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    subject,
                    env.tenant,
                    event.command_type,
                    "rejected" if rejected else "accepted",
                    event.reason if isinstance(event, CommandRejected) else None,
                    str(event.aggregate_id),
                    at,
                ),
            )
            return None
        if not isinstance(
            event, scan.JobRequested | scan.ScanCompleted | scan.ScanFailed | scan.ScanCancelled
        ):
            return None
        # Only scan events need the scan's dataset (a round trip: keep it off other events).
        scan_row = tx.fetch_one("SELECT dataset_id FROM quality_scans WHERE id = ?", (subject,))
        scan_dataset = str(scan_row[0]) if scan_row else None
        if isinstance(event, scan.JobRequested):
            tx.execute(
                "UPDATE quality_scans SET status = 'running', job_id = ? WHERE id = ?",
                (str(event.job_id), subject),
            )
            return scan_dataset
        if isinstance(event, scan.ScanCompleted):
            self._scan_completed(tx, env, event, scan_dataset or "")
            return scan_dataset
        if isinstance(event, scan.ScanFailed | scan.ScanCancelled):
            error = (
                f"cancelled by {event.cancelled_by}"
                if isinstance(event, scan.ScanCancelled)
                else f"{event.error_type}: {event.message}"
            )
            tx.execute(
                "UPDATE quality_scans SET status = 'failed', error = ?, completed_at = ? "
                "WHERE id = ?",
                (error, at, subject),
            )
            return scan_dataset
        return None

    def _scan_completed(self, tx: Tx, env: Envelope, event: scan.ScanCompleted, ds: str) -> None:
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
                _iso(env),
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

    def _audit(
        self, tx: Tx, env: Envelope, event: Event, dataset_id: str | None, chain: int
    ) -> None:
        # The chain head is read once per transaction and then carried along in memory.
        if self._head is None:
            last = tx.fetch_one(
                "SELECT seq, hash FROM audit_log WHERE chain = ? ORDER BY seq DESC LIMIT 1",
                (chain,),
            )
            self._head = (int(last[0]), str(last[1])) if last else (0, audit.GENESIS)
        seq, prev = self._head[0] + 1, self._head[1]
        values: list[Any] = [
            chain,
            seq,
            str(env.id),
            env.tenant,
            env.type,
            env.subject,
            dataset_id,
            env.actor,
            _iso(env),
            env.causation_id,
            env.correlation_id,
            _summary(event),
            prev,
        ]
        digest = audit.entry_hash(values)
        tx.execute(_AUDIT_INSERT, (*values, digest))
        self._head = (seq, digest)


_AUDIT_INSERT = (
    f"INSERT INTO audit_log ({', '.join(audit.COLUMNS)}, hash) "
    f"VALUES ({', '.join('?' for _ in audit.COLUMNS)}, ?)"
)


def row_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(columns, row, strict=True))


__all__ = ["PROJECTOR", "Projector", "row_dict"]
