"""File names are names, never patterns: Polars expands ``[`` ``]`` ``*`` ``?`` in paths
unless told not to, and a file called ``sales[2026].csv`` was refused with
"expanded paths were empty"."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from tests.integration.conftest import Cli

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["sales[2026].csv", "q*?.csv", "x[1].parquet", "y[a].jsonl"])
def test_file_names_with_glob_characters_scan(cli: Cli, tmp_path: Path, name: str) -> None:
    frame = pl.DataFrame({"a": [1, 2, 3, 4], "b": ["x", "y", "z", "w"]})
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.write_csv(path)
    elif name.endswith(".parquet"):
        frame.write_parquet(path)
    else:
        frame.write_ndjson(path)
    # a sibling a pattern would match: the scan must read the named file only
    frame.head(1).write_csv(tmp_path / "sales2.csv")
    page = tmp_path / "report[1].html"
    run = cli("scan", str(path), "--name", "named", "--format", "json", "--html", str(page))
    assert run.code == 0, run.stderr
    doc = run.json()
    assert (doc["rows"], doc["columns"]) == (4, 2)
    assert "<html" in page.read_text(encoding="utf-8").lower()
