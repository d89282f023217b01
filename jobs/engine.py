"""The interface every scan engine implements (Polars now, Spark beside it later)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from jobs.report import ScanOptions, ScanReport

# progress(phase, done, total): called by engines during long work; total may be 0 if unknown
ProgressFn = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    """Default progress callback: ignore."""


class ScanEngine(Protocol):
    name: str

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report."""
        ...
