"""Read-side queries (the views): tenant-scoped reads of the read models."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from datrix.projections.store import ReadStore


def _dicts(
    store: ReadStore, sql: str, params: tuple[Any, ...], cols: list[str]
) -> list[dict[str, Any]]:
    return [dict(zip(cols, row, strict=True)) for row in store.query(sql, params)]


DATASET_COLS = [
    "id",
    "name",
    "status",
    "latest_version",
    "row_count",
    "column_count",
    "size_bytes",
    "created_at",
    "updated_at",
]
SCAN_COLS = [
    "id",
    "dataset_id",
    "dataset_version",
    "status",
    "engine",
    "overall_score",
    "completeness_score",
    "consistency_score",
    "accuracy_score",
    "distribution_score",
    "label_quality_score",
    "row_count",
    "column_count",
    "issue_count",
    "report_uri",
    "error",
    "scan_duration_ms",
    "created_at",
    "completed_at",
    "label_column",
    "weights_json",
]
ISSUE_COLS = [
    "issue_id",
    "issue_type",
    "column_name",
    "dimension",
    "severity",
    "description",
    "affected_count",
    "affected_pct",
    "impact_score",
    "fix_available",
]
COLUMN_COLS = ["name", "type", "null_count", "null_pct", "distinct_count", "extra_json"]
AUDIT_COLS = [
    "seq",
    "event_id",
    "event_type",
    "subject",
    "dataset_id",
    "actor",
    "occurred_at",
    "summary",
    "hash",
]


JOB_COLS = [
    "job_id",
    "scan_id",
    "dataset",
    "version",
    "status",
    "requested_at",
    "rows",
    "error",
    "ended_at",
]
# one row per scan's job (JOB_COLS), the tenant's; callers append conditions and order
JOB_SELECT = (
    "SELECT s.job_id, s.id, d.name, s.dataset_version, s.status, s.created_at, "
    "v.row_count, s.error, s.completed_at FROM quality_scans s "
    "LEFT JOIN datasets d ON d.id = s.dataset_id AND d.tenant = s.tenant "
    "LEFT JOIN dataset_versions v ON v.dataset_id = s.dataset_id "
    "AND v.version = s.dataset_version AND v.tenant = s.tenant "
    "WHERE s.tenant = ?"
)

_ID_PREFIX = re.compile(r"[0-9a-f-]+")
MAX_CANDIDATES = 20  # ids listed for an ambiguous prefix, at most


def _scan_dicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scan rows as documents: ``issue_count`` (stored as JSON text) as an object of
    counts by severity, and ``weights_json`` as ``weights`` (None: the default weights)."""
    for row in rows:
        counts = row.get("issue_count")
        row["issue_count"] = json.loads(counts) if isinstance(counts, str) else counts
        weights = row.pop("weights_json", None)
        row["weights"] = json.loads(weights) if isinstance(weights, str) else weights
    return rows


def id_prefix(text: str) -> str | None:
    """``text`` lower-cased when it can start an id (hex digits and dashes), else None."""
    lowered = text.strip().lower()
    return lowered if _ID_PREFIX.fullmatch(lowered) else None


@dataclass
class Views:
    store: ReadStore
    tenant: str

    def datasets(self) -> list[dict[str, Any]]:
        return _dicts(
            self.store,
            f"SELECT {', '.join(DATASET_COLS)} FROM datasets "
            "WHERE tenant = ? ORDER BY created_at, id",
            (self.tenant,),
            DATASET_COLS,
        )

    def dataset(self, name_or_id: str) -> dict[str, Any] | None:
        rows = _dicts(
            self.store,
            f"SELECT {', '.join(DATASET_COLS)} FROM datasets WHERE "
            "tenant = ? AND (id = ? OR name = ?) AND status != 'deleted' "
            "ORDER BY created_at",
            (self.tenant, name_or_id, name_or_id),
            DATASET_COLS,
        )
        return rows[0] if rows else None

    def latest_source_sha(self, dataset_id: str) -> str | None:
        rows = self.store.query(
            "SELECT source_sha256 FROM dataset_versions WHERE tenant = ? AND dataset_id = ? "
            "ORDER BY version DESC LIMIT 1",
            (self.tenant, dataset_id),
        )
        return str(rows[0][0]) if rows else None

    def version_object(self, dataset_id: str, version: int) -> str | None:
        rows = self.store.query(
            "SELECT object_uri FROM dataset_versions WHERE tenant = ? AND dataset_id = ? "
            "AND version = ?",
            (self.tenant, dataset_id, version),
        )
        return str(rows[0][0]) if rows else None

    def version_read(self, dataset_id: str, version: int) -> tuple[str, str | None] | None:
        """(format, read options JSON or None) of a dataset version."""
        rows = self.store.query(
            "SELECT format, read_options_json FROM dataset_versions WHERE tenant = ? "
            "AND dataset_id = ? AND version = ?",
            (self.tenant, dataset_id, version),
        )
        return (str(rows[0][0]), rows[0][1]) if rows else None

    def object_referenced(self, object_uri: str) -> bool:
        """Whether any recorded dataset version stores its data in ``object_uri``."""
        rows = self.store.query(
            "SELECT 1 FROM dataset_versions WHERE tenant = ? AND object_uri = ? LIMIT 1",
            (self.tenant, object_uri),
        )
        return bool(rows)

    def dataset_ids_starting(self, prefix: str) -> list[str]:
        """Ids of the (not deleted) datasets that start with ``prefix`` (at most
        ``MAX_CANDIDATES`` + 1, enough to say a prefix is ambiguous)."""
        return self._ids_starting("datasets", prefix, "AND status != 'deleted' ")

    def scan_ids_starting(self, prefix: str) -> list[str]:
        """Ids of the scans that start with ``prefix`` (at most ``MAX_CANDIDATES`` + 1)."""
        return self._ids_starting("quality_scans", prefix)

    def _ids_starting(self, table: str, prefix: str, also: str = "") -> list[str]:
        wanted = id_prefix(prefix)
        if wanted is None:
            return []
        rows = self.store.query(
            f"SELECT id FROM {table} WHERE tenant = ? AND id LIKE ? {also}"
            f"ORDER BY id LIMIT {MAX_CANDIDATES + 1}",
            (self.tenant, wanted + "%"),
        )
        return [str(r[0]) for r in rows]

    def scans(self, dataset_id: str) -> list[dict[str, Any]]:
        return _scan_dicts(
            _dicts(
                self.store,
                f"SELECT {', '.join(SCAN_COLS)} FROM quality_scans WHERE "
                "tenant = ? AND dataset_id = ? ORDER BY created_at, id",
                (self.tenant, dataset_id),
                SCAN_COLS,
            )
        )

    def scan(self, scan_id: str) -> dict[str, Any] | None:
        rows = _scan_dicts(
            _dicts(
                self.store,
                f"SELECT {', '.join(SCAN_COLS)} FROM quality_scans WHERE tenant = ? AND id = ?",
                (self.tenant, scan_id),
                SCAN_COLS,
            )
        )
        return rows[0] if rows else None

    def issues(self, scan_id: str) -> list[dict[str, Any]]:
        return _dicts(
            self.store,
            f"SELECT {', '.join(ISSUE_COLS)} FROM quality_issues WHERE "
            "tenant = ? AND scan_id = ? ORDER BY impact_score DESC, issue_id",
            (self.tenant, scan_id),
            ISSUE_COLS,
        )

    def columns(self, scan_id: str) -> list[dict[str, Any]]:
        return _dicts(
            self.store,
            f"SELECT {', '.join(COLUMN_COLS)} FROM columns WHERE "
            "tenant = ? AND scan_id = ? ORDER BY position",
            (self.tenant, scan_id),
            COLUMN_COLS,
        )

    def command_status(self, command_id: str) -> dict[str, Any] | None:
        rows = _dicts(
            self.store,
            "SELECT status, reason FROM command_status WHERE tenant = ? AND command_id = ?",
            (self.tenant, command_id),
            ["status", "reason"],
        )
        return rows[0] if rows else None

    def audit(
        self, dataset_id: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        where, params = "tenant = ?", [self.tenant]
        if dataset_id:
            where += " AND dataset_id = ?"
            params.append(dataset_id)
        cols = ", ".join(AUDIT_COLS)
        sql = f"SELECT {cols} FROM audit_log WHERE {where} ORDER BY occurred_at, chain, seq"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return _dicts(self.store, sql, tuple(params), AUDIT_COLS)

    def audit_page(
        self,
        *,
        limit: int,
        dataset_id: str | None = None,
        actor: str | None = None,
        event_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: tuple[str, int, int] | None = None,
    ) -> list[dict[str, Any]]:
        """At most ``limit`` of the tenant's audit entries, oldest first (by time, then
        chain and seq), filtered by dataset, actor, event type and ``since <= occurred_at
        < until`` (ISO 8601 UTC text), those after ``after`` (the previous page's last
        ``(occurred_at, chain, seq)``)."""
        where: list[str] = ["tenant = ?"]
        params: list[Any] = [self.tenant]
        for column, value in (
            ("dataset_id", dataset_id),
            ("actor", actor),
            ("event_type", event_type),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("occurred_at >= ?")
            params.append(since)
        if until is not None:
            where.append("occurred_at < ?")
            params.append(until)
        if after is not None:
            where.append(
                "(occurred_at > ? OR (occurred_at = ? AND (chain > ? OR (chain = ? AND seq > ?))))"
            )
            params += [after[0], after[0], after[1], after[1], after[2]]
        cols = ["chain", *AUDIT_COLS]
        return _dicts(
            self.store,
            f"SELECT {', '.join(cols)} FROM audit_log WHERE {' AND '.join(where)} "
            f"ORDER BY occurred_at, chain, seq LIMIT {int(limit)}",
            tuple(params),
            cols,
        )

    def dataset_of_command(self, command_id: str) -> str | None:
        """The dataset the events a command caused are about (its audit entries)."""
        rows = self.store.query(
            "SELECT dataset_id FROM audit_log WHERE tenant = ? AND causation_id = ? "
            "AND dataset_id IS NOT NULL LIMIT 1",
            (self.tenant, command_id),
        )
        return str(rows[0][0]) if rows else None

    def audit_count(self) -> int:
        rows = self.store.query("SELECT COUNT(*) FROM audit_log WHERE tenant = ?", (self.tenant,))
        return int(rows[0][0])

    def audit_has_event(self, event_id: str) -> bool:
        return bool(
            self.store.query(
                "SELECT 1 FROM audit_log WHERE tenant = ? AND event_id = ?",
                (self.tenant, event_id),
            )
        )

    # -- jobs (one per scan) -----------------------------------------------------------------
    def jobs(self, active_only: bool = True) -> list[dict[str, Any]]:
        """The scans' jobs, oldest first; ``active_only``: those whose scan has not ended."""
        where = " AND s.status IN ('queued', 'running')" if active_only else ""
        return _dicts(
            self.store, f"{JOB_SELECT}{where} ORDER BY s.created_at, s.id", (self.tenant,), JOB_COLS
        )

    def jobs_by_prefix(self, prefix: str) -> list[dict[str, Any]]:
        """Jobs whose job id or scan id starts with ``prefix`` (case-insensitive)."""
        wanted = id_prefix(prefix)
        if wanted is None:
            return []
        return _dicts(
            self.store,
            f"{JOB_SELECT} AND (s.id LIKE ? OR s.job_id LIKE ?) ORDER BY s.created_at",
            (self.tenant, wanted + "%", wanted + "%"),
            JOB_COLS,
        )

    # -- pages for the HTTP API (keyset: a cursor is the last row's sort value and id) ------
    def datasets_page(
        self,
        *,
        limit: int,
        sort: str = "created_at",
        descending: bool = False,
        after: tuple[Any, str] | None = None,
        status: str | None = None,
        name: str | None = None,
    ) -> list[dict[str, Any]]:
        """At most ``limit`` datasets ordered by ``sort`` (one of ``DATASET_SORTS``) then
        id, those after ``after`` (the (sort value, id) of the previous page's last row);
        deleted ones only when ``status`` asks for them."""
        if sort not in DATASET_SORTS:
            raise ValueError(f"cannot sort datasets by {sort!r}")
        where, params = ["tenant = ?"], [self.tenant]
        if status is None:
            where.append("status != 'deleted'")
        else:
            where.append("status = ?")
            params.append(status)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        op, order = ("<", "DESC") if descending else (">", "ASC")
        if after is not None:
            where.append(f"({sort} {op} ? OR ({sort} = ? AND id {op} ?))")
            params += [after[0], after[0], after[1]]
        return _dicts(
            self.store,
            f"SELECT {', '.join(DATASET_COLS)} FROM datasets WHERE {' AND '.join(where)} "
            f"ORDER BY {sort} {order}, id {order} LIMIT {int(limit)}",
            tuple(params),
            DATASET_COLS,
        )

    def versions(self, dataset_id: str) -> list[dict[str, Any]]:
        """A dataset's versions, oldest first."""
        return _dicts(
            self.store,
            f"SELECT {', '.join(VERSION_COLS)} FROM dataset_versions WHERE tenant = ? "
            "AND dataset_id = ? ORDER BY version",
            (self.tenant, dataset_id),
            VERSION_COLS,
        )


DATASET_SORTS = ("created_at", "updated_at", "name")
VERSION_COLS = [
    "version",
    "format",
    "row_count",
    "column_count",
    "size_bytes",
    "object_sha256",
    "source_sha256",
    "created_at",
    "cause",
    "fix_id",
]
