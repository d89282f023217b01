"""What every scan engine assembles the same way from the same counts: column profiles,
the core findings (exact duplicates, nulls, IQR outliers, constant columns) and the
score inputs, so the Polars and Spark engines cannot drift apart in wording or scoring."""

from __future__ import annotations

from collections.abc import Mapping

from jobs.quality.detection import IQR_K, Fences
from jobs.quality.issues import Finding
from jobs.quality.profiling import ColumnStats
from jobs.quality.scoring import ScoreInputs
from jobs.report import ColumnProfile


def is_constant(stats: ColumnStats, rows: int) -> bool:
    """One distinct non-null value over at least two non-null rows (a one-row dataset is
    not "constant" in any useful sense)."""
    return stats.distinct_count == 1 and rows - stats.null_count >= 2


def numeric_cells(stats: ColumnStats, rows: int) -> int:
    if stats.numeric is None:
        return 0
    return rows - stats.null_count - stats.numeric.nan_count


def pct(count: int, rows: int) -> float:
    return 100.0 * count / rows if rows else 0.0


def column_profile(stats: ColumnStats, rows: int, missingness: str | None = None) -> ColumnProfile:
    return ColumnProfile(
        name=stats.name,
        type=stats.logical_type,
        null_count=stats.null_count,
        null_pct=round(pct(stats.null_count, rows), 3),
        distinct_count=stats.distinct_count,
        extra={**({"missingness": missingness} if missingness else {}), **stats.extra()},
    )


def core_findings(
    rows: int,
    stats: list[ColumnStats],
    redundant: list[int],
    null_rows: Mapping[str, list[int]],
    outlier_rows: Mapping[str, list[int]],
    fences: Mapping[str, Fences],
) -> list[Finding]:
    findings: list[Finding] = []
    if redundant:
        n = len(redundant)
        findings.append(
            Finding(
                type="exact_duplicates",
                column=None,
                dimension="consistency",
                description=(
                    f"{n:,} rows ({pct(n, rows):.2f}% of rows) repeat an earlier row exactly"
                ),
                affected_count=n,
                rows=redundant,
            )
        )
    for s in stats:
        if s.null_count > 0:
            findings.append(
                Finding(
                    type="null_values",
                    column=s.name,
                    dimension="completeness",
                    description=(
                        f"{s.null_count:,} null values in column {s.name!r} "
                        f"({pct(s.null_count, rows):.2f}% of rows)"
                    ),
                    affected_count=s.null_count,
                    rows=null_rows.get(s.name, []),
                )
            )
        positions = outlier_rows.get(s.name, [])
        if positions:
            fence = fences[s.name]
            findings.append(
                Finding(
                    type="outliers",
                    column=s.name,
                    dimension="accuracy",
                    description=(
                        f"{len(positions):,} values in column {s.name!r} lie outside the "
                        f"IQR fences [{fence.low:.6g}, {fence.high:.6g}] (k={IQR_K:g})"
                    ),
                    affected_count=len(positions),
                    rows=positions,
                )
            )
        if is_constant(s, rows):
            value = s.top_values[0][0] if s.top_values else None
            findings.append(
                Finding(
                    type="constant_column",
                    column=s.name,
                    dimension="distribution",
                    description=f"column {s.name!r} holds a single value ({value!r})",
                    affected_count=0,
                )
            )
    return findings


def core_score_inputs(
    rows: int,
    stats: list[ColumnStats],
    redundant: list[int],
    outlier_rows: Mapping[str, list[int]],
    label: str | None,
) -> ScoreInputs:
    """Score inputs from the core checks; engines with more detectors add their counts
    with ``dataclasses.replace``."""
    by_name = {s.name: s for s in stats}
    return ScoreInputs(
        rows=rows,
        columns=len(stats),
        null_cells=sum(s.null_count for s in stats),
        worst_column_null_share=(
            max((s.null_count for s in stats), default=0) / rows if rows else 0.0
        ),
        redundant_rows=len(redundant),
        numeric_cells=sum(numeric_cells(s, rows) for s in stats),
        outlier_cells=sum(len(r) for r in outlier_rows.values()),
        constant_columns=sum(1 for s in stats if is_constant(s, rows)),
        label_null_share=(
            (by_name[label].null_count / rows if rows else 0.0) if label is not None else None
        ),
    )
