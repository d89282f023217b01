"""Paging an issue's rows a block at a time (``routes/scans.py``)."""

from __future__ import annotations

import numpy as np

from datrix.gateway.api.routes.scans import rows_after
from datrix.jobs.quality.rowset import RowSet


def test_rows_after_pages_through_blocks() -> None:
    mask = np.zeros(1000, dtype=bool)
    mask[::7] = True
    for rows in (RowSet.from_mask(mask), [int(i) for i in np.flatnonzero(mask)]):
        expected = [int(i) for i in np.flatnonzero(mask)]
        got: list[int] = []
        after = -1
        while page := rows_after(rows, after, 9, block=16):
            assert len(page) <= 9
            got += page
            after = page[-1]
        assert got == expected


def test_rows_after_the_last_row_is_empty() -> None:
    rows = RowSet.from_indices([3, 5, 8], 10)
    assert rows_after(rows, 8, 5) == []
    assert rows_after(rows, -1, 2) == [3, 5]
    assert rows_after(RowSet.empty(10), -1, 5) == []
