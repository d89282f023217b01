"""Read model ``fixes``: one row per fix (a preview or an apply) and where it stands.

The status the queries show: ``queued`` (requested), ``running`` (its job asked for),
``previewed`` (a preview's job answered), ``fixed`` (an apply's job wrote the version;
the dataset has not taken it yet), ``applied`` (the dataset's new version
``new_version`` exists; its re-scan is ``rescan_id``), ``rolled_back`` (version
``rolled_back_by_version`` restores the version before it; that one's re-scan is
``rollback_rescan_id``) or ``failed`` (``error``).
The re-scan ids are the ones the policy ``rescan-after-fix`` gives its ``RequestScan``
(``rescan_id_for``), so the row names them before the scans exist. The table is a core
one: core migration 10 (``projections/migrations.py``) creates it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from uuid import UUID

from datrix.aggregates import dataset, fix
from datrix.projections.queries import MAX_CANDIDATES, id_prefix
from datrix.projections.read_model import ReadModel
from datrix.projections.store import ReadStore, Tx
from datrix.streams.messages import Envelope


def rescan_id_for(fix_id: UUID, rollback: bool = False) -> UUID:
    """The scan the policy ``rescan-after-fix`` requests after a fix's version (or after
    its rollback's)."""
    return uuid.uuid5(fix_id, "rescan-rollback" if rollback else "rescan")


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"))


# Events of two aggregates write a fix's row: the fix's own (FixRequested ... FixCompleted)
# and the dataset's (FixApplied, FixRolledBack). They sit on different partitions, so a
# projector (live, or a replay going one partition at a time) may see the dataset's first.
# Hence: the dataset's events upsert only their own columns, FixRequested upserts its own,
# ``status`` holds the fix's own progress and the shown status (STATUS) is derived from
# the dataset's columns too, and ``updated_at`` keeps the later of two times (LATER): the
# row ends the same whatever order its events came in.
LATER = "CASE WHEN fixes.updated_at > ? THEN fixes.updated_at ELSE ? END"
STATUS = (
    "CASE WHEN rolled_back_by_version IS NOT NULL THEN 'rolled_back' "
    "WHEN new_version IS NOT NULL THEN 'applied' ELSE status END"
)


def _requested(tx: Tx, env: Envelope, event: fix.FixRequested) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        "INSERT INTO fixes (fix_id, tenant, dataset_id, scan_id, mode, status, base_version, "
        "issue_ids_json, options_json, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?) "
        "ON CONFLICT (fix_id) DO UPDATE SET mode = excluded.mode, status = 'queued', "
        "issue_ids_json = excluded.issue_ids_json, options_json = excluded.options_json, "
        f"created_at = excluded.created_at, updated_at = {LATER}",
        (
            env.subject,
            env.tenant,
            str(event.dataset_id),
            str(event.scan_id),
            event.mode,
            event.base_version,
            _json(list(event.issue_ids)),
            _json(event.options),
            at,
            at,
            at,
            at,
        ),
    )
    return str(event.dataset_id)


def _dataset_of(tx: Tx, fix_id: str) -> str | None:
    row = tx.fetch_one("SELECT dataset_id FROM fixes WHERE fix_id = ?", (fix_id,))
    return str(row[0]) if row else None


def _job(tx: Tx, env: Envelope, event: fix.FixJobRequested) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        f"UPDATE fixes SET status = 'running', job_id = ?, updated_at = {LATER} WHERE fix_id = ?",
        (str(event.job_id), at, at, env.subject),
    )
    return str(event.dataset_id)


def _previewed(tx: Tx, env: Envelope, event: fix.FixPreviewed) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        "UPDATE fixes SET status = 'previewed', cells_changed = ?, rows_removed = ?, "
        f"per_fix_json = ?, preview_uri = ?, updated_at = {LATER} WHERE fix_id = ?",
        (
            event.cells_changed,
            event.rows_removed,
            event.per_fix_json,
            event.preview_uri,
            at,
            at,
            env.subject,
        ),
    )
    return _dataset_of(tx, env.subject)


def _completed(tx: Tx, env: Envelope, event: fix.FixCompleted) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        "UPDATE fixes SET status = 'fixed', cells_changed = ?, rows_removed = ?, "
        f"per_fix_json = ?, provenance_uri = ?, provenance_sha256 = ?, updated_at = {LATER} "
        "WHERE fix_id = ?",
        (
            event.cells_changed,
            event.rows_removed,
            event.per_fix_json,
            event.provenance_uri,
            event.provenance_sha256,
            at,
            at,
            env.subject,
        ),
    )
    return str(event.dataset_id)


def _failed(tx: Tx, env: Envelope, event: fix.FixFailed) -> str | None:
    at = env.time.isoformat()
    tx.execute(
        f"UPDATE fixes SET status = 'failed', error = ?, updated_at = {LATER} WHERE fix_id = ?",
        (f"{event.error_type}: {event.message}", at, at, env.subject),
    )
    return _dataset_of(tx, env.subject)


def _applied(tx: Tx, env: Envelope, event: dataset.FixApplied) -> str | None:
    """The row may not exist yet (the fix's events on another partition): created with
    placeholders that FixRequested and the fix's later events overwrite."""
    at = env.time.isoformat()
    tx.execute(
        "INSERT INTO fixes (fix_id, tenant, dataset_id, scan_id, mode, status, base_version, "
        "new_version, issue_ids_json, rescan_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'apply', 'fixed', ?, ?, '[]', ?, ?, ?) "
        "ON CONFLICT (fix_id) DO UPDATE SET new_version = excluded.new_version, "
        f"rescan_id = excluded.rescan_id, updated_at = {LATER}",
        (
            str(event.fix_id),
            env.tenant,
            env.subject,
            str(event.scan_id),
            event.base_version,
            event.version,
            str(rescan_id_for(event.fix_id)),
            at,
            at,
            at,
            at,
        ),
    )
    return env.subject


def _rolled_back(tx: Tx, env: Envelope, event: dataset.FixRolledBack) -> str | None:
    """After FixApplied on the same stream: the row exists."""
    at = env.time.isoformat()
    tx.execute(
        "UPDATE fixes SET rolled_back_by_version = ?, "
        f"rollback_rescan_id = ?, updated_at = {LATER} WHERE fix_id = ?",
        (
            event.version,
            str(rescan_id_for(event.fix_id, rollback=True)),
            at,
            at,
            str(event.fix_id),
        ),
    )
    return env.subject


READ_MODEL = ReadModel(
    name="fixes",
    tables={"fixes": "fix_id"},
    handlers={
        fix.FixRequested: _requested,
        fix.FixJobRequested: _job,
        fix.FixPreviewed: _previewed,
        fix.FixCompleted: _completed,
        fix.FixFailed: _failed,
        dataset.FixApplied: _applied,
        dataset.FixRolledBack: _rolled_back,
    },
)


# ---- queries (the use cases in gateway/fixes.py read through these) -------------------
FIX_COLS = [
    "fix_id",
    "dataset_id",
    "scan_id",
    "mode",
    "status",
    "base_version",
    "new_version",
    "issue_ids_json",
    "options_json",
    "job_id",
    "cells_changed",
    "rows_removed",
    "per_fix_json",
    "preview_uri",
    "provenance_uri",
    "provenance_sha256",
    "rescan_id",
    "rolled_back_by_version",
    "rollback_rescan_id",
    "error",
    "created_at",
    "updated_at",
]
VERSION_COLS = ["version", "object_sha256", "created_at", "cause", "fix_id", "row_count"]


def _select(cols: list[str]) -> str:
    """The select list of ``cols``, the shown status derived (STATUS)."""
    return ", ".join(f"{STATUS} AS status" if c == "status" else c for c in cols)


def _dicts(
    store: ReadStore, sql: str, params: tuple[Any, ...], cols: list[str]
) -> list[dict[str, Any]]:
    return [dict(zip(cols, row, strict=True)) for row in store.query(sql, params)]


def fix_row(store: ReadStore, tenant: str, fix_id: str) -> dict[str, Any] | None:
    rows = _dicts(
        store,
        f"SELECT {_select(FIX_COLS)} FROM fixes WHERE tenant = ? AND fix_id = ?",
        (tenant, fix_id),
        FIX_COLS,
    )
    return rows[0] if rows else None


def fix_ids_starting(
    store: ReadStore, tenant: str, prefix: str, dataset_id: str | None = None
) -> list[str]:
    """Ids of the tenant's fixes (of one dataset, when given) that start with ``prefix``
    (at most ``MAX_CANDIDATES`` + 1)."""
    wanted = id_prefix(prefix)
    if wanted is None:
        return []
    also, params = ("AND dataset_id = ? ", (dataset_id,)) if dataset_id else ("", ())
    rows = store.query(
        f"SELECT fix_id FROM fixes WHERE tenant = ? AND fix_id LIKE ? {also}"
        f"ORDER BY fix_id LIMIT {MAX_CANDIDATES + 1}",
        (tenant, f"{wanted}%", *params),
    )
    return [str(r[0]) for r in rows]


def versions(store: ReadStore, tenant: str, dataset_id: str) -> list[dict[str, Any]]:
    """A dataset's versions with their cause and fix, oldest first."""
    return _dicts(
        store,
        f"SELECT {', '.join(VERSION_COLS)} FROM dataset_versions WHERE tenant = ? "
        "AND dataset_id = ? ORDER BY version",
        (tenant, dataset_id),
        VERSION_COLS,
    )


def request_outcome(store: ReadStore, tenant: str, fix_id: str) -> tuple[str, str | None] | None:
    """What became of the command that requested fix ``fix_id`` (status, reason); None
    while it is not processed."""
    rows = store.query(
        "SELECT status, reason FROM command_status WHERE tenant = ? AND aggregate_id = ? "
        "AND command_type IN ('datrix.fix.PreviewFix', 'datrix.fix.ApplyFix') "
        "ORDER BY updated_at",
        (tenant, fix_id),
    )
    return (str(rows[0][0]), rows[0][1]) if rows else None


def applies_of_scan(store: ReadStore, tenant: str, scan_id: str) -> list[dict[str, Any]]:
    """The applies of fixes of one scan, oldest first."""
    return _dicts(
        store,
        f"SELECT {_select(FIX_COLS)} FROM fixes WHERE tenant = ? AND scan_id = ? "
        "AND mode = 'apply' ORDER BY created_at, fix_id",
        (tenant, scan_id),
        FIX_COLS,
    )


def request_command(store: ReadStore, tenant: str, fix_id: str) -> str | None:
    """The id of the command that requested fix ``fix_id`` (accepted)."""
    rows = store.query(
        "SELECT command_id FROM command_status WHERE tenant = ? AND aggregate_id = ? "
        "AND status = 'accepted' "
        "AND command_type IN ('datrix.fix.PreviewFix', 'datrix.fix.ApplyFix')",
        (tenant, fix_id),
    )
    return str(rows[0][0]) if rows else None
