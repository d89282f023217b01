"""The transform library on Spark: ``apply(spec, sdf, secrets) -> SparkApplied(table,
changes)`` and ``apply_all(specs, sdf, secrets)``, with the same results as
``polars_transforms`` (the same rows, values and types, the same change rows: text, rule,
confidence), on a pyspark DataFrame with ``ROW_ID`` (``read_table`` / ``with_row_ids``
number a Parquet version's rows as the scan does). Both results stay Spark DataFrames.

How the results stay equal (``tests/integration/test_transforms_parity.py`` checks each
fix type and ``apply_all`` exactly, no tolerance):

- **Statistics are Spark aggregates, collected** (never the rows): exact medians
  (``percentile``, the linear interpolation Polars' median uses), modes (count, then the
  smallest value), the sample standard deviation of an imputation's confidence, the inlier
  range a winsorise clips to, and the value counts of the categories spelled several ways
  (Spark narrows them down by a category key; the scan's own ``formats.category_key`` and
  ``spelling_variants`` decide on the driver, as ``canonical_spellings`` does on Polars).
- **Per-value work is the Polars engine's own code in Arrow UDFs** where Spark's built-ins
  differ: the text of floats and timestamps (Polars' cast: ``1e+20``, ``0.00001``), number
  and date parsing (``_as_number``'s parse, ``_as_date``), PII hashing and tokenising
  (``pii_tokens``; the salt / key travel to the executors inside the task), span
  redaction (``find_pii_spans`` behind the same prefilter), the masking of a PII fix's old
  values (``base.mask_pii``). Trim, case-fold, null, clip, fill and dedupe are Spark
  expressions. In local mode the UDFs' Python workers run on this interpreter
  (``python_workers``); on a cluster the executors need datrix installed.
- **Exact dedupe**: a window over every column keeps each group's smallest ``ROW_ID`` (the
  scan's rule; Spark groups NaN with NaN and -0.0 with 0.0, the Spark scan's known
  divergence).
- **Near dedupe** finds the clusters as the Spark scan engine finds near duplicates: Spark
  profiles the columns and finds the exact copies; the Fellegi-Sunter search runs on an
  executor over the *compared columns of every row* (one group: the whole table, as
  Polars searches a table in memory; ``spark_near_duplicates``) and only the pairs reach
  the driver. The clusters (``ROW_ID``, cluster, weakest-link probability) go back by a
  broadcast join and the keep / merge rule runs in Spark windows.
- **KNN / iterative imputation** collects the table's numeric columns (every row, in row
  order: the model's sample, hold-out and neighbours are drawn by position) and fits
  exactly as on Polars on the driver; only the filled cells go back. Bounded by the
  driver's memory.
- **Outliers without rows** are found again by the Spark scan engine's passes (profile,
  fences, candidates, evenly spaced sample) and the shared IsolationForest vote.
- Positions (near dedupe, recomputed outliers): ``ROW_ID`` itself while it is 0..n-1,
  otherwise a global ``row_number`` over ``ROW_ID`` (one partition).
- ``apply_all`` materialises each fix's table and change rows (``localCheckpoint``) before
  the next fix, and merges the change rows in Spark as ``base.merge_changes`` does (one
  row per changed cell; a removed row's JSON rebuilt from the input rows with the merged
  old values of its changed cells).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from datrix.jobs.transforms.base import CHANGE_COLUMNS, ROW_ID, Secrets
from datrix.jobs.transforms.specs import (
    CoerceTypes,
    Dedupe,
    FixSpec,
    Impute,
    Normalise,
    Outliers,
    Pii,
    Sentinels,
    in_order,
)

NEW = "__datrix_new__"
FLAG = "__datrix_flag__"
CONF = "__datrix_confidence__"
PARSED = "__datrix_parsed__"
IDX = "__datrix_row"  # spark_engine.IDX: the position column its detectors read


@dataclass(frozen=True)
class SparkApplied:
    """A transform's result on Spark: the new table (with ``ROW_ID``) and its change rows
    (``changes_schema()``), both pyspark DataFrames, not collected."""

    table: Any
    changes: Any


# ----------------------------------------------------------------------------- helpers


def col(name: str) -> Any:
    """A column of any name (dots, spaces, backticks)."""
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")


def changes_schema() -> Any:
    """``base.CHANGES_SCHEMA`` as a Spark schema."""
    from pyspark.sql import types as T

    return T.StructType(
        [
            T.StructField("row_id", T.LongType()),
            T.StructField("column", T.StringType()),
            T.StructField("old_value", T.StringType()),
            T.StructField("new_value", T.StringType()),
            T.StructField("rule", T.StringType()),
            T.StructField("confidence", T.DoubleType()),
        ]
    )


def empty_changes(spark: Any) -> Any:
    return spark.createDataFrame([], changes_schema())


def conform(changes: Any) -> Any:
    """``changes`` with exactly the change columns, order and types."""
    schema = changes_schema()
    return changes.select(*[col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def require_row_ids(sdf: Any) -> None:
    if ROW_ID not in sdf.columns:
        raise ValueError(f"the table has no {ROW_ID} column (use spark_transforms.with_row_ids)")


def require_column(sdf: Any, column: str, what: str) -> None:
    if column == ROW_ID or column not in sdf.columns:
        shown = ", ".join(c for c in sdf.columns if c != ROW_ID)
        raise ValueError(f"{what}: unknown column {column!r} (columns: {shown})")


def with_row_ids(sdf: Any) -> Any:
    """``sdf`` with ``ROW_ID`` (Int64): the row's 0-based position in the Parquet file(s)
    it was read from (``spark_engine``'s numbering, the scan's), unless it has one."""
    from pyspark.sql import types as T

    if ROW_ID in sdf.columns:
        if not isinstance(sdf.schema[ROW_ID].dataType, T.LongType):
            raise ValueError(f"{ROW_ID} must be a long (Int64) column")
        return sdf
    from datrix.jobs.quality.spark_engine import _with_row_index

    names = list(sdf.columns)
    indexed = _with_row_index(sdf.sparkSession, sdf)
    return indexed.toDF(*names, ROW_ID).select(col(ROW_ID), *[col(n) for n in names])


def read_table(path: str) -> Any:
    """A Parquet version read with Spark, with ``ROW_ID``."""
    from datrix.jobs.quality.spark_engine import spark_session

    return with_row_ids(spark_session().read.parquet(str(path)))


_UDFS: dict[str, Any] = {}


def arrow_udf(fn: Any, return_type: str) -> Any:
    """``pyspark.sql.functions.arrow_udf`` (Spark 4.1+; the stubs do not know it yet):
    ``fn`` maps a batch of values (``pyarrow.Array``) to a batch of results."""
    from pyspark.sql import functions as F

    make: Any = F.__dict__["arrow_udf"]
    return make(fn, return_type)


def python_workers(spark: Any) -> None:
    """In local mode, run the UDFs' Python workers on this interpreter (the one with
    datrix, Polars and cryptography installed), unless ``PYSPARK_PYTHON`` says otherwise:
    PySpark's default is whatever ``python3`` is first on the PATH. On a cluster the
    workers' Python is the cluster's setting (it needs datrix installed)."""
    sc = spark.sparkContext
    if "PYSPARK_PYTHON" not in os.environ and str(sc.master).startswith("local"):
        sc.pythonExec = sys.executable


def _udf(name: str) -> Any:
    """The Arrow UDFs (made once): per-value work done by the very functions the Polars
    engine uses, so both engines give the same text."""
    if name in _UDFS:
        return _UDFS[name]
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        python_workers(active)

    made: Any
    if name == "polars_text":
        made = arrow_udf(_polars_text, "string")
    elif name == "parse_number":
        made = arrow_udf(_parse_number, "double")
    elif name == "parse_date":
        made = arrow_udf(_parse_date, "date")
    elif name == "mask":
        made = arrow_udf(_mask, "string")
    elif name == "redact_spans":
        made = arrow_udf(_redact_spans, "string")
    else:  # pragma: no cover - a programming error
        raise KeyError(name)
    _UDFS[name] = made
    return made


def _polars_text(v: pa.Array) -> pa.Array:
    """``base.text`` of an Arrow array (Polars' cast to String: its float repr, its
    datetime format), as a Spark string array."""
    import polars as pl

    from datrix.jobs.transforms.base import text

    series = pl.from_arrow(v)
    assert isinstance(series, pl.Series)
    out = series.to_frame("v").select(text(pl.col("v"), series.dtype)).to_series()
    return out.to_arrow().cast(pa.string())


def _mask(v: pa.Array) -> pa.Array:
    """``base.mask_pii`` of a batch of text values."""
    import polars as pl

    from datrix.jobs.transforms.base import mask_pii

    series = pl.from_arrow(v)
    assert isinstance(series, pl.Series)
    out = series.cast(pl.String).to_frame("v").select(mask_pii(pl.col("v"))).to_series()
    return out.to_arrow().cast(pa.string())


def mask_pii(expr: Any) -> Any:
    """``base.mask_pii`` on Spark: the display form of personal data (``a•••@e•••.com``)."""
    return _udf("mask")(expr)


def text(expr: Any, dtype: Any) -> Any:
    """``base.text`` on Spark: the cell's text form, null for null. Strings as they are;
    integers, booleans and dates by Spark's cast (the same text as Polars'); floats,
    decimals, timestamps and nested values by Polars itself in an Arrow UDF."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        return expr
    if isinstance(
        dtype, T.ByteType | T.ShortType | T.IntegerType | T.LongType | T.BooleanType | T.DateType
    ):
        return expr.cast("string")
    if isinstance(dtype, T.NullType):
        return expr.cast("string")
    return _udf("polars_text")(expr)


def dtype_of(sdf: Any, column: str) -> Any:
    return sdf.schema[column].dataType


def ordered(sdf: Any, columns: Sequence[str]) -> Any:
    return sdf.select(*[col(c) for c in columns])


def replace_column(
    sdf: Any,
    column: str,
    new: Any,
    rule: str,
    confidence: Any = 1.0,
) -> SparkApplied:
    """``sdf`` with ``column`` replaced by the expression ``new`` and the change rows of
    the cells whose text form changed (``base.cell_changes``). ``confidence``: a number or
    an expression over ``sdf`` (evaluated on the row)."""
    from pyspark.sql import functions as F

    names = list(sdf.columns)
    old_type = dtype_of(sdf, column)
    conf = confidence if not isinstance(confidence, int | float) else F.lit(float(confidence))
    staged = sdf.select(*[col(c) for c in names], new.alias(NEW), conf.alias(CONF))
    new_type = dtype_of(staged, NEW)
    old_text = text(col(column), old_type)
    new_text = text(col(NEW), new_type)
    changes = staged.select(
        col(ROW_ID).alias("row_id"),
        F.lit(column).alias("column"),
        old_text.alias("old_value"),
        new_text.alias("new_value"),
        F.lit(rule).alias("rule"),
        col(CONF).cast("double").alias("confidence"),
    ).filter(~col("old_value").eqNullSafe(col("new_value")))
    table = staged.select(*[col(NEW).alias(c) if c == column else col(c) for c in names])
    return SparkApplied(table, conform(changes))


def row_json(sdf: Any, columns: Sequence[str] | None = None) -> Any:
    """``base.row_json`` on Spark: each row (``columns``, default all but ``ROW_ID``) as a
    compact JSON object of its cells' text, in column order, nulls included."""
    from pyspark.sql import functions as F

    if columns is None:
        columns = [c for c in sdf.columns if c != ROW_ID]
    if not columns:
        return F.lit("{}")
    fields = [text(col(c), dtype_of(sdf, c)).alias(c) for c in columns]
    return F.to_json(F.struct(*fields), {"ignoreNullFields": "false"})


def removal_changes(
    removed: Any, rule: str, confidence: Any = 1.0, columns: Sequence[str] | None = None
) -> Any:
    """One change row per row of ``removed`` (which has ``ROW_ID``); the JSON holds
    ``columns`` (default: all but ``ROW_ID``)."""
    from pyspark.sql import functions as F

    conf = confidence if not isinstance(confidence, int | float) else F.lit(float(confidence))
    return conform(
        removed.select(
            col(ROW_ID).alias("row_id"),
            F.lit(None).cast("string").alias("column"),
            row_json(removed, columns).alias("old_value"),
            F.lit(None).cast("string").alias("new_value"),
            F.lit(rule).alias("rule"),
            conf.cast("double").alias("confidence"),
        )
    )


def flag_rows(sdf: Any, rows: Sequence[int]) -> Any:
    """``sdf`` with a boolean column ``FLAG``: whether the row's ``ROW_ID`` is in ``rows``
    (a broadcast join: issue row lists can be long)."""
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    ids = pa.table({"__id": pa.array(sorted(set(int(r) for r in rows)), type=pa.int64())})
    wanted = spark.createDataFrame(ids).withColumn(FLAG, F.lit(True))
    joined = sdf.join(F.broadcast(wanted), col(ROW_ID) == col("__id"), "left")
    return joined.drop("__id").withColumn(FLAG, F.coalesce(col(FLAG), F.lit(False)))


# ------------------------------------------------------------------------- transforms


def apply(spec: FixSpec, sdf: Any, secrets: Secrets | None = None) -> SparkApplied:
    """Apply one fix to ``sdf`` (which has ``ROW_ID``): the new table and its change rows,
    the same as ``polars_transforms.apply`` gives on the same rows."""
    require_row_ids(sdf)
    if isinstance(spec, Dedupe):
        return _dedupe(spec, sdf)
    require_column(sdf, spec.column, type(spec).__name__)
    if isinstance(spec, Sentinels):
        return _null_rows(sdf, spec.column, spec.rows, spec.rule)
    if isinstance(spec, Outliers):
        return _outliers(spec, sdf)
    if isinstance(spec, Normalise):
        return _normalise(spec, sdf)
    if isinstance(spec, Impute):
        return _impute(spec, sdf)
    if isinstance(spec, Pii):
        return _pii(spec, sdf, secrets)
    if isinstance(spec, CoerceTypes):
        return _coerce(spec, sdf)
    raise ValueError(f"not a fix spec: {spec!r}")


def _null_rows(sdf: Any, column: str, rows: Sequence[int], rule: str) -> SparkApplied:
    from pyspark.sql import functions as F

    flagged = flag_rows(sdf, rows)
    new = F.when(col(FLAG), F.lit(None).cast(dtype_of(sdf, column))).otherwise(col(column))
    done = replace_column(flagged, column, new, rule)
    return SparkApplied(done.table.drop(FLAG), done.changes)


def _is_numeric(dtype: Any) -> bool:
    from pyspark.sql import types as T

    return isinstance(dtype, T.NumericType)


def _is_float(dtype: Any) -> bool:
    from pyspark.sql import types as T

    return isinstance(dtype, T.FloatType | T.DoubleType)


def _known(c: Any, dtype: Any) -> Any:
    """The column with NaN as null (``polars_transforms._known``)."""
    from pyspark.sql import functions as F

    return F.when(F.isnan(c), F.lit(None)).otherwise(c) if _is_float(dtype) else c


def _missing(c: Any, dtype: Any) -> Any:
    from pyspark.sql import functions as F

    return (c.isNull() | F.isnan(c)) if _is_float(dtype) else c.isNull()


def _literal(value: Any, dtype: Any) -> Any:
    from pyspark.sql import functions as F

    return F.lit(value).cast(dtype)


# ---------------------------------------------------------------------------- positions


def positioned(sdf: Any) -> Any:
    """``sdf`` with ``IDX``: the row's 0-based position in ``ROW_ID`` order (the position
    the Polars transforms see: their frame keeps the input's row order). ``ROW_ID`` itself
    when it is 0..n-1 (a table no fix has removed rows from yet); otherwise a global
    ``row_number`` (one partition: only the near-duplicate search, which holds the compared
    columns on the driver anyway, and a recomputed outlier vote need it)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    found = sdf.agg(F.count(F.lit(1)).alias("n"), F.min(col(ROW_ID)).alias("lo"),
                    F.max(col(ROW_ID)).alias("hi")).collect()[0]  # fmt: skip
    n, lo, hi = int(found["n"]), found["lo"], found["hi"]
    if n == 0 or (lo == 0 and hi == n - 1):
        return sdf.withColumn(IDX, col(ROW_ID))
    return sdf.withColumn(IDX, F.row_number().over(Window.orderBy(col(ROW_ID))) - F.lit(1))


def _scan_frame(sdf: Any, names: Sequence[str]) -> tuple[Any, list[str]]:
    """``names`` of ``sdf`` renamed to the scan engine's positional names (``c0``, ...),
    with ``IDX`` (positions): the frame ``spark_engine``'s detectors work on."""
    cols = [f"c{i}" for i in range(len(names))]
    df = positioned(sdf).select(*[col(n).alias(c) for n, c in zip(names, cols, strict=True)],
                                col(IDX), col(ROW_ID))  # fmt: skip
    return df, cols


def _row_ids_at(df: Any, positions: Sequence[int]) -> list[int]:
    """The ``ROW_ID``s of the rows at ``positions`` of a ``_scan_frame``."""
    from pyspark.sql import functions as F

    if not positions:
        return []
    spark = df.sparkSession
    wanted = spark.createDataFrame(pa.table({IDX: pa.array(list(positions), type=pa.int64())}))
    found = df.join(F.broadcast(wanted), IDX, "left_semi").select(col(ROW_ID)).toArrow()
    return sorted(int(v) for v in found.column(ROW_ID).to_pylist())


# ---------------------------------------------------------------------------- coerce


def _coerce(spec: CoerceTypes, sdf: Any) -> SparkApplied:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = sdf.sparkSession
    column = spec.column
    dtype = dtype_of(sdf, column)
    if spec.to == "number":
        if _is_numeric(dtype):
            return SparkApplied(sdf, empty_changes(spark))
        parsed = _udf("parse_number")(text(col(column), dtype))
        staged = sdf.withColumn(PARSED, parsed)
        x = col(PARSED)
        found = staged.agg(
            F.count(x).alias("n"),
            F.count(F.when(F.isnan(x) | (F.abs(x) == float("inf")), 1)).alias("odd"),
            F.count(F.when(x != F.round(x, 0), 1)).alias("fractions"),
            F.max(F.abs(x)).alias("top"),
        ).collect()[0]
        whole = (
            found["n"] > 0
            and found["odd"] == 0
            and found["fractions"] == 0
            and float(found["top"]) < 2.0**53
        )
        new = x.cast("long") if whole else x
        done = replace_column(staged, column, new, spec.rule)
        return SparkApplied(done.table.drop(PARSED), done.changes)
    if isinstance(dtype, T.DateType):
        return SparkApplied(sdf, empty_changes(spark))
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return replace_column(sdf, column, col(column).cast("date"), spec.rule)
    return replace_column(sdf, column, _udf("parse_date")(text(col(column), dtype)), spec.rule)


def _parse_number(v: pa.Array) -> pa.Array:
    """``polars_transforms._as_number``'s parse (before its whole-number decision)."""
    import polars as pl

    series = pl.from_arrow(v)
    assert isinstance(series, pl.Series)
    parsed = series.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return parsed.to_arrow()


def _parse_date(v: pa.Array) -> pa.Array:
    """``polars_transforms._as_date`` on a batch of values."""
    import polars as pl

    from datrix.jobs.transforms.polars_transforms import _as_date

    series = pl.from_arrow(v)
    assert isinstance(series, pl.Series)
    return series.to_frame("v").select(_as_date(pl.col("v"))).to_series().to_arrow()


# ---------------------------------------------------------------------------- outliers


def _outliers(spec: Outliers, sdf: Any) -> SparkApplied:
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    column = spec.column
    dtype = dtype_of(sdf, column)
    if not _is_numeric(dtype):
        raise ValueError(f"{spec.rule}: column {column!r} is not numeric")
    rows = spec.rows if spec.rows is not None else _detect_outliers(sdf, column)
    if spec.action == "null":
        return _null_rows(sdf, column, rows, spec.rule)
    flagged = flag_rows(sdf, rows)
    bounds = (
        flagged.filter(~col(FLAG))
        .agg(F.min(_known(col(column), dtype)).alias("lo"),
             F.max(_known(col(column), dtype)).alias("hi"))
        .collect()[0]
    )  # fmt: skip
    low, high = bounds["lo"], bounds["hi"]
    if low is None or high is None:
        return SparkApplied(sdf, empty_changes(spark))
    c = col(column)
    clipped = F.least(F.greatest(c, _literal(low, dtype)), _literal(high, dtype))
    if _is_float(dtype):  # Polars' clip keeps NaN; Spark orders NaN above every number
        clipped = F.when(F.isnan(c), c).otherwise(clipped)
    new = F.when(col(FLAG) & c.isNotNull(), clipped).otherwise(c)
    done = replace_column(flagged, column, new, spec.rule)
    return SparkApplied(done.table.drop(FLAG), done.changes)


def _detect_outliers(sdf: Any, column: str) -> list[int]:
    """The scan's outlier vote on one column (``ROW_ID``s), with the Spark scan engine's
    own passes (profile, fences, candidates, evenly spaced sample): what
    ``polars_transforms._detect_outliers`` does with the Polars engine's."""
    import numpy as np

    from datrix.jobs.quality import accuracy
    from datrix.jobs.quality.outliers import IF_FIT_ROWS, sample_step, voted_outliers
    from datrix.jobs.quality.spark_engine import (
        _evenly_spaced,
        _is_integer,
        _profile_columns,
        _row_facts,
        logical_type,
    )
    from datrix.jobs.transforms.polars_transforms import SEED

    names = [c for c in sdf.columns if c != ROW_ID]
    dtype = dtype_of(sdf, column)
    df, cols = _scan_frame(sdf, [column])
    df = df.cache()
    try:
        rows, stats = _profile_columns(
            df, [column], cols, [dtype], [logical_type(dtype)], [_is_integer(dtype)]
        )
        plan = accuracy.plan_rows(stats, rows)
        if column not in plan.rules:
            return []
        facts = _row_facts(df, [column], cols, [_is_integer(dtype)], plan)
        sample = _evenly_spaced(df, {column: cols[0]}, sample_step(rows, IF_FIT_ROWS))
        values = np.asarray(sample[column].to_numpy(zero_copy_only=False), dtype=np.float64)
        voted = voted_outliers(
            facts.candidates,
            {column: values},
            {column: plan.sentinel_values(column)},
            {column: names.index(column)},
            SEED,
        )
        return _row_ids_at(df, voted.get(column, []))
    finally:
        df.unpersist()


# ---------------------------------------------------------------------------- normalise


def _text_type(dtype: Any) -> bool:
    from pyspark.sql import types as T

    return isinstance(dtype, T.StringType | T.NullType)


def _strip(c: Any) -> Any:
    """Polars' ``str.strip_chars()``: Unicode white space at both ends."""
    from pyspark.sql import functions as F

    return F.regexp_replace(c, r"(?U)^\s+|\s+$", "")


def _normalise(spec: Normalise, sdf: Any) -> SparkApplied:
    from pyspark.sql import functions as F

    column = spec.column
    dtype = dtype_of(sdf, column)
    if not _text_type(dtype):
        raise ValueError(f"{spec.rule}: column {column!r} is not text ({dtype.simpleString()})")
    value = col(column).cast("string")
    if spec.mode == "trim":
        return replace_column(sdf, column, _strip(value), spec.rule)
    if spec.mode == "casefold":
        return replace_column(sdf, column, F.lower(value), spec.rule)
    mapping = canonical_spellings(sdf, column)
    if mapping is None:
        return replace_column(sdf, column, value, spec.rule)
    spark = sdf.sparkSession
    lookup = spark.createDataFrame(mapping).toDF("__value", "__canonical")
    joined = sdf.join(F.broadcast(lookup), value == col("__value"), "left")
    new = F.coalesce(col("__canonical"), value)
    done = replace_column(joined.drop("__value"), column, new, spec.rule)
    return SparkApplied(done.table.drop("__canonical"), done.changes)


def canonical_spellings(sdf: Any, column: str) -> pa.Table | None:
    """``polars_transforms.canonical_spellings`` from Spark's value counts: the values of
    the categories spelled several ways (a category key computed by Spark narrows them
    down) are counted by Spark and collected; the scan's own ``category_key`` and
    ``spelling_variants`` decide on the driver. None when no category has variants."""
    import polars as pl
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from datrix.jobs.quality.formats import category_key, spelling_variants

    value = col(column).cast("string")
    counts = (
        sdf.select(value.alias("value"))
        .filter(col("value").isNotNull())
        .groupBy("value")
        .count()
        .withColumn("key", key_of(col("value")))
        .withColumn("kinds", F.count(F.lit(1)).over(Window.partitionBy("key")))
        .filter(col("kinds") > 1)
        .select("value", "count")
    )
    found = pl.from_arrow(counts.toArrow())
    assert isinstance(found, pl.DataFrame)
    table = (
        found.select(pl.col("value").cast(pl.String), pl.col("count").cast(pl.UInt32))
        .with_columns(category_key(pl.col("value")).alias("key"))
        .filter(pl.col("value").n_unique().over("key") > 1)
    )
    if table.height == 0:
        return None
    return spelling_variants(table).select("value", "canonical").sort("value").to_arrow()


def key_of(value: Any) -> Any:
    """``formats.category_key`` in Spark (to narrow the values down only: the driver
    decides with the scan's own): trimmed, inner white space runs as one space,
    lower-cased."""
    from pyspark.sql import functions as F

    return F.lower(F.regexp_replace(_strip(value), r"(?U)\s+", " "))


# ---------------------------------------------------------------------------- PII


def _pii(spec: Pii, sdf: Any, secrets: Secrets | None) -> SparkApplied:
    from pyspark.sql import functions as F

    from datrix.jobs.transforms import pii_tokens
    from datrix.jobs.transforms.base import REDACTED

    spark = sdf.sparkSession
    column = spec.column
    secrets = secrets or Secrets()
    if spec.action == "drop_column":
        change = spark.createDataFrame(
            [(None, column, None, None, spec.rule, 1.0)], changes_schema()
        )
        return SparkApplied(sdf.drop(column), change)
    value = text(col(column), dtype_of(sdf, column))
    if spec.action == "redact":
        new = F.when(value.isNotNull(), F.lit(REDACTED))
    elif spec.action == "hash":
        new = _secret_udf("hash", pii_tokens.check_salt(secrets.salt))(value)
    elif spec.action == "tokenise":
        new = _secret_udf("tokenise", pii_tokens.check_token_key(secrets.token_key))(value)
    else:
        new = _udf("redact_spans")(value)
    done = replace_column(sdf, column, new, spec.rule)
    # a PII fix's change rows keep the old value only masked (``base.mask_pii``)
    return SparkApplied(
        done.table, done.changes.withColumn("old_value", mask_pii(col("old_value")))
    )


def _secret_udf(action: str, secret: bytes) -> Any:
    """An Arrow UDF hashing or tokenising each value with the tenant's ``secret`` (it
    travels to the executors inside the task's closure, as the Polars engine holds it in
    memory; it is never logged)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        python_workers(active)

    def secret_values(v: pa.Array) -> pa.Array:
        return _per_value(v, action, secret)

    return arrow_udf(secret_values, "string")


def _per_value(v: pa.Array, action: str, secret: bytes) -> pa.Array:
    from datrix.jobs.transforms import pii_tokens

    one = pii_tokens.hash_value if action == "hash" else pii_tokens.tokenise
    return pa.array(
        [None if x is None else one(x, secret) for x in v.to_pylist()], type=pa.string()
    )


def _redact_spans(v: pa.Array) -> pa.Array:
    """``polars_transforms._redact_spans`` (the same prefilter and span detector)."""
    import polars as pl

    from datrix.jobs.transforms.polars_transforms import _redact_spans as redact

    series = pl.from_arrow(v)
    assert isinstance(series, pl.Series)
    return redact(series.cast(pl.String)).to_arrow().cast(pa.string())


# ---------------------------------------------------------------------------- impute


def _impute(spec: Impute, sdf: Any) -> SparkApplied:
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    column = spec.column
    dtype = dtype_of(sdf, column)
    numeric = _is_numeric(dtype)
    if spec.method in ("knn", "iterative"):
        if not numeric:
            raise ValueError(
                f"{spec.rule}: column {column!r} is not numeric ({dtype.simpleString()})"
            )
        return _model_impute(spec, sdf)
    statistic = "median" if spec.method in ("median", "group") and numeric else "mode"
    rule = spec.rule if statistic == "median" or spec.method != "median" else "impute.mode"
    whole = _fill_stats(sdf, column, dtype, statistic, None)
    fill_value, conf_value = whole.get((), (None, None))
    groups = None
    if spec.method == "group":
        assert spec.by is not None
        require_column(sdf, spec.by, spec.rule)
        groups = _fill_stats(sdf, column, dtype, statistic, spec.by)
    if fill_value is None and groups is None:
        return SparkApplied(sdf, empty_changes(spark))
    fill = _literal(fill_value, dtype)
    conf = F.lit(conf_value).cast("double")
    work = sdf
    if groups is not None:
        assert spec.by is not None
        by_type = dtype_of(sdf, spec.by)
        rows = [(k[0], v[0], v[1]) for k, v in groups.items() if v[0] is not None]
        from pyspark.sql import types as T

        schema = T.StructType(
            [
                T.StructField("__by", by_type),
                T.StructField("__fill", dtype),
                T.StructField("__conf", T.DoubleType()),
            ]
        )
        table = spark.createDataFrame(rows, schema)
        work = sdf.join(F.broadcast(table), col(spec.by).eqNullSafe(col("__by")), "left").drop(
            "__by"
        )
        conf = F.when(col("__fill").isNotNull(), col("__conf")).otherwise(conf)
        fill = F.coalesce(col("__fill"), fill)
    new = F.when(_missing(col(column), dtype), fill).otherwise(col(column))
    done = replace_column(work, column, new, rule, conf)
    table_out = done.table.drop("__fill", "__conf") if groups is not None else done.table
    return SparkApplied(table_out, done.changes)


def _fill_stats(
    sdf: Any, column: str, dtype: Any, statistic: str, by: str | None
) -> dict[tuple[Any, ...], tuple[Any, Any]]:
    """``polars_transforms._fill_stats`` with Spark aggregates, collected: per group of
    ``by`` (or once, key ``()``) the fill value and its confidence."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from datrix.jobs.transforms.polars_transforms import TOLERANCE_SD

    keys = [col(by).alias("__by")] if by is not None else []
    known = _known(col(column), dtype)
    data = sdf.select(*keys, known.alias("__x"))
    group = ["__by"] if by is not None else []
    out: dict[tuple[Any, ...], tuple[Any, Any]] = {}
    if statistic == "median":
        first = data.groupBy(*group).agg(
            F.percentile(col("__x"), F.lit(0.5)).alias("median"),
            F.stddev_samp(col("__x")).alias("sd"),
        )
        integer = _is_numeric(dtype) and not _is_float(dtype) and not _is_decimal(dtype)
        fill = F.bround(col("median"), 0) if integer else col("median")  # half to even, as Polars
        band = F.when(col("sd") > 0, col("sd") * F.lit(TOLERANCE_SD)).otherwise(F.lit(0.0))
        stats = first.select(*group, fill.alias("fill"), band.alias("band"))
        if group:  # null is a group too (Polars' group_by; joined with nulls equal)
            keyed = stats.withColumnRenamed("__by", "__key")
            on = col("__by").eqNullSafe(col("__key"))
            joined = data.join(F.broadcast(keyed), on, "left").drop("__key")
        else:
            joined = data.crossJoin(stats)
        hits = F.sum(F.when(F.abs(col("__x") - col("fill")) <= col("band"), 1).otherwise(0))
        agg = joined.groupBy(*group).agg(
            F.first(col("fill")).alias("fill"),
            (hits / F.count(col("__x"))).alias("conf"),
        )
        for r in agg.collect():
            key = (r["__by"],) if by is not None else ()
            value = r["fill"]
            if value is not None and integer:
                value = int(value)
            out[key] = (value, None if r["conf"] is None else float(r["conf"]))
        return out
    counted = data.filter(col("__x").isNotNull()).groupBy(*group, "__x").count()
    rank = F.row_number().over(
        Window.partitionBy(*group).orderBy(F.desc("count"), F.asc("__x"))
        if group
        else Window.orderBy(F.desc("count"), F.asc("__x"))
    )
    total = F.sum("count").over(Window.partitionBy(*group) if group else Window.partitionBy())
    best = (
        counted.withColumn("__total", total).withColumn("__rank", rank).filter(col("__rank") == 1)
    )
    for r in best.collect():
        key = (r["__by"],) if by is not None else ()
        out[key] = (r["__x"], float(r["count"]) / float(r["__total"]))
    if by is not None:
        return out
    return out if out else {(): (None, None)}


def _is_decimal(dtype: Any) -> bool:
    from pyspark.sql import types as T

    return isinstance(dtype, T.DecimalType)


def _model_impute(spec: Impute, sdf: Any) -> SparkApplied:
    """KNN / iterative imputation: the model needs every numeric column of every row in
    row order (its sample, hold-out and neighbours are drawn by position), so those
    columns, and only those, are collected to the driver, where
    ``polars_transforms.apply`` fits and fills exactly as on Polars; the filled values
    (the missing cells only) go back to Spark by a broadcast join."""
    import polars as pl
    from pyspark.sql import functions as F

    from datrix.jobs.transforms import polars_transforms

    spark = sdf.sparkSession
    column = spec.column
    numeric = [c for c in sdf.columns if c != ROW_ID and _is_numeric(dtype_of(sdf, c))]
    picked = sdf.select(col(ROW_ID), *[col(c) for c in numeric]).orderBy(col(ROW_ID))
    frame = pl.from_arrow(picked.toArrow())
    assert isinstance(frame, pl.DataFrame)
    frame = frame.with_columns(pl.col(ROW_ID).cast(pl.Int64))
    done = polars_transforms.apply(spec, frame)
    if done.changes.height == 0:
        return SparkApplied(sdf, empty_changes(spark))
    changed = done.changes["row_id"]
    filled = done.table.filter(pl.col(ROW_ID).is_in(changed.implode())).select(
        pl.col(ROW_ID).alias("__id"), pl.col(column).alias(NEW)
    )
    dtype = dtype_of(sdf, column)
    lookup = spark.createDataFrame(filled.to_arrow()).withColumn(NEW, col(NEW).cast(dtype))
    joined = sdf.join(F.broadcast(lookup), col(ROW_ID) == col("__id"), "left").drop("__id")
    table = joined.select(
        *[F.coalesce(col(NEW), col(c)).alias(c) if c == column else col(c) for c in sdf.columns]
    )
    changes = spark.createDataFrame(done.changes.to_arrow(), changes_schema())
    return SparkApplied(table, changes)


# ---------------------------------------------------------------------------- dedupe


def _dedupe(spec: Dedupe, sdf: Any) -> SparkApplied:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    if spec.rows is not None:
        flagged = flag_rows(sdf, spec.rows)
        removed = flagged.filter(col(FLAG)).drop(FLAG)
        kept = flagged.filter(~col(FLAG)).drop(FLAG)
        return SparkApplied(kept, removal_changes(removed, spec.rule, 1.0))
    if spec.mode == "near":
        return _near_dedupe(spec, sdf)
    columns = [c for c in sdf.columns if c != ROW_ID]
    if not columns:
        return SparkApplied(sdf, empty_changes(spark))
    # The scan's rule (``spark_engine._duplicate_rows``): a row equal to an earlier row in
    # every column (nulls equal nulls, NaN equals NaN) is redundant; the first is kept.
    first = F.min(col(ROW_ID)).over(Window.partitionBy(*[col(c) for c in columns]))
    marked = sdf.withColumn("__first", first)
    removed = marked.filter(col(ROW_ID) != col("__first")).drop("__first")
    kept = marked.filter(col(ROW_ID) == col("__first")).drop("__first")
    return SparkApplied(kept, removal_changes(removed, spec.rule, 1.0))


def near_clusters(sdf: Any) -> Any:
    """``polars_transforms.near_clusters`` on Spark: ``ROW_ID``, ``cluster``, ``probability``
    of every clustered row, as a small Spark frame (or None when there is none).

    The search is the Spark scan engine's (``spark_engine._near_duplicates``): Spark
    profiles the columns and finds the exact copies, and the Fellegi-Sunter search runs on
    an executor over the *compared* columns of every row (the whole table in one group, as
    Polars searches a table in memory); only the pairs reach the driver, where they are
    joined into clusters, as on Polars."""
    from datrix.jobs.quality.spark_engine import (
        _duplicate_rows,
        _is_integer,
        _near_duplicates,
        _profile_columns,
        logical_type,
    )
    from datrix.jobs.transforms.polars_transforms import SEED, clusters_of

    names = [c for c in sdf.columns if c != ROW_ID]
    if not names:
        return None
    df, cols = _scan_frame(sdf, names)
    df = df.cache()
    try:
        dtypes = [dtype_of(sdf, n) for n in names]
        kinds = [logical_type(t) for t in dtypes]
        integer = [_is_integer(t) for t in dtypes]
        rows, stats = _profile_columns(df, names, cols, dtypes, kinds, integer)
        if rows < 2:
            return None
        redundant = _duplicate_rows(df, cols)
        position = dict(zip(names, cols, strict=True))
        near = _near_duplicates(df, position, stats, rows, redundant, SEED)
        if not near.pairs:
            return None
        clusters = clusters_of(near.pairs, near.probabilities, rows).rename({"position": IDX})
        spark = sdf.sparkSession
        small = spark.createDataFrame(clusters.to_arrow())
        from pyspark.sql import functions as F

        found = df.select(col(IDX), col(ROW_ID)).join(F.broadcast(small), IDX).drop(IDX)
        return found.localCheckpoint()
    finally:
        df.unpersist()


def _near_dedupe(spec: Dedupe, sdf: Any) -> SparkApplied:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = sdf.sparkSession
    clusters = near_clusters(sdf)
    if clusters is None:
        return SparkApplied(sdf, empty_changes(spark))
    # ``cluster`` is a position; ROW_ID order is position order, so ordering by ROW_ID
    # ties the same way as Polars' position.
    columns = [c for c in sdf.columns if c != ROW_ID]
    complete = sum((col(c).isNotNull().cast("int") for c in columns), F.lit(0))
    order = [F.desc("__filled"), F.asc(col(ROW_ID))]
    members = sdf.join(F.broadcast(clusters), ROW_ID).withColumn("__filled", complete)
    ranked = members.withColumn(
        "__rank", F.row_number().over(Window.partitionBy("cluster").orderBy(*order))
    )
    removed = ranked.filter(col("__rank") > 1)
    removal = removal_changes(
        removed.select(*[col(c) for c in sdf.columns], col("probability")),
        spec.rule,
        col("probability"),
        columns=[c for c in sdf.columns if c != ROW_ID],
    )
    gone = removed.select(col(ROW_ID))
    kept = sdf.join(gone, ROW_ID, "left_anti").select(*[col(c) for c in sdf.columns])
    if spec.keep != "merge":
        return SparkApplied(kept, removal)
    whole = (
        Window.partitionBy("cluster")
        .orderBy(*order)
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    merged = ranked.select(
        col(ROW_ID),
        col("__rank"),
        col("probability").alias("__conf"),
        *[F.first(col(c), ignorenulls=True).over(whole).alias(f"__m{i}")
          for i, c in enumerate(columns)],
    ).filter(col("__rank") == 1).drop("__rank")  # fmt: skip
    work = kept.join(merged, ROW_ID, "left")
    # Every column in one pass: the keeper's nulls filled from its cluster (the first
    # non-null value in keep order), one change row per filled cell.
    conf = F.coalesce(col("__conf"), F.lit(1.0)).cast("double")
    filled = {c: F.coalesce(col(f"__m{i}"), col(c)) for i, c in enumerate(columns)}
    cells = []
    for i, c in enumerate(columns):
        dtype = dtype_of(sdf, c)
        old, new = text(col(c), dtype), text(filled[c], dtype)
        change = F.struct(
            F.lit(c).alias("column"),
            old.alias("old_value"),
            new.alias("new_value"),
        )
        cells.append(F.when(col(f"__m{i}").isNotNull() & col(c).isNull(), change))
    exploded = work.select(
        col(ROW_ID).alias("row_id"),
        conf.alias("confidence"),
        F.explode(F.array_compact(F.array(*cells))).alias("c"),
    )
    merged_changes = conform(
        exploded.select(
            "row_id",
            "c.column",
            "c.old_value",
            "c.new_value",
            F.lit(spec.rule).alias("rule"),
            "confidence",
        ).filter(~col("old_value").eqNullSafe(col("new_value")))
    )
    out = work.select(*[filled[c].alias(c) if c in filled else col(c) for c in sdf.columns])
    return SparkApplied(out, removal.unionByName(merged_changes))


# ---------------------------------------------------------------------------- apply_all


def apply_all(specs: Sequence[FixSpec], sdf: Any, secrets: Secrets | None = None) -> SparkApplied:
    """Apply ``specs`` in ``ORDER`` (``specs.in_order``) and merge their change rows as
    ``base.merge_changes`` does (one row per changed cell; a removed row's JSON holds its
    values in the input table). As on Polars, a spec of a column an earlier spec of the run
    dropped (``pii.drop_column``) is skipped."""
    require_row_ids(sdf)
    table = sdf
    parts = []
    dropped: set[str] = set()
    for spec in in_order(specs):
        if spec.column in dropped:  # an earlier spec dropped it: nothing left to fix
            continue
        if isinstance(spec, Pii) and spec.action == "drop_column":
            dropped.add(spec.column)
        done = apply(spec, table, secrets)
        # Each fix's result is materialised (on the executors) before the next fix reads
        # it: the next fix's aggregates would otherwise recompute every earlier fix, and
        # the plans would grow with every fix of the run.
        table = done.table.localCheckpoint()
        parts.append(done.changes.localCheckpoint())
    return SparkApplied(table, merge_changes(sdf, parts))


def merge_changes(source: Any, parts: Sequence[Any]) -> Any:
    """``base.merge_changes`` on Spark, with the same result. ``source``: the table the
    first fix got. A removed row's JSON is rebuilt from it (the cells no earlier fix
    changed have their input text; the others the merged old value of their changes,
    masked where a PII fix came after another fix: ``base.mask_pii_chains``), over the
    columns left when it was removed (``ORDER`` drops PII columns before any dedupe)."""
    from pyspark.sql import functions as F

    spark = source.sparkSession
    if not parts:
        return empty_changes(spark)
    tagged = None
    for i, part in enumerate(parts):
        one = conform(part).withColumn("_part", F.lit(i))
        tagged = one if tagged is None else tagged.unionByName(one)
    assert tagged is not None
    drops = tagged.filter(col("row_id").isNull())
    removals = tagged.filter(col("row_id").isNotNull() & col("column").isNull())
    cells = tagged.filter(col("row_id").isNotNull() & col("column").isNotNull())

    removed = removals.groupBy("row_id").agg(F.min("_part").alias("_removed_at"))
    dropped = drops.groupBy("column").agg(F.min("_part").alias("_dropped_at"))
    cells = cells.join(removed, "row_id", "left").join(F.broadcast(dropped), "column", "left")
    history = F.array_sort(
        F.collect_list(F.struct("_part", "old_value", "new_value", "rule", "confidence"))
    )
    first_old = F.element_at("h", 1)["old_value"]
    chain = F.array_join(F.transform("h", lambda x: x["rule"]), "+")

    def masked_chain(old: Any) -> Any:
        return F.when(col("rule").contains("+pii."), mask_pii(old)).otherwise(old)

    ended = col("_removed_at").isNotNull() | col("_dropped_at").isNotNull()
    # Only the cells of columns several fixes changed need grouping (as on Polars): the
    # others are one row per cell already.
    touched = cells.select("column", "_part").distinct().groupBy("column").count()
    shared = [r[0] for r in touched.filter(col("count") > 1).select("column").collect()]
    several = col("column").isin(shared) if shared else F.lit(False)
    single = cells.filter(~ended & ~several).select(
        "row_id", "column", "old_value", "new_value", "rule", "confidence"
    )
    merged = (
        cells.filter(~ended & several)
        .groupBy("row_id", "column")
        .agg(history.alias("h"))
        .select(
            "row_id",
            "column",
            first_old.alias("old_value"),
            F.element_at("h", -1)["new_value"].alias("new_value"),
            chain.alias("rule"),
            F.aggregate("h", F.lit(1.0).cast("double"), lambda acc, x: acc * x["confidence"]).alias(
                "confidence"
            ),
        )
        .filter(~col("old_value").eqNullSafe(col("new_value")))
        .withColumn("old_value", masked_chain(col("old_value")))
    )
    patches = (
        cells.filter(
            col("_removed_at").isNotNull()
            & col("_dropped_at").isNull()
            & (col("_part") < col("_removed_at"))
        )
        .groupBy("row_id", "column")
        .agg(history.alias("h"))
        .select("row_id", "column", first_old.alias("old_value"), chain.alias("rule"))
        .select("row_id", F.struct("column", masked_chain(col("old_value")).alias("v")).alias("p"))
        .groupBy("row_id")
        .agg(F.map_from_entries(F.collect_list("p")).alias("_patch"))
    )
    first_drops = _first_by(drops, ["column"])
    first_removals = _first_by(removals, ["row_id"])
    dropped_names = {r[0] for r in drops.select("column").distinct().collect()}
    kept = [c for c in source.columns if c != ROW_ID and c not in dropped_names]
    patch = col("_patch")
    fields = [
        F.when(patch.isNotNull() & F.array_contains(F.map_keys(patch), F.lit(c)), patch[F.lit(c)])
        .otherwise(text(col(c), dtype_of(source, c)))
        .alias(c)
        for c in kept
    ]
    doomed = source.join(first_removals.select(col("row_id").alias(ROW_ID)), ROW_ID, "left_semi")
    rebuilt = doomed.join(
        patches.withColumnRenamed("row_id", ROW_ID), ROW_ID, "left"
    ).select(
        col(ROW_ID).alias("row_id"),
        (F.to_json(F.struct(*fields), {"ignoreNullFields": "false"}) if kept else F.lit("{}"))
        .alias("_json"),
    )  # fmt: skip
    first_removals = first_removals.join(rebuilt, "row_id", "left").withColumn(
        "old_value", F.coalesce(col("_json"), col("old_value"))
    )
    out = (
        conform(first_drops)
        .unionByName(conform(first_removals))
        .unionByName(conform(single))
        .unionByName(conform(merged))
    )
    clamped = F.least(F.greatest(col("confidence"), F.lit(0.0)), F.lit(1.0))
    return out.withColumn("confidence", clamped)


def _first_by(rows: Any, keys: list[str]) -> Any:
    """Per ``keys``: the row of the lowest ``_part``."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    rank = F.row_number().over(Window.partitionBy(*keys).orderBy("_part"))
    return rows.withColumn("_rank", rank).filter(col("_rank") == 1).drop("_rank")


__all__ = [
    "CHANGE_COLUMNS",
    "SparkApplied",
    "apply",
    "apply_all",
    "changes_schema",
    "merge_changes",
    "read_table",
    "with_row_ids",
]
