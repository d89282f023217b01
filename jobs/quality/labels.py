"""Label quality: confident learning (cleanlab) on out-of-fold predicted probabilities.

``find_label_issues(frame, label)`` flags rows whose given label disagrees with what the
other columns predict, the way cleanlab's confident learning does:

1. **Features.** Every other column that can inform a model: numbers (and booleans, dates,
   durations as their physical value) as is, nulls kept as NaN; text columns with a
   bounded vocabulary (<= ``MAX_CATEGORIES`` levels, or whose ``TOP_LEVELS`` most frequent
   values cover >= ``TOP_COVERAGE`` of the non-null cells, the rest lumped together) as
   categories. Free text, identifiers (text or integer columns unique per row) and nested
   or binary columns are dropped.
2. **Rows.** Rows with a null label cannot be judged and are left out, and so are rows of a
   class with fewer than ``MIN_CLASS_MEMBERS`` members (5-fold stratified cross-validation
   cannot hold such a class out). Both get a NaN score and are never flagged.
3. **Out-of-fold probabilities.** At most ``max_rows`` of the remaining rows (a seeded,
   stratified sample; every class keeps at least ``2 * FOLDS`` members where it has them)
   are split into 5 stratified folds. Every candidate model is fitted on 4 folds and
   predicts the fifth: histogram gradient boosting (native categories and NaN),
   extra trees, logistic regression on standardised features, and an RBF support vector
   machine while the fitting sample has at most ``SVM_MAX_ROWS`` rows (its cost grows with
   the square of the rows).
4. **Model choice.** Candidates are ranked by their out-of-fold log-loss on the same folds,
   with probabilities clipped at ``LOGLOSS_FLOOR``: with noisy labels the plain log-loss is
   dominated by the few mislabelled rows a good model is (rightly) sure about. The
   probabilities used are the mean of the **two best** candidates; the model name reads
   ``"a+b"``. Measured on scikit-learn's digits / breast_cancer / wine with 10 % of the
   labels flipped (mean F1 of flagged vs flipped rows over 5 seeds): this choice 0.930 /
   0.892 / 0.936; the single best by log-loss 0.909 / 0.895 / 0.924; fixed models:
   gradient boosting 0.920 / 0.801 / 0.749, SVM 0.909 / 0.897 / 0.924, logistic regression
   0.813 / 0.840 / 0.873. No fixed model is good on all three.
5. **Filter.** ``cleanlab.filter.find_label_issues`` with its default filter
   (``prune_by_noise_rate``) on the labels and probabilities of every assessed row; scores
   are cleanlab's ``self_confidence`` label-quality scores (the probability the model gives
   the given label: low means suspicious).

**Above the row cap** (``max_rows``, default 20,000 rows): the models are fitted on the
stratified sample only, and every row outside it is assigned a seeded random fold and
predicted by the two chosen candidates' models fitted without that fold. A model never sees
the row it predicts, and each row's probabilities come from models fitted on as much data
as the sampled rows' out-of-fold ones, so every row is assessed and cleanlab's per-class
thresholds (estimated on all rows) see one distribution. The extra cost is prediction,
linear in the rows and done ``PREDICT_CHUNK`` rows at a time (the frame's feature matrix is
materialised once, as float64). Measured single-threaded on a shared 2-core machine, 21
feature columns: 1M rows, 2 classes in ~23 s and ~1.1 GB peak (frame included); 200k rows,
10 classes in ~55 s.

**Labels that look like noise.** Confident learning flags the rows whose label the other
columns contradict; when the columns predict the label no better than chance, it flags a
large share of rows (43.8 % of fully random labels) that say nothing about individual
rows. ``looks_like_noise`` compares the out-of-fold accuracy with the majority rate (the
accuracy of always answering the commonest class): labels look like noise when the
accuracy does not beat it by ``NOISE_MARGIN_Z`` binomial standard errors of that rate over
the assessed rows (``chance_margin``, at least ``NOISE_MIN_MARGIN``). Then the whole label
column, not a set of rows, is the finding (``describe`` says so).

Everything is deterministic for a given ``seed``. Scikit-learn, its OpenMP and BLAS
thread pools and cleanlab run on ``n_jobs`` threads, 1 by default: the scan workers share
their cores.

cleanlab (AGPL-3.0) is an optional extra, ``pip install 'datrix[labels]'``: it is imported
only here, when a label is assessed. ``cleanlab_missing`` tells a caller up front (the CLI
refuses ``--label`` without it); a job that still lacks it (a worker installed without the
extra) fails with ``LabelsUnavailable``, whose message says the same.
"""

from __future__ import annotations

import importlib.util
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

FOLDS = 5
MIN_CLASS_MEMBERS = 5  # a class needs a member in each of the 5 folds
MIN_ROWS = 50  # fewer assessable rows than this: not judged
MAX_ROWS = 20_000  # rows fitted (and compared) on; the rest are predicted out of sample
MAX_CLASSES = 100  # more classes than this: not a classification label worth judging
MAX_CATEGORIES = 64  # a text column with at most this many levels is categorical...
TOP_LEVELS = 32  # ...or one whose 32 commonest levels cover
TOP_COVERAGE = 0.90  # at least 90 % of its non-null cells
SVM_MAX_ROWS = 3_000
ET_SMALL_ROWS = 5_000
LOGLOSS_FLOOR = 1e-3
PREDICT_CHUNK = 100_000
NOISE_MARGIN_Z = 3.0  # out-of-fold accuracy must beat the majority rate by 3 std errors...
NOISE_MIN_MARGIN = 0.01  # ...and by at least 1 point, or the labels look like noise

LABELS_INSTALL = "pip install 'datrix[labels]'"
CLEANLAB_MISSING = (
    "label-quality checks need cleanlab, an optional extra (AGPL-3.0) that is not "
    f"installed: {LABELS_INSTALL}"
)


class LabelsUnavailable(RuntimeError):
    """cleanlab cannot be imported (the ``labels`` extra is not installed)."""


def cleanlab_missing() -> str | None:
    """None when cleanlab is installed, else the line saying how to install it. Looks it
    up without importing it (cleanlab and scikit-learn take seconds to import, and the
    job that uses them runs in another process)."""
    try:
        found = importlib.util.find_spec("cleanlab") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else CLEANLAB_MISSING


NumericArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True)
class LabelFindings:
    """What ``find_label_issues`` found.

    ``rows``: sorted 0-based indices of the rows whose label looks wrong. ``scores``: one
    label-quality score per row of the frame, 0..1 (low = suspicious), NaN for rows not
    assessed (null label, rare class, or the whole frame when ``skipped``). ``model``: the
    model(s) whose averaged out-of-fold probabilities were used; ``accuracy``: their
    out-of-fold accuracy against the given labels. ``skipped`` says why nothing was judged.
    """

    rows: list[int]
    scores: NumericArray
    model: str | None
    accuracy: float | None
    assessed_rows: int = 0
    fitted_rows: int = 0
    classes: int = 0
    features: list[str] = field(default_factory=list)
    candidate_logloss: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None
    majority_rate: float | None = None  # share of the commonest class among assessed rows


def chance_margin(findings: LabelFindings) -> float:
    """How much the out-of-fold accuracy must beat the majority rate by (see the module
    docstring): ``NOISE_MARGIN_Z`` binomial standard errors of that rate over the assessed
    rows, at least ``NOISE_MIN_MARGIN``."""
    rate = findings.majority_rate if findings.majority_rate is not None else 1.0
    n = max(1, findings.assessed_rows)
    return max(NOISE_MIN_MARGIN, NOISE_MARGIN_Z * math.sqrt(rate * (1.0 - rate) / n))


def looks_like_noise(findings: LabelFindings) -> bool:
    """Whether the other columns predict the label no better than chance."""
    if findings.skipped or findings.accuracy is None or findings.majority_rate is None:
        return False
    return findings.accuracy < findings.majority_rate + chance_margin(findings)


@dataclass(frozen=True)
class Features:
    """Model inputs: ``matrix`` holds numeric columns first, then categorical codes
    (0..levels-1, NaN for null); ``categorical`` marks the code columns."""

    names: list[str]
    matrix: NumericArray
    categorical: list[bool]
    levels: list[int]  # per column: number of category codes (0 for numeric)


# ---------------------------------------------------------------------------- features


_NUMERIC_KINDS = (pl.Boolean, pl.Date, pl.Datetime, pl.Duration, pl.Time)


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or isinstance(dtype, _NUMERIC_KINDS)


def _is_text(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.String | pl.Categorical | pl.Enum)


def _looks_like_id(frame: pl.DataFrame, name: str) -> bool:
    """An integer column unique per row that counts up (or down) or is named like an id."""
    s = frame[name]
    if not s.dtype.is_integer() or frame.height < 20 or s.null_count() > 0:
        return False
    if s.n_unique() != frame.height:
        return False
    lowered = name.lower()
    named = lowered == "id" or lowered.endswith(("_id", "id", "_key", "uuid"))
    return named or bool(s.is_sorted()) or bool(s.is_sorted(descending=True))


def _category_levels(s: pl.Series) -> tuple[list[str], bool] | None:
    """The levels a text column is encoded with and whether the rest are lumped into one
    more code, or None when it is free text, an identifier or constant."""
    text = s.cast(pl.String).drop_nulls()
    counts = text.value_counts(name="n").sort(["n", s.name], descending=[True, False])
    distinct = counts.height
    if distinct <= 1:
        return None
    if distinct <= MAX_CATEGORIES and 2 * distinct <= text.len():
        return [str(v) for v in counts[s.name].to_list()], False
    top = counts.head(TOP_LEVELS)
    if int(top["n"].sum()) >= TOP_COVERAGE * text.len():
        return [str(v) for v in top[s.name].to_list()], True
    return None


def build_features(frame: pl.DataFrame, label: str) -> Features:
    """The feature matrix of every column but ``label`` (see the module docstring)."""
    numeric: list[str] = []
    text: list[tuple[str, list[str], bool]] = []
    for name, dtype in frame.schema.items():
        if name == label:
            continue
        s = frame[name]
        if s.null_count() == frame.height:
            continue
        if _is_numeric(dtype):
            if not _looks_like_id(frame, name) and s.drop_nulls().n_unique() > 1:
                numeric.append(name)
        elif _is_text(dtype):
            encoded = _category_levels(s)
            if encoded is not None:
                text.append((name, *encoded))
    schema = frame.schema
    exprs: list[pl.Expr] = [_numeric_expr(schema[n], n) for n in numeric]
    for name, levels, _ in text:
        other = len(levels)  # lumped-together rest, if any
        text_col = pl.col(name).cast(pl.String)
        code = text_col.replace_strict(levels, list(range(len(levels))), default=other)
        exprs.append(
            pl.when(text_col.is_null()).then(None).otherwise(code).cast(pl.Float64).alias(name)
        )
    if not exprs:
        matrix = np.empty((frame.height, 0), dtype=np.float64)
    else:
        matrix = frame.select(exprs).to_numpy(writable=True).astype(np.float64, copy=False)
    matrix[~np.isfinite(matrix)] = np.nan
    return Features(
        names=numeric + [n for n, _, _ in text],
        matrix=matrix,
        categorical=[False] * len(numeric) + [True] * len(text),
        levels=[0] * len(numeric) + [len(lv) + int(lumped) for _, lv, lumped in text],
    )


def _numeric_expr(dtype: pl.DataType, name: str) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.Date | pl.Datetime | pl.Duration | pl.Time):
        col = col.to_physical()
    return col.cast(pl.Float64).alias(name)


# ---------------------------------------------------------------------------- models


Factory = Callable[[Features, int, int], Any]


def _dense_preprocessor(features: Features) -> Any:
    """Median-impute numbers (with missing-value indicators) and standardise them; one-hot
    encode category codes (a null is its own level)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num = [i for i, c in enumerate(features.categorical) if not c]
    cat = [i for i, c in enumerate(features.categorical) if c]
    parts: list[tuple[str, Any, list[int]]] = []
    if num:
        parts.append(
            (
                "num",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True), StandardScaler()
                ),
                num,
            )
        )
    if cat:
        parts.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=-1.0),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                cat,
            )
        )
    return ColumnTransformer(parts, sparse_threshold=0.0)


def _hgb(features: Features, seed: int, n_fit: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    mask = features.categorical if any(features.categorical) else None
    return HistGradientBoostingClassifier(categorical_features=mask, random_state=seed)


def _extra_trees(features: Features, seed: int, n_fit: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import make_pipeline

    # 200 fully grown trees on small samples (where extra trees do best); on larger ones
    # 100 trees with a minimum leaf size keep the fitting time, the forest's memory and
    # its prediction time bounded (about 2 * n_fit / leaf nodes per tree).
    trees = 200 if n_fit <= ET_SMALL_ROWS else 100
    leaf = max(1, n_fit // 2_000)
    return make_pipeline(
        _dense_preprocessor(features),
        ExtraTreesClassifier(n_estimators=trees, min_samples_leaf=leaf, random_state=seed),
    )


def _logistic(features: Features, seed: int, n_fit: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(_dense_preprocessor(features), LogisticRegression(max_iter=1000))


def _svm(features: Features, seed: int, n_fit: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    return make_pipeline(_dense_preprocessor(features), SVC(probability=True, random_state=seed))


def candidates(n_fit: int) -> dict[str, Factory]:
    """The candidate models for a fitting sample of ``n_fit`` rows, in a fixed order."""
    out: dict[str, Factory] = {
        "hist_gradient_boosting": _hgb,
        "extra_trees": _extra_trees,
        "logistic_regression": _logistic,
    }
    if n_fit <= SVM_MAX_ROWS:
        out["svm_rbf"] = _svm
    return out


# ---------------------------------------------------------------------------- rows


def _label_codes(frame: pl.DataFrame, label: str) -> tuple[IntArray, list[Any]]:
    """Dense 0-based class codes per row (-1 for a null label) and the class values."""
    s = frame[label]
    if isinstance(s.dtype, pl.Categorical | pl.Enum):
        s = s.cast(pl.String)
    if s.dtype.is_float():
        s = s.fill_nan(None)
    classes = s.drop_nulls().unique().sort()
    codes = s.replace_strict(classes, list(range(classes.len())), return_dtype=pl.Int64)
    return codes.fill_null(-1).to_numpy().astype(np.int64), classes.to_list()


def _fit_sample(y: IntArray, max_rows: int, seed: int) -> IntArray:
    """Sorted positions (into ``y``) of the rows fitted on: all of them up to ``max_rows``,
    else a stratified sample keeping at least ``2 * FOLDS`` members of every class."""
    n = len(y)
    if n <= max_rows:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked: list[IntArray] = []
    for k in np.unique(y):
        members = np.flatnonzero(y == k)
        want = max(2 * FOLDS, round(max_rows * len(members) / n))
        take = min(len(members), want)
        picked.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


# ---------------------------------------------------------------------------- main


def find_label_issues(
    frame: pl.DataFrame,
    label: str,
    *,
    seed: int = 0,
    max_rows: int = MAX_ROWS,
    n_jobs: int = 1,
) -> LabelFindings:
    """Flag rows whose ``label`` looks wrong (see the module docstring).

    Raises ValueError when ``label`` is not a column of ``frame``, LabelsUnavailable
    without cleanlab. A frame that cannot be judged (too few rows, fewer than two classes
    with ``MIN_CLASS_MEMBERS`` members, too many classes, no usable feature column)
    returns empty findings whose ``skipped`` says why."""
    if label not in frame.columns:
        raise ValueError(f"label column {label!r} is not a column of the dataset")
    if max_rows < MIN_ROWS:
        raise ValueError(f"max_rows must be at least {MIN_ROWS}")
    try:  # before the models are fitted
        import cleanlab.filter
        import cleanlab.rank  # noqa: F401
    except ImportError as exc:
        raise LabelsUnavailable(f"{CLEANLAB_MISSING} ({exc})") from exc
    from threadpoolctl import threadpool_limits

    # OpenMP (gradient boosting) and BLAS threads too: oversubscribed OpenMP threads on a
    # busy machine are slower than one thread by an order of magnitude.
    with threadpool_limits(limits=n_jobs):
        return _find_label_issues(frame, label, seed, max_rows, n_jobs)


def _find_label_issues(
    frame: pl.DataFrame, label: str, seed: int, max_rows: int, n_jobs: int
) -> LabelFindings:
    started = time.perf_counter()
    n = frame.height
    scores = np.full(n, np.nan, dtype=np.float64)

    def skip(reason: str, **extra: Any) -> LabelFindings:
        return LabelFindings(
            rows=[], scores=scores, model=None, accuracy=None, skipped=reason,
            seconds=time.perf_counter() - started, **extra,
        )  # fmt: skip

    codes, _ = _label_codes(frame, label)
    counts = np.bincount(codes[codes >= 0]) if (codes >= 0).any() else np.zeros(0, np.int64)
    kept_classes = np.flatnonzero(counts >= MIN_CLASS_MEMBERS)
    if len(kept_classes) < 2:
        return skip(
            f"label {label!r} needs at least two classes with {MIN_CLASS_MEMBERS}+ rows "
            f"(found {int((counts >= MIN_CLASS_MEMBERS).sum())})"
        )
    if len(kept_classes) > MAX_CLASSES:
        return skip(f"label {label!r} has {len(kept_classes)} classes (limit {MAX_CLASSES})")
    remap = np.full(max(len(counts), 1), -1, dtype=np.int64)
    remap[kept_classes] = np.arange(len(kept_classes))
    y_all = np.where(codes >= 0, remap[np.clip(codes, 0, None)], -1)
    assessed = np.flatnonzero(y_all >= 0)
    if len(assessed) < MIN_ROWS:
        return skip(f"only {len(assessed)} rows can be assessed (need {MIN_ROWS})")
    features = build_features(frame, label)
    if not features.names:
        return skip("no column usable as a feature")
    y = y_all[assessed]
    k = len(kept_classes)

    fit = _fit_sample(y, max_rows, seed)  # positions into ``assessed``
    rest = np.setdiff1d(np.arange(len(assessed)), fit, assume_unique=True)
    x_fit = features.matrix[assessed[fit]]
    y_fit = y[fit]
    folds = _fold_ids(y_fit, seed)
    rest_folds = np.random.default_rng(seed + 1).integers(0, FOLDS, size=len(rest))

    oof: dict[str, NumericArray] = {}
    fold_models: dict[str, list[Any]] = {}
    for name, factory in candidates(len(fit)).items():
        p_fit = np.zeros((len(fit), k), dtype=np.float64)
        for f in range(FOLDS):
            train = folds != f
            model = factory(features, seed, int(train.sum()))
            _set_jobs(model, n_jobs)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(x_fit[train], y_fit[train])
                p_fit[~train] = _proba(model, x_fit[~train], k)
            if len(rest):  # kept to predict the rows outside the sample
                fold_models.setdefault(name, []).append(model)
        oof[name] = p_fit
    losses = {name: _bounded_logloss(p, y_fit) for name, p in oof.items()}
    best = sorted(losses, key=lambda m: (losses[m], m))[:2]

    probs = np.empty((len(assessed), k), dtype=np.float64)
    probs[fit] = np.mean([oof[m] for m in best], axis=0)
    del oof
    if len(rest):
        rest_probs = np.zeros((len(rest), k), dtype=np.float64)
        for f in range(FOLDS):
            targets = np.flatnonzero(rest_folds == f)
            for m in best:
                rest_probs[targets] += _predict_chunked(
                    fold_models[m][f], features.matrix, assessed[rest[targets]], k
                )
        fold_models.clear()
        probs[rest] = rest_probs / len(best)
    probs /= probs.sum(axis=1, keepdims=True)

    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = cleanlab_find(labels=y, pred_probs=probs, n_jobs=n_jobs)
        quality = get_label_quality_scores(labels=y, pred_probs=probs)
    scores[assessed] = quality
    accuracy = float(np.mean(probs.argmax(axis=1) == y))
    majority = float(np.bincount(y, minlength=k).max() / len(y))
    return LabelFindings(
        rows=sorted(int(i) for i in assessed[np.asarray(mask, dtype=bool)]),
        scores=scores,
        model="+".join(best),
        accuracy=accuracy,
        assessed_rows=len(assessed),
        fitted_rows=len(fit),
        classes=k,
        features=features.names,
        candidate_logloss={m: round(v, 6) for m, v in losses.items()},
        seconds=time.perf_counter() - started,
        majority_rate=majority,
    )


def _fold_ids(y: IntArray, seed: int) -> IntArray:
    from sklearn.model_selection import StratifiedKFold

    ids = np.empty(len(y), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y)):
        ids[test] = f
    return ids


def _set_jobs(model: Any, n_jobs: int) -> None:
    """Set ``n_jobs`` on a forest, wherever it sits in a pipeline."""
    params = model.get_params()
    for key in params:
        if key == "n_jobs" or key.endswith("__n_jobs"):
            model.set_params(**{key: n_jobs})


def _proba(model: Any, x: NumericArray, k: int) -> NumericArray:
    """Predicted probabilities over all ``k`` classes (a class absent from the training
    folds gets probability 0)."""
    raw = np.asarray(model.predict_proba(x), dtype=np.float64)
    out = np.zeros((len(x), k), dtype=np.float64)
    out[:, np.asarray(model.classes_, dtype=np.int64)] = raw
    return out


def _predict_chunked(
    model: Any, matrix: NumericArray, rows: IntArray, k: int
) -> np.ndarray[Any, np.dtype[np.float32]]:
    out = np.empty((len(rows), k), dtype=np.float32)
    for start in range(0, len(rows), PREDICT_CHUNK):
        part = rows[start : start + PREDICT_CHUNK]
        out[start : start + len(part)] = _proba(model, matrix[part], k)
    return out


def _bounded_logloss(probs: NumericArray, y: IntArray) -> float:
    """Mean log-loss with the given label's probability clipped at ``LOGLOSS_FLOOR``."""
    given = probs[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(given, LOGLOSS_FLOOR, 1.0))))


def describe(findings: LabelFindings, label: str) -> str:
    """A one-line summary for an issue description."""
    if findings.skipped:
        return f"label quality of {label!r} not assessed: {findings.skipped}"
    share = 100.0 * len(findings.rows) / max(1, findings.assessed_rows)
    acc = findings.accuracy if findings.accuracy is not None else math.nan
    if looks_like_noise(findings):
        rate = findings.majority_rate if findings.majority_rate is not None else math.nan
        flagged = (
            f"the {len(findings.rows):,} rows ({share:.2f}%) that disagree with the other "
            "columns are no evidence of individual wrong labels"
            if findings.rows
            else "no row stands out"
        )
        return (
            f"labels in {label!r} look like noise: the other columns predict them no better "
            f"than chance (out-of-fold accuracy {acc:.3f} of {findings.model} against "
            f"{rate:.3f} for always answering the commonest class; beating chance needs "
            f"{rate + chance_margin(findings):.3f} on {findings.assessed_rows:,} rows), so "
            f"{flagged}: check how the labels were made, or whether the columns carry what "
            "decides them"
        )
    return (
        f"{len(findings.rows):,} rows ({share:.2f}% of assessed rows) have a label in "
        f"{label!r} that disagrees with the other columns (confident learning on "
        f"out-of-fold probabilities of {findings.model}, accuracy {acc:.3f})"
    )
