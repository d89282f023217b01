"""Every type a reader infers is stored in a type both engines scan (jobs/quality/types.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from datrix.jobs.ingest import ingest
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.quality.types import json_records_frame, normalise_types, stored_notes
from datrix.jobs.report import ScanOptions
from tests.awkward_types import ROWS, awkward_frame, mixed_json_records, write_mixed_json


def test_128_bit_integers_from_a_csv_scan(tmp_path: Path) -> None:
    src = tmp_path / "accounts.csv"
    src.write_text(
        "account_id,amount\n12345678901234567890,1\n98765432109876543210,2\n"
        "11111111111111111111,3\n",
        encoding="utf-8",
    )
    assert pl.read_csv(src).schema["account_id"] == pl.Int128  # what the reader infers
    work = tmp_path / "work"
    work.mkdir()
    stored = ingest(src, work)
    pq.read_table(stored.parquet_path)  # pyarrow (and Spark) read it back
    assert stored.schema["account_id"] == "Decimal(precision=38, scale=0)"
    report = PolarsScanEngine().scan(stored.parquet_path, ScanOptions())
    profile = {p.name: p for p in report.column_profiles}["account_id"]
    assert profile.extra["stored_as"] == "decimal(38,0): 128-bit integers"
    assert profile.distinct_count == 3
    top = {v["value"] for v in profile.extra["top_values"]}
    assert "98765432109876543210" in top  # exact, not rounded through a float


def test_128_bit_integers_beyond_38_digits_are_stored_as_text(tmp_path: Path) -> None:
    big = 10**38 + 1
    frame = pl.DataFrame({"n": pl.Series([big, -big, 5], dtype=pl.Int128)})
    frame.write_parquet(tmp_path / "in.parquet")
    out = normalise_types(tmp_path / "in.parquet", tmp_path)
    assert pl.read_parquet(out)["n"].to_list() == [str(big), str(-big), "5"]
    assert stored_notes(out) == {"n": "string: 128-bit integers of more than 38 digits"}


def test_portable_files_are_kept_as_given(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pl.DataFrame({"a": [1, 2], "b": ["x", None], "c": [0.5, None]}).write_parquet(path)
    assert normalise_types(path, tmp_path) == path
    assert stored_notes(path) == {}


def test_awkward_corpus_scans_with_notes(tmp_path: Path) -> None:
    src = tmp_path / "awkward.parquet"
    awkward_frame().write_parquet(src)
    work = tmp_path / "work"
    work.mkdir()
    stored = ingest(src, work)
    assert pq.read_table(stored.parquet_path).num_rows == ROWS
    report = PolarsScanEngine().scan(stored.parquet_path, ScanOptions())
    profiles = {p.name: p for p in report.column_profiles}
    assert list(profiles) == list(awkward_frame().columns)
    assert {n: p.extra.get("stored_as") for n, p in profiles.items() if "stored_as" in p.extra} == {
        "account_id": "decimal(38,0): 128-bit integers",
        "wait": "int64: durations in us",
        "opens_at": "string: times of day (HH:MM:SS)",
        "nothing": "string: no values (every value is null)",
        "big_unsigned": "decimal(20,0): unsigned 64-bit integers above 2^63",
    }
    types = {n: p.type for n, p in profiles.items()}
    assert types["seen_at"] == "datetime"
    assert types["small_unsigned"] == "integer"  # below 2^63: int64, nothing to say
    assert types["level"] == types["tag"] == "string"
    assert profiles["ratio"].extra["nan_count"] == 1
    assert profiles["nothing"].null_count == ROWS
    assert report.rows == ROWS and report.score.overall is not None


@pytest.mark.parametrize("lines", [False, True], ids=["json", "jsonl"])
def test_mixed_type_json_fields_are_stored_as_text(tmp_path: Path, lines: bool) -> None:
    src = write_mixed_json(tmp_path / ("mixed.jsonl" if lines else "mixed.json"), lines)
    work = tmp_path / "work"
    work.mkdir()
    stored = ingest(src, work)
    frame = pl.read_parquet(stored.parquet_path)
    assert frame["id"].dtype == pl.Int64
    assert frame["code"].to_list()[:4] == ["C0", "1", "2", "C3"]
    assert frame["score"].to_list()[:2] == ["[0, 0]", "1.5"]
    assert frame["meta"].to_list()[:2] == ["none", '{"k": 1}']
    notes = stored_notes(stored.parquet_path)
    assert notes["code"] == "string: mixed JSON types (integer, string) as JSON text"
    assert notes["score"] == "string: mixed JSON types (float, list) as JSON text"
    report = PolarsScanEngine().scan(stored.parquet_path, ScanOptions())
    assert report.rows == ROWS
    assert {p.name for p in report.column_profiles} == set(mixed_json_records()[0])


def test_uniform_json_is_read_by_polars_as_before() -> None:
    frame, notes = json_records_frame([{"a": 1, "b": 1.5}, {"a": 2, "b": 2}])
    assert notes == {}
    assert frame.schema == pl.Schema({"a": pl.Int64, "b": pl.Float64})
