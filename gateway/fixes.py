"""The use cases of fixes (issue 10), beside ``gateway/services.py``: preview or apply the
fixes of a scan's issues, follow one to its end, roll one back, read a fixed version's
cell-level provenance and a dataset's versions with their causes.

The CLI (``datrix fix``, ``rollback``, ``provenance``, ``versions``), the HTTP API
(``gateway/api/routes/fixes.py``) and the SDK through it call these and nothing else. Like
the other use cases they return dataclasses, dicts and lists, raise
``datrix.gateway.errors`` and never print.

An apply is followed to the end of its chain (``runtime/fixes.py``): the fix job, the new
version the policy ``fix-versions`` adds, and the re-scan ``rescan-after-fix`` requests;
its outcome compares the scores of the fixed scan and the re-scan per dimension and lists
the issues of the fixed scan that the re-scan no longer reports (matched by type and
column: issue ids are per scan).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from datrix.aggregates.dataset import RollbackFix
from datrix.aggregates.fix import FIXABLE_TYPES, ApplyFix, PreviewFix, job_id_for
from datrix.gateway.errors import DatrixError, NotFound, UserInputError
from datrix.gateway.services import (
    Runtime,
    _one_of,
    resolve_dataset,
    resolve_issue,
    resolve_scan,
    score_document,
    views,
)
from datrix.jobs.engine import ProgressFn, no_progress
from datrix.projections.read_models import fixes as fix_views
from datrix.streams import scratch
from datrix.streams.registry import policy_command_id, result_command_id

MAX_OPTIONS = 50
MAX_PAGE = 10_000


@dataclass(frozen=True)
class FixSubmission:
    """A fix handed in: its id and its dataset's at once, and the command's id
    (``services.await_command`` tells whether it was accepted)."""

    fix_id: uuid.UUID
    dataset_id: uuid.UUID
    command_id: uuid.UUID


@dataclass(frozen=True)
class FixOutcome:
    """A fix that ended. ``status``: ``previewed``, ``completed`` (an apply whose version
    exists and was re-scanned) or ``rolled_back``; a failed fix raises instead."""

    fix_id: str
    status: str
    mode: str
    dataset_id: str
    scan_id: str
    version: int | None  # the new version (apply)
    base_version: int
    per_fix: list[dict[str, Any]]
    cells_changed: int | None
    rows_removed: int | None
    rows_affected: int | None
    preview: dict[str, Any] | None
    score_before: dict[str, Any] | None
    score_after: dict[str, Any] | None
    issues_gone: list[dict[str, Any]] | None
    rescan_id: str | None
    error: str | None = None  # a re-scan that failed (the version exists)


# ---- submitting ------------------------------------------------------------------------
def _check_options(options: dict[str, str] | None) -> dict[str, str] | None:
    if options is None:
        return None
    if len(options) > MAX_OPTIONS:
        raise UserInputError(f"at most {MAX_OPTIONS} fix options, not {len(options)}")
    for key, value in options.items():
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str):
            raise UserInputError(f"a fix option is a name and a text value, not {key!r}")
    return dict(options) or None


def submit_fix(
    runtime: Runtime,
    scan_ref: str,
    issue_refs: list[str] | None,
    *,
    preview: bool,
    options: dict[str, str] | None = None,
    command_id: uuid.UUID | None = None,
    actor: str | None = None,
) -> FixSubmission:
    """Submit a preview (``preview=True``) or an apply of the fixes of scan ``scan_ref``
    (id or unique prefix) for ``issue_refs`` (ids or unique prefixes; None or empty:
    every issue with a fix). Returns at once; ``await_fix`` follows it. With
    ``command_id`` (a derived id: the HTTP API's Idempotency-Key) the fix id derives from
    it too, so a retried request is one fix. NotFound for an unknown scan or issue,
    UserInputError for a scan that has not completed or bad options; the aggregate's
    other refusals (nothing to fix, a deleted dataset, an older version) come back as the
    command's rejection. An apply without ``command_id`` (the CLI) first finishes the jobs
    killed runs left (embedded: announced) and follows an identical apply of the scan (same
    issues and options) that has not failed or been rolled back instead of submitting one
    that could only be refused: re-running an interrupted ``datrix fix --apply`` finishes
    it."""
    found = resolve_scan(runtime, scan_ref)
    if found["status"] != "completed":
        raise UserInputError(
            f"scan {found['id']} is {found['status']}; only a completed scan can be fixed"
        )
    scan_id = str(found["id"])
    issue_ids = tuple(resolve_issue(runtime, scan_id, ref) for ref in issue_refs or [])
    chosen = _check_options(options)
    if not preview and command_id is None:
        # finish what killed runs left (announced), then follow an identical apply
        runtime.drain()
        earlier = _same_apply(runtime, scan_id, issue_ids, chosen)
        if earlier is not None:
            return earlier
    fix_id = uuid.uuid5(command_id, "fix") if command_id is not None else uuid.uuid4()
    dataset_id = uuid.UUID(str(found["dataset_id"]))
    kind = PreviewFix if preview else ApplyFix
    command = kind(
        fix_id=fix_id,
        dataset_id=dataset_id,
        scan_id=uuid.UUID(scan_id),
        issue_ids=issue_ids,
        options=chosen,
    )
    envelope = runtime.submit(command, fix_id, command_id=command_id, actor=actor)
    return FixSubmission(fix_id, dataset_id, envelope.id)


def _same_apply(
    runtime: Runtime, scan_id: str, issue_ids: tuple[str, ...], options: dict[str, str] | None
) -> FixSubmission | None:
    """An apply of the same issues of the same scan with the same options that has not
    failed or been rolled back: what a re-run of an interrupted ``datrix fix --apply``
    finds once the interrupted job is finished (a second apply of that scan could only be
    refused: its version is no longer the latest)."""
    wanted = list(issue_ids) or [
        str(i["issue_id"])
        for i in sorted(views(runtime).issues(scan_id), key=lambda i: str(i["issue_id"]))
        if i["issue_type"] in FIXABLE_TYPES
    ]
    tenant = runtime.settings.tenant
    for row in fix_views.applies_of_scan(runtime.read_store, tenant, scan_id):
        same = sorted(json.loads(row["issue_ids_json"])) == sorted(wanted)
        options_now = json.loads(row["options_json"]) if row["options_json"] else None
        if same and options_now == options and row["status"] not in ("failed", "rolled_back"):
            command = fix_views.request_command(runtime.read_store, tenant, str(row["fix_id"]))
            if command is not None:
                return FixSubmission(
                    uuid.UUID(str(row["fix_id"])),
                    uuid.UUID(str(row["dataset_id"])),
                    uuid.UUID(command),
                )
    return None


# ---- following -------------------------------------------------------------------------
def _row(runtime: Runtime, fix_id: str) -> dict[str, Any] | None:
    return fix_views.fix_row(runtime.read_store, runtime.settings.tenant, fix_id)


def _version_refusal(runtime: Runtime, fix_id: str) -> str | None:
    """Why the dataset refused the version of a fix whose job completed (the policy
    ``fix-versions``'s command), or None (accepted or not processed yet)."""
    job = job_id_for(uuid.UUID(fix_id), 1)
    # FixCompleted is the fix's third event, decided from the job's result command
    completed = uuid.uuid5(result_command_id(job), f"{fix_id}/3")
    found = views(runtime).command_status(str(policy_command_id(completed, "fix-versions", 0)))
    if found is not None and found["status"] == "rejected":
        return str(found["reason"])
    return None


def _ended(runtime: Runtime, fix_id: str) -> bool:
    row = _row(runtime, fix_id)
    if row is None:
        outcome = fix_views.request_outcome(runtime.read_store, runtime.settings.tenant, fix_id)
        return outcome is not None and outcome[0] == "rejected"
    status = row["status"]
    if status in ("failed", "previewed", "rolled_back"):
        return True
    if status == "fixed":
        return _version_refusal(runtime, fix_id) is not None
    if status == "applied":
        rescan = views(runtime).scan(str(row["rescan_id"]))
        return rescan is not None and rescan["status"] in ("completed", "failed")
    return False


def await_fix(
    runtime: Runtime,
    fix_id: uuid.UUID | str,
    progress: ProgressFn | None = None,
    timeout: float | None = None,
) -> FixOutcome:
    """Wait until fix ``fix_id`` has ended and return its outcome: a preview's counts and
    sample; for an apply, the new version once it exists and its automatic re-scan ended,
    with the scores before and after and the issues gone. UserInputError when the fix
    was refused (the reason), DatrixError when its job failed or the dataset refused its
    version. ``timeout``: seconds (None: the runtime's default)."""
    wanted = str(fix_id)
    report = progress or no_progress
    if timeout is None:
        runtime.wait_for(lambda: _ended(runtime, wanted), report, scan_id=wanted)
    else:
        runtime.wait_for(lambda: _ended(runtime, wanted), report, scan_id=wanted, timeout=timeout)
    row = _row(runtime, wanted)
    if row is None:
        outcome = fix_views.request_outcome(runtime.read_store, runtime.settings.tenant, wanted)
        reason = outcome[1] if outcome else "the request was not processed"
        raise UserInputError(f"refused: {reason}")
    if row["status"] == "failed":
        raise DatrixError(f"fix {wanted} failed: {row['error']}")
    refused = _version_refusal(runtime, wanted) if row["status"] == "fixed" else None
    if refused is not None:
        raise DatrixError(f"fix {wanted} wrote its version, but the dataset refused it: {refused}")
    return _outcome(runtime, row)


def _outcome(runtime: Runtime, row: dict[str, Any]) -> FixOutcome:
    v = views(runtime)
    per_fix = json.loads(row["per_fix_json"]) if row["per_fix_json"] else []
    preview = None
    if row["preview_uri"]:
        preview = json.loads(runtime.objects.read_bytes(str(row["preview_uri"])))
    before = v.scan(str(row["scan_id"]))
    rescan_id = row["rescan_id"]
    after = v.scan(str(rescan_id)) if rescan_id else None
    gone = None
    error = None
    if after is not None and after["status"] == "completed":
        now = {(i["issue_type"], i["column_name"]) for i in v.issues(str(rescan_id))}
        gone = [
            {"issue_id": i["issue_id"], "type": i["issue_type"], "column": i["column_name"]}
            for i in v.issues(str(row["scan_id"]))
            if (i["issue_type"], i["column_name"]) not in now
        ]
    elif after is not None and after["status"] == "failed":
        error = f"the re-scan {rescan_id} failed: {after['error']}"
    status = {"previewed": "previewed", "rolled_back": "rolled_back"}.get(
        str(row["status"]), "completed" if row["status"] == "applied" else str(row["status"])
    )
    return FixOutcome(
        fix_id=str(row["fix_id"]),
        status=status,
        mode=str(row["mode"]),
        dataset_id=str(row["dataset_id"]),
        scan_id=str(row["scan_id"]),
        version=row["new_version"],
        base_version=int(row["base_version"]),
        per_fix=per_fix,
        cells_changed=row["cells_changed"],
        rows_removed=row["rows_removed"],
        rows_affected=_rows_affected(runtime, row, preview),
        preview=preview,
        score_before=score_document(before) if before and before["status"] == "completed" else None,
        score_after=score_document(after) if after and after["status"] == "completed" else None,
        issues_gone=gone,
        rescan_id=str(rescan_id) if rescan_id else None,
        error=error,
    )


def _rows_affected(
    runtime: Runtime, row: dict[str, Any], preview: dict[str, Any] | None
) -> int | None:
    """Distinct rows the fix touched: the preview's count, or the provenance's rows (every
    row of the base version when a column was dropped)."""
    if preview is not None:
        value = preview.get("rows_affected")
        return int(value) if isinstance(value, int) else None
    if not row["provenance_uri"]:
        return None
    import polars as pl

    with scratch.tempdir(runtime.settings.home / "tmp", "provenance-") as workdir:
        path = runtime.objects.local_copy(str(row["provenance_uri"]), workdir)
        ids = pl.scan_parquet(path).select("row_id", "column")
        dropped = ids.filter(pl.col("row_id").is_null()).select(pl.len()).collect().item()
        if dropped:
            versions = fix_views.versions(
                runtime.read_store, runtime.settings.tenant, str(row["dataset_id"])
            )
            base = next(v for v in versions if v["version"] == row["base_version"])
            return int(base["row_count"])
        count = ids.select(pl.col("row_id").drop_nulls().n_unique()).collect().item()
        return int(count)


def fix_document(outcome: FixOutcome) -> dict[str, Any]:
    """The JSON of ``datrix fix --format json`` and of the API's fix resource."""
    return {
        "fix_id": outcome.fix_id,
        "dataset_id": outcome.dataset_id,
        "scan_id": outcome.scan_id,
        "mode": outcome.mode,
        "status": outcome.status,
        "base_version": outcome.base_version,
        "version": outcome.version,
        "fixes": outcome.per_fix,
        "cells_changed": outcome.cells_changed,
        "rows_removed": outcome.rows_removed,
        "rows_affected": outcome.rows_affected,
        "preview": outcome.preview,
        "score_before": outcome.score_before,
        "score_after": outcome.score_after,
        "issues_gone": outcome.issues_gone,
        "rescan_id": outcome.rescan_id,
        "error": outcome.error,
    }


def resolve_fix(runtime: Runtime, ref: str, dataset_id: str | None = None) -> dict[str, Any]:
    """The fix (of ``dataset_id``, when given) whose id is ``ref`` or starts with it."""
    tenant = runtime.settings.tenant
    found = fix_views.fix_row(runtime.read_store, tenant, ref.strip().lower())
    if found is None or (dataset_id is not None and found["dataset_id"] != dataset_id):
        candidates = fix_views.fix_ids_starting(runtime.read_store, tenant, ref, dataset_id)
        found = fix_views.fix_row(runtime.read_store, tenant, _one_of("fix", ref, candidates))
    if found is None:
        raise NotFound(f"no fix {ref}")
    return found


def fix_status(runtime: Runtime, fix_ref: str) -> dict[str, Any] | None:
    """Where a fix stands now, without waiting (the API's ``GET .../fix/{fixId}``): the
    document of ``fix_document`` with ``status`` ``queued``, ``running`` (its job, or for
    an apply the new version and its re-scan), ``previewed``, ``completed``,
    ``rolled_back`` or ``failed`` (``error``); None for no such fix, or a refused one."""
    try:
        row = resolve_fix(runtime, fix_ref)
    except NotFound:
        return None
    status = str(row["status"])
    if status in ("queued", "running", "failed") or (status == "fixed" and row["mode"] == "apply"):
        refused = _version_refusal(runtime, str(row["fix_id"])) if status == "fixed" else None
        shown = "failed" if refused else ("running" if status == "fixed" else status)
        return {
            "fix_id": str(row["fix_id"]),
            "dataset_id": str(row["dataset_id"]),
            "scan_id": str(row["scan_id"]),
            "mode": str(row["mode"]),
            "status": shown,
            "base_version": int(row["base_version"]),
            "error": row["error"]
            or (f"the dataset refused its version: {refused}" if refused else None),
        }
    if status == "applied":
        rescan = views(runtime).scan(str(row["rescan_id"]))
        if rescan is None or rescan["status"] not in ("completed", "failed"):
            doc = fix_document(_outcome(runtime, row))
            return {**doc, "status": "running"}
    return fix_document(_outcome(runtime, row))


# ---- rolling back ----------------------------------------------------------------------
def rollback_fix(
    runtime: Runtime,
    dataset_ref: str,
    fix_ref: str,
    *,
    actor: str | None = None,
    command_id: uuid.UUID | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Roll back fix ``fix_ref`` of dataset ``dataset_ref``: a new version whose content
    is the version before the fix (same object, same checksum), re-scanned automatically
    (embedded: by the next ``drain``). Waits for the rollback itself (not the re-scan);
    returns ``dataset_id``, ``fix_id``, ``version`` (new), ``restored_version``,
    ``checksum`` and ``rescan_id``. UserInputError with the reason when refused (a later
    fix built on it, already rolled back, a preview)."""
    found = resolve_dataset(runtime, dataset_ref)
    dataset_id = str(found["id"])
    row = resolve_fix(runtime, fix_ref, dataset_id)
    fix_id = str(row["fix_id"])
    if row["mode"] != "apply":
        raise UserInputError(f"fix {fix_id} is a preview; it made no version to roll back")
    command = RollbackFix(dataset_id=uuid.UUID(dataset_id), fix_id=uuid.UUID(fix_id))
    submitted = runtime.submit(command, command.dataset_id, command_id=command_id, actor=actor)

    def settled() -> bool:
        status = views(runtime).command_status(str(submitted.id))
        if status is None:
            return False
        if status["status"] == "rejected":
            return True
        now = _row(runtime, fix_id)
        return now is not None and now["rolled_back_by_version"] is not None

    runtime.await_processed(settled, timeout=timeout)
    status = views(runtime).command_status(str(submitted.id))
    if status is not None and status["status"] == "rejected":
        raise UserInputError(f"refused: {status['reason']}")
    done = _row(runtime, fix_id)
    if done is None or done["rolled_back_by_version"] is None:
        raise DatrixError(f"the rollback of fix {fix_id} was not processed")
    version = int(done["rolled_back_by_version"])
    rows = fix_views.versions(runtime.read_store, runtime.settings.tenant, dataset_id)
    made = next(v for v in rows if v["version"] == version)
    restored = next(v for v in rows if v["version"] == int(done["base_version"]))
    return {
        "dataset_id": dataset_id,
        "fix_id": fix_id,
        "version": version,
        "restored_version": int(restored["version"]),
        "checksum": made["object_sha256"],
        "rescan_id": done["rollback_rescan_id"],
    }


# ---- reading ---------------------------------------------------------------------------
def dataset_versions(runtime: Runtime, name_or_id: str) -> list[dict[str, Any]]:
    """The versions of a dataset, oldest first: ``version``, ``checksum`` (the SHA-256 of
    the version's content), ``created_at``, ``cause`` (upload, fix, rollback, pipeline)
    and ``fix_id`` (the fix that made or undid it)."""
    dataset_id = str(resolve_dataset(runtime, name_or_id)["id"])
    return [
        {
            "version": int(v["version"]),
            "checksum": v["object_sha256"],
            "created_at": v["created_at"],
            "cause": v["cause"],
            "fix_id": v["fix_id"],
        }
        for v in fix_views.versions(runtime.read_store, runtime.settings.tenant, dataset_id)
    ]


def provenance_rows(
    runtime: Runtime,
    dataset_ref: str,
    version: int | None = None,
    row: int | None = None,
    column: str | None = None,
    offset: int = 0,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """The cell-level provenance of a dataset version (default: the latest), filtered by
    ``row`` and ``column``, a page of it: (rows, how many match in all). Each row:
    ``row_id`` (0-based in the version the fix started from; None for a dropped column),
    ``column`` (None for a removed row, whose ``old_value`` is the record as JSON),
    ``old_value``, ``new_value``, ``fix_id``, ``rule``, ``confidence``. A version no fix
    made (an upload, a rollback) has none: ([], 0). Read from the version's provenance
    Parquet through the object store, filtered and sliced by Polars."""
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise UserInputError(f"offset must be >= 0 and limit 1-{MAX_PAGE:,}")
    if row is not None and row < 0:
        raise UserInputError("a row is 0-based: it cannot be negative")
    found = resolve_dataset(runtime, dataset_ref)
    dataset_id = str(found["id"])
    tenant = runtime.settings.tenant
    known = fix_views.versions(runtime.read_store, tenant, dataset_id)
    if not known:
        raise NotFound(f"dataset {found['name']!r} has no version yet")
    wanted = (
        known[-1] if version is None else next((v for v in known if v["version"] == version), None)
    )
    if wanted is None:
        raise NotFound(f"dataset {found['name']!r} has no version {version}")
    if wanted["cause"] != "fix" or not wanted["fix_id"]:
        return [], 0
    made_by = fix_views.fix_row(runtime.read_store, tenant, str(wanted["fix_id"]))
    if made_by is None or not made_by["provenance_uri"]:
        raise DatrixError(f"version {wanted['version']} names fix {wanted['fix_id']}, unknown")
    import polars as pl

    with scratch.tempdir(runtime.settings.home / "tmp", "provenance-") as workdir:
        path = runtime.objects.local_copy(str(made_by["provenance_uri"]), workdir)
        frame = pl.scan_parquet(path)
        if row is not None:
            frame = frame.filter(pl.col("row_id") == row)
        if column is not None:
            frame = frame.filter(pl.col("column") == column)
        total = int(frame.select(pl.len()).collect().item())
        page = frame.slice(offset, limit).collect()
    return page.to_dicts(), total
