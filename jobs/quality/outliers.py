"""Outliers by a two-method vote: a univariate rule chosen by the column's shape, and an
IsolationForest.

Decision rule, per numeric column (null, NaN and the column's sentinel values never vote):

1. Shape, from the quartiles (robust: a few wild values cannot move them): Bowley's
   quartile skewness ``(p75 + p25 - 2 * p50) / (p75 - p25)``. ``|skew| <= 0.1`` is
   *near-normal* (symmetric), anything else *skewed*. A zero IQR means no rule (more than
   half the values are one value; the distribution checks cover such columns).
2. Univariate vote:
   - near-normal: robust z-score ``|x - p50| / (IQR / 1.349) > 5`` (IQR / 1.349 is the
     standard deviation of a normal; median and IQR instead of mean and std so that a
     cluster of outliers cannot inflate the scale and hide itself). About 6 in 10 million
     normal values pass, slightly fewer than the Tukey far-out fence (4.7 sd);
   - skewed: Tukey far-out fences ``[p25 - 3 IQR, p75 + 3 IQR]`` (``IQR_K``); for a
     right-skewed column with ``p25 > 0`` the upper fence is taken on the log scale,
     ``exp(ln p75 + 3 (ln p75 - ln p25))``: a long right tail (incomes, amounts, latencies)
     is the column's nature, not thousands of anomalies, and on the log scale only values far
     beyond that tail pass.
   Every rule is a pair of fences on the raw scale, so engines only compare numbers.
3. IsolationForest vote: one scikit-learn ``IsolationForest`` (32 trees of 256 values) per
   column that has univariate candidates, fitted on an evenly spaced sample (at most
   ``IF_FIT_ROWS`` rows) of that column's finite values with ``random_state = seed + column
   position``; a candidate votes
   yes when its anomaly score ``2 ** (-E[h(x)] / c(256))`` is at least ``IF_THRESHOLD``
   (0.5 is the paper's "nothing distinct" level; values outside the bulk score ~0.8;
   values inside a dense cluster stay below 0.6 even when the univariate rule flags them,
   e.g. a second mode). Infinite values vote yes without scoring.
4. A value is reported in its column's ``outliers`` issue when both votes say yes.

Why one forest per column, not one over all numeric columns: measured on the bench data (25
numeric columns), a multivariate forest gives single-column outliers at 12-20 sd *lower*
anomaly scores than the natural tails of other columns (each tree tests the outlier's
column on only ~1 in 4 of its paths: recall 0.12). Why only candidates are scored: with
both votes required, a value no univariate rule flags can never be reported, so scoring
every row would change nothing but the run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from datrix.jobs.quality.profiling import ColumnStats

# Tukey "far out" fences. With k = 1.5 about 0.7 % of perfectly normal data falls outside
# the fences, which floods wide tables with false alarms; with k = 3.0 it is about 2 values
# per million, so what is flagged is almost always a real anomaly (or a heavy tail worth a
# look).
IQR_K = 3.0


@dataclass(frozen=True)
class Fences:
    low: float
    high: float


SYMMETRIC_SKEW = 0.1  # |Bowley skewness| at or below: near-normal
Z_THRESHOLD = 5.0
NORMAL_IQR_PER_SD = 1.349  # IQR of a standard normal
IF_THRESHOLD = 0.6
IF_TREES = 32
IF_MAX_SAMPLES = 256  # rows per tree (the paper's default)
# Rows a forest is fitted on, evenly spaced over the column. Each tree draws only 256 of
# them, so more rows would not change the model, only the fitting time (sklearn's per-tree
# index drawing and checks grow with them).
IF_FIT_ROWS = 4096
SAMPLE_ROWS = 100_000  # rows of each version the drift checks compare, evenly spaced

Method = Literal["z-score", "IQR", "log-IQR"]


@dataclass(frozen=True)
class OutlierRule:
    method: Method
    fences: Fences

    def describe(self) -> str:
        low, high = f"{self.fences.low:.6g}", f"{self.fences.high:.6g}"
        if self.method == "z-score":
            return f"a robust z-score above {Z_THRESHOLD:g} (outside [{low}, {high}])"
        scale = ", upper fence on the log scale" if self.method == "log-IQR" else ""
        return f"outside the IQR fences [{low}, {high}] (k={IQR_K:g}{scale})"


def bowley_skew(stats: ColumnStats) -> float | None:
    s = stats.numeric
    if s is None or s.p25 is None or s.p50 is None or s.p75 is None:
        return None
    iqr = s.p75 - s.p25
    return (s.p75 + s.p25 - 2 * s.p50) / iqr if iqr > 0 else None


def outlier_rule(stats: ColumnStats) -> OutlierRule | None:
    """The univariate rule for a numeric column (see the module docstring), or None."""
    s = stats.numeric
    skew = bowley_skew(stats)
    if s is None or skew is None or s.p25 is None or s.p50 is None or s.p75 is None:
        return None
    iqr = s.p75 - s.p25
    if abs(skew) <= SYMMETRIC_SKEW:
        scale = Z_THRESHOLD * iqr / NORMAL_IQR_PER_SD
        return OutlierRule("z-score", Fences(s.p50 - scale, s.p50 + scale))
    low, high = s.p25 - IQR_K * iqr, s.p75 + IQR_K * iqr
    if skew > 0 and s.p25 > 0:
        log_high = math.log(s.p75) + IQR_K * (math.log(s.p75) - math.log(s.p25))
        return OutlierRule("log-IQR", Fences(low, math.exp(min(log_high, 700.0))))
    return OutlierRule("IQR", Fences(low, high))


def sample_step(rows: int, limit: int = SAMPLE_ROWS) -> int:
    """Every ``step``-th row (positions 0, step, 2*step, ...) makes the evenly spaced sample;
    both engines use the same positions, so their samples are identical."""
    return max(1, -(-rows // limit))


def finite(values: Any, exclude: Sequence[float] = ()) -> NDArray[np.float64]:
    """``values`` as float64 without null, NaN, infinities and ``exclude`` (sentinels)."""
    x = np.asarray(values, dtype=np.float64)
    keep = np.isfinite(x)
    if exclude:
        keep &= ~np.isin(x, np.asarray(exclude, dtype=np.float64))
    return x[keep]


def isolation_votes(
    sample: NDArray[np.float64], candidates: NDArray[np.float64], seed: int
) -> NDArray[np.bool_]:
    """The IsolationForest vote for each candidate value of one column (module docstring)."""
    votes = np.ones(len(candidates), dtype=bool)  # infinities: isolated by definition
    finite_at = np.flatnonzero(np.isfinite(candidates))
    if len(finite_at) == 0:
        return votes
    if len(sample) < 2:
        return votes  # nothing to compare with: the univariate rule decides alone
    from sklearn.ensemble import IsolationForest  # heavy import, only when needed

    forest = IsolationForest(
        n_estimators=IF_TREES,
        max_samples=min(IF_MAX_SAMPLES, len(sample)),
        random_state=seed,
    ).fit(sample.reshape(-1, 1))
    # 1-D: equal values score equally, so each distinct value is scored once.
    distinct, inverse = np.unique(candidates[finite_at], return_inverse=True)
    scores = -forest.score_samples(distinct.reshape(-1, 1))
    votes[finite_at] = (scores >= IF_THRESHOLD)[inverse]
    return votes


def voted_outliers(
    candidates: Mapping[str, tuple[list[int], list[float]]],
    samples: Mapping[str, Any],
    sentinels: Mapping[str, Sequence[float]],
    positions: Mapping[str, int],
    seed: int,
) -> dict[str, list[int]]:
    """Row positions reported as outliers per column: univariate candidates (positions and
    values, from the engine's row pass) that the column's IsolationForest confirms."""
    found: dict[str, list[int]] = {}
    for name, (rows, values) in candidates.items():
        if not rows:
            continue
        sample = finite(samples[name], sentinels.get(name, ()))
        scored = np.asarray(values, dtype=np.float64)
        votes = isolation_votes(sample, scored, seed + positions[name])
        kept = [r for r, v in zip(rows, votes.tolist(), strict=True) if v]
        if kept:
            found[name] = kept
    return found
