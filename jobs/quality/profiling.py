"""Per-column profiles computed in two batched passes over a lazy frame.

Pass 1 is a single ``select`` holding every scalar aggregate of every column (null counts,
min/max/mean/std, one batched ``quantile`` call per numeric column for p25/p50/p75). Pass 2
is one ``group_by(col).len()`` per column, all run together by ``pl.collect_all``: each
yields the exact distinct count, the top values and, for numeric columns, the smallest and
largest distinct values with their counts (what the sentinel check looks at), so no
separate ``n_unique`` pass is needed.

A wide table (more than ``WIDE_COLUMNS`` columns) would make one query of tens of
thousands of expressions and thousands of group-bys, whose planning grows with the square
of their number (5,000 columns x 10 rows never finished). Its columns are profiled
``PROFILE_BATCH`` at a time instead, each batch a query over those columns only; in
memory on the in-memory engine (the streaming engine's set-up costs about a millisecond a
query), and its value counts are stacked: the values of up to ``STACK_CELLS`` cells of
columns of one type go into one ``(column, value)`` frame and one group-by, so the cost is
linear in the columns. The figures are the same (counts and values exactly; means and
deviations may differ from the streaming engine's in the last digit).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.table import ScanTable

TOP_K = 5
EDGE_K = 6  # smallest / largest distinct values kept per numeric column
QUANTILES: tuple[float, ...] = (0.25, 0.5, 0.75)
# Bounded tables: distinct values per hash part of a column's value counts, and bytes of
# columns a quantile query may hold.
PART_VALUES = 3_000_000
QUANTILE_BYTES = 512 << 20
PART_SEED = 0x9A27
# Wide tables (see the module docstring): more columns than WIDE_COLUMNS are profiled
# PROFILE_BATCH columns a query, and in memory their value counts STACK_CELLS cells a query.
WIDE_COLUMNS = 100
PROFILE_BATCH = 64
STACK_CELLS = 4_000_000
NUMERIC_TYPES = frozenset({"integer", "float"})


@dataclass(frozen=True)
class NumericSummary:
    """Summary of a numeric column; NaN values are treated as missing here (and counted
    apart in ``nan_count``) so one NaN does not turn every statistic into NaN."""

    min: float | int | None
    max: float | int | None
    mean: float | None
    std: float | None
    p25: float | None
    p50: float | None
    p75: float | None
    nan_count: int = 0

    def as_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "min": json_value(self.min),
            "max": json_value(self.max),
            "mean": json_value(self.mean),
            "std": json_value(self.std),
            "p25": json_value(self.p25),
            "p50": json_value(self.p50),
            "p75": json_value(self.p75),
        }
        if self.nan_count:
            extra["nan_count"] = self.nan_count
        return extra


@dataclass(frozen=True)
class ColumnStats:
    name: str
    logical_type: str
    null_count: int
    distinct_count: int  # exact, nulls not counted
    numeric: NumericSummary | None = None
    top_values: list[tuple[Any, int]] = field(default_factory=list)  # JSON-friendly values
    # The EDGE_K smallest (ascending) and largest (descending) finite distinct values of a
    # numeric column with their counts; internal (not in the profile document).
    lowest: list[tuple[float, int]] = field(default_factory=list)
    highest: list[tuple[float, int]] = field(default_factory=list)

    @property
    def is_numeric(self) -> bool:
        return self.logical_type in NUMERIC_TYPES

    def extra(self) -> dict[str, Any]:
        extra = self.numeric.as_extra() if self.numeric is not None else {}
        extra["top_values"] = [{"value": v, "count": c} for v, c in self.top_values]
        return extra


def numeric_summary(
    row: Mapping[str, Any], prefix: str, quantiles: Sequence[Any] | None
) -> NumericSummary:
    """A NumericSummary from an engine's aggregate row, whose keys are ``prefix`` + min,
    max, mean, std, nan (absent = None); ``quantiles`` in ``QUANTILES`` order, or None."""

    def value(key: str) -> Any:
        return row.get(prefix + key)

    q = quantiles or [None] * len(QUANTILES)
    return NumericSummary(
        min=_number(value("min")),
        max=_number(value("max")),
        mean=value("mean"),
        std=value("std"),
        p25=q[0],
        p50=q[1],
        p75=q[2],
        nan_count=int(value("nan") or 0),
    )


def logical_type(dtype: pl.DataType) -> str:
    """Map a Polars dtype to the report's logical type. Decimals count as floats."""
    if dtype == pl.Boolean:
        return "boolean"
    if dtype.is_integer():
        return "integer"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return "string"
    if dtype == pl.Date:
        return "date"
    if isinstance(dtype, pl.Datetime):
        return "datetime"
    return "other"


def numeric_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    """The column as Float64 with NaN as null (integers keep their exact type)."""
    col = pl.col(name)
    if dtype.is_integer():
        return col
    return col.cast(pl.Float64).fill_nan(None)


def json_value(value: Any) -> Any:
    """A value safe for ``json.dumps`` without ``default``: non-finite floats become None,
    temporal values ISO strings, anything else exotic its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return str(value)


def _scalar_exprs(i: int, name: str, dtype: pl.DataType, kind: str, bounded: bool) -> list[pl.Expr]:
    exprs = [pl.col(name).null_count().alias(f"{i}:nulls")]
    if bounded:
        # approx_n_unique refuses nested types (lists, structs): their hashes it takes
        values = pl.col(name).hash(seed=PART_SEED) if kind == "other" else pl.col(name)
        exprs.append(values.approx_n_unique().alias(f"{i}:approx"))
    if kind in NUMERIC_TYPES:
        x = numeric_expr(name, dtype)
        xf = x.cast(pl.Float64)
        exprs += [
            x.min().alias(f"{i}:min"),
            x.max().alias(f"{i}:max"),
            xf.mean().alias(f"{i}:mean"),
            xf.std().alias(f"{i}:std"),
        ]
        if not bounded:
            exprs.append(_quantiles(name, dtype).alias(f"{i}:q"))
        if not dtype.is_integer():
            exprs.append(pl.col(name).cast(pl.Float64).is_nan().sum().alias(f"{i}:nan"))
    return exprs


def _quantiles(name: str, dtype: pl.DataType) -> pl.Expr:
    x = numeric_expr(name, dtype).cast(pl.Float64)
    return x.quantile(list(QUANTILES), interpolation="linear")


def _counts_query(
    source: pl.LazyFrame, name: str, dtype: pl.DataType, part: tuple[int, int] | None = None
) -> pl.LazyFrame:
    """One row: the exact number of distinct non-null values and the top ``TOP_K`` values
    by count, ties broken by the value itself so the answer is deterministic; for numeric
    columns also the ``EDGE_K`` smallest and largest finite values with their counts.

    With ``part = (p, parts)`` only the values whose hash is ``p`` modulo ``parts``: the
    value-count table of one part is ``1 / parts`` of the column's, and the parts' rows
    merge exactly (``_merge_parts``)."""
    value = pl.col("value")  # renamed first: no clash with user names
    exprs = [e.implode() if i else e for i, e in enumerate(_count_exprs(dtype))]
    values = source.select(pl.col(name).alias("value"))
    if part is not None:
        values = values.filter(value.hash(seed=PART_SEED) % part[1] == part[0])
    return values.group_by("value").len(name="count").filter(value.is_not_null()).select(exprs)


def _count_exprs(dtype: pl.DataType) -> list[pl.Expr]:
    """The aggregates of ``_counts_query`` over one column's value counts (columns
    ``value``, ``count``): distinct, top and, for numeric columns, low and high."""
    value, count = pl.col("value"), pl.col("count")
    exprs = [
        pl.len().alias("distinct"),
        pl.struct(value, count)
        .top_k_by([count, value], k=TOP_K, reverse=[False, True])
        .alias("top"),
    ]
    if logical_type(dtype) in NUMERIC_TYPES:
        number = value.cast(pl.Float64)
        finite = number.is_finite()
        pair = pl.struct(number.alias("value"), count).filter(finite)
        exprs += [
            pair.bottom_k_by(number.filter(finite), k=EDGE_K).alias("low"),
            pair.top_k_by(number.filter(finite), k=EDGE_K).alias("high"),
        ]
    return exprs


def _stacked_counts(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> list[dict[str, Any]]:
    """The ``_counts_query`` row of every column of an in-memory ``frame``, with one query
    per ``STACK_CELLS`` cells of columns of one type: their values stacked into one
    ``(column, value)`` frame, value counts by ``(column, value)``, then the same
    aggregates per column (a linear cost in the columns, unlike a query per column)."""
    by_type: dict[pl.DataType, list[int]] = {}
    for i, dtype in enumerate(schema.values()):
        by_type.setdefault(dtype, []).append(i)
    columns = frame.get_columns()
    per_query = max(1, STACK_CELLS // max(1, frame.height))
    found: dict[int, dict[str, Any]] = {}
    value = pl.col("value")
    for dtype, positions in by_type.items():
        for start in range(0, len(positions), per_query):
            part = positions[start : start + per_query]
            stacked = pl.DataFrame(
                [
                    pl.Series("column", np.repeat(np.array(part, np.uint32), frame.height)),
                    pl.concat([columns[i].rename("value") for i in part]),
                ]
            )
            query = (
                stacked.lazy()
                .group_by("column", "value")
                .len(name="count")
                .filter(value.is_not_null())
                .group_by("column")
                .agg(_count_exprs(dtype))
            )
            for row in query.collect(engine="in-memory").iter_rows(named=True):
                found[int(row.pop("column"))] = row
    empty: dict[str, Any] = {"distinct": 0, "top": [], "low": [], "high": []}
    return [found.get(i, empty) for i in range(len(schema))]


def _merge_parts(parts: Sequence[pl.DataFrame]) -> dict[str, Any]:
    """The ``_counts_query`` row of a whole column from the rows of its hash parts: the
    parts hold disjoint values, so distinct counts add up and the global top / lowest /
    highest values are among the parts' own."""

    def pairs(column: str) -> pl.DataFrame:
        frames = [p.select(pl.col(column).explode()).unnest(column) for p in parts]
        return pl.concat(frames).filter(pl.col("count").is_not_null())

    value, count = pl.col("value"), pl.col("count")
    top = pairs("top").select(
        pl.struct(value, count).top_k_by([count, value], k=TOP_K, reverse=[False, True])
    )
    merged: dict[str, Any] = {
        "distinct": sum(int(p["distinct"][0]) for p in parts),
        "top": top.to_series().to_list(),
    }
    if "low" in parts[0].columns:
        edges = pl.concat([pairs("low"), pairs("high")]).unique()
        pair = pl.struct(value, count)
        merged["low"] = edges.select(pair.bottom_k_by(value, k=EDGE_K)).to_series().to_list()
        merged["high"] = edges.select(pair.top_k_by(value, k=EDGE_K)).to_series().to_list()
    return merged


def edge_counts(pairs: list[dict[str, Any]] | None, descending: bool) -> list[tuple[float, int]]:
    found = [(float(p["value"]), int(p["count"])) for p in pairs or []]
    return sorted(found, reverse=descending)


def profile_columns(
    source: pl.LazyFrame | ScanTable, schema: Mapping[str, pl.DataType]
) -> tuple[int, list[ColumnStats]]:
    """Return (row count, one ``ColumnStats`` per column in schema order).

    In memory, everything runs as one batch of queries (a wide table: ``_wide_in_memory``).
    On a bounded table the scalar aggregates stream (``PROFILE_BATCH`` columns a query when
    wide), quantiles are computed a few columns at a time, and each column's value counts
    are built on its own, split into hash parts of at most ``PART_VALUES`` distinct values
    (``approx_n_unique`` from the scalar pass says how many)."""
    table = ScanTable.of(source)
    kinds = {name: logical_type(dtype) for name, dtype in schema.items()}
    wide = len(schema) > WIDE_COLUMNS
    if table.bounded:
        row = {}
        for batch in _batches(list(schema.items()), wide):
            exprs = [pl.len().alias("rows")]
            for i, name, dtype in batch:
                exprs += _scalar_exprs(i, name, dtype, kinds[name], True)
            row.update(table.collect(table.lazy.select(exprs)).row(0, named=True))
        row.update(_bounded_quantiles(table, schema, kinds, int(row["rows"])))
        count_rows = [
            _bounded_counts(table, name, dtype, int(row[f"{i}:approx"] or 0))
            for i, (name, dtype) in enumerate(schema.items())
        ]
    elif wide:
        row, count_rows = _wide_in_memory(table, schema, kinds)
    else:
        exprs = [pl.len().alias("rows")]
        for i, (name, dtype) in enumerate(schema.items()):
            exprs += _scalar_exprs(i, name, dtype, kinds[name], False)
        queries = [_counts_query(table.lazy, name, dtype) for name, dtype in schema.items()]
        scalars, *counts = pl.collect_all([table.lazy.select(exprs), *queries])
        row = scalars.row(0, named=True)
        count_rows = [c.row(0, named=True) for c in counts]
    rows = int(row["rows"])

    stats: list[ColumnStats] = []
    for i, name in enumerate(schema):
        numeric = None
        if kinds[name] in NUMERIC_TYPES:
            numeric = numeric_summary(row, f"{i}:", row[f"{i}:q"])
        count_row = count_rows[i]
        top = [(top_value(t["value"]), int(t["count"])) for t in count_row["top"]]
        stats.append(
            ColumnStats(
                name=name,
                logical_type=kinds[name],
                null_count=int(row[f"{i}:nulls"]),
                distinct_count=int(count_row["distinct"]),
                numeric=numeric,
                top_values=top,
                lowest=edge_counts(count_row.get("low"), descending=False),
                highest=edge_counts(count_row.get("high"), descending=True),
            )
        )
    return rows, stats


def _batches(
    items: list[tuple[str, pl.DataType]], wide: bool
) -> list[list[tuple[int, str, pl.DataType]]]:
    """``(position, name, dtype)`` of the columns, ``PROFILE_BATCH`` at a time when
    ``wide`` (all in one batch otherwise)."""
    indexed = [(i, name, dtype) for i, (name, dtype) in enumerate(items)]
    size = PROFILE_BATCH if wide else max(1, len(indexed))
    return [indexed[s : s + size] for s in range(0, max(1, len(indexed)), size)]


def _wide_in_memory(
    table: ScanTable, schema: Mapping[str, pl.DataType], kinds: Mapping[str, str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The scalar row and the value-count rows of a wide in-memory table: the scalar
    aggregates ``PROFILE_BATCH`` columns a query over a frame of those columns alone, the
    value counts stacked (``_stacked_counts``); all on the in-memory engine."""
    frame = table.lazy.collect(engine="in-memory")
    columns = frame.get_columns()
    row: dict[str, Any] = {}
    for batch in _batches(list(schema.items()), True):
        exprs = [pl.len().alias("rows")]
        for i, name, dtype in batch:
            exprs += _scalar_exprs(i, name, dtype, kinds[name], False)
        part = pl.DataFrame([columns[i] for i, _, _ in batch]).lazy()
        row.update(part.select(exprs).collect(engine="in-memory").row(0, named=True))
    return row, _stacked_counts(frame, schema)


def _bounded_quantiles(
    table: ScanTable, schema: Mapping[str, pl.DataType], kinds: Mapping[str, str], rows: int
) -> dict[str, Any]:
    """``{i}:q`` of every numeric column; a quantile needs its column whole (sorted), so
    as many columns go together as fit ``QUANTILE_BYTES`` (16 bytes a value)."""
    numeric = [(i, n, d) for i, (n, d) in enumerate(schema.items()) if kinds[n] in NUMERIC_TYPES]
    per_query = max(1, QUANTILE_BYTES // max(1, 16 * rows))
    out: dict[str, Any] = {}
    for start in range(0, len(numeric), per_query):
        batch = numeric[start : start + per_query]
        query = table.lazy.select([_quantiles(n, d).alias(f"{i}:q") for i, n, d in batch])
        out.update(table.collect(query).row(0, named=True))
    return out


def _bounded_counts(
    table: ScanTable, name: str, dtype: pl.DataType, approx_distinct: int
) -> dict[str, Any]:
    parts = max(1, math.ceil(approx_distinct * 1.1 / PART_VALUES))
    if parts == 1:
        return table.collect(_counts_query(table.lazy, name, dtype)).row(0, named=True)
    found = [
        table.collect(_counts_query(table.lazy, name, dtype, (p, parts))) for p in range(parts)
    ]
    return _merge_parts(found)


def top_value(value: Any) -> Any:
    """Like ``json_value``, but NaN and infinities stay visible (as "nan", "inf", "-inf")
    instead of becoming None, which would read as a count of nulls."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return json_value(value)


def _number(value: Any) -> float | int | None:
    if value is None or isinstance(value, int | float):
        return value
    return float(value)
