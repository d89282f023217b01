"""Measured impact of an issue on a model, when the dataset has a label column.

The impact a scan estimates from an issue's share of rows (``scoring.impact_score``) says
how *much* data an issue touches, not whether it matters for the model the data feeds.
Where a label column is named, the most important issues are also **measured**: the
held-out accuracy of a quick model trained on the data as it is (``before``) and trained on
the data after the issue's standard fix (``after``).

- **Sample.** At most ``SAMPLE_ROWS`` rows (seeded uniform sample), with an extra column
  ``ROW_ID`` holding each row's position in the full frame, so a fix can find the rows an
  issue lists. Rows with a null label are left out (they can be neither learnt from nor
  scored).
- **Held-out protocol.** The labelled rows are split into ``FOLDS`` folds (stratified by
  label, assigned by ``ROW_ID``). For each fold, the model is trained on the other folds
  and scored on that fold, once as they are (before) and once with the fix applied to the
  *training folds only* (after). The held-out fold is never touched by a fix: none of its
  rows is dropped and none of its labels changes, so before and after are scored on the
  very same rows and labels, and every labelled row is scored exactly once. A fix that
  drops rows (duplicates) drops them from the training folds; label issues are a
  :class:`TrainingFix`, *found again* on the training folds alone and dropped there (the
  rows flagged on the whole table were chosen by models that saw the held-out labels:
  dropping them carried those labels into training, and random labels "gained" 6 to 8
  points); a fix that
  changes values (impute, winsorise, canonical spelling, null the mistyped cells) is a
  :class:`ValueFix`: it learns its statistics (median, mode, inlier range, commonest
  spelling) on the training folds only and is applied to the held-out rows' *feature*
  values too, as a deployed pipeline would apply it to new rows -- a model trained on
  corrected spellings could not otherwise read the uncorrected ones. Rows and labels of the
  held-out fold stay as they are.

  Why: scoring on the fixed rows is circular. Dropping the rows a model disagrees with and
  then scoring on rows of the same kind "gains" accuracy even when the labels are random
  (the first version claimed +27 points for fully random labels). Scored on untouched
  held-out rows, a fix gains only when training on the fixed data predicts real labels
  better: random labels show no gain; 10 % flipped labels still do.
- **Model.** ``HistGradientBoostingClassifier`` (``MODEL_ITERATIONS`` trees per class,
  seeded) on the features ``labels.build_features`` chooses (numbers, bounded
  categories, NaN for nulls; free text and ids dropped; the encoding is built on the
  training and held-out rows together, from feature values only).
- **Delta** = after - before, in held-out accuracy (0..1), both over every labelled row of
  the sample. Removing exact duplicates usually *lowers* held-out accuracy (the copies
  shared by training and held-out folds flattered the baseline), which reads as "no
  measurable gain"; so does imputing nulls for a model that handles missing values itself.
- **Noise** = max(``MIN_NOISE``, standard error of the per-fold deltas, ``NOISE_Z`` x the
  paired standard error of the per-row difference (after right - before right) over the
  scored rows). The per-row term is what makes small samples honest: on 569 rows a
  1-point difference is a handful of rows.
- **Impact score** (0..100)::

      impact = 100 * clamp((delta - noise) / (FULL_SCALE_DELTA - noise), 0, 1)

  Gains within the noise of the measurement score 0 ("no measurable gain"); a fix that
  gains ``FULL_SCALE_DELTA`` (5 accuracy points) or more scores 100; in between it is
  linear. Fixes that do not help (or hurt) score 0.

``measure_impacts`` measures any named fixes against one baseline; ``standard_fix`` builds
the fix for a finding type; ``measure_finding_impacts`` picks the ``limit`` findings with
the highest estimated impact that have a standard fix and measures those (the rest keep
their estimate). Costs: sampling plus (1 + fixes) x ``FOLDS`` model fits on at most
``SAMPLE_ROWS`` rows, whatever the frame's size; a label-issue fix adds ``FOLDS`` runs of
the label check on the training folds (at most 2/3 of ``SAMPLE_ROWS`` rows each).
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

from datrix.jobs.quality.issues import Finding
from datrix.jobs.quality.labels import build_features
from datrix.jobs.quality.rowset import as_indices
from datrix.jobs.quality.scoring import impact_score, severity_for
from datrix.jobs.transforms import polars_transforms as transforms
from datrix.jobs.transforms.base import ROW_ID
from datrix.jobs.transforms.specs import Dedupe, FixSpec, Impute, Normalise, Outliers, Sentinels

SAMPLE_ROWS = 5_000
FOLDS = 3
MODEL_ITERATIONS = 50
MIN_ROWS = 30  # fewer labelled (training) rows than this, before or after a fix: not measured
MIN_NOISE = 0.002  # accuracy differences below 0.2 points are noise
NOISE_Z = 2.0  # a gain must exceed two paired standard errors to count
FULL_SCALE_DELTA = 0.05  # a 5-point gain is the most an issue can matter
MAX_MEASURED = 5

Fix = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class ValueFix:
    """A fix that changes values, not which rows there are. ``fit(train)`` learns what it
    needs from the training rows and returns the transform, applied to the training rows
    and to the held-out rows' features alike. Called on a frame, it fits on that frame and
    transforms it."""

    fit: Callable[[pl.DataFrame], Fix]

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        return self.fit(frame)(frame)


@dataclass(frozen=True)
class TrainingFix:
    """A fix *decided* on the training folds alone and applied to them only: ``fit(train)``
    returns the fix for those rows. Needed where the issue's rows were found with the
    labels: the label issues of the whole table were flagged by models that saw the
    held-out rows' labels, so dropping them would carry those labels into training."""

    fit: Callable[[pl.DataFrame], Fix]

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        return self.fit(frame)(frame)


@dataclass(frozen=True)
class ImpactMeasurement:
    """Held-out accuracy before and after a fix, their difference and its 0..100 impact
    score (see the module docstring). ``stderr`` is the paired standard error of the
    per-row difference, ``noise`` the threshold a gain had to exceed;
    ``rows_before``/``rows_after`` the labelled rows trained on without/with the fix (each
    row is trained on in all folds but its own); ``rows_scored`` the held-out rows both
    were scored on (the same rows)."""

    before: float
    after: float
    delta: float
    impact_score: float
    stderr: float
    rows_before: int
    rows_after: int
    seconds: float
    noise: float = MIN_NOISE
    rows_scored: int = 0

    @property
    def gained(self) -> bool:
        """Whether the fix measurably raised held-out accuracy (gain beyond the noise)."""
        return self.impact_score > 0.0


def score_delta(delta: float, stderr: float = 0.0) -> float:
    """The 0..100 impact of an accuracy gain ``delta`` measured with noise ``stderr``."""
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


def _labelled(frame: pl.DataFrame, label: str) -> pl.DataFrame:
    data = frame.filter(pl.col(label).is_not_null())
    if data[label].dtype.is_float():
        data = data.filter(pl.col(label).is_not_nan())
    return data


def _label_text(frame: pl.DataFrame, label: str) -> pl.Series:
    return frame[label].cast(pl.String)


class _Unmeasurable(Exception):
    """A fold whose (fixed) training rows cannot be fitted on."""


@dataclass(frozen=True)
class _Setup:
    label: str
    classes: pl.Series  # the label's values as text, sorted
    seed: int


def _codes(frame: pl.DataFrame, setup: _Setup) -> np.ndarray[Any, np.dtype[np.int64]]:
    """0-based class codes; -1 for a null label or a value the sample did not have."""
    codes = _label_text(frame, setup.label).replace_strict(
        setup.classes, list(range(setup.classes.len())), default=None, return_dtype=pl.Int64
    )
    return codes.fill_null(-1).to_numpy().astype(np.int64)


def _fit_predict_hits(
    train: pl.DataFrame, test: pl.DataFrame, setup: _Setup
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """Train on ``train`` (rows with a known label), return per held-out row whether the
    model predicts its given label."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    y_train = _codes(train, setup)
    keep = y_train >= 0
    if int(keep.sum()) < MIN_ROWS or len(np.unique(y_train[keep])) < 2:
        raise _Unmeasurable
    y_test = _codes(test, setup)
    both = pl.concat([train.drop(ROW_ID), test.drop(ROW_ID)], how="vertical_relaxed")
    features = build_features(both, setup.label)
    x = features.matrix
    if x.shape[1] == 0:  # nothing to learn from: the model predicts the majority class
        x = np.zeros((both.height, 1), dtype=np.float64)
    x_train, x_test = x[: train.height][keep], x[train.height :]
    model = HistGradientBoostingClassifier(
        max_iter=MODEL_ITERATIONS,
        early_stopping=False,
        categorical_features=features.categorical if any(features.categorical) else None,
        random_state=setup.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x_train, y_train[keep])
        predicted = model.predict(x_test)
    hits: np.ndarray[Any, np.dtype[np.bool_]] = np.asarray(predicted == y_test, dtype=bool)
    return hits


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

    A fix gets the training folds of the sample (with ``ROW_ID``) and returns them fixed;
    a :class:`ValueFix` is fitted on the training folds and also applied to the held-out
    fold's features. A fix whose result cannot be measured (too few labelled training rows
    left, one class left) or a frame with no measurable baseline is left out of the
    result. Raises ValueError when ``label`` is not a column of ``frame``."""
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not a column of the dataset")
    # scikit-learn's OpenMP runtime is loaded with it: threadpool_limits only limits the
    # libraries already loaded (in a fresh process, gradient boosting ran unlimited).
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # see labels.find_label_issues
        return _measure(frame, label, fixes, seed, sample_rows)


def _measure(
    frame: pl.DataFrame, label: str, fixes: Mapping[str, Fix], seed: int, sample_rows: int
) -> dict[str, ImpactMeasurement]:
    sample = _labelled(sample_with_ids(frame, sample_rows, seed), label)
    out: dict[str, ImpactMeasurement] = {}
    if sample.height < MIN_ROWS:
        return out
    setup = _Setup(label, _label_text(sample, label).unique().sort(), seed)
    if setup.classes.len() < 2:
        return out
    fold_of = _fold_map(sample, label, seed)
    folds = np.array([fold_of[int(i)] for i in sample[ROW_ID].to_list()], dtype=np.int64)
    parts = [
        (sample.filter(pl.Series(folds != f)), sample.filter(pl.Series(folds == f)), folds == f)
        for f in range(FOLDS)
        if (folds == f).any()
    ]
    started = time.perf_counter()
    before = np.zeros(sample.height, dtype=bool)
    try:
        for train, test, where in parts:
            before[where] = _fit_predict_hits(train, test, setup)
    except _Unmeasurable:
        return out
    baseline_seconds = time.perf_counter() - started
    for name, fix in fixes.items():
        started = time.perf_counter()
        after = np.zeros(sample.height, dtype=bool)
        trained: set[int] = set()
        try:
            for train, test, where in parts:
                if isinstance(fix, ValueFix):
                    transform = fix.fit(train)
                    # held-out labels are never changed, whatever column the fix is on
                    fixed_train = transform(train)
                    fixed_test = transform(test).with_columns(test[label])
                elif isinstance(fix, TrainingFix):
                    fixed_train, fixed_test = fix.fit(train)(train), test
                else:
                    fixed_train, fixed_test = fix(train), test
                after[where] = _fit_predict_hits(fixed_train, fixed_test, setup)
                known = _labelled(fixed_train, label)
                trained.update(int(i) for i in known[ROW_ID].to_list())
        except _Unmeasurable:
            continue
        out[name] = _measurement(
            before, after, [w for _, _, w in parts], sample.height, len(trained),
            time.perf_counter() - started + baseline_seconds / len(fixes),
        )  # fmt: skip
    return out


def _measurement(
    before: np.ndarray[Any, np.dtype[np.bool_]],
    after: np.ndarray[Any, np.dtype[np.bool_]],
    folds: Sequence[np.ndarray[Any, np.dtype[np.bool_]]],
    rows: int,
    rows_after: int,
    seconds: float,
) -> ImpactMeasurement:
    diff = after.astype(np.float64) - before.astype(np.float64)
    n = len(diff)
    row_se = float(np.std(diff, ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    fold_deltas = [float(diff[w].mean()) for w in folds]
    fold_se = (
        float(np.std(fold_deltas, ddof=1) / math.sqrt(len(fold_deltas)))
        if len(fold_deltas) > 1
        else 0.0
    )
    noise = max(MIN_NOISE, fold_se, NOISE_Z * row_se)
    delta = float(diff.mean())
    return ImpactMeasurement(
        before=round(float(before.mean()), 6),
        after=round(float(after.mean()), 6),
        delta=round(delta, 6),
        impact_score=score_delta(delta, noise),
        stderr=round(row_se, 6),
        rows_before=rows,
        rows_after=rows_after,
        seconds=round(seconds, 3),
        noise=round(noise, 6),
        rows_scored=n,
    )


# ---------------------------------------------------------------------------- fixes


# The fixes are the transform library's (``datrix.jobs.transforms``), adapted to the
# frame-in, frame-out shape measured here: a ValueFix fits the transform on the training
# folds and applies it to any rows.


def _transform_fix(spec: FixSpec) -> ValueFix:
    """``spec`` as a fix: fitted on the frame it is given, applied to any frame (the
    change rows are not needed here)."""

    def fit(train: pl.DataFrame) -> Fix:
        fitted = transforms.fit(spec, train)
        return lambda frame: fitted.apply(frame).table

    return ValueFix(fit)


def drop_rows(rows: Sequence[int]) -> Fix:
    """Drop the listed rows (positions in the full frame): ``Dedupe(rows=...)``."""
    spec = Dedupe("exact", rows=tuple(int(r) for r in as_indices(rows)))
    return lambda frame: transforms.apply(spec, frame).table


def impute(column: str) -> ValueFix:
    """Fill the column's nulls (and NaNs) with the median (numbers) or mode (otherwise) of
    the rows it is fitted on: ``Impute(column, "median")``."""
    return _transform_fix(Impute(column, "median"))


def winsorize(column: str, rows: Sequence[int]) -> ValueFix:
    """Clip the listed rows' values to the range of the column's other (inlier) values
    among the rows it is fitted on: ``Outliers(column, rows, "winsorise")``."""
    return _transform_fix(Outliers(column, tuple(int(r) for r in as_indices(rows)), "winsorise"))


def canonical_spelling(column: str) -> ValueFix:
    """Map every text value to the commonest spelling, among the rows it is fitted on, of
    the values of its category (the scan's key: trimmed, spaces collapsed, case-folded);
    a value whose category those rows lack keeps its spelling:
    ``Normalise(column, "canonical")``."""
    return _transform_fix(Normalise(column, "canonical"))


def null_cells(column: str, rows: Sequence[int]) -> ValueFix:
    """Set the listed rows' cells of the column to null: ``Sentinels(column, rows)``."""
    return _transform_fix(Sentinels(column, tuple(int(r) for r in as_indices(rows))))


def drop_label_issues(label: str, seed: int = 0) -> TrainingFix:
    """Drop the rows ``labels.find_label_issues`` flags among the rows it is fitted on
    (the training folds: the check is re-run there, never shown a held-out label)."""

    def fit(train: pl.DataFrame) -> Fix:
        from datrix.jobs.quality.labels import find_label_issues

        found = find_label_issues(train.drop(ROW_ID, strict=False), label, seed=seed)
        keep = np.ones(train.height, dtype=bool)
        keep[found.rows] = False
        return lambda frame: frame.filter(pl.Series(keep))

    return TrainingFix(fit)


ROW_DROPPING = frozenset({"exact_duplicates", "near_duplicates", "label_issues"})


def standard_fix(
    finding_type: str,
    column: str | None,
    rows: Sequence[int],
    *,
    label: str | None = None,
    seed: int = 0,
) -> Fix | None:
    """The fix an impact is measured with, or None when a type has none worth measuring.

    - exact_duplicates, near_duplicates: drop the listed rows (from the training folds);
    - label_issues: with ``label`` given, drop the rows the label check flags when re-run
      on the training folds alone (:func:`drop_label_issues`); without, the listed rows;
    - null_values: impute the median/mode (learnt on the training folds, applied to every
      row: the held-out rows have their nulls too, and a model trained without nulls
      cannot read them); nulls of the label column are left out of every measurement
      already, so they get no fix;
    - outliers: winsorize the listed values to the range of the column's other values;
    - inconsistent_format: canonical spelling (commonest variant per trimmed, case-folded
      value);
    - type_mismatch: null the mistyped cells.
    """
    if finding_type == "label_issues" and label is not None:
        return drop_label_issues(label, seed) if rows else None
    if finding_type in ROW_DROPPING:
        return drop_rows(rows) if rows else None
    if column is None:
        return None
    if finding_type == "null_values":
        return None if column == label else impute(column)
    if finding_type == "outliers":
        return winsorize(column, rows) if rows else None
    if finding_type == "inconsistent_format":
        return canonical_spelling(column)
    if finding_type == "type_mismatch":
        return null_cells(column, rows) if rows else None
    return None


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
        fix = standard_fix(f.type, f.column, f.rows, label=label, seed=seed)
        if fix is not None:
            fixes[str(i)] = fix
    if not fixes:
        return {}
    measured = measure_impacts(frame, label, fixes, seed=seed, sample_rows=sample_rows)
    return {int(k): v for k, v in measured.items()}
