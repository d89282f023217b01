"""Candidate pairs: exact key blocking, plus MinHash LSH when there are few keys (see
the package docstring, *Candidates*)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.near_duplicates.hashing import _pair_cost, _value_counts
from datrix.jobs.quality.near_duplicates.lsh import BANDS, MAX_BUCKET, _band_keys, _bucket_pairs

# Key blocking.
KEY_BUDGET_PER_ROW = 3.0  # a key yields at most this many candidate pairs per row...
MIN_KEY_BUDGET = 20_000  # ...or this many on small tables
TOTAL_BUDGET_PER_ROW = 3.0  # all keys together: at most this many pairs per row...
MIN_TOTAL_BUDGET = 200_000  # ...or this many
MAX_KEYS = 10
MAX_PAIR_KEYS_TRIED = 40
MAX_KEY_AGREEMENT = 0.5  # a column in a two-column key: random rows agree at most this often
# MinHash LSH over field tokens: run when there are fewer blocking keys than this (with
# several keys it finds no pair they miss, on Febrl or generated data).
LSH_BELOW_KEYS = 3
# Verification limit: beyond it the candidates are cut and the result is a lower bound.
MAX_CANDIDATES = 20_000_000


def _combined_key(left: np.ndarray[Any, Any], right: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Key of two columns together; null (0) where either is null."""
    with np.errstate(over="ignore"):
        key = left ^ (right * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x632BE59BD9B4E019))
    key[key == 0] = 1
    key[(left == 0) | (right == 0)] = 0
    out: np.ndarray[Any, Any] = key
    return out


@dataclass(frozen=True)
class BlockingKey:
    """One or two columns (indices) whose exact agreement makes a candidate pair, and the
    number of row pairs that agree so (``cost``)."""

    columns: tuple[int, ...]
    cost: float


def choose_keys(hashes: np.ndarray[Any, Any], costs: Sequence[float]) -> list[BlockingKey]:
    """Blocking keys: the cheapest single columns, then two-column keys (most selective
    first, by the independence estimate); each yields at most the key budget of pairs, all
    together at most the total budget, and there are at most MAX_KEYS."""
    n = hashes.shape[0]
    all_pairs = n * (n - 1) / 2
    budget = max(MIN_KEY_BUDGET, KEY_BUDGET_PER_ROW * n)
    room = max(MIN_TOTAL_BUDGET, TOTAL_BUDGET_PER_ROW * n)
    order = sorted(range(len(costs)), key=lambda k: costs[k])
    keys: list[BlockingKey] = []
    for k in order:
        if costs[k] > min(budget, room) or len(keys) >= MAX_KEYS:
            break
        keys.append(BlockingKey((k,), costs[k]))
        room -= costs[k]
    share = [c / all_pairs if all_pairs else 1.0 for c in costs]
    rest = [k for k in order if costs[k] > budget and share[k] <= MAX_KEY_AGREEMENT]
    combos = sorted(
        (all_pairs * share[i] * share[j], i, j) for x, i in enumerate(rest) for j in rest[x + 1 :]
    )
    for _, i, j in combos[:MAX_PAIR_KEYS_TRIED]:
        if len(keys) >= MAX_KEYS:
            break
        cost = _pair_cost(_value_counts(_combined_key(hashes[:, i], hashes[:, j])))
        if cost <= min(budget, room):
            keys.append(BlockingKey((i, j), cost))
            room -= cost
    return keys


def _key_values(hashes: np.ndarray[Any, Any], key: BlockingKey) -> np.ndarray[Any, Any]:
    values: np.ndarray[Any, Any] = hashes[:, key.columns[0]]
    for k in key.columns[1:]:
        values = _combined_key(values, hashes[:, k])
    return values


def key_pairs(hashes: np.ndarray[Any, Any], keys: Sequence[BlockingKey]) -> pl.DataFrame:
    """Pairs (``a`` < ``b``) agreeing exactly on a key, once per key (buckets larger than
    MAX_BUCKET as a star around their first row)."""
    parts = [_bucket_pairs(_key_values(hashes, key)) for key in keys]
    if not parts:
        return pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    return pl.concat(parts)


def _bucket_codes(keys: np.ndarray[Any, Any], rows: int) -> np.ndarray[Any, Any]:
    """``_bucket_pairs`` of a key column as pair codes (``a * rows + b``, unsorted), found
    by sorting the keys in numpy: no hash table or join over the whole column."""
    present = np.flatnonzero(keys)
    order = np.argsort(keys[present], kind="stable")
    members = present[order]  # rows grouped by key, ascending within a bucket
    del present
    ordered = keys[members]
    del order
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    del ordered
    sizes = np.diff(np.append(starts, members.size))
    width = np.uint64(rows)
    out: list[np.ndarray[Any, Any]] = []
    big = sizes > MAX_BUCKET
    if big.any():  # a star around the bucket's first (smallest) row
        first = members[np.repeat(starts[big], sizes[big] - 1)].astype(np.uint64)
        inside = np.ones(members.size, dtype=bool)
        inside[starts] = False
        others = inside & np.repeat(big, sizes)
        out.append(first * width + members[others].astype(np.uint64))
    for size in range(2, MAX_BUCKET + 1):
        at = starts[sizes == size]
        if at.size == 0:
            continue
        group = members[at[:, None] + np.arange(size)].astype(np.uint64)
        left, right = np.triu_indices(size, 1)
        out.append((group[:, left] * width + group[:, right]).ravel())
    return np.concatenate(out) if out else np.empty(0, dtype=np.uint64)


def candidate_pairs(
    hashes: np.ndarray[Any, Any],
    keys: Sequence[BlockingKey],
    tokens_from: Sequence[int],
    seed: int = 0,
) -> tuple[pl.DataFrame, bool]:
    """Distinct candidate pairs (``a`` < ``b``, sorted) from key blocking and MinHash LSH,
    with ``hits``: the number of keys and bands they met in (true duplicates meet in
    most), which decides what is kept when there are more than MAX_CANDIDATES (then the
    flag is True).

    Each pair is one uint64 code; the codes of all keys and bands are sorted once and
    run-length counted (8 bytes a pair, no hash table)."""
    rows = max(1, hashes.shape[0])
    # key by key, band by band: the pairs of key_pairs and lsh_pairs
    parts = [_bucket_codes(_key_values(hashes, key), rows) for key in keys]
    if len(keys) < LSH_BELOW_KEYS:
        bands = _band_keys(hashes[:, tokens_from], seed)
        parts += [_bucket_codes(bands[j], rows) for j in range(BANDS)]
        del bands
    codes = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    del parts
    codes.sort()
    if codes.size:
        starts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
        hits = np.diff(np.append(starts, codes.size)).astype(np.uint32)
        codes = codes[starts]
    else:
        hits = np.empty(0, dtype=np.uint32)
    truncated = codes.size > MAX_CANDIDATES
    if truncated:
        # most hits first, ties by (a, b); then back in (a, b) order
        take = np.sort(np.argsort(-hits.astype(np.int64), kind="stable")[:MAX_CANDIDATES])
        codes, hits = codes[take], hits[take]
    a = np.empty_like(codes)
    np.divmod(codes, np.uint64(rows), out=(a, codes))  # codes become b, in place
    frame = pl.DataFrame(
        {
            "a": a.view(np.int64),
            "b": codes.view(np.int64),
            "hits": pl.Series("hits", hits, dtype=pl.UInt32),
        }
    )
    return frame, truncated
