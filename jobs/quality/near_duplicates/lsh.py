"""MinHash LSH over field tokens (see the package docstring, *Candidates*), and the
bucket pairs that key blocking shares."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

BANDS = 10
ROWS_PER_BAND = 3
NUM_PERM = BANDS * ROWS_PER_BAND
MAX_BUCKET = 32  # larger buckets are linked as a star around their first row
CHUNK_ROWS = 1 << 16
TOKEN_SEED = 0x7A11


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
