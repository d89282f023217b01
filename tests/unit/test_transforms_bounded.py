"""``apply_all`` in bounded memory (a chunk of rows at a time from the Parquet file) gives
the in-memory ``apply_all``'s table and change rows, deterministic bytes, and refuses
the fixes that need the whole table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate
from datrix.jobs.transforms import polars_transforms as pt
from datrix.jobs.transforms.base import ROW_ID, Secrets
from datrix.jobs.transforms.polars_bounded import apply_all_bounded
from datrix.jobs.transforms.specs import (
    CoerceTypes,
    Dedupe,
    FixSpec,
    Impute,
    Normalise,
    Outliers,
    Pii,
    Sentinels,
)

SECRETS = Secrets(salt=b"s", token_key=bytes(32))


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bounded")
    truth = generate(3000, out, seed=5)
    return out / "dirty.parquet", truth


def specs_for(frame: pl.DataFrame, truth: dict[str, Any]) -> list[FixSpec]:
    numeric = [c for c, t in frame.schema.items() if t.is_numeric()]
    text = [c for c, t in frame.schema.items() if t == pl.String]
    nulls = [c for c, n in truth["nulls"].items() if n > 0]
    specs: list[FixSpec] = [Normalise(c) for c in truth["case_variant_columns"]]
    specs += [Impute(c) for c in nulls]
    specs += [
        Dedupe("exact"),
        Impute(numeric[1], "group", by=truth["case_variant_columns"][0]),
        Outliers(numeric[2], None, "null"),
        Outliers(numeric[3], (0, 5, 2999)),
        Sentinels(numeric[4], (1, 2, 3)),
        Normalise(text[0], "trim"),
        Pii(text[1], "hash"),
        Pii(text[2], "drop_column"),
        Impute(text[2], "mode"),  # skipped: its column is dropped first
        CoerceTypes(text[3], "number"),
    ]
    return specs


def test_bounded_equals_in_memory(generated: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, truth = generated
    frame = pl.read_parquet(path)
    specs = specs_for(frame, truth)
    whole = pt.apply_all(specs, frame, SECRETS)
    outcome = apply_all_bounded(
        specs, path, tmp_path / "t.parquet", tmp_path / "c.parquet", SECRETS, chunk_rows=700
    )
    fixed = pl.read_parquet(tmp_path / "t.parquet")
    changes = pl.read_parquet(tmp_path / "c.parquet")
    assert whole.changes.filter(pl.col("column").is_null()).height > 0  # something removed
    assert fixed.equals(whole.table.drop(ROW_ID))
    assert changes.equals(whole.changes)
    assert outcome.rows == fixed.height
    assert outcome.rows_removed == whole.changes.filter(pl.col("column").is_null()).height
    assert outcome.columns_dropped == [specs[-3].column]


def test_bounded_bytes_are_deterministic(
    generated: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, truth = generated
    specs = specs_for(pl.read_parquet(path), truth)
    outputs = []
    for i in range(2):
        apply_all_bounded(specs, path, tmp_path / f"t{i}", tmp_path / f"c{i}", SECRETS, 1000)
        outputs.append((tmp_path / f"t{i}").read_bytes() + (tmp_path / f"c{i}").read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (Dedupe("near"), "Spark engine"),
        (Impute("income", "knn"), "Spark engine"),
        (Impute("nope"), "unknown column 'nope'"),
    ],
)
def test_bounded_refuses_what_needs_the_whole_table(
    generated: tuple[Path, dict[str, Any]], tmp_path: Path, spec: FixSpec, message: str
) -> None:
    path, _ = generated
    with pytest.raises(ValueError, match=message):
        apply_all_bounded([spec], path, tmp_path / "t", tmp_path / "c")
    assert not (tmp_path / "t").exists()
