"""Comparison levels per field (null, equal, close, fair, different), swapped columns
included (see the package docstring, *Comparison levels*)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

from datrix.jobs.quality.near_duplicates.columns import _has_similarity, _is_text, _normalised

NULL, EQUAL, CLOSE, FAIR, DIFFERENT = 0, 1, 2, 3, 4
LEVELS = 5
CLOSE_JW = 0.92
FAIR_JW = 0.80
# Two columns are compared crosswise too when at least this many candidates show them
# exactly swapped (first and last name, address lines).
MIN_SWAPS = 5
SWAP_RATIO = 20.0  # ...and this many times as often as random row pairs
MAX_SWAP_COLUMNS = 40  # text columns searched for swaps (the search is quadratic)
SIMILARITY_CHUNK = 1 << 16  # string pairs compared together


def coarse_levels(
    hashes: np.ndarray[Any, Any], a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """(pairs x columns) levels from the hashes alone: null, equal or different."""
    out = np.empty((a.size, hashes.shape[1]), dtype=np.int8)
    for k in range(hashes.shape[1]):
        left, right = hashes[:, k][a], hashes[:, k][b]
        level = np.where(left == right, np.int8(EQUAL), np.int8(DIFFERENT))
        level[(left == 0) | (right == 0)] = NULL
        out[:, k] = level
    return out


def text_levels(left: pl.Series, right: pl.Series) -> np.ndarray[Any, Any]:
    """Close / fair / different for unequal non-null strings (Jaro-Winkler similarity of
    the normalised values)."""
    sim = cpdist(
        _normalised(left).to_list(),
        _normalised(right).to_list(),
        scorer=JaroWinkler.normalized_similarity,
        dtype=np.float64,
        workers=1,
    )
    level = np.full(sim.size, DIFFERENT, dtype=np.int8)
    level[sim >= FAIR_JW] = FAIR
    level[sim >= CLOSE_JW] = CLOSE
    return level


# How good a level is, for choosing between the straight and the swapped comparison.
_RANK = np.array([0, 3, 2, 1, 0], dtype=np.int8)


@dataclass
class Comparator:
    """Compares rows field by field: row ``i`` is row ``rows[i]`` of ``frame`` (row ``i``
    without ``rows``), ``hashes`` its normalised value hashes (one row per compared row)."""

    frame: pl.DataFrame
    hashes: np.ndarray[Any, Any]
    columns: list[str]
    swaps: list[tuple[int, int]] = field(default_factory=list)  # see find_swaps
    rows: np.ndarray[Any, Any] | None = None

    @property
    def height(self) -> int:
        """Rows compared."""
        return int(self.hashes.shape[0])

    @property
    def text(self) -> np.ndarray[Any, Any]:
        """Columns with the similarity levels (text and integers)."""
        schema = self.frame.schema
        return np.array([_has_similarity(schema[c]) for c in self.columns], dtype=bool)

    @property
    def strings(self) -> np.ndarray[Any, Any]:
        """Text columns, the first MAX_SWAP_COLUMNS of them: those searched for swaps."""
        schema = self.frame.schema
        strings = np.array([_is_text(schema[c]) for c in self.columns], dtype=bool)
        strings[np.flatnonzero(strings)[MAX_SWAP_COLUMNS:]] = False
        return strings

    def levels(self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """(pairs x columns) comparison levels of the row pairs (a[i], b[i])."""
        levels = coarse_levels(self.hashes, a, b)
        text = self.text
        for k in map(int, np.flatnonzero(text)):
            open_ = np.flatnonzero(levels[:, k] == DIFFERENT)
            if open_.size:
                levels[open_, k] = self.similarity(k, k, a[open_], b[open_])
        for i, j in self.swaps:
            self._swap(levels, i, j, a, b)
        return levels

    def similarity(
        self, i: int, j: int, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """Levels of column i of rows a against column j of rows b (unequal, non-null),
        SIMILARITY_CHUNK pairs at a time (the strings compared become Python objects)."""
        if self.rows is not None:
            a, b = self.rows[a], self.rows[b]
        left_column, right_column = self.frame[self.columns[i]], self.frame[self.columns[j]]
        out = np.empty(a.size, dtype=np.int8)
        for start in range(0, a.size, SIMILARITY_CHUNK):
            stop = start + SIMILARITY_CHUNK
            left = left_column.gather(pl.Series(a[start:stop]))
            right = right_column.gather(pl.Series(b[start:stop]))
            out[start:stop] = text_levels(left, right)
        return out

    def _cross(
        self, i: int, j: int, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any]:
        """Levels of column i of rows a against column j of rows b (all non-null)."""
        level = np.where(
            self.hashes[:, i][a] == self.hashes[:, j][b], np.int8(EQUAL), np.int8(DIFFERENT)
        )
        open_ = np.flatnonzero(level == DIFFERENT)
        if open_.size:
            level[open_] = self.similarity(i, j, a[open_], b[open_])
        return level

    def _swap(
        self,
        levels: np.ndarray[Any, Any],
        i: int,
        j: int,
        a: np.ndarray[Any, Any],
        b: np.ndarray[Any, Any],
    ) -> None:
        """Where columns i and j both disagree, compare them crosswise (i against j, j
        against i) and keep that when it is better: a first name entered as the last name
        and the other way round."""
        rows = np.flatnonzero(
            (levels[:, i] != EQUAL)
            & (levels[:, i] != NULL)
            & (levels[:, j] != EQUAL)
            & (levels[:, j] != NULL)
        )
        if rows.size == 0:
            return
        ra, rb = a[rows], b[rows]
        cross_i, cross_j = self._cross(i, j, ra, rb), self._cross(j, i, ra, rb)
        better = (_RANK[cross_i] + _RANK[cross_j]) > (
            _RANK[levels[rows, i]] + _RANK[levels[rows, j]]
        )
        levels[rows[better], i] = cross_i[better]
        levels[rows[better], j] = cross_j[better]


def _swap_counts(
    hashes: np.ndarray[Any, Any],
    text: np.ndarray[Any, Any],
    a: np.ndarray[Any, Any],
    b: np.ndarray[Any, Any],
) -> dict[tuple[int, int], int]:
    """For each pair of the ``text`` columns (i, j): how many pairs (a, b) show them exactly
    swapped (a's i is b's j and a's j is b's i, while i differs)."""
    columns = np.flatnonzero(text)
    if columns.size < 2:
        return {}  # a swap needs two text columns
    left = np.stack([hashes[:, k][a] for k in columns], axis=1)
    right = np.stack([hashes[:, k][b] for k in columns], axis=1)
    present = (left != 0) & (right != 0)
    unequal = present & (left != right)
    counts: dict[tuple[int, int], int] = {}
    for x in range(columns.size - 1):
        rows = np.flatnonzero(unequal[:, x])
        if rows.size == 0:
            continue
        rest = slice(x + 1, None)
        swapped = (left[rows, x : x + 1] == right[rows, rest]) & (
            left[rows, rest] == right[rows, x : x + 1]
        )
        for y, count in enumerate(swapped.sum(axis=0).tolist()):
            if count:
                counts[int(columns[x]), int(columns[x + 1 + y])] = int(count)
    return counts


def find_swaps(
    hashes: np.ndarray[Any, Any],
    text: np.ndarray[Any, Any],
    candidates: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
    random: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]],
) -> list[tuple[int, int]]:
    """Pairs of columns whose values the candidates show swapped at least MIN_SWAPS times
    and SWAP_RATIO times as often as random row pairs do (small integers such as counts
    are often 'swapped' by chance; first and last names are not)."""
    seen = _swap_counts(hashes, text, *candidates)
    chance = _swap_counts(hashes, text, *random)
    n_candidates, n_random = max(1, candidates[0].size), max(1, random[0].size)
    return sorted(
        pair
        for pair, count in seen.items()
        if count >= MIN_SWAPS
        and count / n_candidates >= SWAP_RATIO * (chance.get(pair, 0) + 1) / n_random
    )
