"""The Polars scan engine: one Parquet dataset version in, one ``ScanReport`` out.

The file is decoded once into memory (the one copy of the data the scan holds) and then
queried through a ``LazyFrame`` in a handful of passes, each touching only the columns it
needs:

1. profile    - one ``select`` with every per-column aggregate, plus one group-by per
                column (run together) for exact distinct counts and top values;
2. duplicates - whole-row hashes, then exact verification among rows sharing a hash;
                then near duplicates among the remaining rows (MinHash LSH over field
                tokens, candidates verified field by field: ``near_duplicates.py``);
3. outliers   - one ``select`` collecting null positions, outlier candidates (values outside
                the column's z-score or IQR fences), sentinel and negative cells
                (``accuracy.py``); an evenly spaced sample (<= 4,096 rows) of the columns
                with candidates fits one IsolationForest per column, whose vote confirms
                or drops each candidate (``outliers.py``); with a previous version,
                evenly spaced samples (<= 100k rows) of both versions give the drift
                statistics (``drift.py``); then the text
                checks: an evenly spaced sample of every text column decides which hold
                PII (``pii.py``) and which are numbers or dates in text form, whose
                mismatches and mixed date formats are then found on the whole column,
                and categorical columns are checked for case/whitespace spelling variants
                (``formats.py``);
4. score      - pure Python over the collected numbers.

Beyond the decoded data, the largest transients are the per-column group-by tables of
pass 1, in pass 2 the rows that share a hash (normally a small fraction) and the MinHash
bucket keys (10 x 8 bytes per row), and in pass 3 the whole-column masks of flagged
text columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from jobs.engine import ProgressFn, no_progress
from jobs.quality import accuracy
from jobs.quality.assembly import Detected, TextChecks, build_report
from jobs.quality.detection import duplicate_rows, evenly_spaced, row_facts
from jobs.quality.drift import ColumnDrift
from jobs.quality.formats import (
    case_variant_findings,
    categorical_columns,
    infer_text_types,
    typed_column_findings,
)
from jobs.quality.missingness import classify as classify_missingness
from jobs.quality.near_duplicates import find_near_duplicates
from jobs.quality.outliers import IF_FIT_ROWS, sample_step
from jobs.quality.pii import SAMPLE_SIZE, detect_pii, pii_candidates, sample_frame
from jobs.quality.profiling import ColumnStats, logical_type, profile_columns
from jobs.report import ScanOptions, ScanReport

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
        near = find_near_duplicates(source, schema, stats, rows, redundant, options.seed)

        progress("outliers", 2, total)
        plan = accuracy.plan_rows(stats, rows)
        facts = row_facts(source, schema, plan)
        sampled = accuracy.outlier_sample_columns(plan, facts)
        sample = evenly_spaced(source, sampled, sample_step(rows, IF_FIT_ROWS))
        found = accuracy.judge_accuracy(stats, rows, plan, facts, sample, options.seed)
        drifts = _drift(source, stats, rows, options.previous_path)
        missingness = classify_missingness(source, schema, plan.null_columns, rows, options.seed)
        text = _text_checks(source, schema, stats, rows)

        detected = Detected(
            rows,
            len(columns),
            stats,
            redundant,
            facts.nulls,
            found,
            drifts,
            near,
            text,
            missingness,
        )
        return build_report(self.name, detected, options, source.collect, progress, total)


def _drift(
    source: pl.LazyFrame, stats: list[ColumnStats], rows: int, previous_path: Path | None
) -> list[ColumnDrift]:
    """Drift against the previous version: both versions sampled the same way."""
    if previous_path is None:
        return []
    previous = pl.scan_parquet(Path(previous_path))
    before_schema = previous.collect_schema()
    before_types = {name: logical_type(dtype) for name, dtype in before_schema.items()}
    numeric, categorical = accuracy.drift_columns(stats, before_types, rows)
    wanted = numeric + categorical
    if not wanted:
        return []
    before_rows = int(previous.select(pl.len()).collect().item())
    before = evenly_spaced(previous, wanted, sample_step(before_rows))
    now = evenly_spaced(source, wanted, sample_step(rows))
    return accuracy.compare_versions(stats, rows, before_types, now, before)


def _text_checks(
    source: pl.LazyFrame, schema: Mapping[str, pl.DataType], stats: list[ColumnStats], rows: int
) -> TextChecks:
    """PII, type mismatches and format variants of the text columns (one shared sample)."""
    text_columns = [s.name for s in stats if s.logical_type == "string"]
    wanted = set(text_columns) | set(pii_candidates(stats, schema))
    sampled = {
        s.name: rows - s.null_count for s in stats if s.name in wanted and s.null_count < rows
    }
    samples = sample_frame(source, sampled, SAMPLE_SIZE) if sampled else None
    if samples is None:
        return TextChecks([], [], 0)
    pii = detect_pii(source, stats, schema, rows, samples)
    types = infer_text_types(samples, [c for c in text_columns if c in sampled])
    formats = typed_column_findings(source, types)
    formats += case_variant_findings(source, categorical_columns(stats, rows, types))
    order = {name: i for i, name in enumerate(schema)}
    formats.sort(key=lambda f: (order[f.column], f.type))
    cells = sum(rows - s.null_count for s in stats if s.name in text_columns)
    return TextChecks(pii, formats, cells)
