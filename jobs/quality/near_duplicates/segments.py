"""A bounded table searched one hash segment at a time (``find_near_duplicates_in``; see
the package docstring, *Segments*)."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from datrix.jobs.quality.near_duplicates.columns import (
    _agreement,
    _is_text,
    normalise,
    select_columns,
    surrogate_keys,
)
from datrix.jobs.quality.near_duplicates.search import NearDuplicates, _detect, _find_whole, _result
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.rowset import RowSet, as_indices
from datrix.jobs.quality.table import ScanTable

# Rows searched together at most, about 1 GB of columns and hashes for 50 columns.
SEGMENT_ROWS = 500_000  # ~0.8 GiB peak per segment of 50 mixed columns (1M: ~1.3 GiB)
MAX_PARTITION_NULLS = 0.1  # a partition column is preferably at most this share null
PARTITION_SEED = 0x5E6D  # hash of the partition value (not HASH_SEED: see segment_expr)
ROW_INDEX = "__datrix_near_row"


@dataclass(frozen=True)
class SearchPlan:
    """How a table's near duplicates are searched, decided from its profile alone (both
    engines ask ``plan_search``, so they search the same rows together): the compared
    columns, those whose tokens feed MinHash LSH, the id-like columns left out, the hash
    segments (1: the whole table at once) and the partition column of the segments."""

    used: list[str]
    informative: list[str]
    ignored: tuple[str, ...]
    segments: int = 1
    partition: str | None = None


def plan_search(
    stats: Sequence[ColumnStats],
    rows: int,
    unique_rows: int,
    bounded: bool,
    segment_rows: int | None = None,
) -> SearchPlan:
    """The search of a table of ``rows`` rows, ``unique_rows`` of them left after the
    exact copies: whole when the table is in memory (not ``bounded``) or ``unique_rows``
    is at most ``segment_rows`` (``segment_limit``), else ``ceil(unique_rows /
    segment_rows)`` hash segments on ``partition_column`` (see the module docstring,
    *Segments*). No column is compared below two unique rows."""
    if unique_rows < 2:
        return SearchPlan([], [], ())
    limit = segment_limit(segment_rows)
    used, informative = select_columns(stats, rows, unique_rows)
    ignored = tuple(surrogate_keys(stats, unique_rows))
    if unique_rows <= limit or not bounded or not used:
        return SearchPlan(used, informative, ignored)
    segments = math.ceil(unique_rows / limit)
    partition = partition_column(stats, rows, used, limit)
    return SearchPlan(used, informative, ignored, segments, partition)


def find_near_duplicates_in(
    table: ScanTable,
    schema: Mapping[str, pl.DataType],
    stats: Sequence[ColumnStats],
    exclude: Sequence[int] = (),
    seed: int = 0,
    segment_rows: int | None = None,
) -> NearDuplicates:
    """``find_near_duplicates`` on a ``ScanTable`` in bounded memory.

    When the table is in memory, or the rows left after ``exclude`` (a list or ``RowSet``
    of the redundant exact copies) number at most ``segment_rows`` (default ``SEGMENT_ROWS``;
    scans pass ``DATRIX_NEAR_DUP_SEGMENT_ROWS``), this is ``find_near_duplicates`` on the
    whole table (collected on the streaming engine when the table is bounded). Otherwise the
    table is searched one hash segment at a time (see the module docstring, *Segments*)."""
    unique_rows = table.rows - _count(exclude)
    plan = plan_search(stats, table.rows, unique_rows, table.bounded, segment_rows)
    if plan.segments == 1:  # in memory, or few rows: the whole table at once
        return _find_whole(table.lazy, stats, table.rows, exclude, seed, table.collect)
    # Segmented plans always compare columns: plan_search searches a table without any whole.
    used, informative, ignored = plan.used, plan.informative, plan.ignored
    segments, partition = plan.segments, plan.partition
    index = _free_name(list(schema), ROW_INDEX)
    which = segment_expr(partition, schema[partition] if partition else None, index, segments)
    dropped = _row_mask(exclude, table.rows)
    # Every segment compares about n^2 / 2 of its own pairs; the chance threshold is set
    # for all the pairs compared in all segments together, as the whole-table search sets
    # it for all the table's pairs.
    found: list[np.ndarray[Any, Any]] = []
    odds: list[np.ndarray[Any, Any]] = []
    candidates, truncated = 0, False
    with tempfile.TemporaryDirectory(prefix="datrix-segments-") as spill:
        for frame in _segment_frames(table, used, index, which, segments, dropped, Path(spill)):
            ids = frame[index].to_numpy().astype(np.int64)
            frame = frame.drop(index)
            if ids.size < 2:
                continue
            pairs_arr, scores, count, cut = _detect(
                frame, used, informative, None, ids, seed, chance_scale=float(segments)
            )
            del frame
            candidates += count
            truncated = truncated or cut
            found.append(pairs_arr)
            odds.append(scores)
    pairs_arr = np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)
    return _result(
        np.sort(pairs_arr, axis=1),
        candidates,
        truncated,
        len(used),
        ignored,
        segments=segments,
        partition=partition,
        scores=np.concatenate(odds) if odds else None,
    )


def _segment_frames(
    table: ScanTable,
    used: Sequence[str],
    index: str,
    which: pl.Expr,
    segments: int,
    dropped: np.ndarray[Any, Any] | None,
    spill: Path,
) -> Iterator[pl.DataFrame]:
    """Each segment's rows (``used`` columns and the row number ``index``, excluded rows
    left out), one segment at a time. The table is read once, a chunk of rows at a time,
    each chunk's rows appended to their segment's spill file (LZ4 Parquet under
    ``spill``); reading the table once per segment would cost ``segments`` full reads."""
    paths = [spill / f"segment-{part}.parquet" for part in range(segments)]
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for start, chunk in table.chunks(used):
            ids = np.arange(start, start + chunk.height, dtype=np.int64)
            frame = chunk.with_columns(pl.Series(index, ids, dtype=pl.UInt32))
            if dropped is not None:
                frame = frame.filter(pl.Series(~dropped[ids]))
            key = _free_name([*used, index], "__datrix_segment")
            frame = frame.with_columns(which.alias(key))
            for (part,), piece in frame.partition_by(key, as_dict=True, include_key=False).items():
                arrow = piece.to_arrow()
                writer = writers.get(int(part))
                if writer is None:
                    writer = pq.ParquetWriter(paths[int(part)], arrow.schema, compression="lz4")
                    writers[int(part)] = writer
                writer.write_table(arrow)
    finally:
        for writer in writers.values():
            writer.close()
    for part in range(segments):
        if part in writers:
            yield pl.read_parquet(paths[part], glob=False)
            paths[part].unlink()


def segment_limit(segment_rows: int | None = None) -> int:
    """Rows of one segment: ``segment_rows`` (the engine's ``ScanTuning``, from
    ``DATRIX_NEAR_DUP_SEGMENT_ROWS``), else SEGMENT_ROWS."""
    if segment_rows is None:
        segment_rows = SEGMENT_ROWS
    return max(2, int(segment_rows))


def partition_column(
    stats: Sequence[ColumnStats], rows: int, used: Sequence[str], segment_rows: int
) -> str | None:
    """The column whose normalised value decides a row's segment: among the compared
    columns (``select_columns``: no id-like or constant column) whose most frequent value
    fits in half a segment, the one two random rows least often agree on (``_agreement``,
    the best single-column blocking key), preferring columns at most MAX_PARTITION_NULLS
    null (a row with a null goes to a segment by its row number), then fewer nulls, then
    the name. None when no column fits: the segments are then row-number classes."""
    by_name = {s.name: s for s in stats}
    fits = [
        c
        for c in used
        if max((count for _, count in by_name[c].top_values), default=0) <= segment_rows // 2
    ]
    if not fits:
        return None

    def rank(name: str) -> tuple[bool, float, float, str]:
        nulls = by_name[name].null_count / max(rows, 1)
        return nulls > MAX_PARTITION_NULLS, _agreement(by_name[name], rows), nulls, name

    return min(fits, key=rank)


def segment_expr(
    column: str | None, dtype: pl.DataType | None, index: str, segments: int
) -> pl.Expr:
    """A row's segment (UInt64, 0 .. segments - 1): a hash of the normalised value of
    ``column`` (as compared: case and spaces ignored), so rows agreeing on it share a
    segment; the row number ``index`` when the value is null or there is no column.

    Hashed with its own seed: ``_hash_expr`` sets the lowest bit, so its hashes modulo an
    even number of segments would fill only the odd ones."""
    by_row = pl.col(index).cast(pl.UInt64) % segments
    if column is None or dtype is None:
        return by_row
    value = normalise(pl.col(column)) if _is_text(dtype) else pl.col(column)
    by_value = value.hash(seed=PARTITION_SEED) % segments
    return pl.when(pl.col(column).is_null()).then(by_row).otherwise(by_value)


def segment_numbers(
    frame: pl.DataFrame,
    partition: str | None,
    dtype: pl.DataType | None,
    index: str,
    segments: int,
) -> np.ndarray[Any, Any]:
    """``segment_expr`` evaluated on ``frame`` (the row number in ``index``), the
    partition column first given ``dtype``, the type the Polars engine reads it as: the
    hash depends on the type (a timestamp in ns hashes unlike the same one in us), and
    another reader (Spark's Arrow batches) may hand the values over in another type."""
    if partition is not None and dtype is not None and frame.schema[partition] != dtype:
        column = frame.get_column(partition)
        if isinstance(dtype, pl.Datetime) and isinstance(column.dtype, pl.Datetime):
            column = column.dt.cast_time_unit(dtype.time_unit)  # the zone does not hash
        else:
            column = column.cast(dtype)
        frame = frame.with_columns(column)
    which = segment_expr(partition, dtype, index, segments)
    return frame.select(which).to_series().to_numpy()


def _free_name(taken: Sequence[str], base: str) -> str:
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def _count(exclude: Sequence[int]) -> int:
    """Distinct rows in ``exclude``, without materialising a RowSet's indices."""
    if isinstance(exclude, RowSet):
        return len(exclude)
    return int(np.unique(as_indices(exclude)).size)


def _row_mask(exclude: Sequence[int], rows: int) -> np.ndarray[Any, Any] | None:
    """Boolean mask of the excluded rows (one byte a row: 27 MB for 27 million rows,
    against 216 MB for the indices of a table that is all copies), or None when nothing
    is excluded."""
    if len(exclude) == 0:
        return None
    if isinstance(exclude, RowSet) and exclude.size == rows:
        return exclude.mask()
    mask = np.zeros(rows, dtype=bool)
    mask[as_indices(exclude)] = True
    return mask
