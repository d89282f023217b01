"""Numbers that are valid numerics but not valid data: sentinel codes and impossible
negatives. Both are ``accuracy`` findings.

Sentinel values (issue type ``sentinel_values``): a placeholder written instead of "unknown"
(-1, -9, 99, 999, -999, 9999, ...). Per numeric column with at least ``MIN_DISTINCT``
distinct values (an otherwise continuous column), walking inward from each end over the
``EDGE_K`` smallest and largest distinct values, a value is a sentinel when

1. it is a spike: its count is at least ``SPIKE_RATIO`` (2.5) times the median count of the
   next (up to 5, at least 3) distinct values inward;
2. it carries weight: at least ``max(MIN_ROWS, 0.1 %)`` of the column's numeric values;
3. it looks like a placeholder: a code (-1, -9, or +-99, +-999, ... all nines), or it is
   detached from the data (the gap to the next value inward exceeds the column's IQR, as a
   0 standing for "unknown" in a column of heights would be).

The walk stops at the first value that is not a sentinel (so -999 and -1 can both be found).
A ceiling or floor the data genuinely piles up against (a 5-star rating, a score capped at
850, zero-inflated counts) is neither a code nor detached, so it is not reported. Sentinel
cells take no part in the outlier and negative checks.

Impossible values (issue type ``impossible_values``): negative numbers in a column that
cannot be negative. A numeric column qualifies when at most 5 % of its values are negative
(the vast majority is >= 0) and either

- its name says so: a word such as age, price, amount, income, count, quantity, cost,
  weight, height, duration, days, ... and no word for a signed quantity (balance, delta,
  change, net, profit, ...); or
- its distribution says so: at most 1 % negative, and the values pile up against zero from
  above: ``[0, w)`` holds at least 10 times as many values as ``[-w, 0)`` and at least
  ``MIN_ROWS``, with ``w = IQR / 10`` (a distribution that merely crosses zero has about as
  many values on either side).

The rows reported are the negative cells that the outlier vote did not already report (a
weight of -180 kg is reported once, as an outlier).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from datrix.jobs.quality.profiling import ColumnStats

MIN_DISTINCT = 12
SPIKE_RATIO = 2.5
NEIGHBOURS = 5
MIN_NEIGHBOURS = 3
MIN_ROWS = 5
MIN_SHARE = 0.001
MAX_WALK = 3  # sentinels looked for at most this deep from each end


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NAME_NEGATIVE_SHARE = 0.05
SHAPE_NEGATIVE_SHARE = 0.01
FLOOR_RATIO = 10.0
FLOOR_WINDOW = 0.1  # w = IQR * FLOOR_WINDOW

NON_NEGATIVE_WORDS = _words(
    """age ages price prices amount amounts amt income incomes salary salaries wage wages
    revenue cost costs fee fees count counts cnt quantity quantities qty weight weights
    height heights length lengths width depth size sizes area volume distance duration
    days day hours hour minutes minute seconds second sec secs ms millis years year months
    month weeks tenure views clicks visits items units points population tax spend spent
    paid sales orders"""
)
SIGNED_WORDS = _words(
    """balance delta diff difference change changes net profit loss pnl gain growth offset
    margin adjustment variance deviation residual error latitude lat longitude lon lng
    temperature temp elevation altitude"""
)


@dataclass(frozen=True)
class Sentinel:
    value: float
    count: int


def is_code(value: float) -> bool:
    """-1, -9, or +-99, +-999, ...: the numbers people type for "unknown"."""
    if value in (-1.0, -9.0):
        return True
    magnitude = abs(value)
    if magnitude < 99 or magnitude != math.floor(magnitude):
        return False
    digits = str(int(magnitude))
    return set(digits) == {"9"}


def _walk(edge: Sequence[tuple[float, int]], weight: float, iqr: float) -> list[Sentinel]:
    found: list[Sentinel] = []
    for j in range(min(MAX_WALK, len(edge))):
        value, count = edge[j]
        inward = [c for _, c in edge[j + 1 : j + 1 + NEIGHBOURS]]
        if len(inward) < MIN_NEIGHBOURS:
            break
        spike = count >= SPIKE_RATIO * statistics.median(inward)
        detached = iqr > 0 and abs(edge[j + 1][0] - value) > iqr
        if not (spike and count >= weight and (is_code(value) or detached)):
            break
        found.append(Sentinel(value, count))
    return found


def find_sentinels(stats: ColumnStats, numeric_values: int) -> list[Sentinel]:
    """The sentinel values of one column (module docstring), smallest first."""
    s = stats.numeric
    if s is None or stats.distinct_count < MIN_DISTINCT or not stats.lowest:
        return []
    iqr = (s.p75 - s.p25) if s.p75 is not None and s.p25 is not None else 0.0
    weight = max(MIN_ROWS, MIN_SHARE * numeric_values)
    found = _walk(stats.lowest, weight, iqr) + _walk(stats.highest, weight, iqr)
    return sorted({f.value: f for f in found}.values(), key=lambda f: f.value)


def name_words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def name_says_non_negative(name: str) -> bool:
    words = set(name_words(name))
    return bool(words & NON_NEGATIVE_WORDS) and not words & SIGNED_WORDS


def negative_candidate(stats: ColumnStats) -> bool:
    """Worth counting negatives for: some negatives, and no more than a quarter of values."""
    s = stats.numeric
    return s is not None and s.min is not None and s.min < 0 and (s.p25 or 0.0) >= 0


def floor_window(stats: ColumnStats) -> float:
    s = stats.numeric
    if s is None or s.p25 is None or s.p75 is None:
        return 0.0
    return FLOOR_WINDOW * (s.p75 - s.p25)


@dataclass(frozen=True)
class NegativeCounts:
    """From the engine's row pass: negative cells (sentinels excluded) and the counts just
    below and just above zero (``[-w, 0)`` and ``[0, w)``)."""

    rows: list[int]
    below: int
    above: int


def impossible_negatives(name: str, counts: NegativeCounts, numeric_values: int) -> str | None:
    """Why the negatives of a column are impossible ("name" or "distribution"), or None."""
    negatives = len(counts.rows)
    if negatives == 0 or numeric_values <= 0:
        return None
    share = negatives / numeric_values
    if share <= NAME_NEGATIVE_SHARE and name_says_non_negative(name):
        return "name"
    floor = counts.above >= max(MIN_ROWS, FLOOR_RATIO * counts.below)
    if share <= SHAPE_NEGATIVE_SHARE and floor:
        return "distribution"
    return None


def sentinel_values(
    stats: Sequence[ColumnStats], numeric_values: Mapping[str, int]
) -> dict[str, list[Sentinel]]:
    found = {s.name: find_sentinels(s, numeric_values[s.name]) for s in stats if s.is_numeric}
    return {name: f for name, f in found.items() if f}
