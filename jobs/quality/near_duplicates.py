"""Near-duplicate records: unsupervised record linkage within one table.

A *near duplicate* is a pair of rows that are not identical but very likely describe the
same entity: under a Fellegi-Sunter model whose weights are learned from the table itself
the pair's match probability is at least 1/2, and the values it agrees on are too rare to
agree that much by chance among all the table's row pairs (``CHANCE_LIMIT``). Exact
duplicate rows are removed before the search, so a row that repeats another exactly is
reported only as an exact duplicate. Nothing is configured per table: Febrl, the
benchmark generator's customers and a scan's arbitrary table go through the same call.

Columns. Every column of a comparable type takes part except constant ones and *id-like*
ones (integer, string or temporal, no null, a distinct value on every deduplicated row:
surrogate keys, record ids, insertion timestamps), which never agree within a pair.
Strings are compared lower-cased, without spaces; every value is hashed once (numpy
uint64 matrix) and equality, blocking and value counts work on the hashes.

1. *Candidates* (blocking): pairs that agree exactly on a *key*, one column or two
   columns together. A key's cost, the number of pairs it yields (``sum n_v (n_v - 1) /
   2`` over its value counts), is computed exactly; a key may cost ``KEY_BUDGET_PER_ROW``
   pairs per row, all keys together ``TOTAL_BUDGET_PER_ROW``, and the cheapest
   ``MAX_KEYS`` are used, single columns first. A true duplicate is lost only when it
   disagrees on every key, which with several keys is rare (Febrl 3: one true pair of
   6,538). With fewer than ``LSH_BELOW_KEYS`` keys (only common values everywhere),
   MinHash LSH over field tokens adds the pairs that agree on most fields (``hash(column,
   value)`` tokens, 10 bands of 3 of 30 cheap permutations, in numpy). Buckets larger
   than ``MAX_BUCKET`` are linked as a star around their first row, so a thousand copies
   of one record under new ids cost linear work.
2. *Comparison levels* per field: null (either side), equal, close (Jaro-Winkler >=
   ``CLOSE_JW``), fair (>= ``FAIR_JW``), different; text and integer fields get the
   similarity levels, others are equal or different. Two text columns that the
   candidates show exactly swapped at least ``MIN_SWAPS`` times, and ``SWAP_RATIO`` times
   as often as random pairs do (first/last name, address lines), are also compared
   crosswise, and the better reading is kept.
3. *Weights* (``fit_model``). ``u``, the chance that two random rows show a level: exact
   from the value counts for equality, counted on ``U_SAMPLE`` random row pairs for the
   similarity levels. ``m``, the chance that a duplicate shows it: EM with ``u`` fixed,
   once per key on the sampled candidates of that key's block with the key's columns
   left out (as Splink does: candidates agree on their key by construction, and an EM
   that counted it would call every candidate a match), shrunk towards a prior by
   ``PRIOR_STRENGTH`` pseudo-pairs so that a table with three duplicates does not learn
   nonsense. The number of duplicates in the table, hence the prior odds of a match
   among all row pairs, comes from the same runs. A field's weight at a level is
   ``log(m / u)``: agreeing on an e-mail address weighs far more than agreeing on a
   gender, and a field the data often garbles costs little when it disagrees.
4. *Decision*. A candidate is a near duplicate when its summed weights plus the prior
   log-odds are >= 0 and its *evidence*, the summed ``-log u`` of the levels it agrees at,
   reaches the level that fewer than ``CHANCE_LIMIT`` random pairs of the table would
   reach (``chance_threshold``: the exact distribution of a random pair's evidence under
   independent columns): in a table of a few weak columns (orders with a product, a
   quantity and a status), pairs agree on most of them by chance. Cheap bounds from the
   hashes, tightened one text field at a time (``hopeful_pairs``), drop nearly every
   unrelated candidate before most string comparisons.

Segments (``find_near_duplicates_in``). The search holds the compared columns and their
(rows x columns) hashes, about 1 GB per million rows of a 50-column table, so a bounded
table (``table.ScanTable``) of more than ``SEGMENT_ROWS`` rows
(``DATRIX_NEAR_DUP_SEGMENT_ROWS``) left after the exact copies is searched in
``P = ceil(rows / SEGMENT_ROWS)`` hash segments, one at a time: the table is read once, a
chunk at a time, into one spill file per segment (``_segment_frames``), and peak memory
is one segment's worth. A table in memory is searched whole. A row's
segment is ``hash(value) % P`` of one *partition column*'s normalised value (the row
number ``% P`` where it is null), so rows agreeing on that column are searched together
wherever they lie in the file; contiguous row ranges would miss a copy appended far from
its original. The partition column (``partition_column``) is the compared column that
would be the best single-column blocking key: the least chance agreement between random
rows (``_agreement``: many distinct values, none frequent), id-like columns excluded
(``select_columns``), preferring at most ``MAX_PARTITION_NULLS`` nulls, and none whose
most frequent value would fill half a segment. The consequence: a pair that differs on
that column, or has a null there, is found only when both rows fall in the same segment
by chance (one in ``P``); the result records ``segments`` and ``partition_column`` and the
finding's description says so. Columns are chosen from the whole table's profile; the model
(``u``, the weights, the prior) is fitted per segment on that segment's rows, so it
describes exactly the pairs searched there (the partition column, for one, agrees about
``P`` times as often within a segment as in the table), and the chance threshold counts
the pairs of all segments together, as the whole-table search counts the table's.

Measured (``tests/benchmarks/bench_febrl.py``, 2 busy shared cores): Febrl 1/2/3 F1
1.0000 / 1.0000 / 0.9999 (one true pair of 6,538 missed), the same with the types a CSV
read gives; no pair on the Febrl originals alone or on generated data with its near
copies removed; pair precision and recall 1.0 on ``jobs.bench.generate`` data at 20k,
100k and 1M rows, the 1M-row detection in 15-25 s (profiling, exact duplicates apart).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from rapidfuzz.distance import JaroWinkler
from rapidfuzz.process import cpdist

from jobs.quality.profiling import ColumnStats
from jobs.quality.rowset import RowSet, as_indices
from jobs.quality.table import ScanTable, env_number

# What a near duplicate is, for the finding's description.
DEFINITION = (
    "not identical, but likely the same record: a match probability of at least 50% "
    "from field weights learned from this table (case and whitespace ignored, typos and "
    "swapped fields partly counted), on values too rare to agree by chance"
)
ComparableTypes = frozenset({"integer", "float", "string", "boolean", "date", "datetime"})
# Types whose columns count as ids when unique (a unique float is a measurement).
IdTypes = frozenset({"integer", "string", "date", "datetime"})

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
MAX_AGREEMENT = 0.01  # informative column: two random rows agree with p <= 1 %
MIN_INFORMATIVE = 3  # with fewer informative columns, every used column gives tokens
BANDS = 10
ROWS_PER_BAND = 3
NUM_PERM = BANDS * ROWS_PER_BAND
MAX_BUCKET = 32  # larger buckets are linked as a star around their first row
CHUNK_ROWS = 1 << 16
TOKEN_SEED = 0x7A11

# Comparison levels and weights.
NULL, EQUAL, CLOSE, FAIR, DIFFERENT = 0, 1, 2, 3, 4
LEVELS = 5
CLOSE_JW = 0.92
FAIR_JW = 0.80
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
# Two columns are compared crosswise too when at least this many candidates show them
# exactly swapped (first and last name, address lines).
MIN_SWAPS = 5
SWAP_RATIO = 20.0  # ...and this many times as often as random row pairs
MAX_SWAP_COLUMNS = 40  # text columns searched for swaps (the search is quadratic)
# Verification limit: beyond it the candidates are cut and the result is a lower bound.
MAX_CANDIDATES = 20_000_000
VERIFY_CHUNK = 1 << 20
HASH_BATCH = 4  # columns hashed together (the transient of value_hashes)
SIMILARITY_CHUNK = 1 << 16  # string pairs compared together
HASH_SEED = 0x5EED

# Segments (find_near_duplicates_in): rows searched together at most, about 1 GB of
# columns and hashes for 50 columns.
SEGMENT_ROWS = 500_000  # ~0.8 GiB peak per segment of 50 mixed columns (1M: ~1.3 GiB)
MAX_PARTITION_NULLS = 0.1  # a partition column is preferably at most this share null
PARTITION_SEED = 0x5E6D  # hash of the partition value (not HASH_SEED: see segment_expr)
ROW_INDEX = "__datrix_near_row"


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


def _agreement(stats: ColumnStats, rows: int) -> float:
    """Upper estimate of the probability that two random non-null values of the column
    are equal (the sum of squared value shares): exact for the top values, and every
    other value is assumed as frequent as the last top value."""
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
    """Id-like columns: integer, string or temporal, no null and a distinct value on every
    deduplicated row (surrogate keys, record ids, insertion timestamps). They never agree
    within any pair, so they would only dilute the evidence."""
    if unique_rows < 2:
        return []
    return [
        s.name
        for s in stats
        if s.logical_type in IdTypes and s.null_count == 0 and s.distinct_count >= unique_rows
    ]


def select_columns(
    stats: Sequence[ColumnStats], rows: int, unique_rows: int
) -> tuple[list[str], list[str]]:
    """Return (columns compared, columns that give LSH tokens)."""
    keys = set(surrogate_keys(stats, unique_rows))
    used = [
        s.name
        for s in stats
        if s.logical_type in ComparableTypes and s.name not in keys and s.distinct_count > 1
    ]
    by_name = {s.name: s for s in stats}
    informative = [c for c in used if _agreement(by_name[c], rows) <= MAX_AGREEMENT]
    if len(informative) < MIN_INFORMATIVE:
        informative = list(used)
    return used, informative


def _is_text(dtype: pl.DataType) -> bool:
    return dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)


def _has_similarity(dtype: pl.DataType) -> bool:
    """Text, and integers (codes, numbers typed with a digit wrong), are compared by string
    similarity too: the learned weights give a close integer little weight when close
    values (counts, amounts) are common between random rows."""
    return _is_text(dtype) or dtype.is_integer()


def normalise(values: pl.Expr) -> pl.Expr:
    """Strings as compared: lower case, no spaces, no whitespace at either end."""
    text = values.cast(pl.String).str.strip_chars().str.to_lowercase()
    return text.str.replace_all(" ", "", literal=True)


def _normalised(values: pl.Series) -> pl.Series:
    return pl.select(normalise(pl.lit(values))).to_series()


# ------------------------------------------------------------------------ MinHash LSH
def fill_null_tokens(tokens: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Replace the null tokens (0) of each row (a column of ``tokens``) by another token of
    the same row: the row's token *set* stays the same. An all-null row stays all 0."""
    missing = tokens == 0
    if not missing.any():
        return tokens
    first = np.argmax(~missing, axis=0)
    anchor = tokens[first, np.arange(tokens.shape[1])]
    return np.where(missing, anchor, tokens)


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
    64-bit key (false collisions are ~2**-64 per pair and would be rejected anyway)."""
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
    """64-bit token hashes -> well-mixed 32-bit tokens: xor-fold, then the MurmurHash3
    32-bit finaliser. 0 (null) stays 0.

    Polars hashes integers and floats with a cheap, nearly linear function; fed straight
    into the linear MinHash permutations, structured values (consecutive numbers, prices)
    produce correlated minima and more false candidates. One non-linear mix per token (not
    per permutation) removes that.
    """
    x: np.ndarray[Any, Any] = (tokens ^ (tokens >> np.uint64(32))).astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def field_tokens(hashes: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """(columns x rows) uint32 tokens ``hash(column, value)`` from the (rows x columns)
    value hashes; 0 stays 0 (null)."""
    salt = (np.arange(hashes.shape[1], dtype=np.uint64) + np.uint64(TOKEN_SEED)) * np.uint64(
        0x9E3779B97F4A7C15
    )
    tokens = mix_tokens(hashes.T ^ salt[:, None])
    tokens[hashes.T == 0] = 0
    return tokens


def _band_keys(hashes: np.ndarray[Any, Any], seed: int) -> np.ndarray[Any, Any]:
    """(BANDS x rows) bucket keys of the rows of ``hashes`` (rows x token columns),
    computed chunk by chunk so the token matrix stays small and in cache."""
    rows = hashes.shape[0]
    keys = np.empty((BANDS, rows), dtype=np.uint64)
    for start in range(0, rows, CHUNK_ROWS):
        tokens = fill_null_tokens(field_tokens(hashes[start : start + CHUNK_ROWS]))
        keys[:, start : start + tokens.shape[1]] = band_keys(minhash(tokens, seed))
    return keys


def _bucket_pairs(keys: np.ndarray[Any, Any]) -> pl.DataFrame:
    """Pairs (a < b) of rows sharing a non-null (non-zero) key: every pair within a bucket
    of at most MAX_BUCKET rows, the first row with each other one beyond."""
    frame = pl.DataFrame({"key": keys, "row": np.arange(keys.size, dtype=np.int64)})
    frame = frame.filter((pl.col("key") != 0) & pl.col("key").is_duplicated())
    frame = frame.with_columns(pl.len().over("key").alias("n"))
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


def lsh_pairs(hashes: np.ndarray[Any, Any], seed: int = 0) -> pl.DataFrame:
    """Pairs (``a`` < ``b``) of rows of ``hashes`` (the token columns) that share a band,
    once per band shared."""
    keys = _band_keys(hashes, seed)
    return pl.concat([_bucket_pairs(keys[j]) for j in range(BANDS)])


# ---------------------------------------------------------------------- key blocking
def _hash_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    col = normalise(pl.col(name)) if _is_text(dtype) else pl.col(name)
    h = col.hash(seed=HASH_SEED) | 1
    zero = pl.lit(0, pl.UInt64)
    return pl.when(pl.col(name).is_null()).then(zero).otherwise(h).alias(name)


def value_hashes(
    frame: pl.DataFrame,
    columns: Sequence[str],
    keep: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """(rows x columns) uint64 hashes of the normalised values, column-major; 0 is null
    (every value hash has its lowest bit set). With ``keep`` (a boolean mask over the
    frame's rows), only the kept rows, in order.

    Filled HASH_BATCH columns at a time into the preallocated result: the transient is a
    few columns of hashes, not a second (and third, row-major) copy of the matrix."""
    rows = frame.height if keep is None else int(np.count_nonzero(keep))
    out = np.empty((rows, len(columns)), dtype=np.uint64, order="F")
    mask = None if keep is None else pl.Series(keep)
    schema = frame.schema  # built on each access: once, not per column (wide tables)
    for start in range(0, len(columns), HASH_BATCH):
        queries = []
        for name in columns[start : start + HASH_BATCH]:
            # a frame of the column alone: a query's cost grows with its frame's width
            lazy = frame.get_column(name).to_frame().lazy()
            query = lazy.select(_hash_expr(name, schema[name]))
            queries.append(query if mask is None else query.filter(mask))
        for k, done in enumerate(pl.collect_all(queries), start=start):
            out[:, k] = done.to_series().to_numpy()
            del done
    return out


def value_counts(hashes: np.ndarray[Any, Any]) -> list[np.ndarray[Any, Any]]:
    """Counts of the non-null values of each column of ``hashes``."""
    frame = pl.DataFrame({f"c{k}": hashes[:, k] for k in range(hashes.shape[1])}).lazy()
    queries = [
        frame.select(pl.col(c).filter(pl.col(c) != 0)).group_by(c).len().select("len")
        for c in frame.collect_schema().names()
    ]
    return [f.to_series().to_numpy().astype(np.float64) for f in pl.collect_all(queries)]


def value_summary(hashes: np.ndarray[Any, Any]) -> tuple[list[float], np.ndarray[Any, Any]]:
    """Per column of ``hashes``: the pairs of rows sharing a value (``_pair_cost``) and the
    non-null rows; from ``value_counts`` of HASH_BATCH columns at a time, so the counts
    of every column are never held together."""
    costs: list[float] = []
    present: list[float] = []
    for start in range(0, hashes.shape[1], HASH_BATCH):
        for counts in value_counts(hashes[:, start : start + HASH_BATCH]):
            costs.append(_pair_cost(counts))
            present.append(counts.sum())
    return costs, np.array(present, dtype=np.float64)


def _value_counts(keys: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Counts of the non-null (non-zero) values of a uint64 key column."""
    series = pl.Series("k", keys)
    counts = series.filter(series != 0).value_counts()["count"]
    out: np.ndarray[Any, Any] = counts.to_numpy().astype(np.float64)
    return out


def _pair_cost(counts: np.ndarray[Any, Any]) -> float:
    """Pairs of rows sharing a value."""
    return float((counts * (counts - 1)).sum() / 2)


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


# ---------------------------------------------------------------------- comparisons
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


def find_near_duplicates_in(
    table: ScanTable,
    schema: Mapping[str, pl.DataType],
    stats: Sequence[ColumnStats],
    exclude: Sequence[int] = (),
    seed: int = 0,
    segment_rows: int | None = None,
) -> NearDuplicates:
    """``find_near_duplicates`` on a ``ScanTable`` in bounded memory.

    When the table is in memory, or the rows left after ``exclude`` (a list or ``RowSet``
    of the redundant exact copies) number at most ``segment_rows`` (default ``SEGMENT_ROWS``, or
    ``DATRIX_NEAR_DUP_SEGMENT_ROWS``), this is ``find_near_duplicates`` on the whole table
    (collected on the streaming engine when the table is bounded). Otherwise the table is
    searched one hash segment at a time (see the module docstring, *Segments*)."""
    limit = segment_limit(segment_rows)
    unique_rows = table.rows - _count(exclude)
    if unique_rows <= limit or not table.bounded:  # in memory: the whole table at once
        return _find_whole(table.lazy, stats, table.rows, exclude, seed, table.collect)
    used, informative = select_columns(stats, table.rows, unique_rows)
    ignored = tuple(surrogate_keys(stats, unique_rows))
    if not used:
        return NearDuplicates(keys_ignored=ignored)
    segments = math.ceil(unique_rows / limit)
    partition = partition_column(stats, table.rows, used, limit)
    index = _free_name(list(schema), ROW_INDEX)
    which = segment_expr(partition, schema[partition] if partition else None, index, segments)
    dropped = _row_mask(exclude, table.rows)
    # Every segment compares about n^2 / 2 of its own pairs; the chance threshold is set
    # for all the pairs compared in all segments together, as the whole-table search sets
    # it for all the table's pairs.
    found: list[np.ndarray[Any, Any]] = []
    candidates, truncated = 0, False
    with tempfile.TemporaryDirectory(prefix="datrix-segments-") as spill:
        for frame in _segment_frames(table, used, index, which, segments, dropped, Path(spill)):
            ids = frame[index].to_numpy().astype(np.int64)
            frame = frame.drop(index)
            if ids.size < 2:
                continue
            pairs_arr, count, cut = _detect(
                frame, used, informative, None, ids, seed, chance_scale=float(segments)
            )
            del frame
            candidates += count
            truncated = truncated or cut
            found.append(pairs_arr)
    pairs_arr = np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)
    return _result(
        np.sort(pairs_arr, axis=1),
        candidates,
        truncated,
        len(used),
        ignored,
        segments=segments,
        partition=partition,
    )


def _segment_frames(
    table: ScanTable,
    used: Sequence[str],
    index: str,
    which: pl.Expr,
    segments: int,
    dropped: np.ndarray[Any, Any] | None,
    spill: Path,
) -> Iterator[pl.DataFrame]:
    """Each segment's rows (``used`` columns and the row number ``index``, excluded rows
    left out), one segment at a time. The table is read once, a chunk of rows at a time,
    each chunk's rows appended to their segment's spill file (LZ4 Parquet under
    ``spill``); reading the table once per segment would cost ``segments`` full reads."""
    paths = [spill / f"segment-{part}.parquet" for part in range(segments)]
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for start, chunk in table.chunks(used):
            ids = np.arange(start, start + chunk.height, dtype=np.int64)
            frame = chunk.with_columns(pl.Series(index, ids, dtype=pl.UInt32))
            if dropped is not None:
                frame = frame.filter(pl.Series(~dropped[ids]))
            key = _free_name([*used, index], "__datrix_segment")
            frame = frame.with_columns(which.alias(key))
            for (part,), piece in frame.partition_by(key, as_dict=True, include_key=False).items():
                arrow = piece.to_arrow()
                writer = writers.get(int(part))
                if writer is None:
                    writer = pq.ParquetWriter(paths[int(part)], arrow.schema, compression="lz4")
                    writers[int(part)] = writer
                writer.write_table(arrow)
    finally:
        for writer in writers.values():
            writer.close()
    for part in range(segments):
        if part in writers:
            yield pl.read_parquet(paths[part], glob=False)
            paths[part].unlink()


def segment_limit(segment_rows: int | None = None) -> int:
    """Rows of one segment: ``segment_rows``, else ``DATRIX_NEAR_DUP_SEGMENT_ROWS``, else
    SEGMENT_ROWS."""
    if segment_rows is None:
        segment_rows = int(env_number("DATRIX_NEAR_DUP_SEGMENT_ROWS", SEGMENT_ROWS))
    return max(2, int(segment_rows))


def partition_column(
    stats: Sequence[ColumnStats], rows: int, used: Sequence[str], segment_rows: int
) -> str | None:
    """The column whose normalised value decides a row's segment: among the compared
    columns (``select_columns``: no id-like or constant column) whose most frequent value
    fits in half a segment, the one two random rows least often agree on (``_agreement``,
    the best single-column blocking key), preferring columns at most MAX_PARTITION_NULLS
    null (a row with a null goes to a segment by its row number), then fewer nulls, then
    the name. None when no column fits: the segments are then row-number classes."""
    by_name = {s.name: s for s in stats}
    fits = [
        c
        for c in used
        if max((count for _, count in by_name[c].top_values), default=0) <= segment_rows // 2
    ]
    if not fits:
        return None

    def rank(name: str) -> tuple[bool, float, float, str]:
        nulls = by_name[name].null_count / max(rows, 1)
        return nulls > MAX_PARTITION_NULLS, _agreement(by_name[name], rows), nulls, name

    return min(fits, key=rank)


def segment_expr(
    column: str | None, dtype: pl.DataType | None, index: str, segments: int
) -> pl.Expr:
    """A row's segment (UInt64, 0 .. segments - 1): a hash of the normalised value of
    ``column`` (as compared: case and spaces ignored), so rows agreeing on it share a
    segment; the row number ``index`` when the value is null or there is no column.

    Hashed with its own seed: ``_hash_expr`` sets the lowest bit, so its hashes modulo an
    even number of segments would fill only the odd ones."""
    by_row = pl.col(index).cast(pl.UInt64) % segments
    if column is None or dtype is None:
        return by_row
    value = normalise(pl.col(column)) if _is_text(dtype) else pl.col(column)
    by_value = value.hash(seed=PARTITION_SEED) % segments
    return pl.when(pl.col(column).is_null()).then(by_row).otherwise(by_value)


def _free_name(taken: Sequence[str], base: str) -> str:
    name = base
    while name in taken:
        name = f"_{name}"
    return name


def _count(exclude: Sequence[int]) -> int:
    """Distinct rows in ``exclude``, without materialising a RowSet's indices."""
    if isinstance(exclude, RowSet):
        return len(exclude)
    return int(np.unique(as_indices(exclude)).size)


def _row_mask(exclude: Sequence[int], rows: int) -> np.ndarray[Any, Any] | None:
    """Boolean mask of the excluded rows (one byte a row: 27 MB for 27 million rows,
    against 216 MB for the indices of a table that is all copies), or None when nothing
    is excluded."""
    if len(exclude) == 0:
        return None
    if isinstance(exclude, RowSet) and exclude.size == rows:
        return exclude.mask()
    mask = np.zeros(rows, dtype=bool)
    mask[as_indices(exclude)] = True
    return mask


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
    pairs_arr, candidates, truncated = _detect(
        frame, used, informative, keep if filtered else None, kept_rows, seed
    )
    return _result(pairs_arr, candidates, truncated, len(used), ignored)


def _detect(
    frame: pl.DataFrame,
    used: list[str],
    informative: list[str],
    keep: np.ndarray[Any, Any] | None,
    row_ids: np.ndarray[Any, Any],
    seed: int,
    chance_scale: float = 1.0,
) -> tuple[np.ndarray[Any, Any], int, bool]:
    """The search on the rows of ``frame`` (those in ``keep``, a mask, when given): the
    pairs found as (pairs x 2) ``row_ids`` (the table row of each searched row), the
    number of candidates and whether they were cut. The chance threshold is set for
    ``chance_scale`` times the frame's row pairs (the segments searched alike)."""
    hashes = value_hashes(frame, used, keep)
    n = hashes.shape[0]
    empty = np.empty((0, 2), dtype=np.int64)
    costs, present = value_summary(hashes)
    equal_share = np.array(costs) / np.maximum(1.0, present * (present - 1) / 2)

    tokens_from = [used.index(c) for c in informative]
    keys = choose_keys(hashes, costs)
    candidates, truncated = candidate_pairs(hashes, keys, tokens_from, seed)
    if candidates.height == 0:
        return empty, 0, truncated
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
    for start in range(0, a.size, VERIFY_CHUNK):
        ca, cb = a[start : start + VERIFY_CHUNK], b[start : start + VERIFY_CHUNK]
        alive = hopeful_pairs(compare, ca, cb, model, needed)
        if alive.size == 0:
            continue
        ca, cb = ca[alive], cb[alive]
        score, evidence = score_pairs(compare.levels(ca, cb), model)
        match = (score >= 0.0) & (evidence >= needed)
        found.append(np.stack([row_ids[ca[match]], row_ids[cb[match]]], axis=1))
    pairs_arr = np.concatenate(found) if found else empty
    return pairs_arr, int(candidates.height), truncated


def _result(
    pairs_arr: np.ndarray[Any, Any],
    candidates: int,
    truncated: bool,
    columns: int,
    ignored: tuple[str, ...],
    segments: int = 1,
    partition: str | None = None,
) -> NearDuplicates:
    """The finding from the (pairs x 2) table rows found, each pair ``(i, j)``, ``i < j``."""
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
    return replace(
        base,
        pairs=sorted((int(x), int(y)) for x, y in pairs_arr),
        rows=np.unique(pairs_arr).tolist(),
        redundant=int(np.unique(pairs_arr[:, 1]).size),
    )
