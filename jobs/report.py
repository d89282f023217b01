"""The quality report every scan engine produces, whatever the engine.

Plain dataclasses: the Polars and Spark engines fill the same structure, the job runner
serialises it, and the CLI/API render it. Affected row indices are kept apart from the
issue summaries because they can be large (they are stored as a Parquet object and only the
issue summaries travel inside events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Dimension = Literal["completeness", "consistency", "accuracy", "distribution", "label_quality"]
Severity = Literal["critical", "warning", "info"]

DIMENSIONS: tuple[Dimension, ...] = (
    "completeness",
    "consistency",
    "accuracy",
    "distribution",
    "label_quality",
)

ISSUE_TYPES: tuple[str, ...] = (
    "null_values",
    "exact_duplicates",
    "near_duplicates",
    "outliers",
    "inconsistent_format",
    "type_mismatch",
    "pii_detected",
    "label_issues",
    "constant_column",
    "high_cardinality",
    "skewed_distribution",
    "drift",
    # accuracy: placeholder codes (-1, 999, -999, ...) standing for "unknown" in a numeric
    # column, and negative values in a column that cannot be negative (jobs/quality/sentinels.py)
    "sentinel_values",
    "impossible_values",
    # columns added, removed, renamed, retyped, newly nullable or with a changed value set
    # since the baseline version (jobs/quality/schema_change.py)
    "schema_change",
)

# Default weights of the overall score (seed spec 4.6); ``datrix scan --weights`` overrides
# some or all of them.
DEFAULT_WEIGHTS: dict[str, float] = {
    "completeness": 0.25,
    "consistency": 0.25,
    "accuracy": 0.2,
    "distribution": 0.15,
    "label_quality": 0.15,
}


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str  # logical type: integer | float | string | boolean | date | datetime | other
    null_count: int
    null_pct: float  # 0..100, rounded to 3 decimals
    distinct_count: int
    extra: dict[str, Any] = field(default_factory=dict)  # numeric summaries, top values, ...


@dataclass(frozen=True)
class Issue:
    id: str  # deterministic within a scan, e.g. "I001"
    type: str  # one of ISSUE_TYPES
    column: str | None  # None for dataset-level issues
    dimension: Dimension
    severity: Severity
    description: str
    affected_count: int
    affected_pct: float  # 0..100, 3 decimals
    impact_score: float  # 0..100, higher = fixing it matters more
    fix_available: bool


@dataclass(frozen=True)
class Scores:
    overall: float
    completeness: float
    consistency: float
    accuracy: float
    distribution: float
    label_quality: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ScanReport:
    rows: int
    columns: int
    score: Scores
    column_profiles: list[ColumnProfile]
    issues: list[Issue]  # ordered by impact_score, highest first
    # issue id -> sorted 0-based row indices; not every issue has rows (e.g. constant_column).
    # A list or a ``datrix.jobs.quality.rowset.RowSet`` (indices or a bitmap, for issues that flag
    # millions of rows): treat it as a read-only ``Sequence[int]``.
    affected_rows: dict[str, Sequence[int]] = field(default_factory=dict)
    engine: str = "polars"


@dataclass(frozen=True)
class ScanOptions:
    label_column: str | None = None
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    seed: int = 0
    # The previous version of the dataset (its Parquet file), for the drift checks.
    previous_path: Path | None = None
    previous_version: int | None = None
    # The dataset's schema contract (``datrix datasets contract --freeze``): frozen makes any
    # schema change critical; the path is the version frozen, the schema's baseline then.
    contract_frozen: bool = False
    contract_path: Path | None = None
    contract_version: int | None = None
