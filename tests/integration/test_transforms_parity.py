"""The Spark transforms give the same results as the Polars transforms.

Every fix type runs on Polars (``polars_transforms.apply``) and on Spark
(``spark_transforms.apply``) over the same table (written once as Parquet and read by
both), and both outputs, collected and sorted by ``ROW_ID`` / (row, column), must be
*equal*: the same rows, the same values and types, the same change rows (old and new text,
rule, confidence). No tolerance: the Spark side computes the same statistics (exact
medians, modes, canonical spellings, inlier ranges) and writes the same text.

The small table has nulls, NaN, unicode and mixed case spellings, white space, dates in
several shapes, numbers as text, outliers, sentinel codes, PII inside free text, exact
duplicates and a near duplicate. ``apply_all`` (every default fix of a real scan plus the
optional ones) is compared on the benchmark generator's dirty dataset.

Spark starts once per module (the process-wide session of ``spark_engine``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from datrix.jobs.bench.generate import generate
from datrix.jobs.quality.polars_engine import PolarsScanEngine
from datrix.jobs.report import ScanOptions
from datrix.jobs.transforms import polars_transforms, spark_transforms
from datrix.jobs.transforms.base import ROW_ID, Applied, Secrets, with_row_ids
from datrix.jobs.transforms.specs import (
    CoerceTypes,
    Dedupe,
    FixSpec,
    Impute,
    Normalise,
    Outliers,
    Pii,
    Sentinels,
    spec_for_issue,
)

pytestmark = pytest.mark.integration

SECRETS = Secrets(salt=b"tenant-salt", token_key=bytes(range(32)))


def small_table() -> pl.DataFrame:
    n = 24
    names = [
        "Ana", "ana ", " ANA", "Zoë", "zoë", "ZOË", "Øyvind", None, "Straße", "straße",
        "ΣΟΦΙΑ", "σοφια", "Li  Wei", "li wei", "Bob", "Bob", "Bob", "Eve", "Eve", None,
        "İlker", "ilker", "\tTab\n", "tab",
    ]  # fmt: skip
    amount = [
        10.5, 11.0, None, 9.75, 10.0, 1e6, 10.25, float("nan"), 12.0, -4e5, 11.5, 10.0,
        9.5, 10.5, 10.0, 10.0, 10.0, 12.5, 12.5, None, 0.1, 1e-7, 11.0, 10.0,
    ]  # fmt: skip
    age = [
        30, 31, None, 29, 999, 35, 40, 41, None, 28, 33, 34, 30, 30, 25, 25, 25, 50, 50, 51,
        -1, 44, 30, None,
    ]  # fmt: skip
    joined = [
        "2021-03-04", "04/03/2021", "2021/03/05", "not a date", None, "2020-02-29",
        "31.12.2020", "2021-13-01", "2019-01-01 10:00:00", "1/2/2020", "2021-03-04", "",
        "2022-07-08", "2022-07-08", "2020-01-01", "2020-01-01", "2020-01-01", "2018-05-05",
        "2018-05-05", None, "2020-06-30", "20200630", "  2020-06-30 ", "2020-06-31",
    ]  # fmt: skip
    as_text = [
        "1", " 2 ", "3.5", "x", None, "1e3", "-7", "", "inf", "NaN", "0042", "1,5", "12",
        "12", "5", "5", "5", "8", "8", "9", "+3", ".5", "1_000", "٣",
    ]  # fmt: skip
    whole = ["1", " 2 ", "3", None, "x", "40"] + ["7"] * (n - 6)
    note = [
        "mail me at ana@example.com", "call +44 20 7946 0958 today", None, "nothing here",
        "ip 192.168.0.1 seen", "card 4111 1111 1111 1111", "Zoë: zoe@exämple.org", "",
        "ok", "ok", "fine", "fine", "phone 030 1234567", "x", "same", "same", "same",
        "e@x.io and f@y.io", "e@x.io and f@y.io", "n/a", "iban DE89 3704 0044 0532 0130 00",
        "ümlaut", "ok", "tab",
    ]  # fmt: skip
    flag = [True, False, None] * 8
    day = [dt.date(2020, 1, 1) + dt.timedelta(days=3 * i) for i in range(n)]
    day[5] = None  # type: ignore[call-overload]
    group = ["a", "b", None, "a", "b", "a", "c", "c", "a", None] * 2 + ["a", "b", "c", "d"]
    frame = pl.DataFrame(
        {
            "name": names,
            "amount": amount,
            "age": age,
            "joined": joined,
            "as_text": as_text,
            "whole": whole,
            "note": note,
            "flag": flag,
            "day": day,
            "group": group,
        },
        schema_overrides={"flag": pl.Boolean},
    )
    # exact copies: rows 14..16 and 17..18 repeat each other in every column
    copies = frame.slice(14, 1)
    frame = pl.concat([frame.slice(0, 15), copies, copies, frame.slice(17, 1),
                       frame.slice(17, 1), frame.slice(19)])  # fmt: skip
    assert frame.height == n
    return frame


@pytest.fixture(scope="module")
def spark(spark_on_cluster: str) -> Iterator[Any]:
    from datrix.jobs.quality.spark_engine import spark_session

    yield spark_session(spark_on_cluster)  # the process's session, on the tier's cluster


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("transforms") / "small.parquet"
    small_table().write_parquet(path)
    return path


def both(spec: FixSpec, path: Path, secrets: Secrets | None = None) -> tuple[Any, Any]:
    """(Polars result, Spark result collected) of one fix on the table at ``path``."""
    frame = with_row_ids(pl.read_parquet(path))
    polars = polars_transforms.apply(spec, frame, secrets)
    sdf = spark_transforms.read_table(str(path))
    done = spark_transforms.apply(spec, sdf, secrets)
    return polars, collect(done)


def collect(done: spark_transforms.SparkApplied) -> Applied:
    table = pl.from_arrow(done.table.toArrow())
    changes = pl.from_arrow(done.changes.toArrow())
    assert isinstance(table, pl.DataFrame) and isinstance(changes, pl.DataFrame)
    return Applied(table, changes)


def sorted_changes(changes: pl.DataFrame) -> pl.DataFrame:
    return changes.sort(["row_id", "column", "rule"], nulls_last=False)


def assert_same(polars: Applied, spark: Applied) -> None:
    expected = polars.table.sort(ROW_ID)
    got = spark.table.select(expected.columns).sort(ROW_ID)
    assert got.columns == expected.columns
    assert_frame_equal(got, expected, check_exact=True)
    assert spark.changes.columns == polars.changes.columns
    assert_frame_equal(
        sorted_changes(spark.changes), sorted_changes(polars.changes), check_exact=True
    )


SPECS: list[FixSpec] = [
    Sentinels("age", (4, 20)),
    Sentinels("name", (0, 7, 23)),
    Outliers("amount", (5, 9), "winsorise"),
    Outliers("amount", (5, 9), "null"),
    Outliers("age", (4,), "winsorise"),
    Outliers("amount", None, "winsorise"),
    Normalise("name", "trim"),
    Normalise("name", "casefold"),
    Normalise("name", "canonical"),
    Impute("amount", "median"),
    Impute("age", "median"),
    Impute("name", "median"),
    Impute("flag", "mode"),
    Impute("age", "mode"),
    Impute("amount", "group", by="group"),
    Impute("name", "group", by="group"),
    Impute("amount", "knn"),
    Impute("age", "iterative"),
    Pii("note", "redact"),
    Pii("note", "redact_spans"),
    Pii("note", "hash"),
    Pii("note", "tokenise"),
    Pii("age", "hash"),
    Pii("note", "drop_column"),
    CoerceTypes("as_text", "number"),
    CoerceTypes("whole", "number"),
    CoerceTypes("age", "number"),
    CoerceTypes("joined", "date"),
    CoerceTypes("day", "date"),
    Dedupe("exact"),
    Dedupe("exact", rows=(1, 2)),
    Dedupe("near"),
    Dedupe("near", "merge"),
]


# Fixes with nothing to do on this table (already numbers, already dates): both engines
# must return the table unchanged and no change row.
NOTHING_TO_DO: set[FixSpec] = {CoerceTypes("age", "number"), CoerceTypes("day", "date")}


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.rule}-{getattr(s, 'column', '')}")
def test_each_fix_matches_polars(spark: Any, small: Path, spec: FixSpec) -> None:
    polars, got = both(spec, small, SECRETS)
    assert_same(polars, got)
    # the table is not trivially clean: every other fix changes something here
    assert (polars.changes.height == 0) == (spec in NOTHING_TO_DO), polars.changes


def test_missing_secrets_are_refused_on_spark(spark: Any, small: Path) -> None:
    sdf = spark_transforms.read_table(str(small))
    with pytest.raises(ValueError, match="DATRIX_PII_SALT"):
        spark_transforms.apply(Pii("note", "hash"), sdf, Secrets())
    with pytest.raises(ValueError, match="DATRIX_TOKEN_KEY"):
        spark_transforms.apply(Pii("note", "tokenise"), sdf, None)
    with pytest.raises(ValueError, match="unknown column 'nope'"):
        spark_transforms.apply(Impute("nope"), sdf)
    with pytest.raises(ValueError, match="has no __datrix_row__"):
        spark_transforms.apply(Impute("age"), sdf.drop(ROW_ID))


@pytest.fixture(scope="module")
def dirty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out: Path = tmp_path_factory.mktemp("transforms-dirty")
    generate(1_500, out, seed=5)  # every planted kind; its integer median 648.5 tests rounding
    return out / "dirty.parquet"


def test_apply_all_matches_polars_on_the_generated_dirty_data(spark: Any, dirty: Path) -> None:
    report = PolarsScanEngine().scan(dirty, ScanOptions())
    specs: list[FixSpec] = []
    for issue in report.issues:
        rows = report.affected_rows.get(issue.id, [])
        options = {"dedupe_keep": "merge"}  # near copies' nulls filled from their cluster
        spec = spec_for_issue(issue.type, issue.column, rows, options, issue.description)
        if spec is not None:
            specs.append(spec)
    # the optional fixes too: hash, tokenise, drop a column, group-wise impute, trim, dates
    specs += [Pii("email", "hash"), Pii("iban", "tokenise"), Pii("ip_address", "drop_column")]
    specs += [Pii("phone_number", "drop_column")]  # its impute (nulls) is then skipped
    specs += [Impute("credit_score", "group", by="country"), Normalise("city", "trim")]
    specs += [CoerceTypes("signup_date", "date")]
    kinds = {type(s).__name__ for s in specs}
    assert kinds >= {"Dedupe", "Impute", "Normalise", "Outliers", "Sentinels", "Pii"}, kinds
    assert Dedupe("near", "merge") in specs
    specs = list(dict.fromkeys(specs))

    frame = with_row_ids(pl.read_parquet(dirty))
    polars = polars_transforms.apply_all(specs, frame, SECRETS)
    sdf = spark_transforms.read_table(str(dirty))
    got = collect(spark_transforms.apply_all(specs, sdf, SECRETS))
    assert_same(polars, got)
    # the run removed the planted near duplicates and changed cells: a real comparison
    removed = polars.changes.filter(pl.col("column").is_null() & pl.col("row_id").is_not_null())
    assert {"dedupe.exact", "dedupe.near"} <= set(removed["rule"].to_list())
    assert polars.changes.filter(pl.col("column").is_not_null()).height > 1_000
    # one change row per changed cell
    cells = polars.changes.filter(pl.col("row_id").is_not_null() & pl.col("column").is_not_null())
    assert cells.select("row_id", "column").is_duplicated().sum() == 0
    assert all(0.0 <= c <= 1.0 and not math.isnan(c) for c in got.changes["confidence"])


def test_near_dedupe_merge_matches_polars(spark: Any, dirty: Path, tmp_path: Path) -> None:
    """Merge fills the kept row's nulls from its cluster. In a full run the imputations
    come first and leave it little to fill, so here the planted near-duplicate pairs get
    holes of their own: the original loses one value, its copy two others."""
    import json

    truth = json.loads((dirty.parent / "ground_truth.json").read_text())
    pairs = truth["near_duplicates"]["pairs"]
    frame = pl.read_parquet(dirty).with_row_index("i")
    originals = pl.Series([a for a, _ in pairs], dtype=pl.UInt32)
    copies = pl.Series([b for _, b in pairs], dtype=pl.UInt32)
    holed = frame.with_columns(
        pl.when(pl.col("i").is_in(originals.implode())).then(None).otherwise("loyalty_points")
        .alias("loyalty_points"),
        *[pl.when(pl.col("i").is_in(copies.implode())).then(None).otherwise(c).alias(c)
          for c in ("order_count", "return_count")],
    ).drop("i")  # fmt: skip
    path = tmp_path / "holed.parquet"
    holed.write_parquet(path)

    polars, got = both(Dedupe("near", "merge"), path)
    assert_same(polars, got)
    filled = polars.changes.filter(pl.col("column").is_not_null())
    assert filled.height > 0 and set(filled["column"]) >= {"loyalty_points"}
    assert filled["old_value"].null_count() == filled.height  # only nulls are filled
    removed = polars.changes.filter(pl.col("column").is_null())
    assert removed.height >= len(pairs) // 2


def test_a_whole_median_halfway_between_rounds_to_even_on_both(spark: Any, tmp_path: Path) -> None:
    """An integer column's median 2.5 fills 2 (half to even, Polars' rounding); Spark's
    ``round`` would give 3 (found at 1,500 generated rows: a median of 648.5)."""
    path = tmp_path / "half.parquet"
    pl.DataFrame({"n": [2, 3, None, 2, 3, None]}, schema={"n": pl.Int64}).write_parquet(path)
    polars, got = both(Impute("n"), path)
    assert_same(polars, got)
    assert polars.table["n"].to_list() == [2, 3, 2, 2, 3, 2]
