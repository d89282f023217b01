"""Format checks on text columns: spelling variants of one category value, mixed date
formats, and values that do not fit a column's evident type.

* **Case/whitespace variants** (``inconsistent_format``): in a categorical text column,
  values that differ only by case or whitespace ("Berlin", "berlin", " Berlin ") are one
  category spelled several ways. Categorical = at most ``MAX_CATEGORIES`` distinct values
  and at most ``MAX_CATEGORY_RATIO`` of the non-null values distinct; free text (notes,
  e-mail addresses) is not checked, where a stray space is not a second category, and
  neither are numeric- or date-like text columns (their checks are below). The affected
  rows are those whose value is not the most frequent spelling of its category.
* **Mixed date formats** (``inconsistent_format``): a text column whose values are
  almost all dates (``TYPE_SHARE`` of a sample) written in more than one format
  (2024-03-01 beside 01/03/2024); affected rows are those not in the most common format.
* **Type mismatch** (``type_mismatch``): a text column whose sampled values are almost all
  numbers (or dates), checked on the whole column for the values that are not.

Which columns are numeric- or date-like is decided on an evenly spaced sample (shared with
the PII check); the affected rows are always found on the whole column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from datrix.jobs.quality.issues import counted, verb
from datrix.jobs.quality.profiling import ColumnStats
from datrix.jobs.quality.rowset import RowSet
from datrix.jobs.quality.table import ScanTable

TYPE_SHARE = 0.95  # "mostly numbers/dates": at least 95 % of the sampled values
MIN_TYPED_VALUES = 20  # fewer sampled values than this: no type is inferred
MAX_CATEGORIES = 100_000
MAX_CATEGORY_RATIO = 0.5
EXAMPLES = 3

TextType = Literal["number", "date"]


@dataclass(frozen=True)
class DateFormat:
    label: str
    shape: str  # anchored regex
    formats: tuple[str, ...]  # strptime formats; a value is a date when one parses it


# Shapes are mutually exclusive. Day-first and month-first dates share a shape and are one
# format here: the shape cannot tell them apart.
DATE_FORMATS: tuple[DateFormat, ...] = (
    DateFormat("YYYY-MM-DD", r"^\d{4}-\d{2}-\d{2}$", ("%Y-%m-%d",)),
    DateFormat("YYYY/MM/DD", r"^\d{4}/\d{2}/\d{2}$", ("%Y/%m/%d",)),
    DateFormat("DD/MM/YYYY", r"^\d{1,2}/\d{1,2}/\d{4}$", ("%d/%m/%Y", "%m/%d/%Y")),
    DateFormat("DD.MM.YYYY", r"^\d{1,2}\.\d{1,2}\.\d{4}$", ("%d.%m.%Y",)),
    DateFormat("DD-MM-YYYY", r"^\d{1,2}-\d{1,2}-\d{4}$", ("%d-%m-%Y", "%m-%d-%Y")),
    DateFormat(
        "YYYY-MM-DD hh:mm[:ss]",
        r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$",
        (),  # the date part is checked as YYYY-MM-DD
    ),
)


@dataclass(frozen=True)
class FormatFinding:
    """One column's finding; ``type`` is ``inconsistent_format`` or ``type_mismatch``."""

    type: Literal["inconsistent_format", "type_mismatch"]
    column: str
    description: str
    rows: Sequence[int] = field(default_factory=list)  # a RowSet from the Polars engine


def _text(values: pl.Series) -> pl.Series:
    return values.cast(pl.String).str.strip_chars()


def is_number(values: pl.Series) -> npt.NDArray[np.bool_]:
    """Values that parse as a number (after trimming); nulls are False."""
    parsed = _text(values).cast(pl.Float64, strict=False)
    return parsed.is_not_null().to_numpy()


def _valid_dates(values: pl.Series, fmt: DateFormat) -> npt.NDArray[np.bool_]:
    formats = fmt.formats or ("%Y-%m-%d",)
    text = values if fmt.formats else values.str.slice(0, 10)
    valid = np.zeros(values.len(), dtype=bool)
    for f in formats:
        valid |= text.str.to_date(f, strict=False).is_not_null().to_numpy()
    return valid


def date_formats(values: pl.Series) -> npt.NDArray[np.int8]:
    """Index into ``DATE_FORMATS`` of each (trimmed) value that is a valid date in that
    format, -1 otherwise. The commonest shape is tried on every value, the others only on
    what is left."""
    text = _text(values)
    out = np.full(values.len(), -1, dtype=np.int8)
    todo = np.flatnonzero(text.is_not_null().to_numpy())
    for i, fmt in enumerate(DATE_FORMATS):
        if todo.size == 0:
            break
        subset = text.gather(todo)
        shaped = subset.str.contains(fmt.shape).fill_null(False).to_numpy()
        if not shaped.any():
            continue
        idx = np.flatnonzero(shaped)
        valid = _valid_dates(subset.gather(idx), fmt)
        out[todo[idx[valid]]] = i
        todo = np.delete(todo, idx)
    return out


def infer_text_types(samples: pl.DataFrame, columns: Sequence[str]) -> dict[str, TextType]:
    """Columns whose sampled non-null values are at least ``TYPE_SHARE`` numbers or
    dates (numbers win: "20240301" is a number)."""
    out: dict[str, TextType] = {}
    for name in columns:
        values = samples[name].explode().drop_nulls()
        n = values.len()
        if n < MIN_TYPED_VALUES:
            continue
        if is_number(values).sum() >= TYPE_SHARE * n:
            out[name] = "number"
        elif (
            # every date format starts with a digit: a cheap test before six regexes
            values.str.contains(r"^\s*\d").sum() >= TYPE_SHARE * n
            and (date_formats(values) >= 0).sum() >= TYPE_SHARE * n
        ):
            out[name] = "date"
    return out


def _first_distinct(found: list[Any], values: pl.Series) -> None:
    """Extend ``found`` with ``values``' distinct values in order, up to ``EXAMPLES``."""
    for v in values.unique(maintain_order=True).head(EXAMPLES).to_list():
        if len(found) < EXAMPLES and v not in found:
            found.append(v)


def typed_column_findings(
    source: pl.LazyFrame | ScanTable, types: Mapping[str, TextType]
) -> list[FormatFinding]:
    """Type mismatches (and, for date columns, mixed formats) on the whole columns (a
    chunk at a time on a bounded table; what is kept per row is a flag and a format code)."""
    if not types:
        return []
    table = ScanTable.of(source)
    bad: dict[str, list[npt.NDArray[np.bool_]]] = {name: [] for name in types}
    formats: dict[str, list[npt.NDArray[np.int8]]] = {name: [] for name in types}
    examples: dict[str, list[Any]] = {name: [] for name in types}
    present = dict.fromkeys(types, 0)
    for _, chunk in table.chunks(list(types)):
        for name, kind in types.items():
            values = chunk[name]
            here = values.is_not_null().to_numpy()
            present[name] += int(here.sum())
            if kind == "number":
                wrong = here & ~is_number(values)
            else:
                fmt = date_formats(values)
                formats[name].append(fmt)
                wrong = here & (fmt < 0)
            bad[name].append(wrong)
            if wrong.any() and len(examples[name]) < EXAMPLES:
                _first_distinct(examples[name], values.filter(pl.Series(wrong)))
    findings: list[FormatFinding] = []
    for name, kind in types.items():
        if kind == "date":
            findings += _mixed_dates(name, np.concatenate(formats[name]))
        rows = RowSet.concat_masks(bad.pop(name))
        if rows:
            description = type_mismatch_description(
                name, kind, len(rows), present[name], examples[name]
            )
            findings.append(FormatFinding("type_mismatch", name, description, rows))
    return findings


def type_mismatch_description(
    name: str, kind: TextType, bad: int, present: int, examples: Sequence[Any]
) -> str:
    """A type mismatch: ``bad`` of the ``present`` values of a column of ``kind`` are not
    of that kind (the Polars and the Spark engines)."""
    what = "numbers" if kind == "number" else "dates"
    shown = ", ".join(repr(v) for v in examples)
    return (
        f"{counted(bad, 'value')} in column {name!r} "
        f"{verb(bad, 'is', 'are')} not {what}, though "
        f"{100 * (1 - bad / present):.2f}% of its values are "
        f"(e.g. {shown})"
    )


def _mixed_dates(name: str, fmt: np.ndarray[Any, Any]) -> list[FormatFinding]:
    mixed = mixed_date_formats(name, fmt)
    if mixed is None:
        return []
    description, off = mixed
    return [FormatFinding("inconsistent_format", name, description, RowSet.from_mask(off))]


def mixed_date_formats(
    name: str, fmt: np.ndarray[Any, Any], weights: np.ndarray[Any, Any] | None = None
) -> tuple[str, npt.NDArray[np.bool_]] | None:
    """A column of several date formats (``fmt``: ``date_formats`` of its values, each
    value counted ``weights`` times, once without): the description and the mask of the
    values not in the commonest format; None when one format or none is used."""
    dated = fmt >= 0
    counts = np.bincount(
        fmt[dated], weights=None if weights is None else weights[dated], minlength=len(DATE_FORMATS)
    ).astype(np.int64)
    used = [i for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    if len(used) < 2:
        return None
    main = int(used[0])
    off = dated & (fmt != main)
    n_off = int(off.sum()) if weights is None else int(weights[off].sum())
    others = ", ".join(f"{DATE_FORMATS[i].label} ({counts[i]:,})" for i in used[1:])
    description = (
        f"column {name!r} mixes date formats: {counts[main]:,} values are "
        f"{DATE_FORMATS[main].label}, {n_off:,} are not ({others})"
    )
    return description, off


def category_key(values: pl.Expr) -> pl.Expr:
    """The spelling-independent key of a category value: trimmed, inner whitespace runs
    collapsed to one space, lower-cased."""
    return values.str.strip_chars().str.replace_all(r"\s+", " ").str.to_lowercase()


def categorical_columns(
    stats: Sequence[ColumnStats], rows: int, exclude: Mapping[str, object]
) -> list[str]:
    """Text columns that look categorical (see the module docstring)."""
    out = []
    for s in stats:
        present = rows - s.null_count
        if (
            s.logical_type == "string"
            and s.name not in exclude
            and 2 <= s.distinct_count <= MAX_CATEGORIES
            and s.distinct_count <= MAX_CATEGORY_RATIO * present
        ):
            out.append(s.name)
    return out


def case_variant_findings(
    source: pl.LazyFrame | ScanTable, columns: Sequence[str]
) -> list[FormatFinding]:
    """Categories spelled several ways, per column (value counts for all columns run
    together in memory, one after the other when bounded; the rows are then found with
    one ``is_in`` per flagged column, a chunk at a time when bounded)."""
    if not columns:
        return []
    table = ScanTable.of(source)
    value = pl.col("value")
    queries = [
        table.narrow([c])
        .select(pl.col(c).cast(pl.String).alias("value"))
        .group_by("value")
        .len(name="count")
        .drop_nulls()
        .with_columns(category_key(value).alias("key"))
        .filter(pl.col("value").n_unique().over("key") > 1)
        for c in columns
    ]
    tables = table.collect_all(queries)
    variants: dict[str, pl.DataFrame] = {}
    for name, found in zip(columns, tables, strict=True):
        if found.height == 0:
            continue
        variants[name] = spelling_variants(found)
    if not variants:
        return []
    masks: dict[str, list[npt.NDArray[np.bool_]]] = {name: [] for name in variants}
    exprs = [
        pl.col(c).cast(pl.String).is_in(v["value"].implode()).fill_null(False).alias(c)
        for c, v in variants.items()
    ]
    for _, chunk in table.chunks(list(variants)):
        hits = chunk.select(exprs)
        for name in variants:
            masks[name].append(hits[name].to_numpy())
    findings = []
    for name, off in variants.items():
        rows = RowSet.concat_masks(masks.pop(name))
        description = case_variant_description(name, len(rows), off)
        findings.append(FormatFinding("inconsistent_format", name, description, rows))
    return findings


def spelling_variants(found: pl.DataFrame) -> pl.DataFrame:
    """From value counts (``value``, ``count``, ``key``: ``category_key``) of categories
    spelled several ways: the non-canonical spellings, each with its ``canonical`` one and
    that one's ``count_main``. The commonest spelling of each key is canonical (ties: the
    smaller value)."""
    value = pl.col("value")
    ranked = found.sort(["key", "count", "value"], descending=[False, True, False])
    canonical = ranked.group_by("key", maintain_order=True).first()
    off = ranked.join(canonical.select("key", canonical=value), on="key").filter(
        value != pl.col("canonical")
    )
    return off.join(canonical.select("key", "count"), on="key", suffix="_main")


def case_variant_description(name: str, n: int, off: pl.DataFrame) -> str:
    """Case/whitespace variants: ``n`` values of the column spelled as the
    ``spelling_variants`` ``off`` (the Polars and the Spark engines)."""
    keys = off["key"].n_unique()
    worst = off.sort(["count_main", "key"], descending=[True, False]).row(0, named=True)
    return (
        f"{counted(n, 'value')} in column {name!r} "
        f"{verb(n, 'is a case/whitespace variant', 'are case/whitespace variants')} "
        f"of another spelling ({counted(keys, 'category', 'categories')} spelled "
        "several ways, e.g. "
        f"{worst['value']!r} for {worst['canonical']!r})"
    )
