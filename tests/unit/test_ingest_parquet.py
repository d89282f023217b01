"""Parquet inputs are stored byte for byte when a bounded scan can read them a row group at
a time, and rewritten otherwise; either way the version holds the same rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from datrix.jobs import ingest as ingest_module
from datrix.jobs.ingest import ingest
from datrix.streams.content import sha256_file

FRAME = pl.DataFrame({"id": list(range(1_000)), "name": [f"n{i % 7}" for i in range(1_000)]})


def test_small_row_groups_are_kept_as_given(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    FRAME.write_parquet(path, row_group_size=250)
    work = tmp_path / "work"
    work.mkdir()
    found = ingest(path, work)
    assert found.parquet_path == path and not any(work.iterdir())
    assert (found.rows, found.columns, found.format) == (1_000, 2, "parquet")
    assert found.source_sha256 == sha256_file(path)


def test_large_row_groups_are_rewritten(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "MAX_ROW_GROUP_ROWS", 100)
    path = tmp_path / "in.parquet"
    FRAME.write_parquet(path, row_group_size=1_000)
    work = tmp_path / "work"
    work.mkdir()
    found = ingest(path, work)
    assert found.parquet_path == work / "data.parquet"
    assert pl.read_parquet(found.parquet_path).equals(FRAME)
    assert pq.ParquetFile(path).metadata.num_row_groups == 1


def test_a_damaged_parquet_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(ingest_module.InputError, match=r"bad\.parquet"):
        ingest(path, tmp_path)
