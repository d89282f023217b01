"""``apply_all`` in bounded memory: a Parquet version fixed a chunk of rows at a time, for
versions above the in-memory threshold (``DATRIX_SCAN_IN_MEMORY_MB``), like the scan.

Same results as ``polars_transforms.apply_all`` on the whole table (the same rows, values
and change rows; ``tests/unit/test_transforms_bounded.py``), because every fix but a
dedupe is row-local once fitted, and a dedupe only needs to know which rows go:

1. Fitting, in ``ORDER``: each fix learns from the columns it reads (its column, the
   ``by`` of a group imputation), read from the file a chunk at a time with the earlier
   fixes of those columns applied, and held whole while it fits (a median needs the
   column): memory is those one or two columns, 8-16 bytes a row for numbers, not the
   table.
2. Exact dedupe: one pass hashes every fixed row (``detection.duplicate_rows`` on the
   fixed chunks: 8 bytes a row kept), a second fetches the rows that share a hash and
   keeps the first of each set of equal rows (the scan's rule and code).
3. The output pass: each chunk is fixed, its change rows merged (a row's cells never span
   chunks), its removed rows dropped, and both are appended to their Parquet files with
   fixed settings (deterministic bytes for the same input and fixes; other bytes than the
   in-memory ``write_table``, whose row groups differ).

Peak memory is one chunk (``chunk_rows``, from the row width as the scan chooses it) and
its fixed copy, the columns a fit reads, the row hashes and the candidate duplicate rows.
Not bounded, refused here with a ValueError naming the Spark engine: near-duplicate
dedupe (its search and clusters need the compared columns of every row) and model-based
imputation (KNN / iterative: a model over every numeric column).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from datrix.jobs.quality.detection import duplicate_rows
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.transforms import polars_transforms as pt
from datrix.jobs.transforms.base import (
    CHANGES_SCHEMA,
    PARQUET_COMPRESSION,
    PARQUET_COMPRESSION_LEVEL,
    ROW_ID,
    Secrets,
    empty_changes,
    merge_changes,
    removal_changes,
    require_column,
)
from datrix.jobs.transforms.specs import Dedupe, FixSpec, Impute, Pii, in_order


@dataclass(frozen=True)
class BoundedOutcome:
    """What the output pass wrote: rows and columns of the fixed table, change counts."""

    rows: int
    columns: list[str]
    cells_changed: int
    rows_removed: int
    columns_dropped: list[str] = field(default_factory=list)


def check_bounded(specs: Iterable[FixSpec]) -> None:
    """ValueError for a fix that needs the whole table in memory."""
    for spec in specs:
        if isinstance(spec, Dedupe) and spec.mode == "near" and spec.rows is None:
            raise ValueError(
                "near-duplicate dedupe needs the whole table in memory: above the in-memory "
                "threshold, run the fix on the Spark engine"
            )
        if isinstance(spec, Impute) and spec.method in ("knn", "iterative"):
            raise ValueError(
                f"{spec.rule} fits a model over every numeric column: above the in-memory "
                "threshold, run the fix on the Spark engine"
            )


def _reads(spec: FixSpec) -> set[str]:
    if isinstance(spec, Dedupe):
        return set()
    cols = {spec.column}
    if isinstance(spec, Impute) and spec.by:
        cols.add(spec.by)
    return cols


@dataclass(frozen=True)
class _Fixed(ScanTable):
    """The source read a chunk at a time with ``ROW_ID`` and the fitted fixes applied."""

    stages: tuple[pt.Fitted, ...] = ()
    source_columns: tuple[str, ...] = ()

    def chunks(self, columns: Sequence[str]) -> Iterator[tuple[int, pl.DataFrame]]:
        for start, chunk in _read(self, self.source_columns):
            for stage in self.stages:
                chunk = stage.apply(chunk).table
            yield start, chunk.select(columns)


def _read(table: ScanTable, columns: Sequence[str]) -> Iterator[tuple[int, pl.DataFrame]]:
    """Chunks of ``columns`` with ``ROW_ID`` (the position in the file) first."""
    for start, chunk in ScanTable.chunks(table, list(columns)):
        ids = pl.int_range(start, start + chunk.height, dtype=pl.Int64, eager=True)
        yield start, chunk.with_columns(ids.alias(ROW_ID)).select(ROW_ID, *columns)


def apply_all_bounded(
    specs: Iterable[FixSpec],
    source: Path,
    table_out: Path,
    changes_out: Path,
    secrets: Secrets | None = None,
    chunk_rows: int | None = None,
) -> BoundedOutcome:
    """Fix the Parquet file ``source`` in bounded memory (module docstring): the fixed
    table (without ``ROW_ID``) to ``table_out``, the merged change rows to
    ``changes_out``."""
    ordered = in_order(specs)
    check_bounded(ordered)
    table = ScanTable.open(source, in_memory_mb=0, in_memory_rows=0, chunk_rows=chunk_rows)
    schema = table.lazy.collect_schema()
    columns = [c for c in schema.names() if c != ROW_ID]
    empty = pl.DataFrame(schema={c: schema[c] for c in columns})
    for spec in ordered:  # an unknown column is named before any pass over the file
        for column in sorted(_reads(spec)):
            require_column(empty, column, spec.rule)
    stages: list[pt.Fitted] = []
    dedupes: list[Dedupe] = []
    dropped: set[str] = set()
    for spec in ordered:
        if isinstance(spec, Dedupe):
            dedupes.append(spec)
            continue
        if spec.column in dropped:  # as apply_all: nothing left to fix
            continue
        if isinstance(spec, Pii) and spec.action == "drop_column":
            dropped.add(spec.column)
        stages.append(pt.fit(spec, _fit_frame(table, columns, stages, spec), secrets))
    removed = _removed_rows(table, columns, stages, dedupes)
    return _write(table, columns, stages, dedupes, removed, table_out, changes_out)


def _fit_frame(
    table: ScanTable, columns: list[str], stages: list[pt.Fitted], spec: FixSpec
) -> pl.DataFrame:
    """The columns ``spec`` reads (and those the earlier fixes of them read), every row,
    with those fixes applied."""
    wanted = _reads(spec)
    earlier: list[pt.Fitted] = []
    for stage in reversed(stages):
        if _reads(stage.spec) & wanted:
            earlier.insert(0, stage)
            wanted |= _reads(stage.spec)
    present = [c for c in columns if c in wanted]
    parts = []
    for _, chunk in _read(table, present):
        for stage in earlier:
            chunk = stage.apply(chunk).table
        parts.append(chunk)
    return pl.concat(parts)


def _fixed_table(table: ScanTable, columns: list[str], stages: list[pt.Fitted]) -> _Fixed:
    return _Fixed(
        table.lazy,
        table.rows,
        table.chunk_rows,
        True,
        table.decoded_bytes,
        stages=tuple(stages),
        source_columns=tuple(columns),
    )


def _removed_rows(
    table: ScanTable, columns: list[str], stages: list[pt.Fitted], dedupes: list[Dedupe]
) -> dict[int, str]:
    """ROW_ID -> the dedupe rule that removes it."""
    removed: dict[int, str] = {}
    for spec in dedupes:
        if spec.rows is not None:
            for r in spec.rows:
                removed.setdefault(int(r), spec.rule)
            continue
        fixed = _fixed_table(table, columns, stages)
        out_columns = _output_columns(columns, stages)
        if removed:
            raise ValueError("a second dedupe after an exact dedupe is not run in bounded memory")
        for position in duplicate_rows(fixed, out_columns) if table.rows > 1 else []:
            removed[int(position)] = spec.rule  # positions are ROW_IDs: nothing removed yet
    return removed


def _output_columns(columns: list[str], stages: list[pt.Fitted]) -> list[str]:
    dropped = {
        s.spec.column
        for s in stages
        if getattr(s.spec, "action", None) == "drop_column" and s.spec.column is not None
    }
    return [c for c in columns if c not in dropped]


def _write(
    table: ScanTable,
    columns: list[str],
    stages: list[pt.Fitted],
    dedupes: list[Dedupe],
    removed: dict[int, str],
    table_out: Path,
    changes_out: Path,
) -> BoundedOutcome:
    gone = pl.DataFrame(
        {ROW_ID: list(removed), "__rule": list(removed.values())},
        schema={ROW_ID: pl.Int64, "__rule": pl.String},
    )
    writers: dict[str, pq.ParquetWriter] = {}
    rows = cells = removals = 0
    out_columns: list[str] = []
    dropped: list[str] = []

    def append(name: str, path: Path, frame: pl.DataFrame) -> None:
        arrow = frame.to_arrow()
        writer = writers.get(name)
        if writer is None:
            writer = pq.ParquetWriter(
                path,
                arrow.schema,
                compression=PARQUET_COMPRESSION,
                compression_level=PARQUET_COMPRESSION_LEVEL,
                write_statistics=True,
            )
            writers[name] = writer
        writer.write_table(arrow)

    try:
        for start, chunk in _read(table, columns):
            parts = []
            for stage in stages:
                done = stage.apply(chunk)
                chunk = done.table
                parts.append(done.changes)
            here = gone.filter(pl.col(ROW_ID).is_in(chunk[ROW_ID].implode()))
            for rule in dict.fromkeys(d.rule for d in dedupes):
                mine = here.filter(pl.col("__rule") == rule)[ROW_ID]
                leaving = chunk.filter(pl.col(ROW_ID).is_in(mine.implode()))
                parts.append(removal_changes(leaving, rule, 1.0))
            chunk = chunk.filter(~pl.col(ROW_ID).is_in(here[ROW_ID].implode()))
            changes = merge_changes(parts) if parts else empty_changes()
            if start > 0:  # a dropped column's row once, from the first chunk
                changes = changes.filter(pl.col("row_id").is_not_null())
            else:
                dropped = changes.filter(pl.col("row_id").is_null())["column"].to_list()
            out = chunk.drop(ROW_ID)
            out_columns = out.columns
            append("table", table_out, out)
            append("changes", changes_out, changes.select(CHANGES_SCHEMA.names()))
            rows += out.height
            cells += changes.filter(
                pl.col("column").is_not_null() & pl.col("row_id").is_not_null()
            ).height
            removals += changes.filter(pl.col("column").is_null()).height
    finally:
        for writer in writers.values():
            writer.close()
    return BoundedOutcome(rows, out_columns, cells, removals, dropped)
