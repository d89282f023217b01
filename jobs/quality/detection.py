"""Row-level detectors of the Polars engine: exact duplicates and the one pass collecting
null positions, outlier candidates, sentinel and negative cells (``accuracy.RowPlan``).

Each returns 0-based row indices in ascending order; they are the only Python lists the
scan builds whose length scales with the data, because the report stores them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import polars as pl
import pyarrow as pa

from jobs.quality.accuracy import RowFacts, RowPlan
from jobs.quality.profiling import numeric_expr
from jobs.quality.sentinels import NegativeCounts

HASH_SEED = 0x5EED


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


def row_facts(source: pl.LazyFrame, schema: Mapping[str, pl.DataType], plan: RowPlan) -> RowFacts:
    """One pass collecting what ``plan`` asks for: null positions; per numeric column the
    positions and values outside its outlier fences, the positions of its sentinel cells
    and of its negative cells, and the counts just below and above zero.

    NaN and null are never outliers or negatives; sentinel cells are neither either.
    """
    exprs: list[pl.Expr] = []
    for i, name in enumerate(plan.null_columns):
        exprs.append(pl.col(name).is_null().arg_true().implode().alias(f"n{i}"))
    for i, (name, rule) in enumerate(plan.rules.items()):
        x = numeric_expr(name, schema[name])
        is_out = ((x < rule.fences.low) | (x > rule.fences.high)) & ~_is_sentinel(x, plan, name)
        is_out = is_out.fill_null(False)
        exprs.append(is_out.arg_true().implode().alias(f"o{i}"))
        exprs.append(x.cast(pl.Float64).filter(is_out).implode().alias(f"v{i}"))
    for i, name in enumerate(plan.sentinels):
        hit = pl.col(name).cast(pl.Float64).is_in(plan.sentinel_values(name)).fill_null(False)
        exprs.append(hit.arg_true().implode().alias(f"s{i}"))
    for i, (name, w) in enumerate(plan.negatives.items()):
        x = numeric_expr(name, schema[name]).cast(pl.Float64)
        real = ~_is_sentinel(x, plan, name)
        exprs += [
            ((x < 0) & real).fill_null(False).arg_true().implode().alias(f"g{i}"),
            ((x >= -w) & (x < 0) & real).sum().alias(f"b{i}"),
            ((x >= 0) & (x < w)).sum().alias(f"a{i}"),
        ]
    if not exprs:
        return RowFacts()
    row = source.select(exprs).collect().row(0, named=True)
    return RowFacts(
        nulls={name: list(row[f"n{i}"]) for i, name in enumerate(plan.null_columns)},
        candidates={
            name: (list(row[f"o{i}"]), list(row[f"v{i}"])) for i, name in enumerate(plan.rules)
        },
        sentinel_rows={name: list(row[f"s{i}"]) for i, name in enumerate(plan.sentinels)},
        negatives={
            name: NegativeCounts(list(row[f"g{i}"]), int(row[f"b{i}"] or 0), int(row[f"a{i}"] or 0))
            for i, name in enumerate(plan.negatives)
        },
    )


def _is_sentinel(x: pl.Expr, plan: RowPlan, name: str) -> pl.Expr:
    values = plan.sentinel_values(name)
    if not values:
        return pl.lit(False)
    return x.cast(pl.Float64).is_in(values).fill_null(False)


def evenly_spaced(source: pl.LazyFrame, columns: Sequence[str], step: int) -> dict[str, pa.Array]:
    """Rows 0, step, 2*step, ... of ``columns`` (``outliers.sample_step``), as Arrow arrays."""
    if not columns:
        return {}
    table = source.select(list(columns)).gather_every(step).collect().to_arrow()
    return {name: table.column(name).combine_chunks() for name in columns}
