"""The Polars scan engine: one Parquet dataset version in, one ``ScanReport`` out.

How the file is read depends on its size (``table.ScanTable``): up to
``DATRIX_SCAN_IN_MEMORY_MB`` of decoded data (default 512 MiB, about a million rows of 50
mixed columns) it is decoded once and queried in memory, the fastest way; a larger file is
*bounded*: every pass reads what it needs from the Parquet file, aggregates and group-bys
on the streaming engine one at a time, row-level checks a chunk of rows at a time, so
memory does not grow with the row count (what does grow: 8 bytes a row for the exact
duplicate hashes, a bit a row per affected-rows bitmap, a byte a row per flagged column
while its rows are found). The detectors are written once for both ways. The passes:

1. profile    - one ``select`` with every per-column aggregate, plus one group-by per
                column for exact distinct counts, top values and the edge values the
                sentinel check needs (bounded: quantiles a few columns at a time, and a
                column with many distinct values grouped in hash parts that merge exactly;
                a wide table: batches of columns, value counts stacked, ``profiling.py``);
2. duplicates - whole-row hashes, then exact verification among rows sharing a hash;
                then near duplicates among the remaining rows (``near_duplicates/``; a
                bounded table of more than ``SEGMENT_ROWS`` rows is searched in segments
                that keep rows agreeing on a partition column together);
3. outliers   - one row pass collecting null positions, outlier candidates (values
                outside the column's z-score or IQR fences), sentinel and negative cells
                (``accuracy.py``); an evenly spaced sample (<= 4,096 rows) of the columns
                with candidates fits one IsolationForest per column, whose vote confirms
                or drops each candidate (``outliers.py``); with a previous version,
                evenly spaced samples (<= 100k rows) of both versions give the drift
                statistics (``drift.py``) and the schema is compared with the baseline's
                or the frozen contract's (``schema_change.py``); the missingness class
                of each column with nulls from a seeded sample of rows, tested against at
                most 100 other
                columns (``missingness.py``); then the text
                checks: an evenly spaced sample of every text column decides which hold
                PII (``pii.py``; the other text columns are searched value by value
                for PII inside free text) and which are numbers or dates in text form, whose
                mismatches and mixed date formats are then found on the whole column,
                and categorical columns are checked for case/whitespace spelling variants
                (``formats.py``);
4. score      - pure Python over the collected numbers (``assembly.build_report``). With a
                label column the rows are materialised for the label models (a limit of
                bounded scans: ``labels.py`` assesses every row).

Affected rows are ``RowSet``s: a bitmap or sorted indices, whichever is smaller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from datrix.jobs.engine import ProgressFn, ScanTuning, no_progress
from datrix.jobs.quality import accuracy
from datrix.jobs.quality.assembly import Detected, TextChecks, build_report
from datrix.jobs.quality.dates import DateChecks, TemporalColumn, assess, native_micros, text_column
from datrix.jobs.quality.detection import duplicate_rows, evenly_spaced, row_facts
from datrix.jobs.quality.drift import ColumnDrift
from datrix.jobs.quality.formats import (
    case_variant_findings,
    categorical_columns,
    infer_text_types,
    typed_column_findings,
)
from datrix.jobs.quality.missingness import assess as assess_missingness
from datrix.jobs.quality.near_duplicates import find_near_duplicates_in
from datrix.jobs.quality.outliers import IF_FIT_ROWS, sample_step
from datrix.jobs.quality.pii import SAMPLE_SIZE, detect_pii, pii_candidates, sample_frame
from datrix.jobs.quality.profiling import ColumnStats, logical_type, profile_columns
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.schema_change import scan_schema_changes
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.quality.types import stored_notes
from datrix.jobs.report import ScanOptions, ScanReport

PHASES = ("profile", "duplicates", "outliers", "score")


class PolarsScanEngine:
    name = "polars"

    def __init__(self, tuning: ScanTuning | None = None) -> None:
        """``tuning``: when a table is read whole or bounded (default: the defaults)."""
        self.tuning = tuning or ScanTuning()

    def _open(self, path: Path) -> ScanTable:
        t = self.tuning
        return ScanTable.open(path, t.in_memory_mb, t.chunk_rows, t.in_memory_rows)

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report.

        ``progress(phase, done, total)`` counts phases: it is called with the phase about
        to start and the number of phases finished, and once more at the end (4/4). On a
        bounded table each chunked pass also reports, under the current phase, the rows
        it has read (``done`` of ``total`` = the table's rows).
        Raises ValueError when ``options.label_column`` is not a column of the dataset.
        """
        total = len(PHASES)
        _import_in_background("sklearn.ensemble")
        # Decoded once and queried lazily when it fits DATRIX_SCAN_IN_MEMORY_MB (fastest);
        # otherwise read per pass, streaming or a chunk of rows at a time (table.py).
        phase = _PhaseRows(progress)
        progress = phase.report
        table = dataclasses.replace(self._open(Path(parquet_path)), on_rows=phase.rows)
        source = table.lazy
        schema: dict[str, pl.DataType] = dict(source.collect_schema())
        label = options.label_column
        if label is not None and label not in schema:
            raise ValueError(f"label column {label!r} is not a column of the dataset")
        columns = list(schema)

        progress("profile", 0, total)
        rows, stats = profile_columns(table, schema)

        progress("duplicates", 1, total)
        redundant = duplicate_rows(table, columns) if rows > 1 else []
        # In memory, near duplicates (numpy, RapidFuzz) run on a second thread beside the
        # next passes (Polars, scikit-learn): both release the GIL, the machine has cores.
        # A bounded table runs them one after the other, to keep one pass's memory at once.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="near-dup") as pool:
            search = functools.partial(
                find_near_duplicates_in,
                table,
                schema,
                stats,
                redundant,
                options.seed,
                segment_rows=self.tuning.segment_rows,
            )
            pending = pool.submit(search) if not table.bounded else None
            near = search() if pending is None else None

            progress("outliers", 2, total)
            plan = accuracy.plan_rows(stats, rows)
            facts = row_facts(table, schema, plan)
            sampled = accuracy.outlier_sample_columns(plan, facts)
            sample = evenly_spaced(table, sampled, sample_step(rows, IF_FIT_ROWS))
            found = accuracy.judge_accuracy(stats, rows, plan, facts, sample, options.seed)
            drifts = _drift(table, stats, rows, options.previous_path, self._open)
            schema_changes = scan_schema_changes(table, options, self._open)
            missingness = assess_missingness(table, schema, plan.null_columns, rows, options.seed)
            text = _text_checks(table, schema, stats, rows)
            dates = _date_checks(table, schema, text.types, rows)
            if pending is not None:
                near = pending.result()
        assert near is not None

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
            missingness.classes,
            stored_notes(Path(parquet_path)),
            dates,
            missingness_capped=missingness.capped,
            schema=schema_changes,
        )
        # With a label column the rows are materialised (labels.py assesses every row).
        whole = functools.partial(table.collect, source)
        return build_report(self.name, detected, options, whole, progress, total)


class _PhaseRows:
    """Progress within a phase of a bounded scan: each chunked pass reports the rows it
    has read under the current phase's name (the bar shows "outliers 3,000,000 /
    27,000,000"); in memory only the phases are reported."""

    def __init__(self, progress: ProgressFn) -> None:
        self._progress = progress
        self._phase = "profile"

    def report(self, phase: str, done: int, total: int) -> None:
        self._phase = phase
        self._progress(phase, done, total)

    def rows(self, done: int, total: int) -> None:
        self._progress(self._phase, done, total)


def _import_in_background(module: str) -> None:
    """Start importing ``module`` on a thread: scikit-learn (the IsolationForest vote) costs
    1-2 s of imports, which overlap the first passes (Polars releases the GIL)."""

    def load() -> None:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    threading.Thread(target=load, name=f"import-{module}", daemon=True).start()


def _drift(
    table: ScanTable,
    stats: list[ColumnStats],
    rows: int,
    previous_path: Path | None,
    open_table: Callable[[Path], ScanTable] = ScanTable.open,
) -> list[ColumnDrift]:
    """Drift against the previous version: both versions sampled the same way."""
    if previous_path is None:
        return []
    previous = open_table(Path(previous_path))
    before_schema = previous.lazy.collect_schema()
    before_types = {name: logical_type(dtype) for name, dtype in before_schema.items()}
    numeric, categorical = accuracy.drift_columns(stats, before_types, rows)
    wanted = numeric + categorical
    if not wanted:
        return []
    before = evenly_spaced(previous, wanted, sample_step(previous.rows))
    now = evenly_spaced(table, wanted, sample_step(rows))
    return accuracy.compare_versions(stats, rows, before_types, now, before)


def _text_checks(
    source: ScanTable, schema: Mapping[str, pl.DataType], stats: list[ColumnStats], rows: int
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
    types = infer_text_types(samples, [c for c in text_columns if c in sampled])
    pii = detect_pii(source, stats, schema, rows, samples, skip=types)
    formats = typed_column_findings(source, types)
    formats += case_variant_findings(source, categorical_columns(stats, rows, types))
    order = {name: i for i, name in enumerate(schema)}
    formats.sort(key=lambda f: (order[f.column], f.type))
    cells = sum(rows - s.null_count for s in stats if s.name in text_columns)
    return TextChecks(pii, formats, cells, types)


def _date_checks(
    source: ScanTable, schema: Mapping[str, pl.DataType], types: Mapping[str, str], rows: int
) -> DateChecks:
    """Date columns, native or typed from text (``dates.py``): each column's distinct
    values with their counts (together in memory, one after the other when bounded), the
    shared assessment, then one pass (a chunk at a time when bounded) for the rows."""
    native = [n for n, d in schema.items() if d == pl.Date or isinstance(d, pl.Datetime)]
    texts = [n for n in schema if types.get(n) == "date"]
    if not native and not texts:
        return DateChecks()
    key = pl.col("key")

    def counts(name: str) -> pl.LazyFrame:
        values = pl.col(name) if name in native else pl.col(name).cast(pl.String)
        found = source.lazy.select(values.alias("key")).drop_nulls()
        return found.group_by("key").len(name="count").sort("key")

    names = native + texts
    frames = dict(zip(names, source.collect_all([counts(n) for n in names]), strict=True))
    columns = []
    for name in schema:
        if name in native:
            dtype = schema[name]
            found = frames[name].select(key, native_micros(frames[name]["key"]), "count")
            zone = dtype.time_zone if isinstance(dtype, pl.Datetime) else None
            kind = "date" if dtype == pl.Date else "datetime"
            columns.append(TemporalColumn(name, kind, zone, False, found))
        elif name in texts:
            columns.append(text_column(name, frames[name].rename({"key": "value"})))
    checks = assess(columns, rows)
    if not checks.findings:
        return checks
    exprs = []
    for i, f in enumerate(checks.findings):
        values = pl.col(f.column) if f.column in native else pl.col(f.column).cast(pl.String)
        exprs.append(values.is_in(f.keys.implode()).fill_null(False).alias(str(i)))
    masks: list[list[npt.NDArray[np.bool_]]] = [[] for _ in checks.findings]
    wanted = list(dict.fromkeys(f.column for f in checks.findings))
    for _, chunk in source.chunks(wanted):
        hits = chunk.select(exprs)
        for i in range(len(masks)):
            masks[i].append(hits[str(i)].to_numpy())
    found_rows = [RowSet.concat_masks(m) for m in masks]
    findings = [
        dataclasses.replace(f, rows=r) for f, r in zip(checks.findings, found_rows, strict=True)
    ]
    return dataclasses.replace(checks, findings=findings)
