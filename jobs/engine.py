"""The interface every scan engine implements (Polars now, Spark beside it later)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from jobs.report import ScanOptions, ScanReport

# the progress callback type lives with the ports (the messaging layer reports progress too)
from streams.ports import ProgressFn as ProgressFn
from streams.ports import no_progress as no_progress


class ScanEngine(Protocol):
    name: str

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report."""
        ...
