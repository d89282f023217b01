"""Missingness classes per column: none, MCAR, MAR (or MNAR when it can be told).

A column's null indicator is tested against every other usable column on a seeded sample:
- a numeric column: Welch's t statistic between its values on null vs non-null rows;
- a low-cardinality column: a chi-square test of independence, turned into a z score by
  the Wilson-Hilferty approximation (no SciPy needed).
Nullness that depends on another column (|z| >= 5 and a non-trivial effect size:
standardised mean difference >= 0.2 or Cramér's V >= 0.1) is MAR. Otherwise it is MCAR —
unless the column's own observed values look cut off on one side (MNAR: values went missing
*because* of their size), which we flag when the observed values are markedly asymmetric
around the median while the tails of a clean column of that kind would be balanced
(see ``_looks_truncated``). MNAR cannot be proven from observed data; it is a hint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from jobs.quality.table import ScanTable

SAMPLE_ROWS = 200_000
MAX_CATEGORIES = 50
Z_DEPENDENT = 5.0
MIN_SMD = 0.2
MIN_CRAMERS_V = 0.1


def _chi2_z(chi2: float, dof: int) -> float:
    """Wilson-Hilferty: a chi-square statistic as an approximately standard normal z."""
    if dof <= 0:
        return 0.0
    k = float(dof)
    return float(((chi2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k)))


def _numeric_dependence(values: np.ndarray, missing: np.ndarray) -> bool:
    ok = ~np.isnan(values)
    a, b = values[missing & ok], values[~missing & ok]
    if len(a) < 20 or len(b) < 20:
        return False
    va, vb = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt((va + vb) / 2)
    if pooled == 0:
        return False
    se = math.sqrt(va / len(a) + vb / len(b))
    t = abs(a.mean() - b.mean()) / se if se > 0 else 0.0
    return t >= Z_DEPENDENT and abs(a.mean() - b.mean()) / pooled >= MIN_SMD


def _categorical_dependence(frame: pl.DataFrame, column: str) -> bool:
    table = frame.group_by(column, "_m").len()
    counts = table.pivot(on="_m", index=column, values="len").fill_null(0)
    if counts.width < 3 or counts.height < 2:
        return False
    observed = counts.drop(column).to_numpy().astype(float)
    total = observed.sum()
    expected = observed.sum(axis=1, keepdims=True) * observed.sum(axis=0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.nansum((observed - expected) ** 2 / expected))
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    cramers_v = math.sqrt(chi2 / (total * max(1, min(observed.shape) - 1)))
    return _chi2_z(chi2, dof) >= Z_DEPENDENT and cramers_v >= MIN_CRAMERS_V


def _looks_truncated(observed: np.ndarray) -> bool:
    """One tail much shorter than the other, for a column whose centre is symmetric
    (so natural skew, as in incomes, does not count)."""
    if len(observed) < 200 or len(np.unique(observed)) < 100:
        return False  # too few values, or a bounded scale (ratings) with natural edges
    q = np.quantile(observed, [0.01, 0.25, 0.5, 0.75, 0.99])
    inner_lo, inner_hi = q[2] - q[1], q[3] - q[2]
    outer_lo, outer_hi = q[1] - q[0], q[4] - q[3]
    if min(inner_lo, inner_hi, outer_lo, outer_hi) <= 0:
        return False
    centre_balanced = 0.87 <= inner_hi / inner_lo <= 1.15
    tails = outer_hi / outer_lo
    return bool(centre_balanced and (tails < 0.75 or tails > 1.33))


def classify(
    source: pl.LazyFrame | ScanTable,
    schema: dict[str, pl.DataType],
    null_columns: Sequence[str],
    rows: int,
    seed: int = 0,
) -> dict[str, str]:
    """Missingness class of every column ('none' for columns without nulls)."""
    result = {name: "none" for name in schema}
    if not null_columns or rows == 0:
        return result
    table = ScanTable.of(source)
    if rows > SAMPLE_ROWS:
        # The rows ``DataFrame.sample(SAMPLE_ROWS, seed=seed)`` picks, in its order (they
        # depend only on the height and the seed), read a chunk at a time when bounded.
        picked = pl.int_range(rows, eager=True).sample(SAMPLE_ROWS, seed=seed).to_numpy()
        order = np.argsort(picked)
        frame = table.gather(list(schema), picked[order].astype(np.int64))[np.argsort(order)]
    else:
        frame = table.collect(table.lazy)
    numeric = [c for c, t in schema.items() if t.is_numeric()]
    categorical = [
        c
        for c, t in schema.items()
        if (t == pl.String or t == pl.Boolean or t == pl.Categorical)
        and frame[c].n_unique() <= MAX_CATEGORIES
    ]
    numeric_values = {
        c: frame[c].cast(pl.Float64).fill_null(float("nan")).to_numpy() for c in numeric
    }
    for column in null_columns:
        missing = frame[column].is_null().to_numpy()
        share = missing.mean()
        if share == 0 or share == 1:
            result[column] = "MCAR" if share else "none"
            continue
        dependent = any(
            _numeric_dependence(numeric_values[o], missing) for o in numeric if o != column
        ) or any(
            _categorical_dependence(frame.select(pl.col(o), pl.Series("_m", missing)), o)
            for o in categorical
            if o != column
        )
        if dependent:
            result[column] = "MAR"
        elif column in numeric_values and _looks_truncated(
            numeric_values[column][~np.isnan(numeric_values[column])]
        ):
            result[column] = "MNAR"
        else:
            result[column] = "MCAR"
    return result
