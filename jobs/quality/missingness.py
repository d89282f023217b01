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

The tests are pairwise, so on a wide table (thousands of columns) testing every pair would
cost the square of the column count. Each column with nulls is tested against at most
``MAX_PARTNERS`` other columns: among the partners that could show a dependence at all
(numeric ones with at least 40 values and more than one, categorical ones with at least two
categories; the others never pass the tests, so leaving them out changes nothing), the
nearest ones in schema order, as many before it as after (related fields, such as a
survey's skip logic or one source system's block, usually sit together). The distance is
counted in such partners, so both engines pick the same ones. ``assess`` says which columns
were capped; the null-values finding says so. Tests that cannot reach the thresholds on
the rows at hand (fewer than 20 rows on either side, too few rows for a chi-square of
|z| >= 5) are skipped: 5,000 columns x 10 rows cost no pairwise work at all.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from datrix.jobs.quality.table import ScanTable

SAMPLE_ROWS = 200_000
MAX_CATEGORIES = 50
Z_DEPENDENT = 5.0
MIN_SMD = 0.2
MIN_CRAMERS_V = 0.1
MAX_PARTNERS = 100  # other columns each column with nulls is tested against (see above)
MIN_GROUP = 20  # values on each side (null / non-null rows) a numeric test needs


def _chi2_z(chi2: float, dof: int) -> float:
    """Wilson-Hilferty: a chi-square statistic as an approximately standard normal z."""
    if dof <= 0:
        return 0.0
    k = float(dof)
    return float(((chi2 / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k)))


@dataclass(frozen=True)
class Missingness:
    """Missingness class per column, and for each column whose partners were capped
    (``MAX_PARTNERS``) the number tested and the number that could have been."""

    classes: dict[str, str]
    capped: dict[str, tuple[int, int]] = field(default_factory=dict)


def _numeric_dependence(values: np.ndarray, missing: np.ndarray) -> bool:
    ok = ~np.isnan(values)
    a, b = values[missing & ok], values[~missing & ok]
    if len(a) < MIN_GROUP or len(b) < MIN_GROUP:
        return False
    va, vb = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt((va + vb) / 2)
    if pooled == 0:
        return False
    se = math.sqrt(va / len(a) + vb / len(b))
    t = abs(a.mean() - b.mean()) / se if se > 0 else 0.0
    return t >= Z_DEPENDENT and abs(a.mean() - b.mean()) / pooled >= MIN_SMD


def _categorical_dependence(codes: np.ndarray, missing: np.ndarray) -> bool:
    """``codes``: the partner's category per row (0 .. k-1, null a category of its own)."""
    size = 2 * (int(codes.max(initial=0)) + 1)
    table = np.bincount(codes * 2 + missing, minlength=size).reshape(-1, 2)
    observed = table[table.sum(axis=1) > 0].astype(float)
    if observed.shape[0] < 2 or not (observed.sum(axis=0) > 0).all():
        return False
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


def _chi2_can_pass(rows: int) -> bool:
    """Whether a chi-square test on ``rows`` rows can reach |z| >= ``Z_DEPENDENT``: the
    statistic of a k x 2 table is at most ``rows`` and it has at most ``rows - 1``
    degrees of freedom."""
    if rows >= 100:
        return True
    return any(_chi2_z(float(rows), dof) >= Z_DEPENDENT for dof in range(1, max(1, rows)))


def nearest_partners(
    position: int, partners: Sequence[str], positions: Sequence[int], limit: int
) -> list[str]:
    """The ``limit`` columns of ``partners`` (schema positions ``positions``, ascending)
    nearest the column at schema ``position`` (itself left out), counted in partners: one
    before, one after, two before, ...; at an end the other side fills in. Costs
    O(log partners + limit)."""
    at = bisect.bisect_left(positions, position)
    after = at + 1 if at < len(positions) and positions[at] == position else at
    ranked = sorted(
        [(at - i, 0, i) for i in range(max(0, at - limit), at)]
        + [(j - after + 1, 1, j) for j in range(after, min(len(partners), after + limit))]
    )
    return [partners[i] for _, _, i in ranked[:limit]]


def classify(
    source: pl.LazyFrame | ScanTable,
    schema: dict[str, pl.DataType],
    null_columns: Sequence[str],
    rows: int,
    seed: int = 0,
) -> dict[str, str]:
    """Missingness class of every column ('none' for columns without nulls)."""
    return assess(source, schema, null_columns, rows, seed).classes


def assess(
    source: pl.LazyFrame | ScanTable,
    schema: dict[str, pl.DataType],
    null_columns: Sequence[str],
    rows: int,
    seed: int = 0,
) -> Missingness:
    """``classify``, and which columns had their partners capped."""
    result = {name: "none" for name in schema}
    if not null_columns or rows == 0:
        return Missingness(result)
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
    # Category codes per row (dense ranks; null is code 0 when present).
    codes = {
        c: frame[c].cast(pl.String).rank("dense").fill_null(0).to_numpy().astype(np.int64)
        for c in categorical
    }
    # Partners that can show a dependence at all (the others never pass the tests).
    usable = {c for c in categorical if np.unique(codes[c]).size >= 2}
    for c, values in numeric_values.items():
        seen = values[~np.isnan(values)]
        if seen.size >= 2 * MIN_GROUP and seen.min() < seen.max():
            usable.add(c)
    place = {name: i for i, name in enumerate(schema)}
    partners = [c for c in schema if c in usable]
    positions = [place[c] for c in partners]
    sample_rows = frame.height
    chi2_possible = _chi2_can_pass(sample_rows)
    capped: dict[str, tuple[int, int]] = {}
    for column in null_columns:
        missing = frame[column].is_null().to_numpy()
        share = missing.mean()
        if share == 0 or share == 1:
            result[column] = "MCAR" if share else "none"
            continue
        tested = nearest_partners(place[column], partners, positions, MAX_PARTNERS)
        could = len(partners) - (column in usable)
        numeric_possible = min(int(missing.sum()), sample_rows - int(missing.sum())) >= MIN_GROUP
        if could > len(tested) and (numeric_possible or chi2_possible):
            capped[column] = (len(tested), could)
        flag = missing.astype(np.int64)
        dependent = any(
            _numeric_dependence(numeric_values[o], missing)
            for o in tested
            if numeric_possible and o in numeric_values
        ) or any(
            _categorical_dependence(codes[o], flag) for o in tested if chi2_possible and o in codes
        )
        if dependent:
            result[column] = "MAR"
        elif column in numeric_values and _looks_truncated(
            numeric_values[column][~np.isnan(numeric_values[column])]
        ):
            result[column] = "MNAR"
        else:
            result[column] = "MCAR"
    return Missingness(result, capped)
