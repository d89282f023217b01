"""The schema-change detector (jobs/quality/schema_change.py): added, removed, renamed,
retyped, nullability and value-set changes, the issue a scan makes of them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from datrix.aggregates.stream import SchemaChange
from datrix.jobs.quality.schema_change import (
    RENAME_CONFIDENCE,
    ColumnProfile,
    SchemaComparison,
    detect_schema_changes,
    profile_frame,
    profile_table,
    rename_confidence,
    scan_schema_changes,
    schema_change_finding,
)
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.report import ScanOptions

N = 2_000


def customers(seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "customer_id": np.arange(N) + seed * N,
            "age": rng.integers(18, 90, N),
            "zip_code": rng.integers(10_000, 99_999, N),
            "segment": rng.choice(["gold", "silver", "bronze"], N),
            "email": [f"user{i}@example.org" for i in range(N)],
        }
    )


def kinds(changes: Sequence[SchemaChange]) -> list[tuple[str, str]]:
    return [(c.kind, c.column) for c in changes]


def test_the_issue_example_drop_add_and_integer_to_text() -> None:
    before = customers(1)
    rng = np.random.default_rng(7)
    after = (
        customers(2)
        .drop("email")
        .with_columns(
            pl.col("zip_code").cast(pl.String) + "-" + pl.lit("0000"),
            loyalty_points=pl.Series(rng.normal(500, 80, N)),
        )
    )
    changes = detect_schema_changes(profile_frame(before), profile_frame(after))
    assert kinds(changes) == [
        ("retyped", "zip_code"),
        ("removed", "email"),
        ("added", "loyalty_points"),
    ]
    retyped = changes[0]
    assert (retyped.before, retyped.after) == ("integer", "string")
    assert changes[1].before == "string" and changes[1].after is None
    assert changes[2].before is None and changes[2].after == "float"
    assert "integer to string" in retyped.detail


def test_an_unchanged_schema_with_new_rows_has_no_change() -> None:
    assert detect_schema_changes(profile_frame(customers(1)), profile_frame(customers(2))) == []


def test_a_renamed_column_is_a_likely_rename_with_its_confidence() -> None:
    before = customers(1)
    after = before.rename({"age": "age_years", "email": "e_mail"})
    changes = detect_schema_changes(profile_frame(before), profile_frame(after))
    assert kinds(changes) == [("renamed", "age_years"), ("renamed", "e_mail")]
    assert (changes[0].before, changes[0].after) == ("age", "age_years")
    assert "looks renamed" in changes[0].detail and "confidence 1.00" in changes[0].detail


def test_a_rename_with_fresh_rows_of_the_same_content_is_still_found() -> None:
    before = customers(1)
    after = customers(2).rename({"segment": "tier"})
    changes = detect_schema_changes(profile_frame(before), profile_frame(after))
    assert kinds(changes) == [("renamed", "tier")]


def test_unrelated_columns_are_not_a_rename() -> None:
    rng = np.random.default_rng(3)
    before = pl.DataFrame({"age": rng.integers(18, 90, N)})
    after = pl.DataFrame({"income": rng.lognormal(10, 1, N).round().astype(np.int64)})
    a, b = profile_frame(before)[0], profile_frame(after)[0]
    assert rename_confidence(a, b) < RENAME_CONFIDENCE
    assert kinds(detect_schema_changes([a], [b])) == [("removed", "age"), ("added", "income")]
    # two text columns with other values
    names = pl.DataFrame({"city": rng.choice(["Paris", "Rome", "Oslo"], N)})
    other = pl.DataFrame({"colour": rng.choice(["red", "green", "blue"], N)})
    assert rename_confidence(profile_frame(names)[0], profile_frame(other)[0]) < 0.5


def test_a_rename_needs_the_same_type() -> None:
    before = pl.DataFrame({"a": [1, 2, 3] * 100})
    after = pl.DataFrame({"b": ["1", "2", "3"] * 100})
    assert rename_confidence(profile_frame(before)[0], profile_frame(after)[0]) == 0.0


def test_each_column_takes_part_in_one_rename_at_most() -> None:
    before = pl.DataFrame({"x": np.arange(500)})
    after = pl.DataFrame({"y": np.arange(500), "z": np.arange(500)})
    changes = detect_schema_changes(profile_frame(before), profile_frame(after))
    assert kinds(changes) == [("renamed", "y"), ("added", "z")]


def test_nullability_is_reported_when_nulls_appear_not_when_they_go() -> None:
    clean = pl.DataFrame({"n": list(range(100))})
    holes = pl.DataFrame({"n": [None, *range(1, 100)]})
    appeared = detect_schema_changes(profile_frame(clean), profile_frame(holes))
    assert kinds(appeared) == [("nullability", "n")]
    assert (appeared[0].before, appeared[0].after) == ("not null", "nullable")
    assert detect_schema_changes(profile_frame(holes), profile_frame(clean)) == []


def test_a_categorical_value_set_change() -> None:
    before = pl.DataFrame({"status": ["open", "closed"] * 50})
    after = pl.DataFrame({"status": ["open", "closed", "archived", "open"] * 25})
    changes = detect_schema_changes(profile_frame(before), profile_frame(after))
    assert kinds(changes) == [("values", "status")]
    assert changes[0].before == "'closed', 'open'"
    assert changes[0].after == "'archived', 'closed', 'open'"
    assert "new value 'archived'" in changes[0].detail
    gone = detect_schema_changes(profile_frame(after), profile_frame(before))
    assert "no more 'archived'" in gone[0].detail


def test_free_text_and_identifiers_are_not_categorical() -> None:
    ids = profile_frame(pl.DataFrame({"id": [f"k{i}" for i in range(30)]}))[0]
    assert ids.values is None  # each value once: not a category
    many = profile_frame(pl.DataFrame({"c": [f"v{i % 60}" for i in range(6_000)]}))[0]
    assert many.values is None  # more than 50 values
    assert profile_frame(pl.DataFrame({"c": ["a", "b"] * 10}))[0].values == frozenset({"a", "b"})


def test_a_column_named_twice_is_refused() -> None:
    p = ColumnProfile("a", "integer", False, None, ())
    with pytest.raises(ValueError, match="'a' appears twice in the before schema"):
        detect_schema_changes([p, p], [p])


def test_profile_table_counts_nulls_and_values_over_every_row(tmp_path: Path) -> None:
    # the sample (every 40th row) sees no null and not the rare value; the table does
    values = ["a", "b"] * 2_000
    values[1] = "rare"
    data = pl.DataFrame({"c": values, "n": [1.5, None, *([2.5] * 3_998)]})
    path = tmp_path / "t.parquet"
    data.write_parquet(path)
    for table in (ScanTable.open(path), ScanTable.open(path, in_memory_mb=0, chunk_rows=500)):
        c, n = profile_table(table, sample_rows=100)
        assert c.values == frozenset({"a", "b", "rare"}) and not c.nullable
        assert n.nullable and n.fingerprint[0] == pytest.approx(1 / 4_000)


def test_the_scan_compares_with_the_baseline_or_the_contract(tmp_path: Path) -> None:
    v1, v2, v3 = tmp_path / "1.parquet", tmp_path / "2.parquet", tmp_path / "3.parquet"
    customers(1).write_parquet(v1)
    customers(2).drop("email").write_parquet(v2)
    customers(3).drop("email").write_parquet(v3)
    table = ScanTable.open(v3)
    assert scan_schema_changes(table, ScanOptions()) is None  # version 1: no baseline
    same = scan_schema_changes(table, ScanOptions(previous_path=v2, previous_version=2))
    assert same == SchemaComparison((), 2, False)
    assert schema_change_finding(same, N) is None
    # frozen as of version 1: version 3 still lacks its email column
    frozen = ScanOptions(
        previous_path=v2,
        previous_version=2,
        contract_frozen=True,
        contract_path=v1,
        contract_version=1,
    )
    found = scan_schema_changes(table, frozen)
    assert found is not None and kinds(list(found.changes)) == [("removed", "email")]
    finding = schema_change_finding(found, N)
    assert finding is not None and finding.severity == "critical"
    assert finding.description.startswith("the schema contract (frozen as of version 1)")


def test_the_finding_ranks_breaking_changes_above_additions() -> None:
    added = ColumnProfile("new", "float", False, None, ())
    old = ColumnProfile("old", "integer", False, None, ())
    additive = SchemaComparison(tuple(detect_schema_changes([], [added])), 4)
    breaking = SchemaComparison(tuple(detect_schema_changes([old], [])), 4)
    a = schema_change_finding(additive, 100)
    b = schema_change_finding(breaking, 100)
    assert a is not None and b is not None
    assert (a.severity, a.affected_count) == ("info", 0)
    assert (b.severity, b.affected_count) == ("warning", 100)
    assert b.type == "schema_change" and b.column is None and b.dimension == "consistency"
    assert b.description == (
        "the schema changed since version 4 (1 change in 1 column): "
        "column 'old' (integer) was removed"
    )
