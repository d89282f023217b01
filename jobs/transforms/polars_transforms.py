"""The transform library on Polars: ``apply(spec, table, secrets) -> Applied``,
``fit(spec, table, secrets) -> Fitted`` (learn on one frame, apply to another) and
``apply_all(specs, table, secrets)`` (the fixes of one run in ``specs.ORDER``, their change
rows merged: one row per changed cell).

The detectors' own code decides what is wrong: exact duplicates are the scan's
``detection.duplicate_rows``, near duplicates its Fellegi-Sunter search
(``near_duplicates``), canonical spellings its ``formats.spelling_variants``, recomputed
outliers its two-vote rule (``outliers``), number/date parsing its ``formats`` shapes, PII
spans its per-value detector (``pii.find_pii_spans``).

Confidence (0..1) of a change row:

- deterministic rules (coerce, sentinels, outliers, normalise, pii, exact dedupe): 1.0;
- near dedupe: the cluster's match probability, the lowest Fellegi-Sunter match
  probability among the pairs that link the cluster (its weakest link); a merged cell
  gets the same;
- impute: how often the method would have filled a *known* value right. For a number
  "right" means within ``TOLERANCE_SD`` (a quarter) of the reference values' standard
  deviation (sample, ddof 1; a band of 0 when it is 0 or undefined), for anything else
  equal. median / mode / group: the share of the reference values (the column's known
  values, or the group's for ``group``) within that band of the fill value (equal to it
  for a mode); knn / iterative: the share of up to ``HOLDOUT`` known values (a fifth of
  them at most), hidden from a second model fitted without them and filled by it, that
  land within the band (a quarter of a standard deviation of the standardised column).

Fill values: the median (NaN counted as null; an integer column's rounded half to even),
the mode (the smallest of equally common values); ``group`` joins each row to its
group's fill (a null ``by`` is a group of its own) and falls back to the whole column's
where the group has no known value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.transforms import pii_tokens
from datrix.jobs.transforms.base import (
    REDACTED,
    ROW_ID,
    Applied,
    Secrets,
    cell_changes,
    column_drop_change,
    empty_changes,
    mask_pii,
    merge_changes,
    removal_changes,
    require_column,
    with_row_ids,
)
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

TOLERANCE_SD = 0.25  # an imputed number is "right" within a quarter standard deviation
HOLDOUT = 200  # known values hidden to measure a model imputer's confidence
MODEL_FIT_ROWS = 20_000  # rows a KNN / iterative imputer is fitted on (seeded sample)
KNN_NEIGHBOURS = 5
SEED = 0
_CONF = "__datrix_confidence__"


@dataclass(frozen=True)
class Fitted:
    """A spec with what it learnt from the frame it was fitted on; ``apply`` fixes any
    frame of the same columns (with ``ROW_ID``)."""

    spec: FixSpec
    run: Callable[[pl.DataFrame], Applied]

    def apply(self, table: pl.DataFrame) -> Applied:
        return self.run(with_row_ids(table))


def apply(spec: FixSpec, table: pl.DataFrame, secrets: Secrets | None = None) -> Applied:
    """``spec`` fitted on ``table`` and applied to it. ``table`` gets ``ROW_ID`` (0..n-1)
    when it has none."""
    table = with_row_ids(table)
    return fit(spec, table, secrets).apply(table)


def apply_all(
    specs: Iterable[FixSpec], table: pl.DataFrame, secrets: Secrets | None = None
) -> Applied:
    """The specs in ``ORDER``, each fitted on the table the previous one left; the change
    rows merged (``base.merge_changes``): one row per changed cell, old value before the
    first fix, new after the last, rules joined with ``+``, confidences multiplied. A
    spec of a column an earlier spec of the run dropped (``pii.drop_column``) is skipped:
    there is nothing left to fix (a column's nulls and its PII are often both reported)."""
    current = with_row_ids(table)
    parts: list[pl.DataFrame] = []
    dropped: set[str] = set()
    for spec in in_order(specs):
        if spec.column in dropped:
            continue
        if isinstance(spec, Pii) and spec.action == "drop_column":
            dropped.add(spec.column)
        done = apply(spec, current, secrets)
        current = done.table
        parts.append(done.changes)
    return Applied(current, merge_changes(parts))


def fit(spec: FixSpec, table: pl.DataFrame, secrets: Secrets | None = None) -> Fitted:
    """Learn what ``spec`` needs from ``table`` (medians, spellings, inlier ranges,
    models); ValueError for a config the table does not allow (an unknown column, a
    method the column's type does not allow, a missing secret). A dedupe learns nothing:
    it finds the duplicates of the frame it is applied to (or removes its listed rows)."""
    table = with_row_ids(table)
    if isinstance(spec, Dedupe):
        return Fitted(spec, lambda frame: _dedupe(spec, frame))
    if isinstance(spec, Impute):
        return _fit_impute(spec, table)
    if isinstance(spec, Normalise):
        return _fit_normalise(spec, table)
    if isinstance(spec, Outliers):
        return _fit_outliers(spec, table)
    if isinstance(spec, Sentinels):
        require_column(table, spec.column, spec.rule)
        return Fitted(spec, lambda frame: _null_rows(spec.column, spec.rows, spec.rule, frame))
    if isinstance(spec, Pii):
        return _fit_pii(spec, table, secrets or Secrets())
    if isinstance(spec, CoerceTypes):
        require_column(table, spec.column, spec.rule)
        return Fitted(spec, lambda frame: _coerce(spec, frame))
    raise ValueError(f"not a fix spec: {spec!r}")


def _replaced(frame: pl.DataFrame, column: str, values: pl.Expr | pl.Series, rule: str) -> Applied:
    """``frame`` with ``column`` replaced, and the cells that changed."""
    after = frame.with_columns(values.alias(column) if isinstance(values, pl.Expr) else values)
    return Applied(after, cell_changes(frame, after, column, rule))


def _flagged(rows: Iterable[int]) -> pl.Expr:
    ids = pl.Series(ROW_ID, list(rows), dtype=pl.Int64)
    return pl.col(ROW_ID).is_in(ids.implode())


# ---------------------------------------------------------------------------- nulling


def _null_rows(column: str, rows: Iterable[int], rule: str, frame: pl.DataFrame) -> Applied:
    require_column(frame, column, rule)
    values = pl.when(_flagged(rows)).then(None).otherwise(pl.col(column))
    return _replaced(frame, column, values, rule)


# ---------------------------------------------------------------------------- coerce


def _coerce(spec: CoerceTypes, frame: pl.DataFrame) -> Applied:
    require_column(frame, spec.column, spec.rule)
    dtype = frame.schema[spec.column]
    if spec.to == "number":
        if dtype.is_numeric():
            return Applied(frame, empty_changes())
        return _replaced(frame, spec.column, _as_number(frame[spec.column]), spec.rule)
    if dtype == pl.Date:
        return Applied(frame, empty_changes())
    if dtype.is_temporal():
        return _replaced(frame, spec.column, pl.col(spec.column).cast(pl.Date), spec.rule)
    return _replaced(frame, spec.column, _as_date(pl.col(spec.column)), spec.rule)


def _as_number(values: pl.Series) -> pl.Series:
    """The scan's number test (``formats.is_number``: trimmed text cast to Float64); an
    Int64 column when every parsed value is a whole number that fits."""
    parsed = values.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    return parsed.cast(pl.Int64) if _whole_numbers(parsed) else parsed


def _whole_numbers(parsed: pl.Series) -> bool:
    known = parsed.drop_nulls()
    if known.len() == 0:
        return False
    if not bool(known.is_finite().all()):
        return False
    return bool((known == known.round(0)).all()) and float(known.abs().max()) < 2.0**53  # type: ignore[arg-type]


def _as_date(values: pl.Expr) -> pl.Expr:
    """The scan's date shapes (``formats.DATE_FORMATS``), each parsed with its formats in
    order (day-first before month-first where a shape allows both); null where none
    parses."""
    from datrix.jobs.quality.formats import DATE_FORMATS

    text = values.cast(pl.String).str.strip_chars()
    parsed: list[pl.Expr] = []
    for fmt in DATE_FORMATS:
        shaped = text.str.contains(fmt.shape)
        if fmt.formats:
            for f in fmt.formats:
                parsed.append(pl.when(shaped).then(text.str.to_date(f, strict=False)))
        else:
            day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            parsed.append(pl.when(shaped).then(day))
    return pl.coalesce(parsed)


# ---------------------------------------------------------------------------- outliers


def _fit_outliers(spec: Outliers, table: pl.DataFrame) -> Fitted:
    require_column(table, spec.column, spec.rule)
    if not table.schema[spec.column].is_numeric():
        raise ValueError(f"{spec.rule}: column {spec.column!r} is not numeric")
    rows = spec.rows if spec.rows is not None else _detect_outliers(table, spec.column)
    if spec.action == "null":
        return Fitted(spec, lambda frame: _null_rows(spec.column, rows, spec.rule, frame))
    flagged = _flagged(rows)
    inliers = table.filter(~flagged)[spec.column]
    if inliers.dtype.is_float():
        inliers = inliers.fill_nan(None)
    low, high = inliers.min(), inliers.max()

    def run(frame: pl.DataFrame) -> Applied:
        require_column(frame, spec.column, spec.rule)
        if low is None or high is None:
            return Applied(frame, empty_changes())
        col = pl.col(spec.column)
        clipped = pl.when(flagged).then(col.clip(low, high)).otherwise(col)  # type: ignore[arg-type]
        return _replaced(frame, spec.column, clipped, spec.rule)

    return Fitted(spec, run)


def _detect_outliers(table: pl.DataFrame, column: str) -> list[int]:
    """The scan's outlier vote on one column (``ROW_ID``s)."""
    from datrix.jobs.quality import accuracy
    from datrix.jobs.quality.detection import evenly_spaced, row_facts
    from datrix.jobs.quality.outliers import IF_FIT_ROWS, sample_step, voted_outliers
    from datrix.jobs.quality.profiling import profile_columns
    from datrix.jobs.quality.table import ScanTable

    data = table.select(column)
    scan = ScanTable.in_memory(data)
    schema = dict(data.schema)
    rows, stats = profile_columns(scan, schema)
    plan = accuracy.plan_rows(stats, rows)
    if column not in plan.rules:
        return []
    facts = row_facts(scan, schema, plan)
    sample = evenly_spaced(scan, [column], sample_step(rows, IF_FIT_ROWS))
    position = [c for c in table.columns if c != ROW_ID].index(column)
    voted = voted_outliers(
        facts.candidates,
        {column: np.asarray(sample[column].to_numpy(zero_copy_only=False), dtype=np.float64)},
        {column: plan.sentinel_values(column)},
        {column: position},
        SEED,
    )
    positions = voted.get(column, [])
    return [int(i) for i in table[ROW_ID].gather(positions).to_list()] if positions else []


# ---------------------------------------------------------------------------- normalise


def _fit_normalise(spec: Normalise, table: pl.DataFrame) -> Fitted:
    require_column(table, spec.column, spec.rule)
    column = spec.column
    dtype = table.schema[column]
    if dtype not in (pl.String, pl.Categorical) and not isinstance(dtype, pl.Enum | pl.Null):
        raise ValueError(f"{spec.rule}: column {column!r} is not text ({dtype})")
    text = pl.col(column).cast(pl.String)
    if spec.mode == "trim":
        return Fitted(spec, lambda f: _replaced(f, column, text.str.strip_chars(), spec.rule))
    if spec.mode == "casefold":
        return Fitted(spec, lambda f: _replaced(f, column, text.str.to_lowercase(), spec.rule))
    mapping = canonical_spellings(table[column])

    def run(frame: pl.DataFrame) -> Applied:
        require_column(frame, column, spec.rule)
        values = text.replace(mapping["value"], mapping["canonical"])
        return _replaced(frame, column, values, spec.rule)

    return Fitted(spec, run)


def canonical_spellings(values: pl.Series) -> pl.DataFrame:
    """``value`` -> ``canonical`` for every spelling that is not its category's commonest
    one, exactly as the scan's inconsistent_format check decides (``formats``)."""
    from datrix.jobs.quality.formats import category_key, spelling_variants

    counts = (
        values.cast(pl.String)
        .alias("value")
        .to_frame()
        .group_by("value")
        .len(name="count")
        .drop_nulls()
        .with_columns(category_key(pl.col("value")).alias("key"))
        .filter(pl.col("value").n_unique().over("key") > 1)
    )
    if counts.height == 0:
        return pl.DataFrame(schema={"value": pl.String, "canonical": pl.String})
    return spelling_variants(counts).select("value", "canonical").sort("value")


# ---------------------------------------------------------------------------- PII


def _fit_pii(spec: Pii, table: pl.DataFrame, secrets: Secrets) -> Fitted:
    require_column(table, spec.column, spec.rule)
    column = spec.column
    if spec.action == "drop_column":

        def drop(frame: pl.DataFrame) -> Applied:
            require_column(frame, column, spec.rule)
            return Applied(frame.drop(column), column_drop_change(column, spec.rule))

        return Fitted(spec, drop)
    text = pl.col(column).cast(pl.String)
    if spec.action == "redact":
        values = pl.when(text.is_not_null()).then(pl.lit(REDACTED)).otherwise(None)
        return Fitted(spec, lambda f: _masked(_replaced(f, column, values, spec.rule)))
    one: Callable[[str], str]
    if spec.action == "hash":
        salt = pii_tokens.check_salt(secrets.salt)
        one = lambda v: pii_tokens.hash_value(v, salt)  # noqa: E731
    elif spec.action == "tokenise":
        key = pii_tokens.check_token_key(secrets.token_key)
        one = lambda v: pii_tokens.tokenise(v, key)  # noqa: E731
    else:
        one = pii_tokens.redact_spans

    def run(frame: pl.DataFrame) -> Applied:
        require_column(frame, column, spec.rule)
        values = frame[column].cast(pl.String)
        if spec.action == "redact_spans":
            values = _redact_spans(values)
        else:
            values = values.map_elements(one, return_dtype=pl.String, skip_nulls=True)
        return _masked(_replaced(frame, column, values.alias(column), spec.rule))

    return Fitted(spec, run)


def _masked(done: Applied) -> Applied:
    """A PII fix's change rows keep the old value only masked (``base.mask_pii``)."""
    changes = done.changes.with_columns(mask_pii(pl.col("old_value")))
    return Applied(done.table, changes)


def _redact_spans(values: pl.Series) -> pl.Series:
    """Only values the detector's prefilter can match are looked at in Python."""
    from datrix.jobs.quality import pii

    prefilter: str | None = getattr(pii, "PREFILTER", None)
    if prefilter is None:
        return values.map_elements(pii_tokens.redact_spans, return_dtype=pl.String, skip_nulls=True)
    hit = values.str.contains(prefilter).fill_null(False)
    at = hit.arg_true()
    if at.len() == 0:
        return values
    redacted = values.gather(at).map_elements(
        pii_tokens.redact_spans, return_dtype=pl.String, skip_nulls=True
    )
    return values.scatter(at, redacted)


# ---------------------------------------------------------------------------- impute


def _fit_impute(spec: Impute, table: pl.DataFrame) -> Fitted:
    require_column(table, spec.column, spec.rule)
    column = spec.column
    dtype = table.schema[column]
    numeric = dtype.is_numeric()
    if spec.method in ("knn", "iterative"):
        if not numeric:
            raise ValueError(f"{spec.rule}: column {column!r} is not numeric ({dtype})")
        return _fit_model_imputer(spec, table)
    statistic = "median" if spec.method in ("median", "group") and numeric else "mode"
    rule = spec.rule if statistic == "median" or spec.method != "median" else "impute.mode"
    known = _known(pl.col(column), dtype)
    whole = table.select(_fill_stats(known, statistic, dtype)).row(0)
    groups: pl.DataFrame | None = None
    if spec.method == "group":
        assert spec.by is not None
        require_column(table, spec.by, spec.rule)
        groups = (
            table.group_by(spec.by)
            .agg(_fill_stats(known, statistic, dtype))
            .filter(pl.col("fill").is_not_null())
        )

    def run(frame: pl.DataFrame) -> Applied:
        require_column(frame, column, spec.rule)
        fill: pl.Expr = pl.lit(whole[0], dtype=dtype)
        conf: pl.Expr = pl.lit(whole[1], dtype=pl.Float64)
        work = frame
        if groups is not None:
            assert spec.by is not None
            require_column(frame, spec.by, spec.rule)
            work = frame.join(
                groups.rename({"fill": "__fill", "conf": "__conf"}),
                on=spec.by,
                how="left",
                nulls_equal=True,
                maintain_order="left",
            )
            fill = pl.coalesce(pl.col("__fill").cast(dtype), fill)
            conf = pl.when(pl.col("__fill").is_not_null()).then(pl.col("__conf")).otherwise(conf)
        if whole[0] is None and groups is None:
            return Applied(frame, empty_changes())
        missing = _missing(pl.col(column), dtype)
        after = work.select(
            *[
                pl.when(missing).then(fill).otherwise(pl.col(c)).alias(c)
                if c == column
                else pl.col(c)
                for c in frame.columns
            ],
            conf.alias(_CONF),
        )
        changes = cell_changes(frame, after, column, rule, pl.col(_CONF))
        return Applied(after.drop(_CONF), changes)

    return Fitted(spec, run)


def _known(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return col.fill_nan(None) if dtype.is_float() else col


def _missing(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return (col.is_null() | col.is_nan()) if dtype.is_float() else col.is_null()


def _fill_stats(known: pl.Expr, statistic: str, dtype: pl.DataType) -> list[pl.Expr]:
    """``fill`` (the median, whole for an integer column, or the mode: the smallest of
    equally common values) and ``conf`` (module docstring) over the rows aggregated."""
    if statistic == "median":
        median = known.median()
        fill = median.round(0) if dtype.is_integer() else median
        sd = known.std()
        band = pl.when(sd > 0).then(sd * TOLERANCE_SD).otherwise(0.0)
        hits = ((known - fill).abs() <= band).sum() / known.count()
        return [fill.cast(dtype).alias("fill"), hits.cast(pl.Float64).alias("conf")]
    present = known.drop_nulls()
    mode = present.mode().sort().first()
    share = (present == mode).sum() / present.count()
    return [mode.cast(dtype).alias("fill"), share.cast(pl.Float64).alias("conf")]


@dataclass(frozen=True)
class _Model:
    features: list[str]
    target: int  # position of the imputed column among the features
    mean: Any
    scale: Any
    imputer: Any
    confidence: float


def _fit_model_imputer(spec: Impute, table: pl.DataFrame) -> Fitted:
    column = spec.column
    dtype = table.schema[column]
    features = [c for c, t in table.schema.items() if c != ROW_ID and t.is_numeric()]
    model = _train(spec, table, features)

    def run(frame: pl.DataFrame) -> Applied:
        require_column(frame, column, spec.rule)
        missing = frame.select(_missing(pl.col(column), dtype)).to_series()
        at = missing.arg_true()
        if at.len() == 0 or model is None:
            return Applied(frame, empty_changes())
        for c in model.features:
            require_column(frame, c, spec.rule)
        x = _matrix(frame[at], model.features)
        filled = model.imputer.transform((x - model.mean) / model.scale)
        values = filled[:, model.target] * model.scale[model.target] + model.mean[model.target]
        new = pl.Series(column, values, dtype=pl.Float64)
        if dtype.is_integer():
            new = new.round(0)
        after = frame.with_columns(frame[column].scatter(at, new.cast(dtype)))
        changes = cell_changes(frame, after, column, spec.rule, model.confidence)
        return Applied(after, changes)

    return Fitted(spec, run)


def _matrix(frame: pl.DataFrame, columns: list[str]) -> Any:
    return np.column_stack(
        [frame[c].cast(pl.Float64).fill_null(float("nan")).to_numpy() for c in columns]
    ).astype(np.float64)


def _new_imputer(method: str) -> Any:
    if method == "knn":
        from sklearn.impute import KNNImputer

        return KNNImputer(n_neighbors=KNN_NEIGHBOURS, keep_empty_features=True)
    from sklearn.experimental import enable_iterative_imputer  # noqa: F401
    from sklearn.impute import IterativeImputer

    return IterativeImputer(random_state=SEED, max_iter=10, keep_empty_features=True)


def _train(spec: Impute, table: pl.DataFrame, features: list[str]) -> _Model | None:
    """The imputer on (at most ``MODEL_FIT_ROWS`` of) the rows, standardised columns; its
    confidence from a second one fitted without up to ``HOLDOUT`` known values (a fifth of
    them at most) and asked for them (module docstring)."""
    import warnings

    target = features.index(spec.column)
    x = _matrix(table, features)
    known = np.flatnonzero(np.isfinite(x[:, target]))
    if known.size < 2:
        return None
    rng = np.random.default_rng(SEED)
    mean = np.nanmean(np.where(np.isfinite(x), x, np.nan), axis=0)
    mean = np.where(np.isfinite(mean), mean, 0.0)
    scale = np.nanstd(np.where(np.isfinite(x), x, np.nan), axis=0)
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
    z = (np.where(np.isfinite(x), x, np.nan) - mean) / scale
    everything = np.arange(x.shape[0])
    if everything.size > MODEL_FIT_ROWS:
        everything = np.sort(rng.permutation(everything)[:MODEL_FIT_ROWS])
    held = np.sort(rng.permutation(known)[: min(HOLDOUT, max(1, known.size // 5))])
    rest = np.setdiff1d(everything, held)
    imputer = _new_imputer(spec.method)
    probe_model = _new_imputer(spec.method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imputer.fit(z[everything])
        probe_model.fit(z[rest])
        probe = z[held].copy()
        truth = probe[:, target].copy()
        probe[:, target] = np.nan
        guessed = probe_model.transform(probe)[:, target]
    hits = np.abs(guessed - truth) <= TOLERANCE_SD  # standardised: one sd is 1
    confidence = float(hits.mean()) if held.size else 0.0
    return _Model(features, target, mean, scale, imputer, round(confidence, 6))


# ---------------------------------------------------------------------------- dedupe


def _dedupe(spec: Dedupe, frame: pl.DataFrame) -> Applied:
    if spec.rows is not None:
        flagged = _flagged(spec.rows)
        return _remove(frame, frame.filter(flagged), spec.rule, 1.0)
    if spec.mode == "exact":
        from datrix.jobs.quality.detection import duplicate_rows

        columns = [c for c in frame.columns if c != ROW_ID]
        redundant = duplicate_rows(frame.lazy(), columns) if frame.height > 1 else []
        return _remove(frame, frame[np.asarray(redundant, dtype=np.int64)], spec.rule, 1.0)
    return _near_dedupe(spec, frame)


def _remove(
    frame: pl.DataFrame, removed: pl.DataFrame, rule: str, confidence: float | pl.Series
) -> Applied:
    if removed.height == 0:
        return Applied(frame, empty_changes())
    ids = removed[ROW_ID].implode()
    return Applied(
        frame.filter(~pl.col(ROW_ID).is_in(ids)), removal_changes(removed, rule, confidence)
    )


def clusters_of(
    pairs: Sequence[tuple[int, int]], probabilities: Sequence[float] | None, rows: int
) -> pl.DataFrame:
    """Near-duplicate ``pairs`` (0-based positions among ``rows`` rows; each pair's match
    ``probabilities``, 1.0 when not given) joined into clusters, sorted by position:
    ``position``, ``cluster`` (its smallest position) and ``probability`` (the cluster's
    weakest pair's match probability), one row per clustered row. Both engines' near
    dedupe cluster through this."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    found = np.asarray(pairs, dtype=np.int64)
    probs = np.asarray(probabilities or [1.0] * len(found), dtype=np.float64)
    graph = coo_matrix((np.ones(len(found)), (found[:, 0], found[:, 1])), shape=(rows, rows))
    _, labels = connected_components(graph, directed=False)
    members = np.unique(found)
    by_label = pl.DataFrame({"position": members, "label": labels[members]}).with_columns(
        pl.col("position").min().over("label").alias("cluster")
    )
    weakest = (
        pl.DataFrame({"label": labels[found[:, 0]], "p": probs})
        .group_by("label")
        .agg(pl.col("p").min().alias("probability"))
    )
    return (
        by_label.join(weakest, on="label")
        .select(
            pl.col("position").cast(pl.Int64),
            pl.col("cluster").cast(pl.Int64),
            pl.col("probability").cast(pl.Float64),
        )
        .sort("position")
    )


def near_clusters(frame: pl.DataFrame) -> pl.DataFrame:
    """The scan's near-duplicate pairs of ``frame`` (exact copies left out, as the scan
    does) joined into clusters (``clusters_of``), one row per clustered row."""
    from datrix.jobs.quality.detection import duplicate_rows
    from datrix.jobs.quality.near_duplicates import find_near_duplicates_in
    from datrix.jobs.quality.profiling import profile_columns
    from datrix.jobs.quality.table import ScanTable

    empty = pl.DataFrame(
        schema={"position": pl.Int64, "cluster": pl.Int64, "probability": pl.Float64}
    )
    data = frame.drop(ROW_ID)
    if frame.height < 2 or not data.columns:
        return empty
    scan = ScanTable.in_memory(data)
    schema = dict(data.schema)
    rows, stats = profile_columns(scan, schema)
    redundant = duplicate_rows(scan, list(schema))
    near = find_near_duplicates_in(scan, schema, stats, redundant, SEED)
    if not near.pairs:
        return empty
    return clusters_of(near.pairs, near.probabilities, rows)


def _near_dedupe(spec: Dedupe, frame: pl.DataFrame) -> Applied:
    clusters = near_clusters(frame)
    if clusters.height == 0:
        return Applied(frame, empty_changes())
    columns = [c for c in frame.columns if c != ROW_ID]
    filled = pl.sum_horizontal([pl.col(c).is_not_null() for c in columns]).alias("__filled")
    members = (
        frame.with_row_index("position")
        .with_columns(pl.col("position").cast(pl.Int64), filled)
        .join(clusters, on="position")
        # the most complete row of each cluster first (ties: the earliest)
        .sort(["cluster", "__filled", "position"], descending=[False, True, False])
    )
    rank = pl.int_range(pl.len()).over("cluster")
    members = members.with_columns(rank.alias("__rank"))
    keepers = members.filter(pl.col("__rank") == 0)
    removed = members.filter(pl.col("__rank") > 0).sort(ROW_ID)
    kept = frame.filter(~pl.col(ROW_ID).is_in(removed[ROW_ID].implode()))
    parts = []
    if spec.keep == "merge":
        merged = members.group_by("cluster", maintain_order=True).agg(
            pl.col(ROW_ID).first(), *[pl.col(c).drop_nulls().first() for c in columns]
        )
        patch = merged.drop("cluster")
        after = kept.update(patch, on=ROW_ID, how="left")
        after = after.select(pl.col(c).cast(kept.schema[c]) for c in kept.columns)
        conf = keepers.select(ROW_ID, pl.col("probability").alias(_CONF))
        with_conf = after.join(conf, on=ROW_ID, how="left", maintain_order="left")
        for c in columns:
            parts.append(cell_changes(kept, with_conf, c, spec.rule, pl.col(_CONF)))
        kept = after
    removal = removal_changes(removed.select(frame.columns), spec.rule, removed["probability"])
    return Applied(kept, merge_changes([*parts, removal]))
