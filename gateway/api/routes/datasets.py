"""Datasets: list, read, columns, versions (queries on the read models)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from datrix.gateway import services
from datrix.gateway.api import paging
from datrix.gateway.api.deps import DatasetReader
from datrix.gateway.api.models import (
    ColumnProfile,
    Columns,
    Dataset,
    DatasetDetail,
    DatasetPage,
    Score,
    Version,
    Versions,
)
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem

router = APIRouter(tags=["datasets"])


def dataset_doc(row: dict[str, Any]) -> Dataset:
    return Dataset(**{k: row[k] for k in Dataset.model_fields})


@router.get("/v1/datasets", response_model=DatasetPage)
def list_datasets(
    caller: DatasetReader,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    sort: Annotated[
        Literal["created_at", "updated_at", "name"], Query(description="Sort field")
    ] = "created_at",
    order: Annotated[Literal["asc", "desc"], Query(description="Direction")] = "asc",
    status: Annotated[
        Literal["registered", "active", "deleted"] | None,
        Query(description="Only datasets in this status (default: all but deleted)"),
    ] = None,
    name: Annotated[str | None, Query(max_length=200, description="Exact name")] = None,
) -> DatasetPage:
    """The tenant's datasets, a page at a time."""
    after = None
    if cursor is not None:
        _, was_sort, was_order, value, last_id = paging.decode(cursor, "datasets", 5)
        if (was_sort, was_order) != (sort, order):
            raise ApiProblem(
                400,
                f"cursor: made for sort={was_sort}&order={was_order}; pass the same",
                slug="bad-cursor",
            )
        after = (value, str(last_id))
    rows = services.views(caller.runtime).datasets_page(
        limit=limit + 1,
        sort=sort,
        descending=order == "desc",
        after=after,
        status=status,
        name=name,
    )
    page = rows[:limit]
    following = None
    if len(rows) > limit:
        last = page[-1]
        following = paging.encode(["datasets", sort, order, last[sort], last["id"]])
    return DatasetPage(items=[dataset_doc(r) for r in page], next_cursor=following)


@router.get("/v1/datasets/{dataset_id}", response_model=DatasetDetail)
def get_dataset(caller: DatasetReader, dataset_id: str) -> DatasetDetail:
    """A dataset (its id, a unique prefix of it, or its name) and its current score."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    scans = [
        s for s in services.views(caller.runtime).scans(found["id"]) if s["status"] == "completed"
    ]
    latest = scans[-1] if scans else None
    return DatasetDetail(
        **dataset_doc(found).model_dump(),
        latest_scan_id=latest["id"] if latest else None,
        score=Score(**services.score_document(latest)) if latest else None,
    )


@router.get("/v1/datasets/{dataset_id}/columns", response_model=Columns)
def get_columns(caller: DatasetReader, dataset_id: str) -> Columns:
    """Per-column profiles of the dataset's newest completed scan."""
    found = services.resolve_dataset(caller.runtime, dataset_id)
    scan = services.latest_scan(caller.runtime, found["id"])
    profiles = services.scan_columns(caller.runtime, scan["id"])
    return Columns(
        dataset_id=found["id"],
        scan_id=scan["id"],
        items=[ColumnProfile(**p) for p in profiles],
    )


@router.get("/v1/datasets/{dataset_id}/versions", response_model=Versions)
def get_versions(caller: DatasetReader, dataset_id: str) -> Versions:
    """Every version of the dataset, oldest first."""
    found_id, rows = services.dataset_versions(caller.runtime, dataset_id)
    return Versions(dataset_id=found_id, items=[Version(**r) for r in rows])
