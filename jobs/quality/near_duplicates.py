"""Near-duplicate records: MinHash LSH over field tokens, verified field by field.

A *near duplicate* is a pair of rows that are not identical but agree on at least
``SIMILARITY_THRESHOLD`` (90 %) of their fields, where a field's agreement is 1 when the two
values are equal (strings after trimming, collapsing whitespace and lower-casing), the
string similarity when two strings are merely close (a typo or two: Indel similarity of at
least ``STRING_CUTOFF``), and 0 otherwise; fields null on both sides are not counted.
Exact duplicate rows are removed before the search, so a row that repeats another exactly is
reported only as an exact duplicate.

How the search stays linear in the number of rows:

1. *Shingles.* Every row becomes the set of its field tokens ``hash(column, normalised
   value)``. Only *informative* columns contribute tokens: those where two random rows
   rarely agree (estimated agreement probability <= ``MAX_AGREEMENT``, from the profile's
   distinct count and top-value share). Low-cardinality fields (gender, booleans, a
   constant) make unrelated rows look alike and would flood the buckets; they still count
   in the verification. Tokens are measured to work better than character 3-grams here:
   a row has ~50 of them instead of ~500, and a typo costs one token either way.
2. *MinHash.* ``NUM_PERM`` signatures per row, computed with numpy on a (tokens x rows)
   chunk: for each permutation ``h_k(x) = a_k * x + b_k (mod 2**32)`` and a column-wise
   minimum. This is about 1,000 times faster than hashing each record in Python.
3. *LSH.* The signature is cut into ``BANDS`` bands of ``ROWS_PER_BAND``; rows whose band
   agrees land in the same bucket. A pair with token Jaccard similarity ``s`` becomes a
   candidate with probability ``1 - (1 - s**4)**16``: 0.89 at s = 0.6, 0.9999 at s = 0.9.
   Buckets larger than ``MAX_BUCKET`` (many rows that agree on every informative field)
   are linked to their first row only, so a huge bucket costs linear, not quadratic, work.
4. *Verification.* Candidate pairs are scored field by field (vectorised with Polars;
   string similarity with RapidFuzz's ``cpdist``) and kept at ``SIMILARITY_THRESHOLD``.

Integer and temporal columns whose values are all distinct (surrogate keys, insertion
timestamps) are left out everywhere: they never agree within any pair, so they would only
dilute the similarity of true near duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from rapidfuzz.distance import Indel
from rapidfuzz.process import cpdist

from jobs.quality.profiling import ColumnStats

SIMILARITY_THRESHOLD = 0.9
STRING_CUTOFF = 0.8  # a string pair closer than this counts partially, else 0
MAX_AGREEMENT = 0.01  # informative column: two random rows agree with p <= 1 %
MIN_INFORMATIVE = 3  # with fewer informative columns, every usable column gives tokens
BANDS = 10
ROWS_PER_BAND = 3
NUM_PERM = BANDS * ROWS_PER_BAND
MAX_BUCKET = 32  # larger buckets are linked as a star around their first row
MAX_CANDIDATES = 2_000_000  # verification limit; beyond it the result is a lower bound
CHUNK_ROWS = 1 << 16
VERIFY_CHUNK = 1 << 18
TOKEN_SEED = 0x7A11

ComparableTypes = frozenset({"integer", "float", "string", "boolean", "date", "datetime"})


@dataclass(frozen=True)
class NearDuplicates:
    """Verified near-duplicate pairs ``(i, j)``, ``i < j``, as 0-based row indices."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # sorted rows in any pair
    redundant: int = 0  # rows beyond the first of each pair/group (for scoring)
    candidates: int = 0
    truncated: bool = False  # candidates were cut at MAX_CANDIDATES
    columns_compared: int = 0
    keys_ignored: tuple[str, ...] = ()  # surrogate-key columns left out of the comparison


def _agreement(stats: ColumnStats, rows: int) -> float:
    """Upper estimate of the probability that two random non-null values of the column
    are equal (the sum of squared value shares): exact for the top values, and every
    other value is assumed as frequent as the last top value (or uniform when the top
    values are all there is)."""
    present = rows - stats.null_count
    if stats.distinct_count <= 1 or present <= 0:
        return 1.0
    shares = [count / present for _, count in stats.top_values]
    if not shares:
        return 1.0
    rest = max(0.0, 1.0 - sum(shares))
    others = stats.distinct_count - len(shares)
    tail = rest * min(shares[-1], rest) if others > 0 else 0.0
    return sum(p * p for p in shares) + tail


def surrogate_keys(stats: Sequence[ColumnStats], unique_rows: int) -> list[str]:
    """Integer and temporal columns with a distinct value on every (deduplicated) row."""
    return [
        s.name
        for s in stats
        if s.logical_type in ("integer", "date", "datetime")
        and s.null_count == 0
        and s.distinct_count >= unique_rows
    ]


def select_columns(
    stats: Sequence[ColumnStats], rows: int, unique_rows: int
) -> tuple[list[str], list[str]]:
    """Return (columns compared in verification, columns that give LSH tokens)."""
    keys = set(surrogate_keys(stats, unique_rows))
    used = [s.name for s in stats if s.logical_type in ComparableTypes and s.name not in keys]
    by_name = {s.name: s for s in stats}
    informative = [c for c in used if _agreement(by_name[c], rows) <= MAX_AGREEMENT]
    if len(informative) < MIN_INFORMATIVE:
        informative = list(used)
    return used, informative


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _token_exprs(columns: Sequence[str], schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """One UInt64 token per (column, value); nulls are replaced by another token of the
    same row, which leaves the row's token *set* unchanged (an all-null row gets 0)."""
    raw: list[pl.Expr] = []
    for i, name in enumerate(columns):
        col = pl.col(name)
        if _is_text(schema[name]):
            # Cheap normalisation: case and every space dropped (verification is exact).
            col = col.cast(pl.String).str.to_lowercase().str.replace_all(" ", "", literal=True)
        raw.append(col.hash(seed=TOKEN_SEED + i).alias(f"t{i}"))
    anchor = pl.coalesce([*raw, pl.lit(0, dtype=pl.UInt64)])
    return [pl.coalesce([r, anchor]).alias(f"t{i}") for i, r in enumerate(raw)]


def _permutations(seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    rng = np.random.Generator(np.random.PCG64(seed + TOKEN_SEED))
    a = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 2**32, NUM_PERM, dtype=np.uint64).astype(np.uint32)
    return a, b


def minhash(tokens: np.ndarray[Any, Any], seed: int = 0) -> np.ndarray[Any, Any]:
    """MinHash signatures (NUM_PERM x rows, uint32) of a (tokens x rows) uint32 matrix.

    ``h_k(x) = a_k * x + b_k mod 2**32`` with odd ``a_k`` is a permutation of the 32-bit
    space; the tokens are already hashes, so these cheap permutations estimate Jaccard
    similarity as well as independent hash functions do (checked in the unit tests).
    """
    a, b = _permutations(seed)
    out = np.empty((NUM_PERM, tokens.shape[1]), dtype=np.uint32)
    buf = np.empty_like(tokens)
    for k in range(NUM_PERM):
        np.multiply(tokens, a[k], out=buf)
        np.add(buf, b[k], out=buf)
        buf.min(axis=0, out=out[k])
    return out


def band_keys(signatures: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(BANDS x rows) uint64 bucket keys: each band's ROWS_PER_BAND values mixed into one
    64-bit key (a linear combination with fixed odd multipliers; false collisions between
    different bands are ~2**-64 per pair and would be removed by verification anyway)."""
    mult = np.array(
        [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93],
        dtype=np.uint64,
    )
    rows = signatures.shape[1]
    keys = np.zeros((BANDS, rows), dtype=np.uint64)
    for j in range(BANDS):
        for i in range(ROWS_PER_BAND):
            part = signatures[j * ROWS_PER_BAND + i].astype(np.uint64)
            keys[j] += part * mult[i % len(mult)]
    return keys


def mix_tokens(tokens: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """64-bit token hashes -> well-mixed 32-bit tokens (the MurmurHash3 finaliser).

    Polars hashes integers and floats with a cheap, nearly linear function; fed straight
    into the linear MinHash permutations, structured values (consecutive numbers, prices)
    produce correlated minima and a third more false candidates. One non-linear mix per
    token (not per permutation) removes that.
    """
    x = tokens.copy()
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return x.astype(np.uint32)


def _signature_keys(
    source: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    columns: Sequence[str],
    rows: int,
    seed: int,
) -> np.ndarray[Any, Any]:
    """(BANDS x rows) bucket keys, computed chunk by chunk so the token matrix stays small
    and in cache."""
    exprs = _token_exprs(columns, schema)
    keys = np.empty((BANDS, rows), dtype=np.uint64)
    for start in range(0, rows, CHUNK_ROWS):
        chunk = source.slice(start, CHUNK_ROWS).select(exprs).collect()
        tokens = np.empty((chunk.width, chunk.height), dtype=np.uint64)
        for i, series in enumerate(chunk.iter_columns()):
            tokens[i] = series.to_numpy()
        keys[:, start : start + chunk.height] = band_keys(minhash(mix_tokens(tokens), seed))
    return keys


def _bucket_pairs(keys: np.ndarray[Any, Any], rows: np.ndarray[Any, Any]) -> pl.LazyFrame:
    """Candidate pairs (a < b) among rows sharing a key in one band: every pair within a
    bucket of at most MAX_BUCKET rows, the first row with each other one beyond."""
    frame = (
        pl.LazyFrame({"key": keys, "row": rows})
        .filter(pl.col("key").is_duplicated())
        .with_columns(pl.len().over("key").alias("n"))
    )
    small = frame.filter(pl.col("n") <= MAX_BUCKET).select("key", "row")
    pairs = (
        small.join(small, on="key", suffix="_r")
        .filter(pl.col("row") < pl.col("row_r"))
        .select(pl.col("row").alias("a"), pl.col("row_r").alias("b"))
    )
    star = (
        frame.filter(pl.col("n") > MAX_BUCKET)
        .select(pl.col("row").min().over("key").alias("a"), pl.col("row").alias("b"))
        .filter(pl.col("a") < pl.col("b"))
    )
    return pl.concat([pairs, star])


def candidate_pairs(
    source: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    tokens_from: Sequence[str],
    rows: int,
    exclude: Sequence[int],
    seed: int = 0,
) -> pl.DataFrame:
    """Distinct candidate pairs (columns ``a`` < ``b``, sorted) from MinHash LSH; the
    bands are bucketed side by side (``collect_all``)."""
    keys = _signature_keys(source, schema, tokens_from, rows, seed)
    keep = np.ones(rows, dtype=bool)
    keep[np.asarray(exclude, dtype=np.int64)] = False
    kept_rows = np.flatnonzero(keep).astype(np.int64)
    parts = pl.collect_all([_bucket_pairs(keys[j][keep], kept_rows) for j in range(BANDS)])
    return pl.concat(parts).unique().sort("a", "b")


def _normalised(values: pl.Series) -> pl.Series:
    return values.cast(pl.String).str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()


def _text_scores(left: pl.Series, right: pl.Series) -> np.ndarray[Any, Any]:
    """Agreement of two string columns: 1 when equal after normalisation, else their Indel
    similarity when at least STRING_CUTOFF, else 0 (both null: 0, not counted anyway)."""
    left, right = _normalised(left), _normalised(right)
    score = (left == right).fill_null(False).to_numpy().astype(np.float64)
    differ = np.flatnonzero((left != right).fill_null(False).to_numpy())
    if differ.size:
        score[differ] = cpdist(
            left.gather(differ).to_list(),
            right.gather(differ).to_list(),
            scorer=Indel.normalized_similarity,
            score_cutoff=STRING_CUTOFF,
            dtype=np.float64,
        )
    return score


def verify_pairs(
    frame: pl.DataFrame, pairs: pl.DataFrame, columns: Sequence[str]
) -> np.ndarray[Any, Any]:
    """Row similarity of each candidate pair: the mean field agreement over the fields that
    are not null on both sides (a pair with no such field scores 1).

    Two stages keep this cheap: exact equality of every field first, which bounds the
    similarity from above (each unequal string field could still score at most 1); pairs
    that cannot reach the threshold are dropped before any string normalisation or edit
    distance is computed. Unrelated rows sharing a few values are nearly all dropped there.
    """
    a, b = pairs["a"], pairs["b"]
    n = pairs.height
    equal_sum = np.zeros(n, dtype=np.float64)
    counted = np.zeros(n, dtype=np.float64)
    open_text: list[tuple[str, np.ndarray[Any, Any]]] = []
    bound = np.zeros(n, dtype=np.float64)
    for name in columns:
        left, right = frame[name].gather(a), frame[name].gather(b)
        both_null = (left.is_null() & right.is_null()).to_numpy()
        equal = left.eq_missing(right).to_numpy() & ~both_null
        counted += ~both_null
        equal_sum += equal
        if _is_text(frame[name].dtype):
            maybe = (left.is_not_null() & right.is_not_null()).to_numpy() & ~equal
            if maybe.any():
                open_text.append((name, maybe))
                bound += maybe
    similarity = np.where(counted > 0, (equal_sum + bound) / np.maximum(counted, 1.0), 1.0)
    alive = np.flatnonzero(similarity >= SIMILARITY_THRESHOLD - 1e-12)
    exact = np.where(counted > 0, equal_sum / np.maximum(counted, 1.0), 1.0)
    if alive.size == 0 or not open_text:
        return exact
    a_alive, b_alive = a.gather(alive), b.gather(alive)
    partial = np.zeros(alive.size, dtype=np.float64)
    for name, maybe in open_text:
        rows = np.flatnonzero(maybe[alive])
        if rows.size == 0:
            continue
        series = frame[name]
        partial[rows] += _text_scores(
            series.gather(a_alive.gather(rows)), series.gather(b_alive.gather(rows))
        )
    exact[alive] = (equal_sum[alive] + partial) / np.maximum(counted[alive], 1.0)
    return exact


def find_near_duplicates(
    source: pl.LazyFrame,
    schema: Mapping[str, pl.DataType],
    stats: Sequence[ColumnStats],
    rows: int,
    exclude: Sequence[int] = (),
    seed: int = 0,
) -> NearDuplicates:
    """Near-duplicate pairs among the rows not in ``exclude`` (the redundant exact
    copies). See the module docstring for the definition and the method."""
    if rows - len(exclude) < 2:
        return NearDuplicates()
    used, informative = select_columns(stats, rows, rows - len(exclude))
    if not used:
        return NearDuplicates()
    candidates = candidate_pairs(source, schema, informative, rows, exclude, seed)
    truncated = candidates.height > MAX_CANDIDATES
    if truncated:
        candidates = candidates.head(MAX_CANDIDATES)
    frame = source.select(used).collect()
    kept: list[pl.DataFrame] = []
    for start in range(0, candidates.height, VERIFY_CHUNK):
        part = candidates.slice(start, VERIFY_CHUNK)
        similarity = verify_pairs(frame, part, used)
        kept.append(part.filter(pl.Series(similarity >= SIMILARITY_THRESHOLD - 1e-12)))
    found = pl.concat(kept) if kept else pl.DataFrame(schema={"a": pl.Int64, "b": pl.Int64})
    pairs = [(int(x), int(y)) for x, y in found.iter_rows()]
    involved = pl.concat([found["a"], found["b"]]).unique().sort() if pairs else None
    return NearDuplicates(
        pairs=pairs,
        rows=[int(i) for i in involved.to_list()] if involved is not None else [],
        redundant=int(found["b"].n_unique()) if pairs else 0,
        candidates=candidates.height,
        truncated=truncated,
        columns_compared=len(used),
        keys_ignored=tuple(surrogate_keys(stats, rows - len(exclude))),
    )
