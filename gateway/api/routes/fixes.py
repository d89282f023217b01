"""Fixes: preview and apply the fixes of a scan's issues, roll an applied fix back, and
read the cell-level provenance of a fixed version (the use cases of ``gateway/fixes.py``).

A fix is asynchronous like a scan: the POST answers 202 at once, with a Location to poll,
once the fix command is handed in; the refusals a read can foresee (an unknown scan or
issue id, nothing to fix) are problems at once. Its job (and, for an apply, the new
version's re-scan) runs in the background: the embedded default's intake thread, or the
Kafka-mode workers. A fix's id is a UUID: ``/fix/preview`` is never taken for one."""

from __future__ import annotations

import json
import uuid
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from datrix.aggregates.fix import FIXABLE_TYPES
from datrix.gateway import fixes, services
from datrix.gateway.api import idempotency, paging
from datrix.gateway.api.deps import (
    Caller,
    DatasetReader,
    DatasetWriter,
    QualityReader,
    Submissions,
    allowed,
)
from datrix.gateway.api.intake import Intake
from datrix.gateway.api.models import (
    FixAccepted,
    FixBody,
    FixStatus,
    ProvenancePage,
    ProvenanceRow,
    RollbackAccepted,
)
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem, Problem
from datrix.gateway.errors import NotFound, UserInputError
from datrix.jobs.transforms.specs import check_options
from datrix.projections.read_models import fixes as fix_views

router = APIRouter(tags=["fixes"])

# A preview writes nothing: whoever may run a scan may preview its fixes. Applying and
# rolling back make new versions: writes.
FixPreviewer = Annotated[Caller, Depends(allowed("scans:run"))]

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Handed in: poll the Location"},
    409: {"model": Problem, "description": "Refused as things are (e.g. nothing to fix)"},
}


def _fix_links(dataset_id: str, fix_id: str, scan_id: str | None) -> dict[str, str]:
    links = {
        "self": f"/v1/quality/{dataset_id}/fix/{fix_id}",
        "dataset": f"/v1/datasets/{dataset_id}",
        "versions": f"/v1/datasets/{dataset_id}/versions",
    }
    if scan_id:
        links["scan"] = f"/v1/datasets/{dataset_id}/scan/{scan_id}"
    return links


def _problem_if_refused(
    runtime: services.Runtime,
    found: dict[str, Any],
    scan: dict[str, Any],
    refs: list[str] | None,
    preview: bool,
) -> None:
    """The fix aggregate's refusals that a read of the read models foresees, answered at
    once as problems (the POST does not wait for the command: a refusal the read models
    could not foresee, a race, shows as a ``failed`` fix with the reason): the dataset
    deleted (404), the scan not completed or an apply of an older version (409), an
    unknown, repeated or unfixable issue (422), nothing to fix (409)."""
    if found["status"] == "deleted":
        raise ApiProblem(404, f"dataset {found['id']} is deleted")
    if scan["status"] != "completed":
        raise ApiProblem(
            409,
            f"scan {scan['id']} is {scan['status']}; only a completed scan can be fixed",
            slug="scan-not-completed",
        )
    if not preview and scan["dataset_version"] != found["latest_version"]:
        raise ApiProblem(
            409,
            f"scan {scan['id']} checked version {scan['dataset_version']} of dataset "
            f"{found['name']!r}, whose latest version is {found['latest_version']}; scan the "
            "latest version and fix that",
            slug="older-version",
        )
    types = {
        str(i["issue_id"]): str(i["issue_type"])
        for i in services.views(runtime).issues(str(scan["id"]))
    }
    if refs is None:
        if not any(t in FIXABLE_TYPES for t in types.values()):
            raise ApiProblem(
                409,
                f"nothing to fix: scan {scan['id']} found no issue with a fix",
                slug="nothing-to-fix",
            )
        return
    try:
        ids = [services.resolve_issue(runtime, str(scan["id"]), ref) for ref in refs]
    except NotFound as exc:
        raise ApiProblem(422, f"issueIds: {exc}", slug="bad-issue-ids") from None
    if len(set(ids)) != len(ids):
        raise ApiProblem(422, "issueIds: an issue id is given twice", slug="bad-issue-ids")
    unfixable = [f"{i} ({types[i]})" for i in ids if types[i] not in FIXABLE_TYPES]
    if unfixable:
        raise ApiProblem(
            422,
            f"issueIds: no fix exists for issue {', '.join(unfixable)}; fixable types: "
            + ", ".join(sorted(FIXABLE_TYPES)),
            slug="bad-issue-ids",
        )


def _submit(
    request: Request,
    response: Response,
    caller: Caller,
    dataset_id: str,
    body: FixBody | None,
    preview: bool,
) -> FixAccepted:
    chosen = body or FixBody()
    runtime = caller.runtime
    found = services.resolve_dataset(runtime, dataset_id)
    scan: dict[str, Any] | None
    if chosen.scan_id is None:
        scan = services.latest_scan(runtime, found["id"])  # NotFound: 404, nothing scanned
    else:
        try:
            scan = services.resolve_scan(runtime, chosen.scan_id)
        except NotFound:
            scan = None
    if scan is None or scan["dataset_id"] != found["id"]:
        raise ApiProblem(
            422, f"scanId: dataset {dataset_id} has no scan {chosen.scan_id}", slug="bad-scan"
        )
    refs = list(chosen.issue_ids) if chosen.issue_ids is not None else None
    try:
        check_options(chosen.options or {})  # before a job is started for them
    except ValueError as exc:
        raise ApiProblem(422, f"options: {exc}", slug="bad-options") from None
    _problem_if_refused(runtime, found, scan, refs, preview)
    seed = idempotency.seed(request)
    try:
        submitted = fixes.submit_fix(
            runtime,
            scan["id"],
            refs,
            preview=preview,
            options=dict(chosen.options) if chosen.options else None,
            # always an id: without one an apply drains the home first (the CLI's
            # re-run of an interrupted apply), running jobs in this request
            command_id=services.derived_id(seed, "fix-preview" if preview else "fix")
            or uuid.uuid4(),
            actor=caller.key.actor,
        )
    except NotFound as exc:  # an issue the scan does not have (the body's)
        raise ApiProblem(422, f"issueIds: {exc}", slug="bad-issue-ids") from None
    except UserInputError as exc:
        raise ApiProblem(422, str(exc)) from None
    fix_id = str(submitted.fix_id)
    mode: Literal["preview", "apply"] = "preview" if preview else "apply"
    submissions: Submissions = request.app.state.submissions
    submissions.fix(caller.key.tenant, fix_id, str(found["id"]), mode, str(submitted.command_id))
    intake: Intake = request.app.state.intake
    # embedded: processes it and runs its job soon (not in this request); Kafka mode: flushes
    intake.settle(runtime, fix_id)
    location = f"/v1/quality/{found['id']}/fix/{fix_id}"
    response.status_code = 202
    response.headers["Location"] = location
    return FixAccepted(
        command_id=str(submitted.command_id),
        status_url=location,
        dataset_id=str(found["id"]),
        fix_id=fix_id,
        scan_id=str(scan["id"]),
        mode=mode,
        links=_fix_links(str(found["id"]), fix_id, str(scan["id"])),
    )


@router.post(
    "/v1/quality/{dataset_id}/fix",
    status_code=202,
    response_model=FixAccepted,
    responses=ACCEPTED,
)
def post_fix(
    request: Request,
    response: Response,
    caller: DatasetWriter,
    dataset_id: str,
    body: FixBody | None = None,
) -> FixAccepted:
    """Apply the fixes of a scan's issues (default: every fixable issue of the dataset's
    newest completed scan): a new version of the dataset, with the provenance of every
    changed cell, then re-scanned (asynchronous: 202, then poll the fix, whose answer
    shows the scores before and after and the issues gone)."""
    return _submit(request, response, caller, dataset_id, body, preview=False)


@router.post(
    "/v1/quality/{dataset_id}/fix/preview",
    status_code=202,
    response_model=FixAccepted,
    responses=ACCEPTED,
)
def post_fix_preview(
    request: Request,
    response: Response,
    caller: FixPreviewer,
    dataset_id: str,
    body: FixBody | None = None,
) -> FixAccepted:
    """What the fixes would change, per fix (cells, rows) with a sample of rows before
    and after, computed by a job; nothing is written (asynchronous: 202, then poll)."""
    return _submit(request, response, caller, dataset_id, body, preview=True)


def _not_started(
    request: Request, caller: Caller, dataset_id: str, fix_id: str
) -> dict[str, Any] | None:
    """A fix this process handed in that has no row yet: ``queued`` until its command is
    processed, ``failed`` with the reason when it was refused; None for any other id."""
    submissions: Submissions = request.app.state.submissions
    mine = submissions.fix_of(caller.key.tenant, fix_id)
    if mine is None or mine[0] != dataset_id:
        return None
    runtime = caller.runtime
    outcome = fix_views.request_outcome(runtime.read_store, runtime.settings.tenant, fix_id)
    refused = outcome is not None and outcome[0] == "rejected"
    return {
        "fix_id": fix_id,
        "dataset_id": dataset_id,
        "mode": mine[1],
        "status": "failed" if refused else "queued",
        "error": f"refused: {outcome[1]}" if outcome is not None and refused else None,
    }


@router.get("/v1/quality/{dataset_id}/fix/{fix_id:uuid}", response_model=FixStatus)
def get_fix(
    request: Request, caller: QualityReader, dataset_id: str, fix_id: uuid.UUID
) -> FixStatus:
    """A fix's status and, once it ended, its outcome (``preview``: per fix counts and
    the sample; ``apply``: the new version, the scores before and after, the issues
    gone)."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    doc = fixes.fix_status(caller.runtime, str(fix_id))
    if doc is None:
        doc = _not_started(request, caller, str(found["id"]), str(fix_id))
    if doc is None or doc.get("dataset_id") != found["id"]:
        raise ApiProblem(404, f"dataset {dataset_id} has no fix {fix_id}")
    known = {k: v for k, v in doc.items() if k in FixStatus.model_fields}
    known["links"] = _fix_links(str(found["id"]), str(doc["fix_id"]), doc.get("scan_id"))
    return FixStatus(**known)


@router.delete(
    "/v1/quality/{dataset_id}/fix/{fix_id:uuid}",
    status_code=202,
    response_model=RollbackAccepted,
    responses=ACCEPTED,
)
def delete_fix(
    request: Request,
    response: Response,
    caller: DatasetWriter,
    dataset_id: str,
    fix_id: uuid.UUID,
) -> RollbackAccepted:
    """Roll an applied fix back: a new version whose content is byte for byte the
    version the fix started from (same checksum), then re-scanned (202: poll the
    re-scan). Fixes are undone newest first: rolling back a fix that later versions
    built on, or one already rolled back, is refused (409, naming why)."""
    runtime = caller.runtime
    found = services.resolve_dataset(runtime, dataset_id)
    try:
        done = fixes.rollback_fix(
            runtime,
            str(found["id"]),
            str(fix_id),
            actor=caller.key.actor,
            command_id=services.derived_id(idempotency.seed(request), "rollback"),
        )
    except NotFound:
        raise ApiProblem(404, f"dataset {dataset_id} has no fix {fix_id}") from None
    except UserInputError as exc:  # refused: a later fix built on it, rolled back already
        raise ApiProblem(409, str(exc), slug="rollback-refused") from None
    intake: Intake = request.app.state.intake
    rescan = done.get("rescan_id")
    intake.settle(runtime, str(rescan) if rescan else None)  # the re-scan's job
    dataset = str(found["id"])
    location = (
        f"/v1/datasets/{dataset}/scan/{rescan}" if rescan else f"/v1/datasets/{dataset}/versions"
    )
    response.status_code = 202
    response.headers["Location"] = location
    return RollbackAccepted(
        dataset_id=dataset,
        fix_id=str(done["fix_id"]),
        version=int(done["version"]),
        restored_version=int(done["restored_version"]),
        rescan_id=str(rescan) if rescan else None,
        status_url=location,
        links={
            "fix": f"/v1/quality/{dataset}/fix/{done['fix_id']}",
            "versions": f"/v1/datasets/{dataset}/versions",
            "dataset": f"/v1/datasets/{dataset}",
        },
    )


@router.get(
    "/v1/datasets/{dataset_id}/versions/{version}/provenance", response_model=ProvenancePage
)
async def get_provenance(
    caller: DatasetReader,
    dataset_id: str,
    version: Annotated[int, Path(ge=1, description="The dataset's version")],
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    row: Annotated[
        int | None, Query(ge=0, description="Only this row (0-based, as scans count)")
    ] = None,
    column: Annotated[
        str | None, Query(max_length=1000, description="Only changes of this column")
    ] = None,
) -> ProvenancePage:
    """The cell-level provenance of a version made by a fix: per changed cell its row,
    column, old and new value, the fix, the rule and its confidence (0-1); a removed row
    has ``column`` None and the removed record as ``old_value``. A version that no fix
    made (an upload) has none. Paged; filters: row, column."""
    found = await run_in_threadpool(services.resolve_dataset, caller.runtime, dataset_id)
    scope = json.dumps([found["id"], version, row, column])
    start = 0
    if cursor is not None:
        _, was, start = paging.decode(cursor, "provenance", 3)
        if was != scope or not isinstance(start, int) or start < 0:
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    rows, total = await run_in_threadpool(
        partial(fixes.provenance_rows, caller.runtime, str(found["id"]), version, row, column),
        start,
        limit,
    )
    more = start + limit < total
    following = paging.encode(["provenance", scope, start + limit]) if more else None
    return ProvenancePage(
        dataset_id=str(found["id"]),
        version=version,
        total=total,
        items=[ProvenanceRow.model_validate(r) for r in rows],
        next_cursor=following,
    )
