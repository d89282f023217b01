"""The Polars scan engine: one Parquet dataset version in, one ``ScanReport`` out.

The file is decoded once into memory (the one copy of the data the scan holds) and then
queried through a ``LazyFrame`` in a handful of passes, each touching only the columns it
needs:

1. profile    - one ``select`` with every per-column aggregate, plus one group-by per
                column (run together) for exact distinct counts and top values;
2. duplicates - whole-row hashes, then exact verification among rows sharing a hash;
3. outliers   - one ``select`` collecting null and outlier row positions;
4. score      - pure Python over the collected numbers.

Beyond the decoded data, the largest transients are the per-column group-by tables of
pass 1 and, in pass 2, the rows that share a hash (normally a small fraction).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from jobs.engine import ProgressFn, no_progress
from jobs.quality.detection import IQR_K, Fences, duplicate_rows, outlier_fences, row_positions
from jobs.quality.issues import Finding, number_issues
from jobs.quality.profiling import ColumnStats, profile_columns
from jobs.quality.scoring import ScoreInputs, build_scores
from jobs.report import ColumnProfile, ScanOptions, ScanReport

PHASES = ("profile", "duplicates", "outliers", "score")


class PolarsScanEngine:
    name = "polars"

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report.

        ``progress(phase, done, total)`` counts phases: it is called with the phase about
        to start and the number of phases finished, and once more at the end (4/4).
        Raises ValueError when ``options.label_column`` is not a column of the dataset.
        """
        total = len(PHASES)
        # Decoded once and queried lazily: re-decoding the file for every pass costs more
        # time and (with the per-column group-bys running side by side) more peak memory.
        source = pl.read_parquet(Path(parquet_path)).lazy()
        schema: dict[str, pl.DataType] = dict(source.collect_schema())
        label = options.label_column
        if label is not None and label not in schema:
            raise ValueError(f"label column {label!r} is not a column of the dataset")
        columns = list(schema)

        progress("profile", 0, total)
        rows, stats = profile_columns(source, schema)

        progress("duplicates", 1, total)
        redundant = duplicate_rows(source, columns) if rows > 1 else []

        progress("outliers", 2, total)
        fences: dict[str, Fences] = {}
        for s in stats:
            fence = outlier_fences(s) if s.is_numeric and rows > 0 else None
            if fence is not None:
                fences[s.name] = fence
        null_columns = [s.name for s in stats if s.null_count > 0]
        null_rows, outlier_rows = row_positions(source, schema, null_columns, fences)

        progress("score", 3, total)
        findings = _findings(rows, stats, redundant, null_rows, outlier_rows, fences)
        issues, affected = number_issues(findings, rows)
        by_name = {s.name: s for s in stats}
        inputs = ScoreInputs(
            rows=rows,
            columns=len(columns),
            null_cells=sum(s.null_count for s in stats),
            worst_column_null_share=(
                max((s.null_count for s in stats), default=0) / rows if rows else 0.0
            ),
            redundant_rows=len(redundant),
            numeric_cells=sum(_numeric_cells(s, rows) for s in stats),
            outlier_cells=sum(len(r) for r in outlier_rows.values()),
            constant_columns=sum(1 for s in stats if _is_constant(s, rows)),
            label_null_share=(
                (by_name[label].null_count / rows if rows else 0.0) if label is not None else None
            ),
        )
        score = build_scores(inputs, options.weights)
        progress("score", total, total)
        return ScanReport(
            rows=rows,
            columns=len(columns),
            score=score,
            column_profiles=[_profile(s, rows) for s in stats],
            issues=issues,
            affected_rows=affected,
            engine=self.name,
        )


def _is_constant(stats: ColumnStats, rows: int) -> bool:
    """One distinct non-null value over at least two non-null rows (a one-row dataset is
    not "constant" in any useful sense)."""
    return stats.distinct_count == 1 and rows - stats.null_count >= 2


def _numeric_cells(stats: ColumnStats, rows: int) -> int:
    if stats.numeric is None:
        return 0
    return rows - stats.null_count - stats.numeric.nan_count


def _pct(count: int, rows: int) -> float:
    return 100.0 * count / rows if rows else 0.0


def _profile(stats: ColumnStats, rows: int) -> ColumnProfile:
    return ColumnProfile(
        name=stats.name,
        type=stats.logical_type,
        null_count=stats.null_count,
        null_pct=round(_pct(stats.null_count, rows), 3),
        distinct_count=stats.distinct_count,
        extra=stats.extra(),
    )


def _findings(
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
                    f"{n:,} rows ({_pct(n, rows):.2f}% of rows) repeat an earlier row exactly"
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
                        f"({_pct(s.null_count, rows):.2f}% of rows)"
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
        if _is_constant(s, rows):
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
