"""How the Polars engine reads a dataset version: whole, or in bounded row chunks.

A table whose decoded size fits ``DATRIX_SCAN_IN_MEMORY_MB`` (default 512 MiB, about a
million rows of 50 mixed columns) and whose rows number at most
``DATRIX_SCAN_IN_MEMORY_ROWS`` (default 1.5 million) is decoded once and queried in
memory: the fastest way.
A larger one is *bounded*: every pass reads from the Parquet file, either through the
streaming engine (aggregates, group-bys) or ``chunk_rows`` rows at a time (the row-level
detectors), so the scan's memory depends on the chunk size and on the number of distinct
values of a column, not on the number of rows. The detectors are written once against
this class; in memory, ``chunks`` yields the whole table as a single chunk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

IN_MEMORY_MB = 512  # default DATRIX_SCAN_IN_MEMORY_MB
# default DATRIX_SCAN_IN_MEMORY_ROWS: a narrow table of many rows is small decoded, but the
# whole-table near-duplicate search grows with the rows (10M x 5 columns: 6.5 GiB in
# memory, 0.7 GiB bounded)
IN_MEMORY_ROWS = 1_500_000
CHUNK_MB = 96  # decoded bytes per row chunk in bounded mode
DECODED_PER_UNCOMPRESSED = 1.4  # decoded Polars size / Parquet uncompressed size (measured)
MIN_CHUNK_ROWS = 16_384
MAX_CHUNK_ROWS = 1 << 20
# collect_all of more queries than this, in memory: MANY_QUERIES at a time on the in-memory
# engine (the streaming engine's set-up grows with the queries run together, and costs
# about a millisecond a query: a wide table's thousands of per-column group-bys)
MANY_QUERIES = 100
BATCH_COLUMNS = 64  # columns per select of select_by_column


def parquet_size(path: Path) -> tuple[int, int]:
    """Rows and estimated decoded bytes of the Parquet file ``path``, from its metadata
    alone (no row is read)."""
    meta = pq.ParquetFile(path).metadata
    uncompressed = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return int(meta.num_rows), int(uncompressed * DECODED_PER_UNCOMPRESSED)


def fits_in_memory(
    rows: int, decoded: int, in_memory_mb: float | None = None, in_memory_rows: int | None = None
) -> bool:
    """Whether ``ScanTable.open`` reads a table of ``rows`` rows and ``decoded`` bytes
    whole (else bounded); the limits default to ``IN_MEMORY_MB`` and ``IN_MEMORY_ROWS``.
    The Spark engine asks it too, to search near duplicates as the Polars engine would."""
    limit_mb = in_memory_mb if in_memory_mb is not None else IN_MEMORY_MB
    max_rows = in_memory_rows if in_memory_rows is not None else IN_MEMORY_ROWS
    return decoded <= limit_mb * (1 << 20) and rows <= max_rows


@dataclass(frozen=True)
class ScanTable:
    """One dataset version as the scan reads it.

    ``lazy`` is the query root; ``chunk_rows`` the rows of one chunk (the whole table in
    memory); ``bounded`` says whether aggregates run on the streaming engine, one at a time.
    """

    lazy: pl.LazyFrame
    rows: int
    chunk_rows: int
    bounded: bool
    decoded_bytes: int = 0
    # Called with (rows read so far, rows) after each chunk of a bounded table's pass.
    on_rows: Callable[[int, int], None] | None = field(default=None, compare=False)
    # The decoded table when in memory and known (``narrow`` and ``chunks`` use it).
    frame: pl.DataFrame | None = field(default=None, compare=False, repr=False)

    @classmethod
    def open(
        cls,
        path: Path,
        in_memory_mb: float | None = None,
        chunk_rows: int | None = None,
        in_memory_rows: int | None = None,
    ) -> ScanTable:
        """Decide from the Parquet metadata whether ``path`` is read whole or bounded.

        ``in_memory_mb`` and ``in_memory_rows`` default to ``IN_MEMORY_MB`` and
        ``IN_MEMORY_ROWS``; ``chunk_rows`` (None or 0: from the row width) forces the rows
        of a bounded chunk (tests and benchmarks). The engines pass their ``ScanTuning``
        (``DATRIX_SCAN_*``)."""
        rows, decoded = parquet_size(path)
        if fits_in_memory(rows, decoded, in_memory_mb, in_memory_rows):
            frame = pl.read_parquet(path, glob=False)
            return cls(frame.lazy(), rows, max(rows, 1), False, decoded, frame=frame)
        if not chunk_rows:
            per_row = decoded / max(rows, 1)
            wanted = int(CHUNK_MB * (1 << 20) / max(per_row, 1.0))
            chunk_rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, wanted))
        return cls(pl.scan_parquet(path, glob=False), rows, max(1, chunk_rows), True, decoded)

    @classmethod
    def in_memory(cls, frame: pl.DataFrame) -> ScanTable:
        size = int(frame.estimated_size())
        return cls(frame.lazy(), frame.height, max(frame.height, 1), False, size, frame=frame)

    @classmethod
    def of(cls, source: pl.LazyFrame | ScanTable) -> ScanTable:
        """``source`` itself, or an in-memory table around a lazy frame over in-memory data
        (its height is not computed: in memory, ``chunks`` ignores it)."""
        if isinstance(source, ScanTable):
            return source
        return cls(source, 0, 1, False)

    def collect(self, query: pl.LazyFrame) -> pl.DataFrame:
        """Run one query: on the streaming engine when bounded."""
        return query.collect(engine="streaming") if self.bounded else query.collect()

    def collect_all(self, queries: Sequence[pl.LazyFrame]) -> list[pl.DataFrame]:
        """Run queries together in memory (they share the decoded table and both cores);
        one after the other when bounded, so only one query's state is held at a time."""
        if not self.bounded:
            if len(queries) <= MANY_QUERIES:
                return pl.collect_all(list(queries))
            found: list[pl.DataFrame] = []
            for start in range(0, len(queries), MANY_QUERIES):
                batch = list(queries[start : start + MANY_QUERIES])
                found += pl.collect_all(batch, engine="in-memory")
            return found
        return [self.collect(q) for q in queries]

    def narrow(self, columns: Sequence[str]) -> pl.LazyFrame:
        """A query root over ``columns`` alone. In memory, a frame of just those columns
        (no copy): a query's planning grows with the width of its frame, which adds up to
        the square of the column count when each column of a wide table gets a query."""
        if self.frame is not None:
            return pl.DataFrame([self.frame.get_column(c) for c in columns]).lazy()
        return self.lazy.select(list(columns))

    @property
    def chunk_count(self) -> int:
        return max(1, math.ceil(self.rows / self.chunk_rows))

    def chunks(self, columns: Sequence[str]) -> Iterator[tuple[int, pl.DataFrame]]:
        """``(first row, frame)`` for consecutive row ranges of ``columns``."""
        query = self.lazy.select(list(columns))
        if not self.bounded:
            whole = self.frame.select(columns) if self.frame is not None else query.collect()
            yield 0, whole
            return
        for start in range(0, max(self.rows, 1), self.chunk_rows):
            chunk = query.slice(start, self.chunk_rows).collect()
            yield start, chunk
            if self.on_rows is not None:
                self.on_rows(start + chunk.height, self.rows)

    def gather(self, columns: Sequence[str], rows: npt.NDArray[np.int64]) -> pl.DataFrame:
        """The given rows (sorted, distinct) of ``columns``, in that order."""
        parts = []
        for start, chunk in self.chunks(columns):
            here = rows[(rows >= start) & (rows < start + chunk.height)] - start
            if here.size:
                parts.append(chunk[here])
        if not parts:
            return self.lazy.select(list(columns)).head(0).collect()
        return pl.concat(parts)


def select_by_column(frame: pl.DataFrame, exprs: Sequence[tuple[str, pl.Expr]]) -> pl.DataFrame:
    """``frame.select`` of expressions that each read one column, given as ``(column,
    expression)``. Over more than ``MANY_QUERIES`` columns, ``BATCH_COLUMNS`` columns'
    expressions at a time, each batch over a frame of its columns alone (the planning of
    one select grows with its expressions times its frame's width), results side by side
    in batch order."""
    by_column: dict[str, list[pl.Expr]] = {}
    for column, expr in exprs:
        by_column.setdefault(column, []).append(expr)
    if len(by_column) <= MANY_QUERIES:
        return frame.select([e for _, e in exprs])
    names = list(by_column)
    parts = []
    for start in range(0, len(names), BATCH_COLUMNS):
        batch = names[start : start + BATCH_COLUMNS]
        narrow = pl.DataFrame([frame.get_column(c) for c in batch])
        parts.append(narrow.select([e for c in batch for e in by_column[c]]))
    return pl.concat(parts, how="horizontal")
