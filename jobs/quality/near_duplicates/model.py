"""The Fellegi-Sunter model: ``u`` from random row pairs, ``m`` by EM per blocking key,
the prior, the chance threshold of the evidence, and the scores (see the package
docstring, *Weights* and *Decision*)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datrix.jobs.quality.near_duplicates.blocking import BlockingKey
from datrix.jobs.quality.near_duplicates.comparison import (
    CLOSE,
    DIFFERENT,
    EQUAL,
    FAIR,
    LEVELS,
    NULL,
    Comparator,
)
from datrix.jobs.quality.near_duplicates.hashing import HASH_SEED

U_SAMPLE = 50_000  # random row pairs for the u probabilities of the similarity levels
EM_SAMPLE = 50_000  # candidates the EM runs on
EM_ITERATIONS = 200
EM_TOLERANCE = 1e-6
PRIOR_STRENGTH = 10.0  # pseudo-pairs of the m prior (few duplicates: m stays near it)
M_PRIOR_EQUAL = 0.9
TYPO_SHAPE = (0.0, 0.0, 0.6, 0.3, 0.1)  # null, equal, close, fair, different
# A pair must agree on values rare enough that fewer than CHANCE_LIMIT of all row pairs
# would agree that much by chance.
CHANCE_LIMIT = 1.0
EVIDENCE_STEP = 0.05  # nats: grid of the chance distribution of the evidence


@dataclass(frozen=True)
class FieldModel:
    """Per-column level probabilities (columns x LEVELS): ``m`` for duplicates, ``u`` for
    random row pairs; and the share of duplicates among the pairs scored."""

    m: np.ndarray[Any, Any]
    u: np.ndarray[Any, Any]
    match_share: float

    def weights(self) -> np.ndarray[Any, Any]:
        """log(m/u) per column and level; 0 for null (no information)."""
        w: np.ndarray[Any, Any] = np.log(np.maximum(self.m, 1e-300))
        w -= np.log(np.maximum(self.u, 1e-300))
        w[:, NULL] = 0.0
        return w

    def evidence_weights(self) -> np.ndarray[Any, Any]:
        """-log u of the agreeing levels (equal, close, fair); 0 for null and different."""
        w: np.ndarray[Any, Any] = -np.log(np.maximum(self.u, 1e-300))
        w[:, NULL] = 0.0
        w[:, DIFFERENT] = 0.0
        return w

    @property
    def prior(self) -> float:
        """Prior log-odds of a match."""
        return math.log(self.match_share / (1.0 - self.match_share))


def random_pairs(rows: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """U_SAMPLE uniformly random pairs of distinct rows (at most all of them)."""
    rng = np.random.Generator(np.random.PCG64(seed + HASH_SEED))
    size = int(min(U_SAMPLE, rows * (rows - 1) // 2))
    a = rng.integers(0, rows, size)
    b = rng.integers(0, rows - 1, size)
    return a, np.where(b >= a, b + 1, b)


def u_probabilities(
    compare: Comparator,
    equal_share: np.ndarray[Any, Any],
    a: np.ndarray[Any, Any],
    b: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """(columns x LEVELS) chance of each level for two random rows (given both present).

    Equality is exact (from the value counts); the similarity levels are counted on the
    random row pairs (a, b) (with half a pair added, so none is 0)."""
    n = compare.height
    levels = compare.levels(a, b)
    text = compare.text
    u = np.zeros((len(compare.columns), LEVELS))
    floor = 0.5 / max(1.0, n * (n - 1) / 2)
    for k in range(len(compare.columns)):
        level = levels[:, k]
        present = level[level != NULL]
        counts = np.bincount(present, minlength=LEVELS).astype(np.float64)
        u[k] = (counts + 0.5) / (present.size + 1.0)
        u[k, EQUAL] = max(float(equal_share[k]), floor)
        if not text[k]:
            u[k, CLOSE] = u[k, FAIR] = 0.0
        u[k, DIFFERENT] = max(1e-12, 1.0 - u[k, EQUAL] - u[k, CLOSE] - u[k, FAIR])
        u[k, NULL] = 1.0
    return u


def _patterns(levels: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Distinct rows of an int8 level matrix and their counts."""
    rows = np.ascontiguousarray(levels, dtype=np.int8)
    keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    return rows[first], counts.astype(np.float64)


def m_prior(u: np.ndarray[Any, Any], text: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The m the EM starts from and shrinks towards: a duplicate agrees with probability
    M_PRIOR_EQUAL; when it does not, half the time its values differ the way random rows'
    values do (u) and half the time by a typo (mostly close, TYPO_SHAPE). So no level is
    evidence of a match merely because random rows rarely show it (on structured strings
    such as e-mail addresses nearly every random pair is 'close' or 'fair')."""
    rest = u.copy()
    rest[:, NULL] = rest[:, EQUAL] = 0.0
    rest /= np.maximum(rest.sum(axis=1, keepdims=True), 1e-300)
    typo = np.where(text[:, None], np.array(TYPO_SHAPE), np.array([0, 0, 0, 0, 1.0]))
    prior: np.ndarray[Any, Any] = (1.0 - M_PRIOR_EQUAL) * (0.5 * rest + 0.5 * typo)
    prior[:, EQUAL] = M_PRIOR_EQUAL
    prior[:, NULL] = 0.0
    return prior


def run_em(
    levels: np.ndarray[Any, Any], u: np.ndarray[Any, Any], text: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], float]:
    """EM for the m probabilities and the match share of a set of pairs, u held fixed.

    Runs on the distinct level patterns (with their counts); a weak prior (PRIOR_STRENGTH
    pseudo-pairs of M_PRIOR_*) keeps every m positive. Null levels carry no information."""
    patterns, weights_n = _patterns(levels)
    cols = patterns.shape[1]
    prior = m_prior(u, text)
    m = prior.copy()
    m[:, NULL] = 1.0
    share = 0.1
    idx = np.arange(cols)
    log_u = np.log(np.maximum(u, 1e-300))
    for _ in range(EM_ITERATIONS):
        w = np.log(np.maximum(m, 1e-300)) - log_u
        w[:, NULL] = 0.0
        score = w[idx, patterns].sum(axis=1) + math.log(share / (1.0 - share))
        post = 1.0 / (1.0 + np.exp(-np.clip(score, -700.0, 700.0)))
        mass = post * weights_n
        new_share = min(max(float(mass.sum() / weights_n.sum()), 1e-12), 1.0 - 1e-12)
        new_m = np.empty_like(m)
        for k in range(cols):
            sums = np.bincount(patterns[:, k], weights=mass, minlength=LEVELS)
            sums[NULL] = 0.0
            new_m[k] = (sums + PRIOR_STRENGTH * prior[k]) / (sums.sum() + PRIOR_STRENGTH)
            new_m[k, NULL] = 1.0
        converged = (
            abs(new_share - share) < EM_TOLERANCE and float(np.abs(new_m - m).max()) < EM_TOLERANCE
        )
        m, share = new_m, new_share
        if converged:
            break
    return m, share


def fit_model(
    levels: np.ndarray[Any, Any],
    u: np.ndarray[Any, Any],
    text: np.ndarray[Any, Any],
    keys: Sequence[BlockingKey],
    both_present: np.ndarray[Any, Any],
    pairs: float,
    candidates: int,
) -> FieldModel:
    """The m probabilities and the share of matches among all ``pairs`` of rows, from the
    comparison ``levels`` of a uniform sample of the ``candidates``.

    Candidates were chosen for agreeing on a key, so among them agreement on the key's
    columns says nothing: an EM that counted it would explain every candidate as a match
    (u, from random pairs, cannot explain it). As in Splink, the EM runs once per key, on
    the sampled pairs of that key's block, with the key's columns left out; each column's
    m is averaged over the runs that saw it, weighted by their expected matches. The
    number of matches in the table is estimated from each block (its matches, divided by
    the share of all matches that agree on the key) and the median is taken. Without a
    key (LSH only) a single EM runs on all the candidates.
    """
    prior_m = m_prior(u, text)
    cols = levels.shape[1]
    totals = np.zeros((cols, LEVELS))
    mass = np.zeros(cols)
    runs: list[tuple[BlockingKey, float]] = []
    for key in keys:
        columns = list(key.columns)
        block = np.flatnonzero((levels[:, columns] == EQUAL).all(axis=1))
        if block.size == 0:
            continue
        sub = levels[block].copy()
        sub[:, columns] = NULL
        m, share = run_em(sub, u, text)
        expected = share * block.size
        free = np.ones(cols, dtype=bool)
        free[columns] = False
        totals[free] += expected * m[free]
        mass[free] += expected
        runs.append((key, share))
    if not runs:
        m, share = run_em(levels, u, text)
        return FieldModel(m=m, u=u, match_share=min(share * candidates / pairs, 0.5))
    m = np.where(mass[:, None] > 1e-9, totals / np.maximum(mass, 1e-300)[:, None], prior_m)
    m[:, NULL] = 1.0
    estimates = []
    for key, share in runs:
        recall = float(np.prod([both_present[k] * m[k, EQUAL] for k in key.columns]))
        estimates.append(share * key.cost / max(recall, 1e-9))
    matches = float(np.median(estimates))
    return FieldModel(m=m, u=u, match_share=min(max(matches / pairs, 1e-300), 0.5))


def chance_threshold(
    u: np.ndarray[Any, Any], both_present: np.ndarray[Any, Any], pairs: float
) -> float:
    """The least evidence that fewer than CHANCE_LIMIT of ``pairs`` random row pairs reach.

    Under independent columns, a random pair's evidence is a sum of one term per column:
    ``-log u`` of the level it shows when that level is an agreement (probability ``u``
    when both values are present), else 0. Its distribution is computed exactly on a grid
    of EVIDENCE_STEP nats (every term rounded up, so the tail is never underestimated);
    the threshold is where ``pairs * P(evidence >= t)`` falls below CHANCE_LIMIT. Unlike
    ``log(pairs)`` alone it counts the many ways of agreeing on some columns: a table of
    six weak columns has pairs agreeing on four of them by chance.
    """
    size = 1
    dist = np.ones(1)
    for k in range(u.shape[0]):
        outcomes = [(1.0 - both_present[k] * (1.0 - u[k, DIFFERENT]), 0)]
        for level in (EQUAL, CLOSE, FAIR):
            p = both_present[k] * u[k, level]
            if p > 0.0:
                outcomes.append((p, math.ceil(-math.log(u[k, level]) / EVIDENCE_STEP)))
        size += max(shift for _, shift in outcomes)
        new = np.zeros(size)
        for p, shift in outcomes:
            new[shift : shift + dist.size] += p * dist
        dist = new
    tail = np.cumsum(dist[::-1])[::-1]  # tail[i] = P(evidence >= i * step)
    below = np.flatnonzero(tail * pairs < CHANCE_LIMIT)
    return float(below[0] * EVIDENCE_STEP) if below.size else float(size * EVIDENCE_STEP)


def _lookup(table: np.ndarray[Any, Any], levels: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Sum over columns k of table[k, levels[:, k]]."""
    total = np.zeros(levels.shape[0])
    for k in range(levels.shape[1]):
        total += table[k][levels[:, k]]
    return total


def score_pairs(
    levels: np.ndarray[Any, Any], model: FieldModel
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(match log-odds, evidence) of each pair of levels."""
    score = _lookup(model.weights(), levels) + model.prior
    return score, _lookup(model.evidence_weights(), levels)
