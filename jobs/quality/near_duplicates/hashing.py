"""Value hashes: every compared value hashed once into a (rows x columns) uint64 matrix,
and the value counts taken from it (equality, blocking costs and ``u`` work on these)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.near_duplicates.columns import _is_text, normalise

HASH_BATCH = 4  # columns hashed together (the transient of value_hashes)
HASH_SEED = 0x5EED


def _hash_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    col = normalise(pl.col(name)) if _is_text(dtype) else pl.col(name)
    h = col.hash(seed=HASH_SEED) | 1
    zero = pl.lit(0, pl.UInt64)
    return pl.when(pl.col(name).is_null()).then(zero).otherwise(h).alias(name)


def value_hashes(
    frame: pl.DataFrame,
    columns: Sequence[str],
    keep: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """(rows x columns) uint64 hashes of the normalised values, column-major; 0 is null
    (every value hash has its lowest bit set). With ``keep`` (a boolean mask over the
    frame's rows), only the kept rows, in order.

    Filled HASH_BATCH columns at a time into the preallocated result: the transient is a
    few columns of hashes, not a second (and third, row-major) copy of the matrix."""
    rows = frame.height if keep is None else int(np.count_nonzero(keep))
    out = np.empty((rows, len(columns)), dtype=np.uint64, order="F")
    mask = None if keep is None else pl.Series(keep)
    schema = frame.schema  # built on each access: once, not per column (wide tables)
    for start in range(0, len(columns), HASH_BATCH):
        queries = []
        for name in columns[start : start + HASH_BATCH]:
            # a frame of the column alone: a query's cost grows with its frame's width
            lazy = frame.get_column(name).to_frame().lazy()
            query = lazy.select(_hash_expr(name, schema[name]))
            queries.append(query if mask is None else query.filter(mask))
        for k, done in enumerate(pl.collect_all(queries), start=start):
            out[:, k] = done.to_series().to_numpy()
            del done
    return out


def value_counts(hashes: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Counts of the non-null values of each column of ``hashes``."""
    frame = pl.DataFrame({f"c{k}": hashes[:, k] for k in range(hashes.shape[1])}).lazy()
    queries = [
        frame.select(pl.col(c).filter(pl.col(c) != 0)).group_by(c).len().select("len")
        for c in frame.collect_schema().names()
    ]
    return [f.to_series().to_numpy().astype(np.float64) for f in pl.collect_all(queries)]


def value_summary(hashes: np.ndarray[Any, Any]) -> tuple[list[float], np.ndarray[Any, Any]]:
    """Per column of ``hashes``: the pairs of rows sharing a value (``_pair_cost``) and the
    non-null rows; from ``value_counts`` of HASH_BATCH columns at a time, so the counts
    of every column are never held together."""
    costs: list[float] = []
    present: list[float] = []
    for start in range(0, hashes.shape[1], HASH_BATCH):
        for counts in value_counts(hashes[:, start : start + HASH_BATCH]):
            costs.append(_pair_cost(counts))
            present.append(counts.sum())
    return costs, np.array(present, dtype=np.float64)


def _value_counts(keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Counts of the non-null (non-zero) values of a uint64 key column."""
    series = pl.Series("k", keys)
    counts = series.filter(series != 0).value_counts()["count"]
    out: np.ndarray[Any, Any] = counts.to_numpy().astype(np.float64)
    return out


def _pair_cost(counts: np.ndarray[Any, Any]) -> float:
    """Pairs of rows sharing a value."""
    return float((counts * (counts - 1)).sum() / 2)
