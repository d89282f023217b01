"""The columns a near-duplicate search compares, and how their values are normalised
(see the package docstring, *Columns*)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from datrix.jobs.quality.profiling import ColumnStats

# Types compared, and types whose columns count as ids when unique (a unique float is a
# measurement).
ComparableTypes = frozenset({"integer", "float", "string", "boolean", "date", "datetime"})
IdTypes = frozenset({"integer", "string", "date", "datetime"})
MAX_AGREEMENT = 0.01  # informative column: two random rows agree with p <= 1 %
MIN_INFORMATIVE = 3  # with fewer informative columns, every used column gives tokens


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
