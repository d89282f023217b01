"""A scan's results beyond its issues: the rows an issue affects (``datrix rows``)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from datrix.gateway import services
from datrix.gateway.api import paging
from datrix.gateway.api.deps import QualityReader
from datrix.gateway.api.paging import DEFAULT_LIMIT, Cursor, Limit
from datrix.gateway.api.problems import ApiProblem

router = APIRouter(tags=["quality"])


class IssueRowPage(BaseModel):
    scan_id: str
    issue_id: str
    affected_count: int = Field(description="How many rows the issue affects in all")
    items: list[int] = Field(description="0-based row indices of the scanned version, ascending")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


def rows_after(rows: Sequence[int], after: int, limit: int, block: int = 1 << 20) -> list[int]:
    """At most ``limit`` of the ascending ``rows`` greater than ``after``, walked ``block``
    rows at a time (an issue may flag every row of a large file: never all of them at once)."""
    from datrix.jobs.runner import row_blocks

    found: list[int] = []
    for block_ in row_blocks(rows, block):
        if block_.size == 0 or int(block_[-1]) <= after:
            continue
        found.extend(int(i) for i in block_[block_ > after][: limit - len(found)])
        if len(found) >= limit:
            break
    return found


@router.get("/v1/scans/{scan_id}/issues/{issue_id}/rows", response_model=IssueRowPage)
async def get_issue_rows(
    caller: QualityReader,
    scan_id: str,
    issue_id: str,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> IssueRowPage:
    """The rows an issue of a scan affects (0-based indices into the scanned version,
    ascending), read from the scan's stored results as ``datrix rows`` does; ids or
    unique prefixes of them."""
    after = -1
    found = await run_in_threadpool(services.issue_rows, caller.runtime, scan_id, issue_id)
    if cursor is not None:
        _, was, after = paging.decode(cursor, "rows", 3)
        if was != f"{found.scan_id}/{found.issue_id}" or not isinstance(after, int) or after < 0:
            raise ApiProblem(400, "cursor: not a cursor of this list", slug="bad-cursor")
    page = await run_in_threadpool(rows_after, found.rows, after, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    following = (
        paging.encode(["rows", f"{found.scan_id}/{found.issue_id}", page[-1]]) if more else None
    )
    return IssueRowPage(
        scan_id=found.scan_id,
        issue_id=found.issue_id,
        affected_count=len(found.rows),
        items=page,
        next_cursor=following,
    )
