"""Row-level detectors: exact duplicates, IQR outliers and null positions.

Each returns 0-based row indices in ascending order; they are the only Python lists the
scan builds whose length scales with the data, because the report stores them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from jobs.quality.profiling import ColumnStats, numeric_expr

# Tukey "far out" fences. With k = 1.5 about 0.7 % of perfectly normal data falls outside
# the fences, which floods wide tables with false alarms; with k = 3.0 it is about 2 values
# per million, so what is flagged is almost always a real anomaly (or a heavy tail worth a
# look).
IQR_K = 3.0
HASH_SEED = 0x5EED


@dataclass(frozen=True)
class Fences:
    low: float
    high: float


def unique_name(taken: Collection[str], base: str) -> str:
    """A column name not in ``taken`` (so helper columns never shadow user columns)."""
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def row_hashes(columns: Sequence[str]) -> pl.Expr:
    """Hash of each whole row. Equal rows always hash equal (the struct hash and the struct
    equality used for verification treat null, NaN and -0.0 the same way); unequal rows
    may collide, which ``duplicate_rows`` tolerates. A function so tests can force
    collisions."""
    return pl.struct([pl.col(c) for c in columns]).hash(seed=HASH_SEED)


def duplicate_rows(source: pl.LazyFrame, columns: Sequence[str]) -> list[int]:
    """Indices of redundant rows: every row equal to an earlier row (a row present three
    times yields its second and third copies).

    Rows whose hash is unique cannot repeat, so only rows sharing a hash are fetched
    (usually a small fraction); among those, exact struct equality decides which rows
    repeat an earlier one, so hash collisions never produce false duplicates.
    """
    if not columns:
        return []
    idx = unique_name(columns, "__datrix_row")
    candidates = source.with_row_index(idx).filter(row_hashes(columns).is_duplicated()).collect()
    if candidates.height == 0:
        return []
    redundant = candidates.filter(~pl.struct([pl.col(c) for c in columns]).is_first_distinct())
    return [int(i) for i in redundant[idx].to_list()]


def outlier_fences(stats: ColumnStats, k: float = IQR_K) -> Fences | None:
    """Tukey fences [Q1 - k*IQR, Q3 + k*IQR], or None when the column has no spread.

    A zero IQR (more than half the values identical) would flag every other value, so such
    columns are left to the distribution checks instead.
    """
    summary = stats.numeric
    if summary is None or summary.p25 is None or summary.p75 is None:
        return None
    iqr = summary.p75 - summary.p25
    if not iqr > 0:
        return None
    return Fences(low=summary.p25 - k * iqr, high=summary.p75 + k * iqr)


def row_positions(
    source: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    null_columns: Sequence[str],
    fences: Mapping[str, Fences],
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """One pass returning (null row indices per column, outlier row indices per column).

    NaN is never an outlier (it is not a number to compare), nulls never are either.
    """
    exprs: list[pl.Expr] = []
    for i, name in enumerate(null_columns):
        exprs.append(pl.col(name).is_null().arg_true().implode().alias(f"n{i}"))
    for i, (name, fence) in enumerate(fences.items()):
        x = numeric_expr(name, schema[name])
        is_out = ((x < fence.low) | (x > fence.high)).fill_null(False)
        exprs.append(is_out.arg_true().implode().alias(f"o{i}"))
    if not exprs:
        return {}, {}
    row = source.select(exprs).collect().row(0, named=True)
    nulls = {name: list(row[f"n{i}"]) for i, name in enumerate(null_columns)}
    outliers = {name: list(row[f"o{i}"]) for i, name in enumerate(fences)}
    return nulls, outliers
