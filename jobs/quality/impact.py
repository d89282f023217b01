"""Measured impact of an issue on a model, when the dataset has a label column.

The impact a scan estimates from an issue's share of rows (``scoring.impact_score``) says
how *much* data an issue touches, not whether it matters for the model the data feeds.
Where a label column is named, the most important issues are also **measured**: the
cross-validated accuracy of a quick model on the data as it is (``before``) and after the
issue's standard fix (``after``).

- **Sample.** At most ``SAMPLE_ROWS`` rows (seeded uniform sample), with an extra column
  ``ROW_ID`` holding each row's position in the full frame, so a fix can find the rows an
  issue lists. Fixes receive and return that sample; the fix statistics they need
  (medians, modes, inlier ranges) come from the sample too.
- **Model.** ``HistGradientBoostingClassifier`` (``MODEL_ITERATIONS`` trees per class,
  seeded) on the features ``labels.build_features`` chooses (numbers, bounded
  categories, NaN for nulls; free text and ids dropped), ``FOLDS``-fold cross-validation.
  A row keeps its fold through every fix (folds are assigned by ``ROW_ID``), so before and
  after differ by the fix alone, not by a different split; rows with a null label are
  left out of both.
- **Delta** = after - before, in accuracy (0..1). A fix that drops rows (duplicates, label
  issues, the rows of a null census) is measured on the rows it keeps: the delta then says
  how much better the model does without them, which is what the issue costs. Removing
  exact duplicates usually *lowers* cross-validated accuracy (copies shared by train and
  test folds flatter it), which reads as "no measured gain".
- **Impact score** (0..100)::

      impact = 100 * clamp((delta - noise) / (FULL_SCALE_DELTA - noise), 0, 1)
      noise  = max(MIN_NOISE, standard error of the per-fold deltas)

  Gains within the noise of the measurement score 0; a fix that gains
  ``FULL_SCALE_DELTA`` (5 accuracy points) or more scores 100; in between it is linear,
  so 1 point above the noise is worth ~20. Fixes that do not help (or hurt) score 0.

``measure_impacts`` measures any named fixes against one baseline; ``standard_fix`` builds
the fix for a finding type; ``measure_finding_impacts`` picks the ``limit`` findings with
the highest estimated impact that have a standard fix and measures those (the rest keep
their estimate). Costs: sampling plus (1 + fixes) x ``FOLDS`` model fits on at most
``SAMPLE_ROWS`` rows, whatever the frame's size.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from jobs.quality.issues import Finding
from jobs.quality.labels import build_features
from jobs.quality.rowset import as_indices
from jobs.quality.scoring import impact_score, severity_for

SAMPLE_ROWS = 5_000
FOLDS = 3
MODEL_ITERATIONS = 50
MIN_ROWS = 30  # fewer labelled rows than this (before or after a fix): not measured
MIN_NOISE = 0.002  # accuracy differences below 0.2 points are noise
FULL_SCALE_DELTA = 0.05  # a 5-point gain is the most an issue can matter
MAX_MEASURED = 5
ROW_ID = "__datrix_row__"

Fix = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class ImpactMeasurement:
    """Cross-validated accuracy before and after a fix, their difference and its 0..100
    impact score (see the module docstring). ``stderr`` is the standard error of the
    per-fold deltas; ``rows_before``/``rows_after`` the labelled rows each was measured
    on."""

    before: float
    after: float
    delta: float
    impact_score: float
    stderr: float
    rows_before: int
    rows_after: int
    seconds: float


def score_delta(delta: float, stderr: float = 0.0) -> float:
    """The 0..100 impact of an accuracy gain ``delta`` measured with ``stderr``."""
    noise = max(MIN_NOISE, stderr)
    if noise >= FULL_SCALE_DELTA:
        return 0.0
    share = (delta - noise) / (FULL_SCALE_DELTA - noise)
    return round(100.0 * min(1.0, max(0.0, share)), 1)


# ---------------------------------------------------------------------------- measuring


def sample_with_ids(frame: pl.DataFrame, sample_rows: int, seed: int) -> pl.DataFrame:
    """At most ``sample_rows`` rows in their original order, with ``ROW_ID``."""
    indexed = frame.with_row_index(ROW_ID).with_columns(pl.col(ROW_ID).cast(pl.Int64))
    if indexed.height <= sample_rows:
        return indexed
    return indexed.sample(n=sample_rows, seed=seed, shuffle=False).sort(ROW_ID)


@dataclass(frozen=True)
class _Accuracy:
    mean: float
    per_fold: dict[int, float]
    rows: int


def _cv_accuracy(
    frame: pl.DataFrame, label: str, fold_of: Mapping[int, int], seed: int
) -> _Accuracy | None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    if label not in frame.columns:
        return None
    data = frame.filter(pl.col(label).is_not_null())
    if data[label].dtype.is_float():
        data = data.filter(pl.col(label).is_not_nan())
    if data.height < MIN_ROWS:
        return None
    y_series = data[label]
    if isinstance(y_series.dtype, pl.Categorical | pl.Enum):
        y_series = y_series.cast(pl.String)
    classes = y_series.unique().sort()
    if classes.len() < 2:
        return None
    y = y_series.replace_strict(classes, list(range(classes.len())), return_dtype=pl.Int64)
    y_np = y.to_numpy()
    if ROW_ID in data.columns:
        ids = data[ROW_ID].to_list()
        folds = np.array([fold_of.get(i, i % FOLDS) for i in ids], dtype=np.int64)
        features = build_features(data.drop(ROW_ID), label)
    else:
        folds = np.arange(data.height, dtype=np.int64) % FOLDS
        features = build_features(data, label)
    x = features.matrix
    if x.shape[1] == 0:  # nothing to learn from: the model predicts the majority class
        x = np.zeros((data.height, 1), dtype=np.float64)
    mask = features.categorical if any(features.categorical) else None
    per_fold: dict[int, float] = {}
    correct = 0
    for f in range(FOLDS):
        test = folds == f
        train = ~test
        if not test.any() or len(np.unique(y_np[train])) < 2:
            continue
        model = HistGradientBoostingClassifier(
            max_iter=MODEL_ITERATIONS,
            early_stopping=False,
            categorical_features=mask,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x[train], y_np[train])
            hits = model.predict(x[test]) == y_np[test]
        per_fold[f] = float(np.mean(hits))
        correct += int(hits.sum())
    if not per_fold:
        return None
    tested = int(sum((folds == f).sum() for f in per_fold))
    return _Accuracy(mean=correct / tested, per_fold=per_fold, rows=data.height)


def _fold_map(sample: pl.DataFrame, label: str, seed: int) -> dict[int, int]:
    """ROW_ID -> fold, stratified by label where every class allows it."""
    from sklearn.model_selection import KFold, StratifiedKFold

    ids = sample[ROW_ID].to_numpy()
    y = sample[label].cast(pl.String).fill_null("\x00null").to_numpy()
    _, counts = np.unique(y, return_counts=True)
    splitter: Any
    if len(counts) >= 2 and counts.min() >= FOLDS:
        splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    out: dict[int, int] = {}
    if len(ids) < FOLDS:
        return {int(i): n % FOLDS for n, i in enumerate(ids)}
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(ids)), y)):
        for i in ids[test]:
            out[int(i)] = f
    return out


def measure_impacts(
    frame: pl.DataFrame,
    label: str,
    fixes: Mapping[str, Fix],
    *,
    seed: int = 0,
    sample_rows: int = SAMPLE_ROWS,
) -> dict[str, ImpactMeasurement]:
    """Measure every fix against one baseline (see the module docstring).

    Each fix gets the sample (with ``ROW_ID``) and returns the fixed sample. A fix whose
    result cannot be measured (too few labelled rows, one class left) or a frame with no
    measurable baseline is left out of the result. Raises ValueError when ``label`` is
    not a column of ``frame``."""
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not a column of the dataset")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # see labels.find_label_issues
        return _measure(frame, label, fixes, seed, sample_rows)


def _measure(
    frame: pl.DataFrame, label: str, fixes: Mapping[str, Fix], seed: int, sample_rows: int
) -> dict[str, ImpactMeasurement]:
    sample = sample_with_ids(frame, sample_rows, seed)
    fold_of = _fold_map(sample, label, seed)
    started = time.perf_counter()
    before = _cv_accuracy(sample, label, fold_of, seed)
    baseline_seconds = time.perf_counter() - started
    out: dict[str, ImpactMeasurement] = {}
    if before is None:
        return out
    for name, fix in fixes.items():
        started = time.perf_counter()
        after = _cv_accuracy(fix(sample), label, fold_of, seed)
        if after is None:
            continue
        common = sorted(set(before.per_fold) & set(after.per_fold))
        deltas = [after.per_fold[f] - before.per_fold[f] for f in common]
        stderr = float(np.std(deltas, ddof=1) / math.sqrt(len(deltas))) if len(deltas) > 1 else 0.0
        delta = after.mean - before.mean
        out[name] = ImpactMeasurement(
            before=round(before.mean, 6),
            after=round(after.mean, 6),
            delta=round(delta, 6),
            impact_score=score_delta(delta, stderr),
            stderr=round(stderr, 6),
            rows_before=before.rows,
            rows_after=after.rows,
            seconds=round(time.perf_counter() - started + baseline_seconds / len(fixes), 3),
        )
    return out


# ---------------------------------------------------------------------------- fixes


def drop_rows(rows: Sequence[int]) -> Fix:
    """Drop the listed rows (positions in the full frame)."""
    ids = pl.Series(ROW_ID, as_indices(rows), dtype=pl.Int64)

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(~pl.col(ROW_ID).is_in(ids.implode()))

    return fix


def impute(column: str) -> Fix:
    """Fill the column's nulls (and NaNs) with its median (numbers) or mode (otherwise)."""

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        s = frame[column]
        if s.dtype.is_numeric():
            filled = s.fill_nan(None) if s.dtype.is_float() else s
            median = filled.median()
            if median is None:
                return frame
            value: Any = median if s.dtype.is_float() else round(float(median))  # type: ignore[arg-type]
            return frame.with_columns(filled.fill_null(value).alias(column))
        mode = s.drop_nulls().mode()
        if mode.len() == 0:
            return frame
        return frame.with_columns(s.fill_null(mode.sort()[0]).alias(column))

    return fix


def winsorize(column: str, rows: Sequence[int]) -> Fix:
    """Clip the listed rows' values to the range of the column's other (inlier) values."""
    ids = pl.Series(ROW_ID, as_indices(rows), dtype=pl.Int64)

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        flagged = pl.col(ROW_ID).is_in(ids.implode())
        inliers = frame.filter(~flagged)[column]
        if inliers.dtype.is_float():
            inliers = inliers.fill_nan(None)
        low, high = inliers.min(), inliers.max()
        if low is None or high is None:
            return frame
        col = pl.col(column)
        return frame.with_columns(
            pl.when(flagged).then(col.clip(low, high)).otherwise(col).alias(column)  # type: ignore[arg-type]
        )

    return fix


def canonical_spelling(column: str) -> Fix:
    """Map every text value to the commonest spelling among the values equal to it after
    trimming and case folding."""

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        text = pl.col(column).cast(pl.String)
        key = text.str.strip_chars().str.to_lowercase()
        counts = (
            frame.select(text.alias("v"), key.alias("k"))
            .drop_nulls()
            .group_by("k", "v")
            .len()
            .sort(["k", "len", "v"], descending=[False, True, False])
            .unique("k", keep="first", maintain_order=True)
        )
        return frame.with_columns(
            key.replace_strict(counts["k"], counts["v"], default=text).alias(column)
        )

    return fix


def null_cells(column: str, rows: Sequence[int]) -> Fix:
    """Set the listed rows' cells of the column to null."""
    ids = pl.Series(ROW_ID, as_indices(rows), dtype=pl.Int64)

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        flagged = pl.col(ROW_ID).is_in(ids.implode())
        return frame.with_columns(
            pl.when(flagged).then(None).otherwise(pl.col(column)).alias(column)
        )

    return fix


ROW_DROPPING = frozenset({"exact_duplicates", "near_duplicates", "label_issues"})


def standard_fix(
    finding_type: str, column: str | None, rows: Sequence[int], *, label: str | None = None
) -> Fix | None:
    """The fix an impact is measured with, or None when a type has none worth measuring.

    - exact_duplicates, near_duplicates, label_issues: drop the listed rows;
    - null_values: drop the rows with the null (what the nulls cost the model; imputing
      the median cannot help a model that handles missing values itself), or impute the
      median/mode when that would drop more than half of the rows; nulls of the label
      column are left out of every measurement already, so they get no fix;
    - outliers: winsorize the listed values to the range of the column's other values;
    - inconsistent_format: canonical spelling (commonest variant per trimmed, case-folded
      value);
    - type_mismatch: null the mistyped cells.
    """
    if finding_type in ROW_DROPPING:
        return drop_rows(rows) if rows else None
    if column is None:
        return None
    if finding_type == "null_values":
        if column == label:
            return None
        return _drop_or_impute(column, rows)
    if finding_type == "outliers":
        return winsorize(column, rows) if rows else None
    if finding_type == "inconsistent_format":
        return canonical_spelling(column)
    if finding_type == "type_mismatch":
        return null_cells(column, rows) if rows else None
    return None


def _drop_or_impute(column: str, rows: Sequence[int]) -> Fix:
    drop = drop_rows(rows)
    fill = impute(column)

    def fix(frame: pl.DataFrame) -> pl.DataFrame:
        nulls = frame[column].is_null().sum()
        if 2 * nulls > frame.height:
            return fill(frame)
        return drop(frame)

    return fix


def estimated_impact(finding: Finding, total_rows: int) -> float:
    """The share-based impact ``issues.number_issues`` gives a finding."""
    share = finding.affected_count / total_rows if total_rows > 0 else 0.0
    return impact_score(share, finding.severity or severity_for(share))


def measure_finding_impacts(
    frame: pl.DataFrame,
    label: str,
    findings: Sequence[Finding],
    *,
    limit: int = MAX_MEASURED,
    seed: int = 0,
    sample_rows: int = SAMPLE_ROWS,
) -> dict[int, ImpactMeasurement]:
    """Measure the ``limit`` findings with the highest estimated impact that have a
    standard fix; keys are positions in ``findings``. Unmeasured findings keep their
    estimate."""
    ranked = sorted(
        range(len(findings)),
        key=lambda i: (-estimated_impact(findings[i], frame.height), i),
    )
    fixes: dict[str, Fix] = {}
    for i in ranked:
        if len(fixes) >= limit:
            break
        f = findings[i]
        fix = standard_fix(f.type, f.column, f.rows, label=label)
        if fix is not None:
            fixes[str(i)] = fix
    if not fixes:
        return {}
    measured = measure_impacts(frame, label, fixes, seed=seed, sample_rows=sample_rows)
    return {int(k): v for k, v in measured.items()}
