"""The search on a table held in memory: candidates, model, cheap bounds, verified pairs
(``find_near_duplicates``), and the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.near_duplicates.blocking import candidate_pairs, choose_keys
from datrix.jobs.quality.near_duplicates.columns import select_columns, surrogate_keys
from datrix.jobs.quality.near_duplicates.comparison import (
    CLOSE,
    DIFFERENT,
    EQUAL,
    FAIR,
    Comparator,
    coarse_levels,
    find_swaps,
)
from datrix.jobs.quality.near_duplicates.hashing import HASH_SEED, value_hashes, value_summary
from datrix.jobs.quality.near_duplicates.model import (
    EM_SAMPLE,
    FieldModel,
    _lookup,
    chance_threshold,
    fit_model,
    random_pairs,
    score_pairs,
    u_probabilities,
)
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.rowset import as_indices

# What a near duplicate is, for the finding's description.
DEFINITION = (
    "not identical, but likely the same record: a match probability of at least 50% "
    "from field weights learned from this table (case and whitespace ignored, typos and "
    "swapped fields partly counted), on values too rare to agree by chance"
)
VERIFY_CHUNK = 1 << 20


@dataclass(frozen=True)
class NearDuplicates:
    """Verified near-duplicate pairs ``(i, j)``, ``i < j``, as 0-based row indices."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # sorted rows in any pair
    redundant: int = 0  # rows beyond the first of each pair/group (for scoring)
    candidates: int = 0
    truncated: bool = False  # candidates were cut at MAX_CANDIDATES
    columns_compared: int = 0
    keys_ignored: tuple[str, ...] = ()  # id-like columns left out of the comparison
    # Hash segments searched one at a time (1: the whole table at once), and the column
    # whose value chose a row's segment: a pair that differs on it is found only when
    # both rows fell in the same segment by chance (one in ``segments``).
    segments: int = 1
    partition_column: str | None = None
    # The model's match probability of each pair of ``pairs`` (same order): what a fix
    # that merges or removes a near duplicate records as its confidence.
    probabilities: list[float] = field(default_factory=list)


def hopeful_pairs(
    compare: Comparator,
    a: np.ndarray[Any, Any],
    b: np.ndarray[Any, Any],
    model: FieldModel,
    needed: float,
) -> np.ndarray[Any, Any]:
    """Indices of the pairs that may still pass both thresholds, found cheaply.

    Upper bounds of the score and the evidence come from the hashes alone (an unequal
    text field counted at its best level: close, fair, different, or for swapped columns
    equal). Then the text fields are compared one at a time, the most hopeful first,
    tightening the bounds and dropping pairs as soon as they cannot pass: an unrelated
    pair is usually dropped after a field or two, without the other string comparisons.
    """
    text = compare.text
    w, e = model.weights(), model.evidence_weights()
    best_w, best_e = w[:, DIFFERENT].copy(), e[:, DIFFERENT].copy()
    best_w[text] = w[text][:, [CLOSE, FAIR, DIFFERENT]].max(axis=1)
    best_e[text] = e[text][:, [CLOSE, FAIR, DIFFERENT]].max(axis=1)
    swapped = sorted({k for pair in compare.swaps for k in pair})
    for k in swapped:
        best_w[k], best_e[k] = w[k, EQUAL:].max(), e[k, EQUAL:].max()
    levels = coarse_levels(compare.hashes, a, b)
    bound_w, bound_e = w.copy(), e.copy()
    bound_w[:, DIFFERENT], bound_e[:, DIFFERENT] = best_w, best_e
    score = _lookup(bound_w, levels) + model.prior
    evidence = _lookup(bound_e, levels)
    alive = np.flatnonzero((score >= 0.0) & (evidence >= needed))
    gain = best_w - w[:, DIFFERENT]
    for k in sorted(set(np.flatnonzero(text).tolist()) - set(swapped), key=lambda k: -gain[k]):
        open_ = alive[levels[alive, k] == DIFFERENT]
        if open_.size == 0:
            continue
        level = compare.similarity(k, k, a[open_], b[open_])
        score[open_] += w[k, level] - best_w[k]
        evidence[open_] += e[k, level] - best_e[k]
        alive = alive[(score[alive] >= 0.0) & (evidence[alive] >= needed)]
    return alive


def find_near_duplicates(
    source: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    stats: Sequence[ColumnStats],
    rows: int,
    exclude: Sequence[int] = (),
    seed: int = 0,
) -> NearDuplicates:
    """Near-duplicate pairs among the rows not in ``exclude`` (the redundant exact
    copies: a list or a ``RowSet``). The used columns of the whole table are held in
    memory; ``find_near_duplicates_in`` bounds that. See the module docstring for the
    definition and the method."""
    return _find_whole(source, stats, rows, exclude, seed, _collect_in_memory)


def _collect_in_memory(query: pl.LazyFrame) -> pl.DataFrame:
    return query.collect()


def _find_whole(
    source: pl.LazyFrame,
    stats: Sequence[ColumnStats],
    rows: int,
    exclude: Sequence[int] | np.ndarray[Any, Any],
    seed: int,
    collect: Callable[[pl.LazyFrame], pl.DataFrame],
) -> NearDuplicates:
    """The whole table at once: the used columns collected with ``collect``."""
    excluded = as_indices(exclude)
    unique_rows = rows - int(np.unique(excluded).size)
    if unique_rows < 2:
        return NearDuplicates()
    used, informative = select_columns(stats, rows, unique_rows)
    ignored = tuple(surrogate_keys(stats, unique_rows))
    if not used:
        return NearDuplicates(keys_ignored=ignored)
    keep = np.ones(rows, dtype=bool)
    keep[excluded] = False
    del excluded
    kept_rows = np.flatnonzero(keep).astype(np.int64)
    # The kept rows are not copied out: the hashes are computed on them alone, and a
    # candidate's strings are gathered from the whole frame through ``kept_rows``.
    frame = collect(source.select(used))
    filtered = kept_rows.size < frame.height
    pairs_arr, scores, candidates, truncated = _detect(
        frame, used, informative, keep if filtered else None, kept_rows, seed
    )
    return _result(pairs_arr, candidates, truncated, len(used), ignored, scores=scores)


def _detect(
    frame: pl.DataFrame,
    used: list[str],
    informative: list[str],
    keep: np.ndarray[Any, Any] | None,
    row_ids: np.ndarray[Any, Any],
    seed: int,
    chance_scale: float = 1.0,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], int, bool]:
    """The search on the rows of ``frame`` (those in ``keep``, a mask, when given): the
    pairs found as (pairs x 2) ``row_ids`` (the table row of each searched row), their
    match log-odds, the number of candidates and whether they were cut. The chance
    threshold is set for ``chance_scale`` times the frame's row pairs (the segments
    searched alike)."""
    hashes = value_hashes(frame, used, keep)
    n = hashes.shape[0]
    empty = np.empty((0, 2), dtype=np.int64)
    no_scores = np.empty(0, dtype=np.float64)
    costs, present = value_summary(hashes)
    equal_share = np.array(costs) / np.maximum(1.0, present * (present - 1) / 2)

    tokens_from = [used.index(c) for c in informative]
    keys = choose_keys(hashes, costs)
    candidates, truncated = candidate_pairs(hashes, keys, tokens_from, seed)
    if candidates.height == 0:
        return empty, no_scores, 0, truncated
    a, b = candidates["a"].to_numpy(), candidates["b"].to_numpy()
    frame_rows = None if keep is None else np.flatnonzero(keep).astype(np.int64)
    compare = Comparator(frame, hashes, used, rows=frame_rows)
    rng = np.random.Generator(np.random.PCG64(seed + HASH_SEED + 1))
    sample = np.sort(rng.permutation(a.size)[:EM_SAMPLE])
    random = random_pairs(n, seed)
    compare.swaps = find_swaps(hashes, compare.strings, (a[sample], b[sample]), random)
    u = u_probabilities(compare, equal_share, *random)
    both_present = (present / n) ** 2
    all_pairs = n * (n - 1) / 2
    sample_levels = compare.levels(a[sample], b[sample])
    model = fit_model(sample_levels, u, compare.text, keys, both_present, all_pairs, a.size)
    needed = chance_threshold(u, both_present, all_pairs * chance_scale)
    found: list[np.ndarray[Any, Any]] = []
    odds: list[np.ndarray[Any, Any]] = []
    for start in range(0, a.size, VERIFY_CHUNK):
        ca, cb = a[start : start + VERIFY_CHUNK], b[start : start + VERIFY_CHUNK]
        alive = hopeful_pairs(compare, ca, cb, model, needed)
        if alive.size == 0:
            continue
        ca, cb = ca[alive], cb[alive]
        score, evidence = score_pairs(compare.levels(ca, cb), model)
        match = (score >= 0.0) & (evidence >= needed)
        found.append(np.stack([row_ids[ca[match]], row_ids[cb[match]]], axis=1))
        odds.append(score[match])
    pairs_arr = np.concatenate(found) if found else empty
    scores = np.concatenate(odds) if odds else no_scores
    return pairs_arr, scores, int(candidates.height), truncated


def _result(
    pairs_arr: np.ndarray[Any, Any],
    candidates: int,
    truncated: bool,
    columns: int,
    ignored: tuple[str, ...],
    segments: int = 1,
    partition: str | None = None,
    scores: np.ndarray[Any, Any] | None = None,
) -> NearDuplicates:
    """The finding from the (pairs x 2) table rows found, each pair ``(i, j)``, ``i < j``,
    and their match log-odds ``scores``."""
    base = NearDuplicates(
        candidates=candidates,
        truncated=truncated,
        columns_compared=columns,
        keys_ignored=ignored,
        segments=segments,
        partition_column=partition,
    )
    if pairs_arr.shape[0] == 0:
        return base
    if scores is None:
        scores = np.zeros(pairs_arr.shape[0], dtype=np.float64)
    order = np.lexsort((pairs_arr[:, 1], pairs_arr[:, 0]))
    probability = 1.0 / (1.0 + np.exp(-np.clip(scores[order], -700.0, 700.0)))
    return replace(
        base,
        pairs=[(int(x), int(y)) for x, y in pairs_arr[order]],
        probabilities=[float(p) for p in probability],
        rows=np.unique(pairs_arr).tolist(),
        redundant=int(np.unique(pairs_arr[:, 1]).size),
    )
