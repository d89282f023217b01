"""Storing and loading a report's affected rows: lists (Spark engine) and RowSets (Polars
engine, indices or bitmap) round-trip, the Parquet keeps its schema and order, and storing
millions of rows streams instead of materialising them."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.gateway.html_report import SAMPLE_ROWS, _samples
from datrix.jobs import runner
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.report import Issue, ScanReport, Scores
from datrix.streams.object_store import LocalObjectStore


def issue(issue_id: str, kind: str = "null_values", count: int = 0) -> Issue:
    return Issue(issue_id, kind, "a", "completeness", "warning", "d", count, 0.0, 1.0, True)


def report(size: int, rows: dict[str, object]) -> ScanReport:
    return ScanReport(
        rows=size,
        columns=1,
        score=Scores(90.0, 90.0, 90.0, 90.0, 90.0, 90.0),
        column_profiles=[],
        issues=[issue(i, count=len(r)) for i, r in rows.items()],  # type: ignore[arg-type]
        affected_rows=rows,  # type: ignore[arg-type]
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


def test_lists_and_rowsets_round_trip(store: LocalObjectStore) -> None:
    size = 1_000_000
    sparse_idx = np.arange(5, size, 9973, dtype=np.int64)
    sparse = RowSet.from_indices(sparse_idx, size)
    dense = RowSet.from_mask(np.ones(size, dtype=bool))
    assert sparse.nbytes == sparse_idx.nbytes and dense.nbytes == size // 8  # both kinds
    original = report(size, {"I001": dense, "I002": [7, 3, 11], "I003": sparse})

    uri, sha = runner.store_report(original, "acme", store)
    loaded = runner.load_report(uri, store)

    assert set(loaded.affected_rows) == {"I001", "I002", "I003"}
    assert loaded.affected_rows["I001"] == dense
    assert len(loaded.affected_rows["I001"]) == size
    assert loaded.affected_rows["I002"] == [3, 7, 11]
    assert loaded.affected_rows["I003"] == sparse_idx.tolist()
    assert loaded.issues == original.issues and loaded.rows == size
    # one issue alone, without the others
    assert runner.affected_rows(uri, "I002", store) == [3, 7, 11]
    assert runner.affected_rows(uri, "I003", store) == sparse
    assert runner.affected_rows(uri, "I009", store) == []

    # the report JSON keeps its shape: no rows inline, the Parquet object by uri and sha
    doc = json.loads(store.read_bytes(uri))
    assert "affected_rows" not in doc
    assert {"affected_rows_uri", "affected_rows_sha256"} <= set(doc)
    # the Parquet: issue_id String, row UInt64; by issue (report order), rows ascending
    frame = pl.read_parquet(store.local_path(doc["affected_rows_uri"]))
    assert frame.schema == pl.Schema({"issue_id": pl.String, "row": pl.UInt64})
    assert frame.height == size + 3 + sparse_idx.size
    assert frame["issue_id"].unique(maintain_order=True).to_list() == ["I001", "I002", "I003"]
    assert frame.filter(pl.col("issue_id") == "I002")["row"].to_list() == [3, 7, 11]
    assert frame.filter(pl.col("issue_id") == "I001")["row"].is_sorted()

    # content-addressed: the same rows, however held, give the same objects
    again = report(size, {"I001": list(range(size)), "I002": [3, 7, 11], "I003": sparse})
    assert runner.store_report(again, "acme", store) == (uri, sha)


def test_report_without_rows(store: LocalObjectStore) -> None:
    empty = report(10, {})
    uri, _ = runner.store_report(empty, "acme", store)
    assert runner.load_report(uri, store).affected_rows == {}
    assert runner.affected_rows(uri, "I001", store) == []


def test_loads_rows_stored_by_the_previous_writer(store: LocalObjectStore) -> None:
    """Reports stored before the streaming writer (a polars frame, issues interleaved
    allowed, rows not necessarily sorted) still load."""
    frame = pl.DataFrame(
        {"issue_id": ["I001", "I002", "I001"], "row": [4, 1, 2]},
        schema={"issue_id": pl.String, "row": pl.UInt64},
    )
    path = store.root / "legacy.parquet"
    frame.write_parquet(path, statistics=False)
    rows_uri, rows_sha = store.put_file("acme", path, ".rows.parquet")
    doc = {
        "rows": 5,
        "columns": 1,
        "score": Scores(1, 1, 1, 1, 1, 1).as_dict(),
        "column_profiles": [],
        "issues": [],
        "engine": "spark",
        "affected_rows_uri": rows_uri,
        "affected_rows_sha256": rows_sha,
    }
    uri, _ = store.put_bytes("acme", json.dumps(doc).encode(), ".report.json")
    loaded = runner.load_report(uri, store)
    assert loaded.affected_rows == {"I001": [2, 4], "I002": [1]}
    assert runner.affected_rows(uri, "I001", store) == [2, 4]


def test_row_blocks_are_bounded_and_ascending() -> None:
    dense = RowSet.from_mask(np.ones(3_000_000, dtype=bool))
    blocks = list(runner.row_blocks(dense, block=1 << 20))
    assert max(b.size for b in blocks) <= 1 << 20
    assert sum(b.size for b in blocks) == 3_000_000
    assert [int(i) for b in runner.row_blocks([5, 2, 9], block=2) for i in b] == [2, 5, 9]


def test_storing_a_dense_rowset_of_20m_rows_streams(store: LocalObjectStore) -> None:
    size = 20_000_000
    dense = RowSet.from_mask(np.ones(size, dtype=bool))  # 2.5 MB bitmap
    big = report(size, {"I001": dense, "I002": [0, size - 1]})
    tracemalloc.start()
    try:
        uri, _ = runner.store_report(big, "acme", store)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # all the rows as int64 would be 160 MB, as a Python list about 800 MB
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    doc = json.loads(store.read_bytes(uri))
    parquet = store.local_path(doc["affected_rows_uri"])
    assert parquet.stat().st_size < 8 * 2**20  # ascending rows delta-encode to almost nothing
    assert runner.affected_rows(uri, "I002", store) == [0, size - 1]


def test_html_samples_take_only_the_first_rows_of_a_rowset(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    pl.DataFrame({"a": list(range(100))}).write_parquet(path)
    dup = RowSet.from_mask(np.ones(100, dtype=bool))
    sample = ScanReport(
        rows=100,
        columns=1,
        score=Scores(90.0, 90.0, 90.0, 90.0, 90.0, 90.0),
        column_profiles=[],
        issues=[issue("I001", "exact_duplicates", 100)],
        affected_rows={"I001": dup},
    )
    html = _samples(path, sample)
    assert f"first {SAMPLE_ROWS:,} shown" in html
    assert html.count('<tr><td class="num">') == SAMPLE_ROWS
