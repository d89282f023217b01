"""The interface every scan engine implements (Polars now, Spark beside it later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from datrix.jobs.report import ScanOptions, ScanReport

# the progress callback type lives with the ports (the messaging layer reports progress too)
from datrix.streams.ports import ProgressFn as ProgressFn
from datrix.streams.ports import no_progress as no_progress
from datrix.streams.settings import Settings


@dataclass(frozen=True)
class ScanTuning:
    """How the engines read a table, from the settings (``DATRIX_SCAN_IN_MEMORY_MB``,
    ``_SCAN_IN_MEMORY_ROWS``, ``_SCAN_CHUNK_ROWS``, ``_NEAR_DUP_SEGMENT_ROWS``,
    ``_SPARK_MASTER``, ``_SPARK_DRIVER_MEMORY``, ``_SPARK_EXECUTOR_MEMORY``). A job process
    gets its parent's settings and builds this once;
    the defaults are those of ``Settings`` (a unit test pins them)."""

    in_memory_mb: float = 512.0  # decoded whole up to this size (jobs/quality/table.py)
    in_memory_rows: int = 1_500_000  # ... and this many rows; else bounded
    chunk_rows: int = 0  # rows of a bounded chunk (0: from the row width)
    segment_rows: int = 500_000  # near duplicates of a bounded table, per segment
    spark_master: str = "local[*]"
    spark_driver_memory: str = "1g"  # DATRIX_SPARK_DRIVER_MEMORY
    spark_executor_memory: str | None = None  # DATRIX_SPARK_EXECUTOR_MEMORY (None: Spark's)

    @classmethod
    def from_settings(cls, settings: Settings) -> ScanTuning:
        return cls(
            in_memory_mb=settings.scan_in_memory_mb,
            in_memory_rows=settings.scan_in_memory_rows,
            chunk_rows=settings.scan_chunk_rows,
            segment_rows=settings.near_dup_segment_rows,
            spark_master=settings.spark_master or "local[*]",
            spark_driver_memory=settings.spark_driver_memory,
            spark_executor_memory=settings.spark_executor_memory,
        )


class ScanEngine(Protocol):
    name: str

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report."""
        ...
