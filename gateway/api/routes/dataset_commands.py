"""Commands on datasets: upload a file (a new dataset or version), scan, delete; and the
scan's status. Each answers 202 with a Location to poll."""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from datrix.gateway import services
from datrix.gateway.api import idempotency, upload
from datrix.gateway.api.deps import (
    Caller,
    DatasetWriter,
    QualityReader,
    ScanRunner,
    Submissions,
    accepted,
)
from datrix.gateway.api.intake import Intake
from datrix.gateway.api.models import Accepted, ScanBody, ScanStatus, Score
from datrix.gateway.api.problems import ApiProblem, Problem
from datrix.gateway.api.progress import ProgressBoard
from datrix.gateway.errors import UserInputError
from datrix.runtime.bootstrap import App
from datrix.streams import scratch

router = APIRouter(tags=["datasets"])


ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"description": "Handed in: poll the Location"}}


@router.post(
    "/v1/datasets/{dataset_id}/scan",
    status_code=202,
    response_model=Accepted,
    responses=ACCEPTED,
)
def post_scan(
    request: Request,
    response: Response,
    caller: ScanRunner,
    dataset_id: str,
    body: ScanBody | None = None,
) -> Accepted:
    """Scan the dataset's latest version (asynchronous: 202, then poll the scan)."""
    chosen = body or ScanBody()
    done = services.request_scan(
        caller.runtime,
        dataset_id,
        engine=chosen.engine,
        weights=chosen.weights,
        actor=caller.key.actor,
        idempotency=idempotency.seed(request),
    )
    submissions: Submissions = request.app.state.submissions
    submissions.scan(caller.key.tenant, done.scan_id, done.dataset_id, done.command_id)
    intake: Intake = request.app.state.intake
    board: ProgressBoard = request.app.state.progress
    if caller.runtime.settings.embedded:  # this process runs the job: its progress is here
        board.open(caller.key.tenant, done.scan_id)
    intake.settle(caller.runtime, done.scan_id, partial(board.settle, done.scan_id))
    location = f"/v1/datasets/{done.dataset_id}/scan/{done.scan_id}"
    return accepted(
        response,
        location,
        Accepted(
            command_id=done.command_id,
            status_url=location,
            dataset_id=done.dataset_id,
            scan_id=done.scan_id,
        ),
    )


UPLOAD_BODY = {
    "required": True,
    "description": "The file: its bytes as the body (curl --data-binary @file), or a "
    "multipart/form-data form with the file as its `file` part (curl -F file=@file) and "
    "optionally `name`, `filename`, `encoding` as fields instead of the query",
    "content": {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        upload.MULTIPART: {
            "schema": {
                "type": "object",
                "required": [upload.FILE_PART],
                "properties": {
                    upload.FILE_PART: {"type": "string", "format": "binary"},
                    "name": {"type": "string", "minLength": 1, "maxLength": 200},
                    "filename": {"type": "string", "maxLength": 255},
                    "encoding": {"type": "string", "maxLength": 40},
                },
            }
        },
    },
}


def _field(query: str | None, form: dict[str, str], key: str, longest: int) -> str | None:
    """A parameter given in the query or as a form field (not both, unless equal)."""
    given = form.get(key)
    if given is not None and query is not None and given != query:
        raise ApiProblem(422, f"{key}: given in the query and the form, differently")
    found = query if query is not None else given
    if found is not None and len(found) > longest:
        raise ApiProblem(422, f"{key}: at most {longest} characters")
    return found


@router.post(
    "/v1/datasets",
    status_code=202,
    response_model=Accepted,
    responses={
        **ACCEPTED,
        200: {"description": "The file is the dataset's latest version already"},
        413: {"model": Problem, "description": "Larger than DATRIX_API_MAX_UPLOAD_MB"},
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def post_dataset(
    request: Request,
    response: Response,
    caller: DatasetWriter,
    name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Dataset name (required here or as a multipart field)",
        ),
    ] = None,
    filename: Annotated[
        str | None,
        Query(max_length=255, description="The file's name: its suffix tells the format"),
    ] = None,
    encoding: Annotated[str | None, Query(max_length=40, description="Default utf-8")] = None,
) -> Accepted:
    """Upload a file as a new dataset, or a new version of the dataset ``name``
    (asynchronous: 202, then poll the command). The body is the file itself, or a
    multipart form whose ``file`` part is; either is streamed to disk in chunks. CSV,
    TSV, JSON, JSON Lines, Parquet or Excel, validated as the CLI does (a bad file is a
    422 problem and nothing is recorded)."""
    built: App = request.app.state.datrix
    multipart = upload.is_multipart(request)
    if name is None and not multipart:
        raise ApiProblem(422, "name: the dataset's name is required (query parameter)")
    limit_mb = built.settings.api_max_upload_mb
    home = built.settings.home
    workdir = await run_in_threadpool(scratch.owned_tempdir, home / "tmp", "upload-")
    try:
        target = workdir / "upload"
        if multipart:
            got = await upload.receive_multipart(request, target, limit_mb)
        else:
            got = await upload.receive_raw(request, target, limit_mb)
        chosen = _field(name, got.fields, "name", 200)
        if not chosen:
            raise ApiProblem(422, "name: the dataset's name is required (query or form field)")
        shown_name = _field(filename, got.fields, "filename", 255) or got.part_filename
        text = _field(encoding, got.fields, "encoding", 40) or "utf-8"
        if got.size == 0:
            raise ApiProblem(422, "the body is empty: send the file's bytes", slug="bad-file")
        suffix = Path(shown_name or "").suffix.lower()
        if not re.fullmatch(r"\.[a-z0-9]{1,8}", suffix):
            suffix = ""
        shown = Path(shown_name).name if shown_name else f"{chosen}{suffix}"
        if suffix:  # the suffix tells the format
            target = await run_in_threadpool(target.rename, workdir / f"upload{suffix}")
        try:
            done = await run_in_threadpool(
                partial(
                    services.submit_version,
                    caller.runtime,
                    target,
                    name=chosen,
                    source=shown,
                    encoding=text,
                    actor=caller.key.actor,
                    idempotency=idempotency.seed(request),
                )
            )
        except UserInputError as exc:
            raise ApiProblem(422, str(exc), slug="bad-file") from None
    finally:
        await run_in_threadpool(scratch.release, workdir)
    location = f"/v1/datasets/{done.dataset_id}"
    if done.command_id is None:
        response.status_code = 200
        return Accepted(
            command_id=None, status="unchanged", status_url=location, dataset_id=done.dataset_id
        )
    submissions: Submissions = request.app.state.submissions
    submissions.command(caller.key.tenant, done.command_id)
    intake: Intake = request.app.state.intake
    await run_in_threadpool(intake.settle, caller.runtime)  # Kafka mode: flushes
    status_url = f"/v1/commands/{done.command_id}"
    return accepted(
        response,
        status_url,
        Accepted(command_id=done.command_id, status_url=status_url, dataset_id=done.dataset_id),
    )


@router.get(
    "/v1/datasets/{dataset_id}/scan/{scan_id}",
    response_model=ScanStatus,
)
def get_scan(request: Request, caller: QualityReader, dataset_id: str, scan_id: str) -> ScanStatus:
    """A scan's status (queued, running, completed, failed) and, once completed, its
    scores and issue counts (the issues: /v1/quality/{datasetId}/issues)."""
    submissions: Submissions = request.app.state.submissions
    views = services.views(caller.runtime)
    scan = views.scan(scan_id)
    if scan is None:
        mine = submissions.scan_of(caller.key.tenant, scan_id)
        found = services.resolve_dataset(caller.runtime, dataset_id)
        if mine is None or mine[0] != found["id"]:
            raise ApiProblem(404, f"dataset {dataset_id} has no scan {scan_id}")
        outcome = services.command_status(caller.runtime, mine[1])
        if outcome is not None and not outcome.accepted:
            return ScanStatus(
                scan_id=scan_id, dataset_id=mine[0], status="failed", error=outcome.reason
            )
        return ScanStatus(scan_id=scan_id, dataset_id=mine[0], status="queued")
    found = services.resolve_dataset(caller.runtime, dataset_id)
    if scan["dataset_id"] != found["id"]:
        raise ApiProblem(404, f"dataset {dataset_id} has no scan {scan_id}")
    status = scan["status"] if scan["status"] in ("queued", "running", "failed") else None
    completed = scan["status"] == "completed"
    return ScanStatus(
        scan_id=scan_id,
        dataset_id=scan["dataset_id"],
        status="completed" if completed else (status or "running"),
        dataset_version=scan["dataset_version"],
        error=scan["error"],
        score=Score(**services.score_document(scan)) if completed else None,
        issue_count=scan["issue_count"] if completed else None,
        created_at=scan["created_at"],
        completed_at=scan["completed_at"],
    )


def _contract(
    request: Request, response: Response, caller: Caller, ref: str, frozen: bool
) -> Accepted:
    from datrix.gateway.contracts import submit_contract

    found = services.resolve_dataset(caller.runtime, ref)
    command_id = services.derived_id(idempotency.seed(request), f"contract-{frozen}")
    submitted, _ = submit_contract(
        caller.runtime, found, frozen, actor=caller.key.actor, command_id=command_id
    )
    submissions: Submissions = request.app.state.submissions
    submissions.command(caller.key.tenant, str(submitted))
    intake: Intake = request.app.state.intake
    intake.settle(caller.runtime)
    location = f"/v1/commands/{submitted}"
    body = Accepted(command_id=str(submitted), status_url=location, dataset_id=found["id"])
    return accepted(response, location, body)


@router.put(
    "/v1/datasets/{dataset_id}/contract",
    status_code=202,
    response_model=Accepted,
    responses=ACCEPTED,
)
def freeze_contract(
    request: Request, response: Response, caller: DatasetWriter, dataset_id: str
) -> Accepted:
    """Freeze the dataset's schema contract as of its latest version (asynchronous: 202,
    then poll the command; refused when already frozen). Scans of later versions then
    report any schema change as a critical ``schema_change`` issue."""
    return _contract(request, response, caller, dataset_id, True)


@router.delete(
    "/v1/datasets/{dataset_id}/contract",
    status_code=202,
    response_model=Accepted,
    responses=ACCEPTED,
)
def unfreeze_contract(
    request: Request, response: Response, caller: DatasetWriter, dataset_id: str
) -> Accepted:
    """Unfreeze the dataset's schema contract (asynchronous: 202, then poll the command;
    refused when it is not frozen)."""
    return _contract(request, response, caller, dataset_id, False)


@router.delete(
    "/v1/datasets/{dataset_id}",
    status_code=202,
    response_model=Accepted,
    responses=ACCEPTED,
)
def delete_dataset(
    request: Request, response: Response, caller: DatasetWriter, dataset_id: str
) -> Accepted:
    """Delete the dataset (asynchronous: 202, then poll the command)."""
    retried = services.derived_id(idempotency.seed(request), "delete")
    if retried is not None and services.command_status(caller.runtime, retried) is not None:
        # a retry of a deletion that was processed and whose answer was lost (the server
        # killed before it stored it): the dataset is gone, the answer is the same
        location = f"/v1/commands/{retried}"
        done_on = services.views(caller.runtime).dataset_of_command(str(retried))
        return accepted(
            response,
            location,
            Accepted(command_id=str(retried), status_url=location, dataset_id=done_on),
        )
    found_id = services.resolve_dataset(caller.runtime, dataset_id)["id"]
    command_id = services.delete_dataset(
        caller.runtime, found_id, actor=caller.key.actor, idempotency=idempotency.seed(request)
    )
    submissions: Submissions = request.app.state.submissions
    submissions.command(caller.key.tenant, command_id)
    intake: Intake = request.app.state.intake
    intake.settle(caller.runtime)
    location = f"/v1/commands/{command_id}"
    return accepted(
        response,
        location,
        Accepted(command_id=command_id, status_url=location, dataset_id=found_id),
    )
