"""The Spark scan engine: the same ``ScanReport`` as the Polars engine, computed with PySpark.

Implemented (same definitions as the Polars engine, so counts match exactly):

- rows, columns, per-column logical type, null count/share, exact distinct count;
- numeric summaries: min, max, mean, sample std, NaN count, and p25/p50/p75 as *exact*
  linearly interpolated quantiles (a running count over each column's value counts in
  value order, the values at the needed ranks picked by a join, interpolated as Spark's
  ``percentile`` does: the same definition as Polars' ``interpolation="linear"``; they
  agree to a few ulps, so the outlier fences and counts are identical; ``percentile``
  itself holds a column's distinct values in one buffer and does not fit a small heap);
- top 5 values per column, by count, ties broken by the value ascending; the 6 smallest
  and largest finite values of numeric columns with their counts (sentinel check);
- exact duplicates (redundant rows: every row equal to an earlier row), null positions,
  outlier candidates (values outside the z-score / IQR fences of ``outliers.py``), sentinel
  and negative cells, all as 0-based positions in the file (Parquet's
  ``_metadata.row_index``; for a directory of files, files in path order);
- the evenly spaced samples (positions 0, step, 2*step, ...) the IsolationForest votes and
  the drift checks against the previous version are computed from, on the driver, by the
  same code as in the Polars engine;
- constant columns;
- the schema against the baseline version or the frozen contract (``schema_change.py``):
  the Polars engine's own function over the two Parquet files on the driver (exact null
  counts and categorical value sets, streaming when a file is large; rename fingerprints
  from evenly spaced samples);
- the missingness class of each column (MCAR/MAR/MNAR), near duplicates, PII, type
  mismatches and inconsistent formats (case/whitespace variants, mixed date formats), by
  the Polars engine's own functions, so the two cannot drift apart:

  * missingness: ``missingness.assess`` over the same rows (all of them, or the 200k
    rows Polars' seeded sample picks, joined by position), in one Python worker
    (``applyInArrow`` on one group): only the classes come back;
  * near duplicates: the Polars engine's search (``near_duplicates._detect``) on the
    executors, one hash segment per group, planned as the Polars engine plans the same
    file; only the pairs reach the driver (``spark_near_duplicates``);
  * PII, type mismatches, formats: which columns hold PII and which text columns are
    numbers or dates is decided by ``pii.whole_value_pii`` / ``formats.infer_text_types``
    on the same evenly spaced sample (positions from the null positions); the
    whole-column counts come from Spark's distinct values per column (value -> count),
    tested per value where they are: a ``mapInArrow`` runs ``kind_mask``, ``is_number``
    and ``date_formats`` in the Python workers and Spark sums the counts per result, so
    only those sums, ``EXAMPLES`` example values per column and the positions of the
    rows holding a flagged value (one Spark join) reach the driver. The case variants
    (``category_key``) are grouped on the driver from the value counts of the
    categorical columns, bounded by definition (``formats.MAX_CATEGORIES``).
  * labels: the whole table on the driver while at most ``labels.MAX_ROWS`` rows have a
    label (the Polars engine's rows, so the same findings); above that a seeded sample of
    ``MAX_ROWS`` rows stratified by label, drawn by Spark (``_label_rows``), is assessed
    and the label finding says so ("assessed on a stratified sample of N of M labelled
    rows"); the Polars engine fits on such a sample too but predicts every row.
    PII inside the values of the other text columns is searched where the data is: a
    ``mapInArrow`` runs ``pii.embedded_pii`` (the Polars engine's detector) in the Python
    workers, which therefore run this interpreter (``PYSPARK_PYTHON``) and need Polars;
    only the rows holding PII come back.

Issues are built by the shared ``assembly.py``/``accuracy.py`` and numbered/scored by
``issues.py``/``scoring.py``, so severities, impacts, ids and descriptions are computed
identically from the same counts.

Known limits (driver memory): nothing collects a table to the driver. Bounded, on the
driver: label quality up to ``labels.MAX_ROWS`` rows (all columns; above it a stated
stratified sample), the value counts of the categorical columns (at most
``MAX_CATEGORIES`` each) and of the text date columns, the distinct values of native
date/timestamp columns (``_date_checks``: a unique timestamp column is nearly a whole
column: not yet distributed), the evenly spaced samples (``IF_FIT_ROWS``) and the
positions of flagged rows (what the report holds, as in the Polars engine: ``RowSet``s).
On the executors: an executor's Python worker holds up to 200k rows of missingness' usable
columns, and one near-duplicate segment (``spark_near_duplicates``; about 0.8 GiB for 500k
rows of 50 columns, outside the JVM heap). The schema check reads the Parquet files on
the driver with Polars' streaming engine (bounded), only when there is a baseline.
On ``local[*]`` the executors share the driver's heap: with 512 MB, a 1M x 50 scan on
``local[2]`` ran out of it in its first stage (Parquet decoding of two tasks plus the
cache); on a cluster the executors have their own (``DATRIX_SPARK_EXECUTOR_MEMORY``) and
the same scan completes with a 512 MB driver (docs/benchmarks.md).

Known divergences: unsigned 64-bit Parquet integers are read by Spark as decimals (so
typed "float" here, "integer" in Polars; ingest stores them as int64 or decimal(20,0), see
``types.py``, so only versions stored before that differ); Spark normalises -0.0 to 0.0
when grouping.
Timestamps are read in UTC.

The ``SparkSession`` is created once per process (master from ``DATRIX_SPARK_MASTER``
through the engine's ``ScanTuning``, default ``local[*]``) and reused by every scan.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from datrix.jobs.engine import ProgressFn, ScanTuning, no_progress
from datrix.jobs.quality import accuracy, dates, labels, spark_near_duplicates
from datrix.jobs.quality.accuracy import RowFacts, RowPlan
from datrix.jobs.quality.assembly import Detected, TextChecks, build_report
from datrix.jobs.quality.dates import DateChecks
from datrix.jobs.quality.drift import ColumnDrift
from datrix.jobs.quality.formats import (
    EXAMPLES,
    FormatFinding,
    TextType,
    case_variant_description,
    categorical_columns,
    category_key,
    date_formats,
    infer_text_types,
    is_number,
    mixed_date_formats,
    spelling_variants,
    type_mismatch_description,
)
from datrix.jobs.quality.label_quality import LabelSample
from datrix.jobs.quality.missingness import SAMPLE_ROWS as MISSINGNESS_ROWS
from datrix.jobs.quality.missingness import Missingness
from datrix.jobs.quality.missingness import assess as assess_missingness
from datrix.jobs.quality.near_duplicates import NearDuplicates
from datrix.jobs.quality.outliers import IF_FIT_ROWS, sample_step
from datrix.jobs.quality.pii import (
    SAMPLE_SIZE,
    PiiColumn,
    embedded_candidates,
    embedded_column,
    embedded_pii,
    kind_mask,
    pii_candidates,
    whole_value_pii,
)
from datrix.jobs.quality.profiling import (
    EDGE_K,
    NUMERIC_TYPES,
    QUANTILES,
    TOP_K,
    ColumnStats,
    numeric_summary,
    top_value,
)
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.schema_change import SchemaComparison, scan_schema_changes
from datrix.jobs.quality.sentinels import NegativeCounts
from datrix.jobs.quality.table import ScanTable
from datrix.jobs.quality.types import stored_notes
from datrix.jobs.report import ScanOptions, ScanReport

PHASES = ("profile", "duplicates", "outliers", "score")
IDX = "__datrix_row"
SHUFFLE_PARTITIONS = "8"

_session: Any = None
_session_lock = threading.Lock()


def spark_session(
    master: str = "local[*]", driver_memory: str = "1g", executor_memory: str | None = None
) -> Any:
    """The process-wide ``SparkSession`` (created on first use, on ``master``, with the
    driver's and each executor's heap: ``DATRIX_SPARK_DRIVER_MEMORY``,
    ``DATRIX_SPARK_EXECUTOR_MEMORY``, validated by the settings; no executor memory leaves
    it to spark-defaults.conf, as deploy/k8s sets it, else Spark's 1g). A later call gets the
    first call's session, whatever it asks for: a job process makes one."""
    global _session
    with _session_lock:
        if _session is None:
            from pyspark.sql import SparkSession

            # The Python workers (mapInArrow: the per-value PII search) run this
            # interpreter, with its packages, not whatever "python3" is on the PATH.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = SparkSession.builder
            if executor_memory is not None:
                builder = builder.config("spark.executor.memory", executor_memory)
            _session = (
                builder.master(master)
                .appName("datrix-scan")
                .config("spark.driver.memory", driver_memory)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", SHUFFLE_PARTITIONS)
                .config("spark.sql.session.timeZone", "UTC")
                .config("spark.sql.execution.arrow.pyspark.enabled", "true")
                .config("spark.driver.extraJavaOptions", "-Dlog4j2.level=ERROR")
                .getOrCreate()
            )
            _session.sparkContext.setLogLevel("ERROR")
        return _session


def logical_type(dtype: Any) -> str:
    """Map a Spark SQL type to the report's logical type (decimals count as floats)."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.BooleanType):
        return "boolean"
    if isinstance(dtype, T.ByteType | T.ShortType | T.IntegerType | T.LongType):
        return "integer"
    if isinstance(dtype, T.FloatType | T.DoubleType | T.DecimalType):
        return "float"
    if isinstance(dtype, T.StringType):
        return "string"
    if isinstance(dtype, T.DateType):
        return "date"
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return "datetime"
    return "other"


class SparkScanEngine:
    name = "spark"

    def __init__(self, tuning: ScanTuning | None = None) -> None:
        """``tuning.spark_master``: the master of the process's session."""
        self.tuning = tuning or ScanTuning()

    def scan(
        self, parquet_path: Path, options: ScanOptions, progress: ProgressFn = no_progress
    ) -> ScanReport:
        """Scan one immutable Parquet dataset version and return its report.

        ``progress`` is called as by the Polars engine (phase about to start, phases done,
        4). Raises ValueError when ``options.label_column`` is not a column of the dataset.
        """
        total = len(PHASES)
        tuning = self.tuning
        spark = spark_session(
            tuning.spark_master, tuning.spark_driver_memory, tuning.spark_executor_memory
        )
        raw = spark.read.parquet(str(Path(parquet_path)))
        names: list[str] = list(raw.columns)
        label = options.label_column
        if label is not None and label not in names:
            raise ValueError(f"label column {label!r} is not a column of the dataset")
        dtypes = [f.dataType for f in raw.schema.fields]
        kinds = [logical_type(t) for t in dtypes]
        integer = [_is_integer(f.dataType) for f in raw.schema.fields]
        # Positional names: user column names never need quoting or clash with helpers.
        cols = [f"c{i}" for i in range(len(names))]
        df = _with_row_index(spark, raw).toDF(*cols, IDX).cache()
        try:
            progress("profile", 0, total)
            rows, stats = _profile_columns(df, names, cols, dtypes, kinds, integer)

            progress("duplicates", 1, total)
            redundant = _duplicate_rows(df, cols) if rows > 1 and cols else []
            position = {name: c for name, c in zip(names, cols, strict=True)}
            near = _near_duplicates(
                df, position, stats, rows, redundant, options.seed, Path(parquet_path), tuning
            )

            progress("outliers", 2, total)
            plan = accuracy.plan_rows(stats, rows)
            facts = _row_facts(df, names, cols, integer, plan)
            sampled = accuracy.outlier_sample_columns(plan, facts)
            step = sample_step(rows, IF_FIT_ROWS)
            sample = _evenly_spaced(df, {n: position[n] for n in sampled}, step)
            found = accuracy.judge_accuracy(stats, rows, plan, facts, sample, options.seed)
            drifts = _drift(spark, df, position, stats, rows, options.previous_path)
            schema_changes = self._schema_changes(Path(parquet_path), options)
            missing = _missingness(
                spark, df, position, kinds, plan.null_columns, rows, options.seed
            )
            text = _text_checks(spark, df, position, stats, rows, facts.nulls)
            dated = _date_checks(df, position, Path(parquet_path), text.types, rows)
        finally:
            df.unpersist()

        notes = stored_notes(Path(parquet_path))
        detected = Detected(
            rows,
            len(names),
            stats,
            redundant,
            facts.nulls,
            found,
            drifts,
            near,
            text,
            missing.classes,
            missingness_capped=missing.capped,
        )
        detected = dataclasses.replace(
            detected, stored_as=notes, dates=dated, schema=schema_changes
        )
        seed = options.seed
        return build_report(
            self.name,
            detected,
            options,
            lambda: _label_rows(spark, raw, label or "", seed),
            progress,
            total,
        )

    def _schema_changes(self, path: Path, options: ScanOptions) -> SchemaComparison | None:
        """The schema check (``schema_change.scan_schema_changes``) on the driver, by the
        Polars engine's own function over the two Parquet files: exact null counts and
        value sets on Polars' streaming engine when a file is larger than the in-memory
        limits, fingerprints from evenly spaced samples, so both engines report the same
        changes."""
        t = self.tuning
        if options.contract_path is None and options.previous_path is None:
            return None  # no baseline: nothing to compare, so the file is not opened

        def open_table(p: Path) -> ScanTable:
            return ScanTable.open(p, t.in_memory_mb, t.chunk_rows, t.in_memory_rows)

        return scan_schema_changes(open_table(path), options, open_table)


def _label_rows(spark: Any, raw: Any, label: str, seed: int) -> pl.DataFrame | LabelSample:
    """The rows label quality is assessed on: the whole table on the driver, in file row
    order, while at most ``labels.MAX_ROWS`` rows have a label (so both engines assess the
    same rows); above that a ``LabelSample`` of ``MAX_ROWS`` rows, stratified by label as
    ``labels._fit_sample`` is (every class keeps ``round(MAX_ROWS * share)`` rows, at least
    ``2 * FOLDS``), drawn where the data is: within each class the rows with the smallest
    seeded hash of their position. Only the class counts and the sampled rows come back."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = list(raw.columns)
    cap = labels.MAX_ROWS
    cols = [f"c{i}" for i in range(len(names))]
    indexed = _with_row_index(spark, raw).toDF(*cols, IDX)
    key = F.col(cols[names.index(label)])
    present = indexed.filter(key.isNotNull())
    labelled = int(present.count())
    if labelled <= cap:
        frame = pl.from_arrow(indexed.orderBy(IDX).drop(IDX).toArrow())
        assert isinstance(frame, pl.DataFrame)
        return frame.rename(dict(zip(cols, names, strict=True)))
    # per class: round(cap * share) rows, at least 2 * FOLDS, at most the class
    members = F.count(F.lit(1)).over(Window.partitionBy(key))
    share = F.bround(F.lit(float(cap)) * members / F.lit(labelled)).cast("long")
    want = F.least(members, F.greatest(F.lit(2 * labels.FOLDS).cast("long"), share))
    order = Window.partitionBy(key).orderBy(F.xxhash64(F.col(IDX), F.lit(seed)), F.col(IDX))
    picked = (
        present.select("*", want.alias("__want"), F.row_number().over(order).alias("__rank"))
        .filter(F.col("__rank") <= F.col("__want"))
        .select(*cols, IDX)
    )
    table = picked.orderBy(IDX).toArrow()
    positions = table.column(IDX).to_numpy().astype(np.int64)
    frame = pl.from_arrow(table.drop_columns([IDX]))
    assert isinstance(frame, pl.DataFrame)
    return LabelSample(frame.rename(dict(zip(cols, names, strict=True))), positions, labelled)


def _is_integer(dtype: Any) -> bool:
    from pyspark.sql import types as T

    return isinstance(dtype, T.ByteType | T.ShortType | T.IntegerType | T.LongType)


def _with_row_index(spark: Any, raw: Any) -> Any:
    """``raw`` plus a last column: the row's 0-based position in the dataset.

    Parquet's hidden ``_metadata.row_index`` is the position within its file; Spark's
    partition order is not the file order, so ``monotonically_increasing_id`` would not do.
    For several files (a directory) positions continue across files in path order.
    """
    from pyspark.sql import functions as F

    files = sorted(raw.inputFiles())
    row_index = F.col("_metadata.row_index")
    if len(files) <= 1:
        return raw.select(*[raw[c] for c in raw.columns], row_index)
    path = F.col("_metadata.file_path")
    counts = {r[0]: int(r[1]) for r in raw.select(path.alias("p")).groupBy("p").count().collect()}
    offsets: list[Any] = []
    offset = 0
    for p in sorted(counts):
        offsets += [F.lit(p), F.lit(offset)]
        offset += counts[p]
    start = F.create_map(*offsets)[path]
    return raw.select(*[raw[c] for c in raw.columns], (start + row_index).alias("idx"))


def _numeric(col: Any, is_integer: bool) -> Any:
    """The column as a number with NaN as null (integers keep their exact type)."""
    from pyspark.sql import functions as F

    if is_integer:
        return col
    x = col.cast("double")
    return F.when(F.isnan(x), F.lit(None)).otherwise(x)


# The typed slots of the long "(column, value) -> count" table built by ``_value_counts``.
SLOTS = ("s", "l", "d", "b", "dt", "ts", "tn")


def _slots(c: str, dtype: Any) -> dict[str, Any]:
    """The value of column ``c`` in its typed slot(s): the slot the value is grouped,
    ordered and returned by (decimals: exact text to group and return, double to order)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    col = F.col(c)
    if _is_integer(dtype):
        return {"l": col.cast("long")}
    if isinstance(dtype, T.FloatType | T.DoubleType):
        return {"d": col.cast("double")}
    if isinstance(dtype, T.DecimalType):
        return {"d": col.cast("double"), "s": col.cast("string")}
    if isinstance(dtype, T.BooleanType):
        return {"b": col}
    if isinstance(dtype, T.DateType):
        return {"dt": col}
    if isinstance(dtype, T.TimestampType):
        return {"ts": col}
    if isinstance(dtype, T.TimestampNTZType):
        return {"tn": col}
    return {"s": col.cast("string")}


def _value_counts(df: Any, cols: list[str], dtypes: list[Any]) -> Any:
    """One long table of every column's non-null values and their counts: columns
    ``i`` (column position), the typed slots and ``count``. One shuffle for all columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    slot_types = {
        "s": T.StringType(),
        "l": T.LongType(),
        "d": T.DoubleType(),
        "b": T.BooleanType(),
        "dt": T.DateType(),
        "ts": T.TimestampType(),
        "tn": T.TimestampNTZType(),
    }
    cells = []
    for i, (c, dtype) in enumerate(zip(cols, dtypes, strict=True)):
        filled = _slots(c, dtype)
        fields = [F.lit(i).alias("i")] + [
            filled.get(k, F.lit(None).cast(slot_types[k])).alias(k) for k in SLOTS
        ]
        cells.append(F.when(F.col(c).isNotNull(), F.struct(*fields)))
    exploded = df.select(F.explode(F.array_compact(F.array(*cells))).alias("v")).select("v.*")
    return exploded.groupBy("i", *SLOTS).count()


def _profile_columns(
    df: Any,
    names: list[str],
    cols: list[str],
    dtypes: list[Any],
    kinds: list[str],
    integer: list[bool],
) -> tuple[int, list[ColumnStats]]:
    """One scalar aggregate over every column, then one value-count table for all
    columns giving the exact distinct counts, the exact quantiles (weighted by the value
    counts) and the top values."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    aggs: list[Any] = [F.count(F.lit(1)).alias("rows")]
    for i, c in enumerate(cols):
        aggs.append(F.count(F.when(F.col(c).isNull(), 1)).alias(f"{i}_nulls"))
        if kinds[i] in NUMERIC_TYPES:
            x = _numeric(F.col(c), integer[i])
            xf = x.cast("double")
            aggs += [
                F.min(x).alias(f"{i}_min"),
                F.max(x).alias(f"{i}_max"),
                F.avg(xf).alias(f"{i}_mean"),
                F.stddev_samp(xf).alias(f"{i}_std"),
            ]
            if not integer[i]:
                aggs.append(F.count(F.when(F.isnan(F.col(c).cast("double")), 1)).alias(f"{i}_nan"))
    scalars = df.agg(*aggs).collect()[0].asDict()
    rows = int(scalars["rows"])
    if not cols:
        return rows, []

    counts = _value_counts(df, cols, dtypes).cache()
    try:
        numeric_ids = [i for i in range(len(cols)) if kinds[i] in NUMERIC_TYPES]
        per_column = {
            int(r["i"]): r
            for r in counts.groupBy("i").agg(F.count(F.lit(1)).alias("distinct")).collect()
        }
        quantiles = _quantiles(counts, numeric_ids)
        order = [F.desc("count"), *[F.asc(k) for k in ("l", "d", "s", "b", "dt", "ts", "tn")]]
        rank = F.row_number().over(Window.partitionBy("i").orderBy(*order))
        tops = (
            counts.select("*", rank.alias("rank"))
            .filter(F.col("rank") <= TOP_K)
            .orderBy("i", "rank")
            .collect()
        )
        edges = _edge_values(counts, numeric_ids)
    finally:
        counts.unpersist()
    top_values: dict[int, list[tuple[Any, int]]] = {}
    for r in tops:
        i = int(r["i"])
        slot = "s" if isinstance(dtypes[i], T.DecimalType) else next(iter(_slots("x", dtypes[i])))
        top_values.setdefault(i, []).append((top_value(r[slot]), int(r["count"])))

    stats: list[ColumnStats] = []
    for i, name in enumerate(names):
        col_row = per_column.get(i)
        numeric = None
        if kinds[i] in NUMERIC_TYPES:
            numeric = numeric_summary(scalars, f"{i}_", quantiles.get(i))
        stats.append(
            ColumnStats(
                name=name,
                logical_type=kinds[i],
                null_count=int(scalars[f"{i}_nulls"]),
                distinct_count=int(col_row["distinct"]) if col_row is not None else 0,
                numeric=numeric,
                top_values=top_values.get(i, []),
                lowest=sorted(edges.get((i, "low"), [])),
                highest=sorted(edges.get((i, "high"), []), reverse=True),
            )
        )
    return rows, stats


def _quantiles(counts: Any, numeric_ids: list[int]) -> dict[int, list[float]]:
    """Column -> its ``QUANTILES`` as exact linearly interpolated quantiles (Polars'
    ``interpolation="linear"``, computed as Spark's ``percentile`` does) from the value-count
    table, without holding a column's values in one aggregate buffer (``percentile`` keeps
    every distinct value of a group in memory: a unique float column of 1M rows does not
    fit a small heap): a running count per column in value order (a window, which Spark
    sorts and spills), then the values at the needed ranks by one join with the ranks."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not numeric_ids:
        return {}
    spark = counts.sparkSession
    number = F.coalesce(F.col("l").cast("double"), F.col("d"))
    values = (
        counts.filter(F.col("i").isin(numeric_ids))
        .select("i", number.alias("x"), "count")
        .filter(F.col("x").isNotNull() & ~F.isnan(F.col("x")))
        .groupBy("i", "x")
        .agg(F.sum("count").alias("count"))
    )
    totals = {
        int(r["i"]): int(r["n"])
        for r in values.groupBy("i").agg(F.sum("count").alias("n")).collect()
    }
    wanted: list[tuple[int, int]] = []
    for i, n in totals.items():
        for q in QUANTILES:
            at = q * (n - 1)
            wanted += [(i, int(np.floor(at))), (i, int(np.ceil(at)))]
    if not wanted:
        return {}
    ranks = spark.createDataFrame(
        pa.table(
            {
                "i": pa.array([i for i, _ in wanted], pa.int32()),
                "r": pa.array([r for _, r in wanted], pa.int64()),
            }
        )
    ).distinct()
    running = Window.partitionBy("i").orderBy("x").rowsBetween(Window.unboundedPreceding, 0)
    cumulative = values.select("i", "x", "count", F.sum("count").over(running).alias("cum"))
    hit = cumulative.join(
        F.broadcast(ranks),
        (cumulative["i"] == ranks["i"])
        & (ranks["r"] >= cumulative["cum"] - cumulative["count"])
        & (ranks["r"] < cumulative["cum"]),
    ).select(cumulative["i"], ranks["r"], cumulative["x"])
    at_rank = {(int(r["i"]), int(r["r"])): float(r["x"]) for r in hit.collect()}
    out: dict[int, list[float]] = {}
    for i, n in totals.items():
        found = []
        for q in QUANTILES:
            at = q * (n - 1)
            lo, hi = int(np.floor(at)), int(np.ceil(at))
            low, high = at_rank[(i, lo)], at_rank[(i, hi)]
            found.append(low if lo == hi else (hi - at) * low + (at - lo) * high)
        out[i] = found
    return out


def _edge_values(counts: Any, numeric_ids: list[int]) -> dict[tuple[int, str], list[Any]]:
    """(column, "low" | "high") -> the ``EDGE_K`` smallest / largest finite values of each
    numeric column with their counts, from the value-count table."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if not numeric_ids:
        return {}
    number = F.coalesce(F.col("l").cast("double"), F.col("d"))
    finite = ~F.isnan(number) & (F.abs(number) != F.lit(float("inf")))
    values = (
        counts.filter(F.col("i").isin(numeric_ids))
        .select("i", number.alias("x"), "count")
        .filter(F.col("x").isNotNull() & finite)
        .groupBy("i", "x")
        .agg(F.sum("count").alias("count"))
    )
    low = F.row_number().over(Window.partitionBy("i").orderBy(F.asc("x")))
    high = F.row_number().over(Window.partitionBy("i").orderBy(F.desc("x")))
    found: dict[tuple[int, str], list[Any]] = {}
    picked = values.select("*", low.alias("lo"), high.alias("hi")).filter(
        (F.col("lo") <= EDGE_K) | (F.col("hi") <= EDGE_K)
    )
    for r in picked.collect():
        pair = (float(r["x"]), int(r["count"]))
        if r["lo"] <= EDGE_K:
            found.setdefault((int(r["i"]), "low"), []).append(pair)
        if r["hi"] <= EDGE_K:
            found.setdefault((int(r["i"]), "high"), []).append(pair)
    return found


def _duplicate_rows(df: Any, cols: list[str]) -> list[int]:
    """Positions of redundant rows (every row equal to an earlier row).

    Only rows whose whole-row hash is shared are compared; among those, grouping by every
    column (nulls equal to nulls, NaN to NaN, as in Polars' struct equality) decides which
    rows repeat an earlier one, so hash collisions never produce false duplicates."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    h = F.xxhash64(*[F.col(c) for c in cols]).alias("__h")
    hashed = df.select(F.col(IDX), h)
    shared = hashed.groupBy("__h").count().filter(F.col("count") > 1).select("__h")
    candidates = df.join(F.broadcast(shared.join(hashed, "__h").select(IDX)), IDX, "left_semi")
    first = F.min(F.col(IDX)).over(Window.partitionBy(*[F.col(c) for c in cols]))
    redundant = candidates.select(F.col(IDX), first.alias("__first")).filter(
        F.col(IDX) != F.col("__first")
    )
    table = redundant.select(F.col(IDX).alias("i")).toArrow()
    return sorted(int(i) for i in table.column("i").to_pylist())


def _row_facts(
    df: Any, names: list[str], cols: list[str], integer: list[bool], plan: RowPlan
) -> RowFacts:
    """One pass collecting what ``plan`` asks for (as ``detection.row_facts`` does).

    Every flagged cell becomes one (code, position, value) triple: code i is "column i is
    null", n + i "outside column i's fences", 2n + i "a sentinel of column i", 3n + i
    "negative in column i"; NaN and null are never outliers or negatives, sentinel cells
    neither. A second, scalar aggregate counts the cells just below and above zero."""
    from pyspark.sql import functions as F

    n = len(cols)
    index = {name: i for i, name in enumerate(names)}

    def number(name: str) -> Any:
        i = index[name]
        return _numeric(F.col(cols[i]), integer[i]).cast("double")

    def real(name: str) -> Any:
        values = plan.sentinel_values(name)
        return ~number(name).isin(values) if values else F.lit(True)

    cells: list[Any] = []
    for name in plan.null_columns:
        cells.append(_cell(F.col(cols[index[name]]).isNull(), index[name], None))
    for name, rule in plan.rules.items():
        x = number(name)
        out = ((x < rule.fences.low) | (x > rule.fences.high)) & real(name)
        cells.append(_cell(out, n + index[name], x))
    for name in plan.sentinels:
        cells.append(
            _cell(number(name).isin(plan.sentinel_values(name)), 2 * n + index[name], None)
        )
    for name in plan.negatives:
        cells.append(_cell((number(name) < 0) & real(name), 3 * n + index[name], None))
    if not cells:
        return RowFacts()
    flagged = df.select(
        F.col(IDX).alias("i"), F.explode(F.array_compact(F.array(*cells))).alias("c")
    ).select("i", "c.code", "c.value")
    table = flagged.toArrow()
    found: dict[int, tuple[list[int], list[float]]] = {}
    if table.num_rows:
        table = table.sort_by([("code", "ascending"), ("i", "ascending")])
        code_col = table.column("code")
        for code in pc.unique(code_col).to_pylist():
            picked = table.filter(pc.equal(code_col, pa.scalar(code, code_col.type)))
            found[int(code)] = (
                [int(v) for v in picked.column("i").to_pylist()],
                [float(v) for v in picked.column("value").to_pylist() if v is not None],
            )
    counts: dict[str, tuple[int, int]] = {}
    if plan.negatives:
        aggs = []
        for j, (name, w) in enumerate(plan.negatives.items()):
            x = number(name)
            aggs += [
                F.count(F.when((x >= -w) & (x < 0) & real(name), 1)).alias(f"b{j}"),
                F.count(F.when((x >= 0) & (x < w), 1)).alias(f"a{j}"),
            ]
        row = df.agg(*aggs).collect()[0]
        counts = {
            name: (int(row[f"b{j}"]), int(row[f"a{j}"])) for j, name in enumerate(plan.negatives)
        }
    empty: tuple[list[int], list[float]] = ([], [])
    return RowFacts(
        nulls={name: found.get(index[name], empty)[0] for name in plan.null_columns},
        candidates={name: found.get(n + index[name], empty) for name in plan.rules},
        sentinel_rows={name: found.get(2 * n + index[name], empty)[0] for name in plan.sentinels},
        negatives={
            name: NegativeCounts(found.get(3 * n + index[name], empty)[0], *counts[name])
            for name in plan.negatives
        },
    )


def _cell(condition: Any, code: int, value: Any) -> Any:
    from pyspark.sql import functions as F

    payload = value if value is not None else F.lit(None).cast("double")
    return F.when(condition, F.struct(F.lit(code).alias("code"), payload.alias("value")))


def _evenly_spaced(df: Any, columns: dict[str, str], step: int) -> dict[str, pa.Array]:
    """Rows 0, step, 2*step, ... of ``columns`` (name -> column of ``df``, which holds the
    row position in ``IDX``), as Arrow arrays: the rows the Polars engine's
    ``gather_every(step)`` picks."""
    from pyspark.sql import functions as F

    if not columns:
        return {}
    picked = df.filter(F.col(IDX) % step == 0).orderBy(IDX)
    table = picked.select(*[F.col(c).alias(name) for name, c in columns.items()]).toArrow()
    return {name: table.column(name).combine_chunks() for name in columns}


def _drift(
    spark: Any,
    df: Any,
    position: dict[str, str],
    stats: list[ColumnStats],
    rows: int,
    previous_path: Path | None,
) -> list[ColumnDrift]:
    """Drift against the previous version: both versions sampled the same way."""
    if previous_path is None:
        return []
    raw = spark.read.parquet(str(Path(previous_path)))
    before_types = {f.name: logical_type(f.dataType) for f in raw.schema.fields}
    numeric, categorical = accuracy.drift_columns(stats, before_types, rows)
    wanted = numeric + categorical
    if not wanted:
        return []
    names = list(raw.columns)
    previous = _with_row_index(spark, raw).toDF(*[f"c{i}" for i in range(len(names))], IDX)
    by_name = {name: f"c{i}" for i, name in enumerate(names)}
    before = _evenly_spaced(
        previous, {n: by_name[n] for n in wanted}, sample_step(int(previous.count()))
    )
    now = _evenly_spaced(df, {n: position[n] for n in wanted}, sample_step(rows))
    return accuracy.compare_versions(stats, rows, before_types, now, before)


# --- detectors that run on the driver, by the Polars engine's own functions -------------


def _near_duplicates(
    df: Any,
    position: dict[str, str],
    stats: list[ColumnStats],
    rows: int,
    redundant: list[int],
    seed: int,
    path: Path | None = None,
    tuning: ScanTuning | None = None,
) -> NearDuplicates:
    """The Polars engine's near-duplicate search run on the executors, one hash segment
    per group (``spark_near_duplicates``): only the pairs come back to the driver. The
    data read from the Parquet ``path`` is searched as the Polars engine with ``tuning``
    searches that file; without a path, whole (as Polars searches a table in memory)."""
    return spark_near_duplicates.near_duplicates(
        df, position, IDX, stats, rows, redundant, seed, path, tuning or ScanTuning()
    )


def _missingness(
    spark: Any,
    df: Any,
    position: dict[str, str],
    kinds: list[str],
    null_columns: list[str],
    rows: int,
    seed: int,
) -> Missingness:
    """``missingness.assess`` on the same rows as the Polars engine: every row, or above
    its ``SAMPLE_ROWS`` the rows Polars' seeded ``DataFrame.sample`` picks (the picked
    positions depend only on the row count and the seed), in the same order. Only the
    columns it can use are read: numeric, text and boolean ones, and those with nulls.

    The assessment runs where the rows are: one group (``applyInArrow``) holding those
    rows (at most ``SAMPLE_ROWS``) in a Python worker, which runs the same function; only
    the class of each column and the capped partner counts come back to the driver."""
    from pyspark.sql import functions as F

    result = {name: "none" for name in position}
    if not null_columns or rows == 0:
        return Missingness(result)
    usable = {"integer", "float", "string", "boolean"}
    wanted = [
        (name, c)
        for (name, c), kind in zip(position.items(), kinds, strict=True)
        if kind in usable or name in null_columns
    ]
    picked = [F.col(c).alias(f"m{k}") for k, (_, c) in enumerate(wanted)]
    if rows > MISSINGNESS_ROWS:
        order = pl.DataFrame({"i": pl.int_range(rows, eager=True)})
        positions = order.sample(MISSINGNESS_ROWS, seed=seed)["i"].cast(pl.Int64).to_numpy()
        ranks = spark.createDataFrame(
            pa.table({IDX: positions, "rank": np.arange(positions.size, dtype=np.int64)})
        )
        rows_used = df.join(F.broadcast(ranks), IDX).select("rank", *picked)
    else:
        rows_used = df.select(F.col(IDX).cast("long").alias("rank"), *picked)
    names = [name for name, _ in wanted]
    nulls = list(null_columns)

    def assess(table: pa.Table) -> pa.Table:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.sort("rank").drop("rank")
        frame = frame.rename({f"m{k}": name for k, name in enumerate(names)})
        schema = dict(frame.schema)
        found = assess_missingness(frame.lazy(), schema, nulls, frame.height, seed)
        columns = list(found.classes)
        capped = [found.capped.get(c) for c in columns]
        return pa.table(
            {
                "column": pa.array(columns, pa.string()),
                "class": pa.array([found.classes[c] for c in columns], pa.string()),
                "tested": pa.array([c[0] if c else None for c in capped], pa.int64()),
                "could": pa.array([c[1] if c else None for c in capped], pa.int64()),
            }
        )

    schema = "column string, class string, tested long, could long"
    grouped = rows_used.groupBy(F.lit(0).alias("g")).applyInArrow(assess, schema)
    capped: dict[str, tuple[int, int]] = {}
    for r in grouped.collect():
        result[r["column"]] = r["class"]
        if r["tested"] is not None:
            capped[r["column"]] = (int(r["tested"]), int(r["could"]))
    return Missingness(result, capped)


# --- text checks: decided on the driver from a sample, counted by Spark -----------------


def _sample_positions(present: int, nulls: Sequence[int]) -> np.ndarray[Any, Any]:
    """Positions of the non-null values 0, k, 2k, ... of a column (``pii.sample_frame``'s
    ``drop_nulls().gather_every(k)``), from the column's sorted null positions."""
    step = max(1, -(-present // SAMPLE_SIZE))
    ranks = np.arange(0, present, step, dtype=np.int64)
    null_at = np.asarray(nulls, dtype=np.int64)
    # nulls before the j-th non-null value: those with at most j non-nulls before them
    before = null_at - np.arange(null_at.size, dtype=np.int64)
    return np.asarray(ranks + np.searchsorted(before, ranks, side="right"), dtype=np.int64)


def _sample_frame(
    spark: Any,
    df: Any,
    position: dict[str, str],
    present: dict[str, int],
    nulls: Mapping[str, Sequence[int]],
) -> pl.DataFrame:
    """The one-row frame of sampled values (as text) ``pii.sample_frame`` draws."""
    from pyspark.sql import functions as F

    names = list(present)
    parts = [
        pa.table(
            {
                "i": pa.array(np.full(len(at), j, dtype=np.int32)),
                IDX: pa.array(at),
            }
        )
        for j, name in enumerate(names)
        for at in [_sample_positions(present[name], nulls.get(name, []))]
    ]
    wanted = spark.createDataFrame(pa.concat_tables(parts))
    text = F.array(*[F.col(position[name]).cast("string") for name in names])
    picked = wanted.join(df, IDX).select("i", IDX, F.element_at(text, F.col("i") + 1).alias("v"))
    table = picked.toArrow().sort_by([("i", "ascending"), (IDX, "ascending")])
    found = pl.from_arrow(table)
    assert isinstance(found, pl.DataFrame)
    by_column = found.partition_by("i", as_dict=True, include_key=False)
    columns = {
        name: pl.Series(name, [by_column[(j,)]["v"].to_list() if (j,) in by_column else []])
        for j, name in enumerate(names)
    }
    return pl.DataFrame([s.cast(pl.List(pl.String)) for s in columns.values()])


def _exploded_text(df: Any, position: dict[str, str], names: list[str]) -> Any:
    """(i, value, row) for every non-null value of ``names`` (i: index in ``names``),
    values as text (Spark's cast of integers to text is Polars')."""
    from pyspark.sql import functions as F

    cells = [
        F.when(
            F.col(position[name]).isNotNull(),
            F.struct(F.lit(j).alias("i"), F.col(position[name]).cast("string").alias("value")),
        )
        for j, name in enumerate(names)
    ]
    exploded = df.select(F.col(IDX), F.explode(F.array_compact(F.array(*cells))).alias("v"))
    return exploded.select("v.i", "v.value", IDX)


def _text_value_counts(df: Any, position: dict[str, str], names: list[str]) -> list[pl.DataFrame]:
    """Per column of ``names``: its distinct non-null values (as text) with their counts,
    ordered by first occurrence (columns ``value``, ``count``)."""
    from pyspark.sql import functions as F

    counted = (
        _exploded_text(df, position, names)
        .groupBy("i", "value")
        .agg(F.count(F.lit(1)).alias("count"), F.min(IDX).alias("first"))
    )
    table = pl.from_arrow(counted.toArrow())
    assert isinstance(table, pl.DataFrame)
    table = table.with_columns(pl.col("i").cast(pl.Int64), pl.col("count").cast(pl.Int64))
    table = table.sort("i", "first")
    by_column = table.partition_by("i", as_dict=True, include_key=False)
    empty = pl.DataFrame(schema={"value": pl.String, "count": pl.Int64})
    return [
        by_column[(j,)].select("value", "count") if (j,) in by_column else empty
        for j in range(len(names))
    ]


def _rows_holding(
    spark: Any,
    df: Any,
    position: dict[str, str],
    names: list[str],
    hits: list[pl.Series],
    rows: int,
) -> list[RowSet]:
    """For each (column, values) pair ``names[t], hits[t]``: the sorted positions of the
    rows whose value (as text) is one of ``values`` (few: held on the driver). One join for
    all of them."""
    if not hits:
        return []
    columns = list(dict.fromkeys(names))
    parts = [
        pa.table(
            {
                "i": pa.array(np.full(len(values), columns.index(name), dtype=np.int32)),
                "value": values.cast(pl.String).to_arrow().cast(pa.large_string()),
                "tag": pa.array(np.full(len(values), t, dtype=np.int32)),
            }
        )
        for t, (name, values) in enumerate(zip(names, hits, strict=True))
    ]
    wanted = spark.createDataFrame(pa.concat_tables(parts))
    return _rows_tagged(df, position, columns, wanted, len(hits), rows)


def _rows_tagged(
    df: Any, position: dict[str, str], columns: list[str], wanted: Any, tags: int, rows: int
) -> list[RowSet]:
    """For each tag 0..``tags``-1 of the Spark frame ``wanted`` (``i``: index into
    ``columns``, ``value``, ``tag``): the rows (of ``rows``) holding one of its values, by
    one join where the data is; only the positions come back, held as ``RowSet`` s (a
    bitmap when dense, as the Polars engine holds them)."""
    found = _exploded_text(df, position, columns).join(wanted, ["i", "value"]).select("tag", IDX)
    table = found.toArrow()
    out = [RowSet.empty(rows) for _ in range(tags)]
    if table.num_rows:
        table = table.sort_by([("tag", "ascending"), (IDX, "ascending")])
        found_tags = table.column("tag").to_numpy()
        at = table.column(IDX).to_numpy().astype(np.int64)
        bounds = np.searchsorted(found_tags, np.arange(tags + 1))
        for t in range(tags):
            out[t] = RowSet.from_indices(at[bounds[t] : bounds[t + 1]], rows)
    return out


def _value_codes(
    df: Any, position: dict[str, str], names: list[str], tests: list[tuple[str, Any]]
) -> Any:
    """The distinct non-null values (as text) of each column of ``names``, counted by Spark,
    each with a code computed where the values are (``mapInArrow``, the Polars engine's
    own per-value functions): columns ``i`` (index in ``names``), ``value``, ``count``,
    ``first`` (first row holding it) and ``code``. ``tests[i]``: ("pii", kinds) -> bit b
    set when the value is a valid ``kinds[b]`` (``pii.kind_mask``); ("number", None) -> 1
    when it is not a number (``formats.is_number``); ("date", None) -> its
    ``formats.date_formats`` index, -1 when no date."""
    from pyspark.sql import functions as F

    counted = (
        _exploded_text(df, position, names)
        .groupBy("i", "value")
        .agg(F.count(F.lit(1)).alias("count"), F.min(IDX).alias("first"))
        .select(
            F.col("i").cast("int").alias("i"),
            "value",
            F.col("count").cast("long").alias("count"),
            F.col("first").cast("long").alias("first"),
        )
    )

    def code(batches: Any) -> Any:
        for batch in batches:
            column = batch.column("i").to_numpy()
            out = np.zeros(batch.num_rows, dtype=np.int32)
            for j in np.unique(column):
                at = np.flatnonzero(column == j)
                values = pl.Series(batch.column("value").take(pa.array(at))).cast(pl.String)
                kind, spec = tests[int(j)]
                if kind == "pii":
                    bits = np.zeros(at.size, dtype=np.int32)
                    for b, k in enumerate(spec):
                        bits |= kind_mask(k, values).astype(np.int32) << b
                    out[at] = bits
                elif kind == "number":
                    out[at] = (~is_number(values)).astype(np.int32)
                else:
                    out[at] = date_formats(values).astype(np.int32)
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(out)], names=[*batch.schema.names, "code"]
            )

    schema = "i int, value string, count long, first long, code int"
    return counted.mapInArrow(code, schema)


def _tested_text(
    df: Any,
    position: dict[str, str],
    decided: list[PiiColumn],
    types: Mapping[str, TextType],
) -> tuple[list[dict[str, int]], list[tuple[FormatFinding, Any]], Any]:
    """The whole-column counts of the PII columns ``decided`` and the type/format findings
    of the typed text columns ``types``, from the per-value codes of ``_value_codes``: only
    aggregates (value counts per code) and at most ``EXAMPLES`` example values per column
    come to the driver. Returns the per-kind counts of each PII column, the typed findings
    (without rows) each with the Spark condition selecting its flagged values, and the
    cached code table (the caller unpersists it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [*(c.column for c in decided), *types]
    tests: list[tuple[str, Any]] = [("pii", c.kinds) for c in decided]
    tests += [(kind, None) for kind in types.values()]
    coded = _value_codes(df, position, names, tests).cache()
    per_code = coded.groupBy("i", "code").agg(F.sum("count").alias("n")).collect()
    sums: dict[int, dict[int, int]] = {}
    for r in per_code:
        sums.setdefault(int(r["i"]), {})[int(r["code"])] = int(r["n"])
    pii_counts = [
        {
            k: sum(n for code, n in sums.get(j, {}).items() if code >> b & 1)
            for b, k in enumerate(c.kinds)
        }
        for j, c in enumerate(decided)
    ]
    i, code = F.col("i"), F.col("code")
    bad_of = {"number": code == 1, "date": code < 0}
    # the first EXAMPLES flagged values of each typed column, by first occurrence
    first = F.row_number().over(Window.partitionBy("i").orderBy("first"))
    bad_any = F.lit(False)
    for j, kind in enumerate(types.values(), start=len(decided)):
        bad_any = bad_any | ((i == j) & bad_of[kind])
    examples: dict[int, list[str]] = {}
    for r in (
        coded.filter(bad_any)
        .select("i", "value", first.alias("r"))
        .filter(F.col("r") <= EXAMPLES)
        .orderBy("i", "r")
        .collect()
    ):
        examples.setdefault(int(r["i"]), []).append(r["value"])
    typed: list[tuple[FormatFinding, Any]] = []
    for j, (name, kind) in enumerate(types.items(), start=len(decided)):
        counts = sums.get(j, {})
        n_present = sum(counts.values())
        if kind == "date":
            fmts = np.array(sorted(counts), dtype=np.int64)
            weights = np.array([counts[f] for f in fmts], dtype=np.int64)
            mixed = mixed_date_formats(name, fmts, weights)
            if mixed is not None:
                description, off = mixed
                codes = [int(f) for f in fmts[off]]
                typed.append(
                    (
                        FormatFinding("inconsistent_format", name, description),
                        (i == j) & code.isin(codes),
                    )
                )
        n_bad = sum(n for c, n in counts.items() if (c == 1 if kind == "number" else c < 0))
        if n_bad:
            description = type_mismatch_description(
                name, kind, n_bad, n_present, examples.get(j, [])
            )
            typed.append(
                (FormatFinding("type_mismatch", name, description), (i == j) & bad_of[kind])
            )
    return pii_counts, typed, coded


def _embedded_pii(
    df: Any, position: dict[str, str], names: list[str], rows: int
) -> list[PiiColumn]:
    """PII inside the values of the text columns ``names``, as ``pii.embedded_columns``:
    each partition runs the same Python detector (``pii.embedded_pii``) over its values
    in the Python workers (``mapInArrow``); only the rows holding PII (row, column, kind
    bits) come back to the driver."""
    if not names or rows == 0:
        return []
    from pyspark.sql import functions as F

    texts = [f"t{j}" for j in range(len(names))]
    selected = df.select(
        F.col(IDX).cast("long").alias(IDX),
        *(F.col(position[n]).cast("string").alias(t) for n, t in zip(names, texts, strict=True)),
    )

    def search(batches: Any) -> Any:
        for batch in batches:
            at = batch.column(IDX)
            for j, name in enumerate(texts):
                values = pl.Series(batch.column(name)).cast(pl.String)
                kinds = embedded_pii(values).kinds
                hit = np.flatnonzero(kinds)
                if hit.size:
                    yield pa.record_batch(
                        {
                            "i": pa.array(np.full(hit.size, j, dtype=np.int32)),
                            IDX: at.take(pa.array(hit)),
                            "k": pa.array(kinds[hit].astype(np.int32)),
                        }
                    )

    schema = f"i int, {IDX} long, k int"
    table = selected.mapInArrow(search, schema).toArrow()
    bits = [np.zeros(rows, dtype=np.uint8) for _ in names]
    if table.num_rows:
        column = table.column("i").to_numpy()
        at = table.column(IDX).to_numpy()
        k = table.column("k").to_numpy().astype(np.uint8)
        for j in range(len(names)):
            mine = column == j
            bits[j][at[mine]] = k[mine]
    found = [embedded_column(name, b) for name, b in zip(names, bits, strict=True)]
    return [c for c in found if c is not None]


def _text_checks(
    spark: Any,
    df: Any,
    position: dict[str, str],
    stats: list[ColumnStats],
    rows: int,
    nulls: Mapping[str, Sequence[int]],
) -> TextChecks:
    """PII, type mismatches and format variants of the text columns, as the Polars engine.

    Which columns hold PII and which text columns are numbers or dates is decided by the
    Polars functions (``pii.whole_value_pii``, ``formats.infer_text_types``) on the same evenly
    spaced sample. The whole-column counts come from Spark's distinct values per column
    (value -> count): the per-value tests of the PII and typed columns (``pii.kind_mask``,
    ``formats.is_number``, ``formats.date_formats``) run on the distinct values in the
    Python workers (``_value_codes``), Spark sums the counts per result, and the rows holding
    a flagged value are found by one join, so only counts, examples and positions reach the
    driver. The case variants (``formats.category_key``) of the categorical columns, whose
    distinct values are bounded, are grouped on the driver."""
    text_columns = [s.name for s in stats if s.logical_type == "string"]
    wanted = set(text_columns) | set(pii_candidates(stats, {}))
    present = {
        s.name: rows - s.null_count for s in stats if s.name in wanted and s.null_count < rows
    }
    if not present:
        return TextChecks([], [], 0)
    samples = _sample_frame(spark, df, position, present, nulls)
    # The decision only: on an empty frame the whole-column counts are zero (done below).
    nothing = pl.DataFrame(schema={name: pl.String for name in present}).lazy()
    decided = whole_value_pii(nothing, stats, dict(nothing.collect_schema()), rows, samples)
    types = infer_text_types(samples, [c for c in text_columns if c in present])
    searched = embedded_candidates(stats, {c.column for c in decided} | set(types))
    embedded = _embedded_pii(df, position, searched, rows)
    categorical = categorical_columns(stats, rows, types)
    cells = sum(rows - s.null_count for s in stats if s.name in text_columns)
    if not decided and not types and not categorical:
        return TextChecks(embedded, [], cells)
    # Categorical columns are bounded by definition (at most ``MAX_CATEGORIES`` distinct
    # values, and at most half as many as values): their value counts come to the driver,
    # where the case-variant groups are formed. The PII and typed columns may be unique
    # (e-mail addresses): their values are tested where they are (``_tested_text``).
    counts = _text_value_counts(df, position, categorical) if categorical else []
    values = dict(zip(categorical, counts, strict=True))
    variants = [_case_variants(name, values[name]) for name in categorical]
    pending = [(v[0].column, v[1]) for v in variants if v is not None]
    located = iter(
        _rows_holding(spark, df, position, [n for n, _ in pending], [v for _, v in pending], rows)
    )

    from pyspark.sql import functions as F

    pii_counts: list[dict[str, int]] = []
    typed: list[tuple[FormatFinding, Any]] = []
    flagged: list[RowSet] = []
    if decided or types:
        pii_counts, typed, coded = _tested_text(df, position, decided, types)
        try:
            i, code = F.col("i"), F.col("code")
            conditions = [(i == j) & (code != 0) for j in range(len(decided))]
            conditions += [condition for _, condition in typed]
            tag: Any = F.lit(None).cast("int")
            for t in reversed(range(len(conditions))):
                tag = F.when(conditions[t], F.lit(t)).otherwise(tag)
            wanted = coded.select("i", "value", tag.alias("tag")).filter(F.col("tag").isNotNull())
            counted = [*(c.column for c in decided), *types]
            flagged = _rows_tagged(df, position, counted, wanted, len(conditions), rows)
        finally:
            coded.unpersist()
    at = iter(flagged)
    pii = [
        PiiColumn(c.column, c.kinds, counts, next(at), c.sample_share)
        for c, counts in zip(decided, pii_counts, strict=True)
    ]
    order = {name: i for i, name in enumerate(position)}
    pii = sorted([*pii, *embedded], key=lambda c: order[c.column])
    formats = [FormatFinding(f.type, f.column, f.description, next(at)) for f, _ in typed]
    for variant in variants:
        if variant is not None:
            f, _ = variant
            formats.append(FormatFinding(f.type, f.column, f.description, next(located)))
    formats.sort(key=lambda f: (order[f.column], f.type))
    return TextChecks(pii, formats, cells, types)


def _date_checks(
    df: Any, position: dict[str, str], path: Path, types: Mapping[str, str], rows: int
) -> DateChecks:
    """``polars_engine._date_checks`` with Spark: the distinct values of each date column
    with their counts (native columns as microseconds since 1970, text columns as text),
    the shared assessment on the driver, then the rows holding the flagged values."""
    from pyspark.sql import functions as F

    native = {n: k for n, k in dates.native_columns(path).items() if n in position}
    texts = [n for n in position if types.get(n) == "date"]
    if not native and not texts:
        return DateChecks()

    def micros(name: str) -> Any:
        col = F.col(position[name])
        if native[name][0] == "date":
            return F.unix_date(col).cast("long") * F.lit(dates.DAY_US)
        return F.unix_micros(col.cast("timestamp"))

    text_counts = dict(zip(texts, _text_value_counts(df, position, texts), strict=True))
    columns = []
    for name in position:
        if name in native:
            kind, zone = native[name]
            counted = (
                df.select(micros(name).alias("m")).filter(F.col("m").isNotNull()).groupBy("m")
            ).count()
            found = pl.from_arrow(counted.toArrow())
            assert isinstance(found, pl.DataFrame)
            table = found.select(
                pl.col("m").cast(pl.Int64).alias("key"),
                pl.col("m").cast(pl.Int64).alias("micros"),
                pl.col("count").cast(pl.Int64),
            ).sort("key")
            columns.append(dates.TemporalColumn(name, kind, zone, False, table))
        elif name in texts:
            columns.append(dates.text_column(name, text_counts[name]))
    checks = dates.assess(columns, rows)
    if not checks.findings:
        return checks
    located: dict[int, Sequence[int]] = {}
    by_text = [(i, f) for i, f in enumerate(checks.findings) if f.column not in native]
    found_text = _rows_holding(
        df.sparkSession,
        df,
        position,
        [f.column for _, f in by_text],
        [f.keys for _, f in by_text],
        rows,
    )
    located.update({i: r for (i, _), r in zip(by_text, found_text, strict=True)})
    for i, f in enumerate(checks.findings):
        if f.column in native:
            keys = [int(k) for k in f.keys.to_list()]
            picked = df.filter(micros(f.column).isin(keys)).select(F.col(IDX).alias("i"))
            located[i] = sorted(int(v) for v in picked.toArrow().column("i").to_pylist())
    findings = [dataclasses.replace(f, rows=located[i]) for i, f in enumerate(checks.findings)]
    return dataclasses.replace(checks, findings=findings)


def _case_variants(name: str, table: pl.DataFrame) -> tuple[FormatFinding, pl.Series] | None:
    """``formats.case_variant_findings`` of one column from its value counts: the finding
    without rows and the values (the non-canonical spellings) whose rows it affects."""
    value = pl.col("value")
    table = table.with_columns(category_key(value).alias("key")).filter(
        value.n_unique().over("key") > 1
    )
    if table.height == 0:
        return None
    off = spelling_variants(table)
    description = case_variant_description(name, int(off["count"].sum()), off)
    return FormatFinding("inconsistent_format", name, description), off["value"]
