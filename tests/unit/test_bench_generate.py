"""The seeded dirty-dataset generator: determinism, and that the ground truth is exact."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from datrix.jobs.bench.generate import generate

ROWS = 5_000


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    return out, generate(ROWS, out, seed=7)


@pytest.fixture(scope="module")
def frame(bench: tuple[Path, dict[str, Any]]) -> pl.DataFrame:
    return pl.read_parquet(bench[0] / "dirty.parquet")


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    moved = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def test_files_and_returned_truth(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    out, truth = bench
    assert json.loads((out / "ground_truth.json").read_text()) == truth
    assert truth["rows"] == frame.height == ROWS
    assert truth["columns"] == frame.width >= 45
    assert truth["seed"] == 7
    assert set(truth["column_types"]) == set(frame.columns)
    assert set(truth["column_types"].values()) == {"integer", "float", "string", "boolean", "date"}
    assert truth["column_types"]["zip_code"] == "string"
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in frame.columns)


def test_same_seed_same_bytes_other_seed_differs(
    tmp_path: Path, bench: tuple[Path, dict[str, Any]]
) -> None:
    generate(ROWS, tmp_path / "again", seed=7)
    generate(ROWS, tmp_path / "other", seed=8)
    names = ("dirty.csv", "dirty.parquet", "ground_truth.json")
    for name in names:
        assert (tmp_path / "again" / name).read_bytes() == (bench[0] / name).read_bytes()
    for name in names:
        assert (tmp_path / "other" / name).read_bytes() != (bench[0] / name).read_bytes()


def test_csv_and_parquet_hold_the_same_content(
    bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame
) -> None:
    csv = pl.read_csv(
        bench[0] / "dirty.csv",
        infer_schema_length=10000,
        schema_overrides={c: pl.String for c in ("zip_code", "credit_card_number")},
    )
    assert csv.columns == frame.columns
    assert csv.equals(frame)


def test_exact_duplicates(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    truth = bench[1]["exact_duplicates"]
    assert truth["count"] == frame.height - frame.unique().height > 0
    assert truth["count"] == len(truth["rows"])
    repeats = frame.with_row_index().filter(~pl.struct(frame.columns).is_first_distinct())
    assert repeats["index"].to_list() == truth["rows"]


def test_near_duplicates(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    pairs = bench[1]["near_duplicates"]["pairs"]
    assert len(pairs) == pytest.approx(ROWS * 0.01, abs=1)
    duplicated = frame.is_duplicated().to_list()
    rows = frame.to_dicts()
    text = ("first_name", "last_name", "customer_note")
    for original, copy in pairs:
        assert original < copy
        assert not duplicated[copy]
        a, b = rows[original], rows[copy]
        assert a["record_id"] != b["record_id"]
        differing = [c for c in frame.columns if a[c] != b[c]]
        assert "record_id" in differing
        assert set(differing) - {"record_id"} and set(differing) <= {"record_id", *text}
        for col in set(differing) - {"record_id"}:
            assert abs(len(a[col]) - len(b[col])) <= 2


def test_null_counts_match_csv_and_parquet(
    bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame
) -> None:
    truth = bench[1]
    assert set(truth["nulls"]) == set(frame.columns)
    csv = pl.read_csv(bench[0] / "dirty.csv", infer_schema_length=10000)
    for source in (frame, csv):
        counts = dict(zip(source.columns, source.null_count().row(0), strict=True))
        assert counts == truth["nulls"]
    rates = {c: n / ROWS for c, n in truth["nulls"].items() if n}
    assert len(rates) >= 5
    assert all(0.005 <= r <= 0.35 for r in rates.values())
    assert set(truth["missingness"].values()) == {"MCAR", "MAR", "MNAR"}
    assert set(truth["missingness"]) <= set(rates)


def test_missingness_mechanisms(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    kinds = {kind: col for col, kind in bench[1]["missingness"].items()}
    mar = frame.group_by(pl.col("age_group") == "18-24").agg(pl.col(kinds["MAR"]).is_null().mean())
    rate = dict(mar.iter_rows())
    assert rate[True] > 0.4 > 0.05 > rate[False]
    # MNAR: high values went missing, so few high ones are left among the present values.
    present = frame[kinds["MNAR"]].drop_nulls()
    assert present.filter(present > 760).len() < 0.04 * present.len()


def test_no_stray_empty_strings(frame: pl.DataFrame) -> None:
    strings = [c for c, t in frame.schema.items() if t == pl.String]
    empties = frame.select((pl.col(strings).str.strip_chars() == "").sum()).row(0)
    assert set(empties) == {0}


def test_outliers_and_sentinel(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    truth = bench[1]
    assert 3 <= len(truth["outliers"]) <= 4
    for col, rows in truth["outliers"].items():
        assert truth["column_types"][col] == "float"
        values = frame[col].to_numpy()
        is_out = frame.with_row_index().select(pl.col("index").is_in(rows)).to_series().to_numpy()
        assert 0.003 < is_out.mean() < 0.008
        clean = values[~is_out]
        median, sd = float(sorted(clean)[len(clean) // 2]), float(clean.std())
        if col == "order_amount":  # lognormal: far above the whole clean range
            assert values[is_out].min() > 10 * clean.max()
        else:
            assert (abs(values[is_out] - median) > 8 * sd).all()
            assert (abs(clean - median) < 5 * sd).all()
    ((col, sentinel),) = truth["sentinel"].items()
    hits = frame.with_row_index().filter(pl.col(col) == sentinel["value"])["index"].to_list()
    assert hits == sentinel["rows"] and hits


def test_case_variants_constant_and_cardinality(
    bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame
) -> None:
    truth = bench[1]
    assert 2 <= len(truth["case_variant_columns"]) <= 3
    for col in truth["case_variant_columns"]:
        raw = frame[col].drop_nulls()
        assert raw.n_unique() > raw.str.strip_chars().str.to_lowercase().n_unique()
    # Outside those columns (and the near-duplicate copies) nothing is padded.
    copies = {copy for _, copy in truth["near_duplicates"]["pairs"]}
    rest = frame.with_row_index().filter(~pl.col("index").is_in(copies))
    for col in frame.columns:
        if col not in truth["case_variant_columns"] and frame.schema[col] == pl.String:
            raw = rest[col].drop_nulls()
            assert (raw == raw.str.strip_chars()).all(), col
    assert truth["constant_columns"] == [
        c for c in frame.columns if frame[c].n_unique() == 1 and frame[c].null_count() == 0
    ]
    assert "customer_note" in truth["high_cardinality_columns"]


def test_pii_values_are_valid_and_nowhere_else(
    bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame
) -> None:
    pii = bench[1]["pii_columns"]
    assert set(pii.values()) == {"email", "phone", "credit_card", "iban", "ip_address"}
    by_kind = {kind: col for col, kind in pii.items()}
    cards = frame[by_kind["credit_card"]].drop_nulls().to_list()
    assert all(len(c) == 16 and c.isdigit() and luhn_ok(c) for c in cards)
    ibans = frame[by_kind["iban"]].drop_nulls().to_list()
    assert all(re.fullmatch(r"DE\d{20}", i) and iban_ok(i) for i in ibans)
    patterns = {
        "email": r"[^@\s]+@[^@\s]+\.[a-z]+",
        "phone": r"\+1-\d{3}-\d{3}-\d{4}",
        "credit_card": r"\d{16}",
        "iban": r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}",
        "ip_address": r"(?:\d{1,3}\.){3}\d{1,3}",
    }
    for kind, pattern in patterns.items():
        col = by_kind[kind]
        assert frame[col].drop_nulls().str.contains(f"^{pattern}$").all(), col
        others = [c for c, t in frame.schema.items() if t == pl.String and c != col]
        found = frame.select(pl.col(others).str.contains(f"^{pattern}$").any()).row(0)
        assert not any(found), (kind, others)
    others = [
        c
        for c, t in frame.schema.items()
        if t == pl.String and c not in (by_kind["credit_card"], by_kind["iban"])
    ]
    assert not any(frame.select(pl.col(others).str.contains(r"\d{12,}").any()).row(0))


def test_rejects_tiny_requests(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate(10, tmp_path)


def test_date_problems(bench: tuple[Path, dict[str, Any]], frame: pl.DataFrame) -> None:
    """Placeholder birth dates, impossible births and future purchases are exactly the
    rows the ground truth lists; clean births never sit on a placeholder day."""
    truth = bench[1]
    indexed = frame.with_row_index()
    planted = truth["placeholder_dates"]["birth_date"]
    hits = indexed.filter(pl.col("birth_date") == planted["value"])["index"].to_list()
    assert hits == planted["rows"] and 0.003 < len(hits) / ROWS < 0.008
    assert indexed.filter(pl.col("birth_date") == "1970-01-01").height == 0
    birth = indexed.with_columns(pl.col("birth_date").str.to_date())
    odd = birth.filter(
        (pl.col("birth_date") > pl.date(2026, 12, 31))
        | (pl.col("birth_date") < pl.date(1890, 1, 1))
    )
    assert odd["index"].to_list() == truth["impossible_dates"]["birth_date"]
    purchase = indexed.with_columns(pl.col("last_purchase_date").str.to_date())
    late = purchase.filter(pl.col("last_purchase_date") > pl.date(2030, 12, 31))
    assert late["index"].to_list() == truth["impossible_dates"]["last_purchase_date"]
    assert late.height > 0
    clean = purchase.filter(~pl.col("index").is_in(late["index"].implode()))
    assert clean["last_purchase_date"].max() < dt.date(2026, 1, 1)
