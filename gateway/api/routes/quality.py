"""Quality: a dataset's current score, its issues by impact, its scan history."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from datrix.gateway import services
from datrix.gateway.api import paging
from datrix.gateway.api.deps import QualityReader
from datrix.gateway.api.models import History, HistoryEntry, Issue, IssuePage, QualityScore, Score
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem
from datrix.jobs.report import DEFAULT_WEIGHTS

router = APIRouter(tags=["quality"])


@router.get("/v1/quality/{dataset_id}/score", response_model=QualityScore)
def get_score(caller: QualityReader, dataset_id: str) -> QualityScore:
    """The dataset's current quality: its newest completed scan's scores."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    scan = services.latest_scan(caller.runtime, found["id"])
    return QualityScore(
        dataset_id=found["id"],
        scan_id=scan["id"],
        dataset_version=scan["dataset_version"],
        scanned_at=scan["completed_at"] or scan["created_at"],
        score=Score(**services.score_document(scan)),
        weights={**DEFAULT_WEIGHTS, **(scan["weights"] or {})},
        overall_dimensions=services.overall_dimensions(scan["label_column"], scan["weights"]),
    )


@router.get("/v1/quality/{dataset_id}/issues", response_model=IssuePage)
def get_issues(
    caller: QualityReader,
    dataset_id: str,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    dimension: Annotated[str | None, Query(max_length=50)] = None,
    severity: Annotated[str | None, Query(max_length=50)] = None,
    column: Annotated[str | None, Query(max_length=1000)] = None,
) -> IssuePage:
    """The issues of the dataset's newest completed scan, by impact (highest first);
    filters: dimension, severity, column. A cursor stays on the scan it was made on."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    if cursor is not None:
        try:
            scan_id = str(json.loads(paging.decode(cursor, "issues", 3)[1])[0])
        except (TypeError, ValueError, IndexError, KeyError):
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor") from None
        scan = services.views(caller.runtime).scan(scan_id)
        if scan is None or scan["dataset_id"] != found["id"]:
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    else:
        scan = services.latest_scan(caller.runtime, found["id"])
    _, docs = services.scan_issues(caller.runtime, scan["id"])
    chosen = [
        d
        for d in docs
        if (dimension is None or d["dimension"] == dimension)
        and (severity is None or d["severity"] == severity)
        and (column is None or d["column"] == column)
    ]
    scope = json.dumps([scan["id"], dimension, severity, column])
    # a scan's issues never change, so an offset into them stays put
    page, following = paging.offset_page(chosen, cursor, "issues", scope, limit)
    return IssuePage(
        dataset_id=found["id"],
        scan_id=scan["id"],
        items=[Issue(**d) for d in page],
        next_cursor=following,
    )


@router.get("/v1/quality/{dataset_id}/history", response_model=History)
def get_history(
    caller: QualityReader, dataset_id: str, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> History:
    """Every scan of the dataset, oldest first, with its scores (failed ones with
    their error)."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    scans = services.views(caller.runtime).scans(found["id"])
    entries = [
        HistoryEntry(
            scan_id=s["id"],
            dataset_version=s["dataset_version"],
            status=s["status"],
            score=Score(**services.score_document(s)),
            created_at=s["created_at"],
            completed_at=s["completed_at"],
            error=s["error"],
        )
        for s in scans
    ]
    # scans are only ever appended in this order, so an offset stays put
    page, following = paging.offset_page(entries, cursor, "history", found["id"], limit)
    return History(dataset_id=found["id"], items=page, next_cursor=following)
