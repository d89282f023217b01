"""What every transform shares: row identity, the change rows (provenance), how the
changes of several fixes merge into one row per cell, the tenant's secrets and the
deterministic Parquet writer.

Row identity. A transform's table has the column ``ROW_ID`` (Int64): the row's 0-based
position in the version the fix starts from (the numbering of a scan's affected rows).
Transforms keep it and never change it; the job drops it before writing the new version.

Changes (``CHANGES_SCHEMA``): ``row_id, column, old_value, new_value, rule, confidence``.
Values are the cell's text form (``text``: ``cast(String)``: ISO dates, Polars' float
repr; nested values as JSON), null for a null cell. A changed cell is one row; a cell
whose text did not change has none. A removed row (dedupe) is one row with ``column`` null,
``old_value`` the JSON object of the removed row (``row_json``: column -> text, in the
table's column order, nulls included, compact separators) and ``new_value`` null. A
dropped column is one row with ``row_id`` null, ``column`` the column, old/new null.

PII: a PII fix's change rows hold the old value masked (``mask_pii``: ``pii.mask_text``,
``a•••@e•••.com``), never the personal data the fix removed; merged chains that include a
PII fix after another fix, and the JSON of a removed row restored to its input values,
are masked alike (``mask_pii_chains``). The unmasked value stays only in the version the
fix started from (what a rollback restores).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import polars as pl

ROW_ID = "__datrix_row__"

CHANGES_SCHEMA: pl.Schema = pl.Schema(
    {
        "row_id": pl.Int64,
        "column": pl.String,
        "old_value": pl.String,
        "new_value": pl.String,
        "rule": pl.String,
        "confidence": pl.Float64,
    }
)
CHANGE_COLUMNS: tuple[str, ...] = tuple(CHANGES_SCHEMA.names())
REDACTED = "<REDACTED>"

# The Parquet every fix writes (new versions, provenance): fixed settings, so the same
# table gives the same bytes (Polars writes no timestamp).
PARQUET_COMPRESSION: Literal["zstd"] = "zstd"
PARQUET_COMPRESSION_LEVEL = 3
PARQUET_ROW_GROUP_ROWS = 262_144


@dataclass(frozen=True)
class Applied:
    """A transform's result: the new table (with ``ROW_ID``) and its change rows."""

    table: pl.DataFrame
    changes: pl.DataFrame


@dataclass(frozen=True)
class Secrets:
    """A tenant's PII secrets: ``salt`` for ``pii.hash``, ``token_key`` (32, 48 or 64
    bytes: AES-SIV) for ``pii.tokenise``. Either may be absent; a fix that needs an absent
    one fails with a ValueError. Never shown in a repr."""

    salt: bytes | None = field(default=None, repr=False)
    token_key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name in ("salt", "token_key"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bytes):
                raise ValueError(f"Secrets.{name} must be bytes")


def with_row_ids(table: pl.DataFrame) -> pl.DataFrame:
    """``table`` with ``ROW_ID`` (0..n-1) first, unless it has one already."""
    if ROW_ID in table.columns:
        if table.schema[ROW_ID] != pl.Int64:
            raise ValueError(f"{ROW_ID} must be Int64, not {table.schema[ROW_ID]}")
        return table
    return table.with_row_index(ROW_ID).with_columns(pl.col(ROW_ID).cast(pl.Int64))


def require_row_ids(table: pl.DataFrame) -> None:
    if ROW_ID not in table.columns:
        raise ValueError(f"the table has no {ROW_ID} column (use base.with_row_ids)")


def require_column(table: pl.DataFrame, column: str, what: str) -> None:
    if column == ROW_ID or column not in table.columns:
        shown = ", ".join(c for c in table.columns if c != ROW_ID)
        raise ValueError(f"{what}: unknown column {column!r} (columns: {shown})")


def text(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """The text form of a column's values (null stays null)."""
    if isinstance(dtype, pl.List | pl.Array | pl.Struct):
        return expr.map_elements(
            lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str),
            return_dtype=pl.String,
            skip_nulls=True,
        )
    if dtype == pl.Null:
        return expr.cast(pl.String)
    return expr.cast(pl.String)


def empty_changes() -> pl.DataFrame:
    return pl.DataFrame(schema=CHANGES_SCHEMA)


def conform(changes: pl.DataFrame) -> pl.DataFrame:
    """``changes`` with exactly ``CHANGES_SCHEMA``'s columns, order and types."""
    return changes.select(pl.col(n).cast(t) for n, t in CHANGES_SCHEMA.items())


def cell_changes(
    before: pl.DataFrame,
    after: pl.DataFrame,
    column: str,
    rule: str,
    confidence: float | pl.Expr = 1.0,
) -> pl.DataFrame:
    """The change rows of ``column`` between two frames of the same rows (same ``ROW_ID``s
    in the same order): one per cell whose text form differs. ``confidence`` is a number
    or an expression over ``after`` (a per-row model confidence)."""
    conf = confidence if isinstance(confidence, pl.Expr) else pl.lit(float(confidence))
    old_type, new_type = before.schema[column], after.schema[column]
    pair = pl.concat(
        [
            after.select(
                pl.col(ROW_ID).alias("row_id"),
                pl.col(column).alias("__new"),
                conf.cast(pl.Float64).alias("confidence"),
            ),
            before.select(pl.col(column).alias("__old")),
        ],
        how="horizontal",
    )
    if old_type == new_type and not isinstance(old_type, pl.List | pl.Array | pl.Struct):
        # Only cells whose value may differ are turned into text: equal values of one type
        # have equal text, but for floats -0.0 == 0.0 and NaN, which are looked at too.
        maybe = ~pl.col("__old").eq_missing(pl.col("__new"))
        if old_type.is_float():
            maybe = maybe | (pl.col("__old") == 0).fill_null(False) | pl.col("__old").is_nan()
        pair = pair.filter(maybe)
    changed = pair.select(
        "row_id",
        text(pl.col("__old"), old_type).alias("old_value"),
        text(pl.col("__new"), new_type).alias("new_value"),
        "confidence",
    ).filter(~pl.col("old_value").eq_missing(pl.col("new_value")))
    return conform(changed.with_columns(pl.lit(column).alias("column"), pl.lit(rule).alias("rule")))


def row_json(table: pl.DataFrame) -> pl.Series:
    """Each row of ``table`` (without ``ROW_ID``) as a JSON object: column -> text, in
    column order, nulls included."""
    columns = [c for c in table.columns if c != ROW_ID]
    if not columns:
        return pl.Series("old_value", ["{}"] * table.height, dtype=pl.String)
    return table.select(
        pl.struct([text(pl.col(c), table.schema[c]).alias(c) for c in columns])
        .struct.json_encode()
        .alias("old_value")
    ).to_series()


def removal_changes(
    removed: pl.DataFrame, rule: str, confidence: float | pl.Series
) -> pl.DataFrame:
    """One change row per removed row (``removed`` has ``ROW_ID``)."""
    conf = (
        confidence.cast(pl.Float64)
        if isinstance(confidence, pl.Series)
        else pl.Series([float(confidence)] * removed.height, dtype=pl.Float64)
    )
    return pl.DataFrame(
        {
            "row_id": removed[ROW_ID],
            "column": pl.Series([None] * removed.height, dtype=pl.String),
            "old_value": row_json(removed),
            "new_value": pl.Series([None] * removed.height, dtype=pl.String),
            "rule": pl.Series([rule] * removed.height, dtype=pl.String),
            "confidence": conf,
        },
        schema=CHANGES_SCHEMA,
    )


def column_drop_change(column: str, rule: str = "pii.drop_column") -> pl.DataFrame:
    return pl.DataFrame(
        {
            "row_id": [None],
            "column": [column],
            "old_value": [None],
            "new_value": [None],
            "rule": [rule],
            "confidence": [1.0],
        },
        schema=CHANGES_SCHEMA,
    )


def merge_changes(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """The change rows of fixes applied one after the other (``parts`` in that order)
    merged so that each changed cell has exactly one row: ``old_value`` before the first
    fix, ``new_value`` after the last, ``rule`` the rules joined with ``+``,
    ``confidence`` their product. A cell changed back to its first value has no row.
    The cells of a row removed later keep only the removal row, whose JSON then holds the
    cells' values before the first fix; the cells of a dropped column only the drop row.
    Sorted: dropped columns, then by row and column (a removal before its row's cells)."""
    if not parts:
        return empty_changes()
    all_rows = pl.concat(
        [conform(p).with_columns(pl.lit(i, pl.Int32).alias("_part")) for i, p in enumerate(parts)]
    ).with_row_index("_seq")
    drops = all_rows.filter(pl.col("row_id").is_null())
    removals = all_rows.filter(pl.col("row_id").is_not_null() & pl.col("column").is_null())
    cells = all_rows.filter(pl.col("row_id").is_not_null() & pl.col("column").is_not_null())
    # A cell's history ends where its row or its column goes.
    removed_at = removals.group_by("row_id").agg(pl.col("_seq").min().alias("_removed_at"))
    dropped_at = drops.group_by("column").agg(pl.col("_seq").min().alias("_dropped_at"))
    cells = cells.join(removed_at, on="row_id", how="left").join(
        dropped_at, on="column", how="left"
    )
    ended = pl.col("_removed_at").is_not_null() | pl.col("_dropped_at").is_not_null()
    earlier = cells.filter(ended & (pl.col("_seq") < pl.coalesce("_removed_at", "_dropped_at")))
    patches = (
        earlier.filter(pl.col("_removed_at").is_not_null() & pl.col("_dropped_at").is_null())
        .sort("_seq")
        .group_by("row_id", "column", maintain_order=True)
        .agg(pl.col("old_value").first(), pl.col("rule").str.join("+"))
        .pipe(mask_pii_chains)
        .drop("rule")
    )
    live = cells.filter(~ended)
    # Only a column more than one fix changed can have a cell with several rows: the
    # others' rows are already one per cell (most rows, no grouping needed).
    shared = (
        live.group_by("column")
        .agg(pl.col("_part").n_unique().alias("_fixes"))
        .filter(pl.col("_fixes") > 1)["column"]
    )
    in_shared = pl.col("column").is_in(shared.implode())
    single = live.filter(~in_shared).filter(~pl.col("old_value").eq_missing(pl.col("new_value")))
    merged = (
        live.filter(in_shared)
        .sort("_seq")
        .group_by("row_id", "column", maintain_order=True)
        .agg(
            pl.col("old_value").first(),
            pl.col("new_value").last(),
            pl.col("rule").str.join("+"),
            pl.col("confidence").product(),
        )
        .filter(~pl.col("old_value").eq_missing(pl.col("new_value")))
        .pipe(mask_pii_chains)
    )
    removals = removals.sort("_seq").unique("row_id", keep="first", maintain_order=True)
    if patches.height:
        removals = _patch_removed_rows(removals, patches)
    out = pl.concat(
        [conform(drops.sort("_seq").unique("column", keep="first", maintain_order=True)),
         conform(removals), conform(single), conform(merged)]
    )  # fmt: skip
    return out.sort(["row_id", "column"], nulls_last=False, maintain_order=True).pipe(
        _clamp_confidence
    )


def mask_pii(values: pl.Expr) -> pl.Expr:
    """The display form of personal data (``pii.mask_text``: ``a•••@e•••.com``)."""
    from datrix.jobs.quality.pii import mask_text

    return values.map_elements(mask_text, return_dtype=pl.String, skip_nulls=True)


def mask_pii_chains(changes: pl.DataFrame) -> pl.DataFrame:
    """Merged rows whose rules include a PII fix after another fix: their old value (the
    input value, from the earlier fix's row) masked, as the PII fix masked its own (a
    PII fix's provenance never holds the personal data it removed)."""
    later = pl.col("rule").str.contains("+pii.", literal=True)
    if changes.height == 0 or not changes.select(later.any()).item():
        return changes
    return changes.with_columns(
        pl.when(later).then(mask_pii(pl.col("old_value"))).otherwise(pl.col("old_value"))
    )


def _clamp_confidence(changes: pl.DataFrame) -> pl.DataFrame:
    return changes.with_columns(pl.col("confidence").clip(0.0, 1.0))


def _patch_removed_rows(removals: pl.DataFrame, patches: pl.DataFrame) -> pl.DataFrame:
    """Put the first values of cells changed before their row was removed back into the
    removal rows' JSON (the row as it was in the input version)."""
    by_row: dict[int, dict[str, str | None]] = {}
    for row_id, column, old in patches.iter_rows():
        by_row.setdefault(int(row_id), {})[column] = old
    values = []
    for row_id, old in zip(
        removals["row_id"].to_list(), removals["old_value"].to_list(), strict=True
    ):
        fix = by_row.get(int(row_id))
        if fix is None or old is None:
            values.append(old)
            continue
        record = json.loads(old)
        for column, value in fix.items():
            if column in record:
                record[column] = value
        values.append(dump_json(record))
    return removals.with_columns(pl.Series("old_value", values, dtype=pl.String))


def dump_json(record: object) -> str:
    """Compact JSON as ``row_json`` writes it (Polars' ``json_encode``)."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def product(values: Sequence[float]) -> float:
    return float(math.prod(values))


def write_table(table: pl.DataFrame, path: Path | str) -> None:
    """Write ``table`` as Parquet with the fixed settings of every fix output (zstd level
    3, statistics, row groups of ``PARQUET_ROW_GROUP_ROWS``): the same table gives the
    same bytes."""
    table.write_parquet(
        Path(path),
        compression=PARQUET_COMPRESSION,
        compression_level=PARQUET_COMPRESSION_LEVEL,
        statistics=True,
        row_group_size=PARQUET_ROW_GROUP_ROWS,
        use_pyarrow=False,
    )
