"""Near duplicates on Spark without collecting the table: the Polars engine's search, run
on the executors one hash segment per group, so both engines report the same pairs.

The Polars engine (``near_duplicates.find_near_duplicates_in``) searches a table whole, or,
when it is bounded and more than ``segment_rows`` rows are left after the exact copies, in
``P = ceil(unique_rows / segment_rows)`` hash segments (``segment_expr`` of the partition
column), each segment by ``_detect`` with the chance threshold scaled by ``P``. This module
does exactly that on Spark:

1. The plan (compared columns, id-like columns left out, ``P``, the partition column) comes
   from ``near_duplicates.plan_search`` on the driver, from the profile and the Parquet
   metadata alone: the table counts as bounded as ``ScanTable.open`` would decide it for the
   Polars engine with the same ``ScanTuning`` (``table.fits_in_memory``), so a table the
   Polars engine searches whole is searched whole here too, in one group.
2. The compared columns and the row position are selected; the redundant exact copies (their
   positions are on the driver already, from the duplicate step) are dropped by a left
   anti-join with a small DataFrame of them.
3. Each row's segment is computed by Polars' own ``segment_expr`` in the Python workers
   (``mapInArrow``; the partition column first cast to the type Polars reads it as:
   ``segment_numbers``). Polars' seeded hash is the same in every process of one Polars
   version, and the workers run this interpreter (``PYSPARK_PYTHON``).
4. ``groupBy(segment).applyInArrow`` hands each segment's rows, sorted by row position as
   the Polars path reads them, to ``_detect`` on an executor, which returns only the pairs
   found (row positions and match log-odds) and one row with the segment's candidate count
   and whether its candidates were cut.
5. The driver gathers those rows (a few per near duplicate) and builds the finding by
   ``_result``, as ``find_near_duplicates_in`` does.

Memory: the driver holds the pairs and the positions of the exact copies, never the
columns. An executor's Python worker holds one segment (or, searched whole, the table's
compared columns) with its hash matrix: about 0.8 GiB for 500k rows of 50 mixed columns
(``DATRIX_NEAR_DUP_SEGMENT_ROWS``), outside the JVM heap; a worker machine therefore needs
that much beside ``spark.executor.memory`` per concurrently running segment (one per core;
``spark.executor.pyspark.memory`` may cap it). The JVM streams a group's rows to Python in
Arrow batches and does not hold the group. Clusters are not computed here: the report uses
the pairs (``rows``, ``redundant``) as the Polars engine does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from datrix.jobs.engine import ScanTuning
from datrix.jobs.quality.near_duplicates import NearDuplicates, plan_search, segment_numbers
from datrix.jobs.quality.near_duplicates.search import _detect, _result
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.table import fits_in_memory, parquet_size

POSITION = "__datrix_near_pos"
SEGMENT = "__datrix_near_segment"
# One row per pair found, and one per segment (a = -1) with its candidates and cut flag.
FOUND_SCHEMA = "a long, b long, score double, candidates long, truncated boolean"


def near_duplicates(
    df: Any,
    position: dict[str, str],
    index: str,
    stats: Sequence[ColumnStats],
    rows: int,
    redundant: Sequence[int],
    seed: int,
    path: Path | None,
    tuning: ScanTuning,
) -> NearDuplicates:
    """The near duplicates of ``df`` (columns named by ``position``: name -> column; the
    row's position in column ``index``) without collecting it: the same pairs, scores and
    counts as the Polars engine's ``find_near_duplicates_in`` on the Parquet data at
    ``path`` (see the module docstring); without a path (a frame of the fix transforms,
    searched in memory by Polars), the whole table in one group. ``redundant``: positions
    of the exact copies."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    copies = sorted(set(redundant))
    unique_rows = rows - len(copies)
    bounded = path is not None and _bounded(path, tuning)
    plan = plan_search(stats, rows, unique_rows, bounded, tuning.segment_rows)
    if not plan.used:
        return NearDuplicates(keys_ignored=plan.ignored)
    names = list(plan.used)
    cols = [f"n{j}" for j in range(len(names))]  # user names never clash with helpers
    picked = df.select(
        F.col(index).cast("long").alias(POSITION),
        *(F.col(position[n]).alias(c) for n, c in zip(names, cols, strict=True)),
    )
    if copies:
        drop = df.sparkSession.createDataFrame(pa.table({POSITION: pa.array(copies, pa.int64())}))
        picked = picked.join(drop, POSITION, "left_anti")
    segments, partition = plan.segments, plan.partition
    if segments == 1:
        keyed = picked.withColumn(SEGMENT, F.lit(0).cast("long"))
    else:
        column = cols[names.index(partition)] if partition is not None else None
        known = _polars_schema(path) if path is not None else {}
        dtype = known.get(partition) if partition is not None else None
        schema = T.StructType([*picked.schema.fields, T.StructField(SEGMENT, T.LongType())])
        keyed = picked.mapInArrow(_assign(column, dtype, segments), schema)
    search = _search(names, cols, list(plan.informative), seed, segments)
    found = keyed.groupBy(SEGMENT).applyInArrow(search, FOUND_SCHEMA).toArrow()
    a = found.column("a").to_numpy()
    pairs = a >= 0
    pairs_arr = np.stack([a[pairs], found.column("b").to_numpy()[pairs]], axis=1)
    scores = found.column("score").to_numpy()[pairs]
    meta = ~pairs
    candidates = int(found.column("candidates").to_numpy()[meta].sum())
    truncated = bool(np.any(found.column("truncated").to_numpy(zero_copy_only=False)[meta]))
    return _result(
        np.sort(pairs_arr.astype(np.int64), axis=1),
        candidates,
        truncated,
        len(names),
        plan.ignored,
        segments=segments,
        partition=partition if segments > 1 else None,
        scores=scores if pairs_arr.shape[0] else None,
    )


def _bounded(path: Path, tuning: ScanTuning) -> bool:
    """Whether the Polars engine would read ``path`` bounded (``ScanTable.open`` with the
    same tuning), from the Parquet metadata alone; a directory counts all its files."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    rows = decoded = 0
    for file in files:
        r, d = parquet_size(file)
        rows, decoded = rows + r, decoded + d
    return not fits_in_memory(rows, decoded, tuning.in_memory_mb, tuning.in_memory_rows)


def _polars_schema(path: Path) -> dict[str, pl.DataType]:
    """The column types Polars reads ``path`` (a file, or a directory's first file) as,
    from the Parquet schema alone."""
    file = min(path.rglob("*.parquet")) if path.is_dir() else path
    return dict(pl.read_parquet_schema(file))


def _assign(column: str | None, dtype: pl.DataType | None, segments: int) -> Any:
    """The ``mapInArrow`` function appending each row's segment (``segment_numbers``)."""

    def assign(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            wanted = [POSITION] if column is None else [POSITION, column]
            frame = pl.from_arrow(batch.select(wanted))
            assert isinstance(frame, pl.DataFrame)
            which = segment_numbers(frame, column, dtype, POSITION, segments)
            yield batch.append_column(SEGMENT, pa.array(which.astype(np.int64)))

    return assign


def _search(
    names: list[str], cols: list[str], informative: list[str], seed: int, segments: int
) -> Any:
    """The ``applyInArrow`` function searching one segment's rows (``_detect``)."""

    def search(table: pa.Table) -> pa.Table:
        table = table.sort_by(POSITION)
        ids = table.column(POSITION).to_numpy().astype(np.int64)
        pairs = np.empty((0, 2), dtype=np.int64)
        scores = np.empty(0, dtype=np.float64)
        count, cut = 0, False
        if ids.size >= 2:
            frame = pl.from_arrow(table.select(cols))
            assert isinstance(frame, pl.DataFrame)
            frame = frame.rename(dict(zip(cols, names, strict=True)))
            pairs, scores, count, cut = _detect(
                frame, names, informative, None, ids, seed, chance_scale=float(segments)
            )
        found = pairs.shape[0]
        return pa.table(
            {
                "a": pa.array(np.append(pairs[:, 0], -1).astype(np.int64)),
                "b": pa.array(np.append(pairs[:, 1], -1).astype(np.int64)),
                "score": pa.array(np.append(scores, 0.0).astype(np.float64)),
                "candidates": pa.array(np.append(np.zeros(found, np.int64), count)),
                "truncated": pa.array([False] * found + [bool(cut)]),
            }
        )

    return search
