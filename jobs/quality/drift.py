"""Drift of each column against the dataset's previous version (``distribution`` dimension).

Both versions are compared on evenly spaced samples of at most ``SAMPLE_ROWS`` rows
(``outliers.sample_step``: positions 0, step, 2*step, ...), so every statistic here is
computed from the same numbers whichever engine fetched them. Nulls are left out (a change
in missingness is a completeness finding); NaN and infinities too.

Numeric columns (integer or float in both versions, at least ``MIN_VALUES`` values in each):

- PSI over the previous version's deciles: bins ``(-inf, q10), [q10, q20), ..., [q90,
  inf)`` (duplicate edges merged), ``PSI = sum((cur - prev) * ln(cur / prev))`` over the bin
  shares, each share floored at ``EPSILON`` so an emptied bin counts instead of dividing by 0;
- two-sample Kolmogorov-Smirnov: statistic D (largest gap between the two empirical
  cumulative distributions) and its asymptotic p-value (scipy's ``kstwo``), as
  ``scipy.stats.ks_2samp(method="asymp")`` computes them; each sample is sorted once and
  the deciles, bins and D all come from the sorted arrays.

Categorical columns (string or boolean in both versions, whose ``TOP_CATEGORIES`` most
frequent values in the previous version cover at least ``MIN_COVERAGE`` of it: free text and
identifiers are not categories): PSI over those values plus one "other" bin.

A column has drifted when ``PSI > 0.2`` (the usual "significant shift" level; 0.1-0.2 is a
moderate change, left alone), or, for numeric columns, when ``KS p < 0.001`` *and*
``D >= 0.1``: on samples this large p alone is tiny for shifts nobody cares about, so the
statistic (the largest gap between the two cumulative distributions) must be meaningful too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

PSI_THRESHOLD = 0.2
KS_PVALUE = 0.001
KS_MIN_STATISTIC = 0.1
EPSILON = 1e-4
DECILES = tuple(i / 10 for i in range(1, 10))
MIN_VALUES = 50
TOP_CATEGORIES = 20
MIN_COVERAGE = 0.9
NUMERIC = frozenset({"integer", "float"})
CATEGORICAL = frozenset({"string", "boolean"})


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: Literal["numeric", "categorical"]
    psi: float
    ks_statistic: float | None
    ks_pvalue: float | None
    drifted: bool
    change: str  # what moved, for the description

    def as_extra(self, previous_version: int | None) -> dict[str, Any]:
        extra: dict[str, Any] = {"psi": round(self.psi, 6)}
        if self.ks_statistic is not None and self.ks_pvalue is not None:
            extra["ks_statistic"] = round(self.ks_statistic, 6)
            extra["ks_pvalue"] = float(f"{self.ks_pvalue:.6g}")
        if previous_version is not None:
            extra["against_version"] = previous_version
        extra["drifted"] = self.drifted
        return extra


def psi(previous: NDArray[np.float64], current: NDArray[np.float64]) -> float:
    """Population stability index of two share vectors over the same bins."""
    p = np.maximum(previous, EPSILON)
    c = np.maximum(current, EPSILON)
    return float(np.sum((c - p) * np.log(c / p)))


def _shares(counts: NDArray[Any]) -> NDArray[np.float64]:
    total = counts.sum()
    return counts / total if total > 0 else np.zeros(len(counts))


def sorted_quantiles(values: NDArray[np.float64], qs: tuple[float, ...]) -> NDArray[np.float64]:
    """Linearly interpolated quantiles of already sorted values (numpy's default method)."""
    position = np.asarray(qs) * (len(values) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(values) - 1)
    found: NDArray[np.float64] = values[low] + (values[high] - values[low]) * (position - low)
    return found


def binned(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.float64]:
    """Counts of sorted ``values`` in ``(-inf, e0), [e0, e1), ..., [e_last, inf)``."""
    below = np.searchsorted(values, edges, side="left")
    return np.diff(np.concatenate([[0], below, [len(values)]])).astype(np.float64)


def ks_two_sample(a: NDArray[np.float64], b: NDArray[np.float64]) -> tuple[float, float]:
    """Two-sided two-sample KS statistic and asymptotic p-value of sorted samples (the
    definitions of ``scipy.stats.ks_2samp(method="asymp")``, without sorting again)."""
    from scipy.stats import kstwo

    # Merge the two sorted runs (a stable sort of two runs is a linear merge), count how
    # many values of each sample lie at or below every point, and compare the two
    # cumulative distributions at the last copy of each distinct value.
    both = np.concatenate([a, b])
    order = np.argsort(both, kind="stable")
    at_or_below_a = np.cumsum(order < len(a))
    at_or_below_b = np.arange(1, len(both) + 1) - at_or_below_a
    values = both[order]
    last = np.append(values[1:] != values[:-1], True)
    gap = at_or_below_a[last] / len(a) - at_or_below_b[last] / len(b)
    statistic = float(np.max(np.abs(gap)))
    m, n = max(len(a), len(b)), min(len(a), len(b))
    pvalue = float(np.clip(kstwo.sf(statistic, np.round(m * n / (m + n))), 0.0, 1.0))
    return statistic, pvalue


def numeric_drift(
    column: str, previous: NDArray[np.float64], current: NDArray[np.float64]
) -> ColumnDrift | None:
    """Drift of one numeric column (finite values only), or None with too few values."""
    if len(previous) < MIN_VALUES or len(current) < MIN_VALUES:
        return None
    before, after = np.sort(previous), np.sort(current)
    edges = np.unique(sorted_quantiles(before, DECILES))
    index = psi(_shares(binned(before, edges)), _shares(binned(after, edges)))
    statistic, pvalue = ks_two_sample(before, after)
    drifted = index > PSI_THRESHOLD or (pvalue < KS_PVALUE and statistic >= KS_MIN_STATISTIC)
    medians = sorted_quantiles(before, (0.5,))[0], sorted_quantiles(after, (0.5,))[0]
    change = f"median {medians[0]:.6g} -> {medians[1]:.6g}"
    return ColumnDrift(column, "numeric", index, statistic, pvalue, drifted, change)


def _value_counts(values: pa.Array) -> dict[Any, int]:
    counted = pc.value_counts(values.drop_null())
    return dict(
        zip(
            counted.field("values").to_pylist(),
            counted.field("counts").to_pylist(),
            strict=True,
        )
    )


def categorical_drift(column: str, previous: pa.Array, current: pa.Array) -> ColumnDrift | None:
    """Drift of one categorical column (nulls left out), or None when the previous
    version's values are too few or not categorical."""
    n_before = len(previous) - previous.null_count
    n_after = len(current) - current.null_count
    if n_before < MIN_VALUES or n_after < MIN_VALUES:
        return None
    before_counts = _value_counts(previous)
    ranked = sorted(before_counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    top = [v for v, _ in ranked[:TOP_CATEGORIES]]
    if sum(before_counts[v] for v in top) < MIN_COVERAGE * n_before:
        return None
    after_counts = _value_counts(current)
    before = np.array([before_counts[v] for v in top] + [0], dtype=np.float64)
    after = np.array([after_counts.get(v, 0) for v in top] + [0], dtype=np.float64)
    before[-1] = n_before - before[:-1].sum()
    after[-1] = n_after - after[:-1].sum()
    p, c = _shares(before), _shares(after)
    index = psi(p, c)
    moved = int(np.argmax(np.abs(c - p)))
    label = repr(top[moved]) if moved < len(top) else "other values"
    change = f"share of {label} {100 * p[moved]:.1f}% -> {100 * c[moved]:.1f}%"
    return ColumnDrift(column, "categorical", index, None, None, index > PSI_THRESHOLD, change)


def describe(d: ColumnDrift, previous_version: int | None) -> str:
    since = "the previous version"
    if previous_version is not None:
        since = f"version {previous_version}"
    stats = f"PSI {d.psi:.3f}"
    if d.ks_statistic is not None and d.ks_pvalue is not None:
        p = f"p {d.ks_pvalue:.2g}" if d.ks_pvalue > 0 else "p < 1e-300"
        stats += f", KS D {d.ks_statistic:.3f} ({p})"
    return (
        f"the distribution of column {d.column!r} changed since {since}: {stats}; "
        f"{d.change} (drift: PSI > {PSI_THRESHOLD:g}, or KS p < {KS_PVALUE:g} with "
        f"D >= {KS_MIN_STATISTIC:g})"
    )
