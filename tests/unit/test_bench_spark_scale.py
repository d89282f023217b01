"""tests/benchmarks/bench_spark_scale.py's offline parts: what it compares between the
engines, the table it prints, and the sizes it refuses (its run: `make bench-spark-scale`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_spark_scale.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_spark_scale", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _issue(kind: str, column: str | None, count: int) -> dict[str, Any]:
    return {"type": kind, "column": column, "affected_count": count}


def test_summary_is_what_the_acceptance_compares() -> None:
    doc = {
        "rows": 20_000,
        "issues": [
            _issue("exact_duplicates", None, 200),
            _issue("near_duplicates", None, 150),
            _issue("pii_detected", "email", 19_000),
            _issue("pii_detected", "phone", 19_000),
            _issue("inconsistent_format", "signup_date", 40),
            _issue("type_mismatch", "age", 3),
            _issue("missing_values", "age", 10),
        ],
    }
    assert _bench().summary(doc) == {
        "rows": 20_000,
        "exact_duplicates": 200,
        "near_duplicates": 150,
        "pii_columns": ["email", "phone"],
        "format_columns": ["signup_date"],
        "type_columns": ["age"],
    }


def test_the_table_has_a_row_per_process() -> None:
    text = _bench().table([("spark", 1_000_000, 61.04, "driver JVM", 501.4)])
    assert text.splitlines()[-1] == "| spark | 1,000,000 | 61.0 | driver JVM | 501 |"


def test_more_than_a_million_rows_must_be_whole_millions(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="whole number of millions"):
        _bench().ensure_data(2_500_000, tmp_path)
