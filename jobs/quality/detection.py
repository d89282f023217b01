"""Row-level detectors of the Polars engine: exact duplicates and the one pass collecting
null positions, outlier candidates, sentinel and negative cells (``accuracy.RowPlan``).

Each returns 0-based row indices in ascending order (null positions as ``RowSet``s, which
stay small however many rows they hold); on a bounded table they read a chunk of rows at
a time.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datrix.jobs.quality.accuracy import RowFacts, RowPlan
from datrix.jobs.quality.profiling import numeric_expr
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.sentinels import NegativeCounts
from datrix.jobs.quality.table import ScanTable, select_by_column

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


def duplicate_rows(source: pl.LazyFrame | ScanTable, columns: Sequence[str]) -> list[int]:
    """Indices of redundant rows: every row equal to an earlier row (a row present three
    times yields its second and third copies).

    Rows whose hash is unique cannot repeat, so only rows sharing a hash are fetched
    (usually a small fraction); among those, exact struct equality decides which rows
    repeat an earlier one, so hash collisions never produce false duplicates. A bounded
    table is hashed a chunk at a time (8 bytes a row are kept) and read twice.
    """
    if not columns:
        return []
    table = ScanTable.of(source)
    idx = unique_name(columns, "__datrix_row")
    if not table.bounded:
        candidates = table.lazy.with_row_index(idx).filter(row_hashes(columns).is_duplicated())
        return _redundant(candidates.collect(), columns, idx)
    hashes = np.concatenate(
        [c.select(row_hashes(columns)).to_series().to_numpy() for _, c in table.chunks(columns)]
    )
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    del ordered
    if repeated.size == 0:
        return []
    wanted = np.flatnonzero(np.isin(hashes, repeated))
    del hashes
    frames = []
    for start, chunk in table.chunks(columns):
        local = wanted[(wanted >= start) & (wanted < start + chunk.height)] - start
        if local.size:
            picked = chunk[local]
            frames.append(picked.with_columns(pl.Series(idx, local + start, dtype=pl.UInt32)))
    return _redundant(pl.concat(frames), columns, idx)


def _redundant(candidates: pl.DataFrame, columns: Sequence[str], idx: str) -> list[int]:
    if candidates.height == 0:
        return []
    redundant = candidates.filter(~pl.struct([pl.col(c) for c in columns]).is_first_distinct())
    return [int(i) for i in redundant[idx].to_list()]


def row_facts(
    source: pl.LazyFrame | ScanTable, schema: Mapping[str, pl.DataType], plan: RowPlan
) -> RowFacts:
    """One pass (a chunk at a time on a bounded table) collecting what ``plan`` asks for:
    null positions; per numeric column the positions and values outside its outlier
    fences, the positions of its sentinel cells and of its negative cells, and the counts
    just below and above zero.

    NaN and null are never outliers or negatives; sentinel cells are neither either.
    """
    table = ScanTable.of(source)
    exprs: list[tuple[str, pl.Expr]] = []  # (the column read, the expression)
    for i, name in enumerate(plan.null_columns):
        exprs.append((name, pl.col(name).is_null().arg_true().implode().alias(f"n{i}")))
    for i, (name, rule) in enumerate(plan.rules.items()):
        x = numeric_expr(name, schema[name])
        is_out = ((x < rule.fences.low) | (x > rule.fences.high)) & ~_is_sentinel(x, plan, name)
        is_out = is_out.fill_null(False)
        exprs.append((name, is_out.arg_true().implode().alias(f"o{i}")))
        exprs.append((name, x.cast(pl.Float64).filter(is_out).implode().alias(f"v{i}")))
    for i, name in enumerate(plan.sentinels):
        hit = pl.col(name).cast(pl.Float64).is_in(plan.sentinel_values(name)).fill_null(False)
        exprs.append((name, hit.arg_true().implode().alias(f"s{i}")))
    for i, (name, w) in enumerate(plan.negatives.items()):
        x = numeric_expr(name, schema[name]).cast(pl.Float64)
        real = ~_is_sentinel(x, plan, name)
        exprs += [
            (name, ((x < 0) & real).fill_null(False).arg_true().implode().alias(f"g{i}")),
            (name, ((x >= -w) & (x < 0) & real).sum().alias(f"b{i}")),
            (name, ((x >= 0) & (x < w)).sum().alias(f"a{i}")),
        ]
    if not exprs:
        return RowFacts()
    used = sorted(
        set(plan.null_columns) | set(plan.rules) | set(plan.sentinels) | set(plan.negatives)
    )
    parts: dict[str, list[np.ndarray[Any, Any]]] = {}
    sums: dict[str, int] = {}
    rows = 0
    for start, chunk in table.chunks([c for c in schema if c in used]):
        found = select_by_column(chunk, exprs)
        rows = start + chunk.height
        for key in found.columns:
            value = found[key][0]
            if isinstance(value, pl.Series):
                positions = value.to_numpy()
                if key[0] != "v":
                    positions = positions.astype(np.int64) + start
                parts.setdefault(key, []).append(positions)
            else:
                sums[key] = sums.get(key, 0) + int(value or 0)

    def joined(key: str) -> np.ndarray[Any, Any]:
        found = parts.get(key, [])
        return np.concatenate(found) if found else np.empty(0, dtype=np.int64)

    def listed(key: str) -> list[int]:
        return joined(key).tolist()  # type: ignore[no-any-return]

    return RowFacts(
        nulls={
            name: RowSet.from_indices(joined(f"n{i}"), rows)
            for i, name in enumerate(plan.null_columns)
        },
        candidates={
            name: (listed(f"o{i}"), [float(v) for v in joined(f"v{i}")])
            for i, name in enumerate(plan.rules)
        },
        sentinel_rows={name: listed(f"s{i}") for i, name in enumerate(plan.sentinels)},
        negatives={
            name: NegativeCounts(listed(f"g{i}"), sums.get(f"b{i}", 0), sums.get(f"a{i}", 0))
            for i, name in enumerate(plan.negatives)
        },
    )


def _is_sentinel(x: pl.Expr, plan: RowPlan, name: str) -> pl.Expr:
    values = plan.sentinel_values(name)
    if not values:
        return pl.lit(False)
    return x.cast(pl.Float64).is_in(values).fill_null(False)


def evenly_spaced(
    source: pl.LazyFrame | ScanTable, columns: Sequence[str], step: int
) -> dict[str, pa.Array]:
    """Rows 0, step, 2*step, ... of ``columns`` (``outliers.sample_step``), as Arrow arrays."""
    if not columns:
        return {}
    table = ScanTable.of(source)
    if table.bounded:
        picked = [c.gather_every(step, offset=(-s) % step) for s, c in table.chunks(columns)]
        frame = pl.concat(picked)
    else:
        frame = table.lazy.select(list(columns)).gather_every(step).collect()
    arrow = frame.to_arrow()
    return {name: arrow.column(name).combine_chunks() for name in columns}
