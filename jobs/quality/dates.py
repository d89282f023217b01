"""Dates are dates: typed date and timestamp columns, and the checks only dates allow.

**Which columns.** Native ``Date`` and ``Datetime`` columns (with or without a time zone),
and text columns whose sampled values are at least 95 % dates (``formats.infer_text_types``:
ISO dates, ``2026-01-01T10:00:00+02:00`` timestamps with or without an offset, and the
other shapes of ``formats.DATE_FORMATS``). Text columns are typed **at scan time**: the
stored version keeps the user's bytes, the format-variant and type-mismatch checks still
see the raw text, and the column profile shows the inferred type (``date`` or
``datetime``, ``extra["inferred_from"] = "string"``, ``extra["timezone"]``: the zone of a
native column, ``"UTC offsets"`` for text with offsets, which are compared as UTC
instants; text without an offset is read as UTC wall-clock time).

Every engine hands this module the same thing per column: its distinct values with their
counts (``key``: the raw value, ``micros``: microseconds since 1970-01-01 UTC, null for
text that is not a date, ``count``). Everything below is computed from those, in Python,
so the Polars and Spark engines report the same; the engines then find the rows holding
the flagged values.

**Profile.** ``min``, ``max`` (ISO text, over every value) and a ``histogram`` of
``HISTOGRAM_BINS`` equal-width bins between the smallest and largest value that is not a
placeholder date (``{"start", "end", "count"}``, ISO; the last bin includes its end).

**Placeholder dates** (``sentinel_values``, the date form of ``sentinels.py``): a day in
``PLACEHOLDER_DAYS`` (1900-01-01, 1970-01-01, 2099-12-31, 9999-12-31, ...; any time of
that day for timestamps) that is either a spike (at least ``MIN_SPIKE_ROWS`` values and
``SPIKE_RATIO`` times the median count per day of the column's other days) or detached
(more than ``DETACHED_DAYS`` from the nearest other value). A column holding nothing else
is not judged (a constant column is its own finding).

**The file's own latest time** ``R``, what "in the future" is measured against (a scan
never reads the clock, so the same file always gives the same report). Per *event* column
(any date column whose name says neither birth nor a planned time: due, expiry, end,
until, valid, scheduled, next, ...), its latest value before an isolated tail: walking the
distinct days (placeholders excluded) from the top, the lowest day ``a`` followed by a
gap of more than ``max(GAP_MIN_DAYS, GAP_SHARE * span)`` days (``span``: the 1st to 99th
percentile of the column's days) with at most ``TAIL_SHARE`` of the column's values beyond
it; the column's largest value when there is no such gap. ``R`` is the latest of those
over the event columns.

**Future timestamps** (``impossible_values``): values of an event column later than
``R`` plus ``GRACE_DAYS`` (time zones): they lie in the isolated tail beyond every event
column's latest time.

**Impossible birth dates** (``impossible_values``): in a column named like a birth date
(birth, dob, born, birthday, birthdate), dates after the reference (``R``; the birth
column's own latest as above when the file has no event column) and dates implying an
age over ``MAX_AGE_YEARS`` (130) at the reference. Placeholder dates are reported as
placeholders only.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from datrix.jobs.quality.formats import DATE_FORMATS, date_formats
from datrix.jobs.quality.sentinels import SPIKE_RATIO, name_words

DAY_US = 86_400_000_000
PLACEHOLDER_DAYS: tuple[str, ...] = (
    "0001-01-01",
    "1800-01-01",
    "1899-12-31",
    "1900-01-01",
    "1901-01-01",
    "1970-01-01",
    "2099-12-31",
    "2100-01-01",
    "2999-12-31",
    "3000-01-01",
    "9999-01-01",
    "9999-12-31",
)
MIN_SPIKE_ROWS = 3
DETACHED_DAYS = 365
GAP_MIN_DAYS = 30
GAP_SHARE = 0.05
TAIL_SHARE = 0.01
GRACE_DAYS = 1
MAX_AGE_YEARS = 130
HISTOGRAM_BINS = 20
BIRTH_WORDS = frozenset({"birth", "dob", "born", "birthday", "birthdate", "bday"})
_PLANNED = """due expiry expires expiration expire exp end ends ending until valid validity
    scheduled schedule planned plan deadline next renewal renews maturity forecast target
    eta estimated appointment booking departure arrival"""
PLANNED_WORDS = frozenset(_PLANNED.split())
_EPOCH = dt.datetime(1970, 1, 1)
_PLACEHOLDER_DAY_NUMBERS = {
    (dt.date.fromisoformat(d) - _EPOCH.date()).days: d for d in PLACEHOLDER_DAYS
}


@dataclass(frozen=True)
class TemporalColumn:
    """One date or timestamp column as every engine hands it over (module docstring)."""

    name: str
    kind: str  # "date" | "datetime"
    timezone: str | None  # a zone name, "UTC offsets" (text), None (naive)
    text: bool  # typed from text at scan time
    counts: pl.DataFrame  # key (raw value), micros (Int64, null = not a date), count


@dataclass(frozen=True)
class DateFinding:
    type: str  # "sentinel_values" | "impossible_values"
    column: str
    description: str
    keys: pl.Series  # the raw values whose rows are affected
    rows: Sequence[int] = field(default_factory=list)  # filled in by the engine


@dataclass
class DateChecks:
    profiles: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    findings: list[DateFinding] = field(default_factory=list)
    cells: int = 0  # non-null values of the date columns
    placeholder_cells: int = 0
    impossible_cells: int = 0


def text_micros(values: pl.Series) -> tuple[pl.Series, bool, bool]:
    """Microseconds since 1970 (UTC) of each date-shaped text value (null otherwise), and
    whether any value has a time of day, and any an offset."""
    text = values.cast(pl.String).str.strip_chars()
    out = np.zeros(len(text), dtype=np.int64)
    valid = np.zeros(len(text), dtype=bool)
    # Fast path for the common ISO forms (a date; a timestamp with seconds and an offset),
    # the shape-by-shape parse below for what is left.
    iso_start = text.str.contains(r"^\d{4}-\d{2}-\d{2}").fill_null(False)
    day = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.epoch("us")
    stamp = text.str.to_datetime(
        "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC", time_unit="us"
    ).dt.epoch("us")
    fast = pl.select(pl.when(iso_start).then(pl.coalesce(day, stamp))).to_series()
    got = fast.is_not_null().to_numpy()
    out[got] = fast.drop_nulls().to_numpy()
    valid[got] = True
    has_offset = bool(stamp.filter(iso_start).is_not_null().any())
    has_time = has_offset
    todo = np.flatnonzero(~valid & text.is_not_null().to_numpy())
    rest = text.gather(todo)
    fmt = date_formats(rest)
    for i, shape in enumerate(DATE_FORMATS):
        idx = todo[np.flatnonzero(fmt == i)]
        if idx.size == 0:
            continue
        part = text.gather(idx)
        if shape.formats:
            parsed = pl.select(
                pl.coalesce([part.str.to_date(f, strict=False) for f in shape.formats])
            ).to_series()
            micros = parsed.cast(pl.Datetime("us")).dt.epoch("us")
        else:
            has_time = True
            iso = part.str.replace(" ", "T").str.replace("Z$", "+00:00")
            iso = iso.str.replace(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2})([^:\d]|$)", "${1}:00${2}")
            offset = iso.str.contains(r"[+-]\d{2}:?\d{2}$")
            has_offset = has_offset or bool(offset.any())
            aware = iso.str.to_datetime(
                "%Y-%m-%dT%H:%M:%S%.f%z", strict=False, time_zone="UTC", time_unit="us"
            )
            naive = iso.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
            micros = pl.select(
                pl.when(offset).then(aware.dt.epoch("us")).otherwise(naive.dt.epoch("us"))
            ).to_series()
        got = micros.is_not_null().to_numpy()
        out[idx[got]] = micros.drop_nulls().to_numpy()
        valid[idx[got]] = True
    series = pl.select(pl.when(pl.Series(valid)).then(pl.Series(out))).to_series()
    return series.alias("micros"), has_time, has_offset


def native_micros(values: pl.Series) -> pl.Series:
    """Microseconds since 1970 of a Polars Date / Datetime series (a zoned datetime: its
    UTC instant; a naive one: its wall-clock time read as UTC)."""
    if values.dtype == pl.Date:
        return values.cast(pl.Datetime("us")).dt.epoch("us").alias("micros")
    return values.dt.epoch("us").alias("micros")


def text_column(name: str, counts: pl.DataFrame) -> TemporalColumn:
    """A text column's value counts (``value``, ``count``) as a ``TemporalColumn``."""
    micros, has_time, has_offset = text_micros(counts["value"])
    frame = pl.DataFrame(
        {"key": counts["value"], "micros": micros, "count": counts["count"].cast(pl.Int64)}
    )
    zone = "UTC offsets" if has_offset else None
    return TemporalColumn(name, "datetime" if has_time else "date", zone, True, frame)


def native_columns(path: Path) -> dict[str, tuple[str, str | None]]:
    """column -> (kind, time zone) of the date and timestamp columns of a Parquet file, from
    its Arrow schema (so every engine names the same zone)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out: dict[str, tuple[str, str | None]] = {}
    for f in pq.read_schema(path):
        if pa.types.is_date(f.type):
            out[f.name] = ("date", None)
        elif pa.types.is_timestamp(f.type):
            out[f.name] = ("datetime", f.type.tz)
    return out


def is_birth(name: str) -> bool:
    words = name_words(name)
    return bool(set(words) & BIRTH_WORDS) or "dateofbirth" in "".join(words)


def is_planned(name: str) -> bool:
    return bool(set(name_words(name)) & PLANNED_WORDS)


def iso(micros: int, kind: str, zoned: bool = False) -> str:
    """ISO text of a point in time: a date, or a timestamp (``+00:00`` when zoned)."""
    try:
        moment = _EPOCH + dt.timedelta(microseconds=int(micros))
    except OverflowError:
        return f"{micros} us since 1970"
    if kind == "date":
        return moment.date().isoformat()
    return moment.isoformat() + ("+00:00" if zoned else "")


@dataclass
class _Column:
    source: TemporalColumn
    micros: np.ndarray[Any, Any]  # distinct parsed values
    counts: np.ndarray[Any, Any]
    keys: pl.Series  # raw keys aligned with micros
    days: np.ndarray[Any, Any]
    placeholders: dict[int, int] = field(default_factory=dict)  # day -> count
    latest: int | None = None  # micros


def _day_counts(days: np.ndarray[Any, Any], counts: np.ndarray[Any, Any]) -> dict[int, int]:
    unique, index = np.unique(days, return_inverse=True)
    totals = np.bincount(index, weights=counts, minlength=len(unique)).astype(np.int64)
    return dict(zip(unique.tolist(), totals.tolist(), strict=True))


def _placeholders(per_day: Mapping[int, int]) -> dict[int, int]:
    others = {d: c for d, c in per_day.items() if d not in _PLACEHOLDER_DAY_NUMBERS}
    if not others:
        return {}
    median = statistics.median(others.values())
    other_days = np.array(sorted(others))
    found = {}
    for day, count in per_day.items():
        if day not in _PLACEHOLDER_DAY_NUMBERS:
            continue
        spike = count >= max(MIN_SPIKE_ROWS, SPIKE_RATIO * median)
        nearest = int(np.min(np.abs(other_days - day)))
        if spike or nearest > DETACHED_DAYS:
            found[day] = count
    return found


def _latest(per_day: Mapping[int, int], micros: np.ndarray[Any, Any]) -> int | None:
    """The column's latest value before an isolated tail (module docstring), in micros."""
    if not per_day:
        return None
    days = np.array(sorted(per_day))
    counts = np.array([per_day[d] for d in days])
    total = int(counts.sum())
    cumulative = np.cumsum(counts)
    p01 = days[np.searchsorted(cumulative, 0.01 * total)]
    p99 = days[min(len(days) - 1, int(np.searchsorted(cumulative, 0.99 * total)))]
    gap = max(GAP_MIN_DAYS, GAP_SHARE * float(p99 - p01))
    beyond = total - cumulative  # values after each day
    for j in range(len(days) - 1):
        if days[j + 1] - days[j] > gap and beyond[j] <= TAIL_SHARE * total:
            end = (int(days[j]) + 1) * DAY_US
            return int(micros[micros < end].max())
    return int(micros.max())


def assess(columns: Sequence[TemporalColumn], rows: int) -> DateChecks:
    """Profiles and findings of the date columns (module docstring)."""
    if not columns:
        return DateChecks()
    prepared: list[_Column] = []
    for given in columns:
        dated = given.counts.filter(pl.col("micros").is_not_null())
        micros = dated["micros"].to_numpy().astype(np.int64)
        counts = dated["count"].to_numpy().astype(np.int64)
        days = np.floor_divide(micros, DAY_US)
        col = _Column(given, micros, counts, dated["key"], days)
        per_day = _day_counts(days, counts)
        col.placeholders = _placeholders(per_day)
        rest = {d: n for d, n in per_day.items() if d not in col.placeholders}
        keep = ~np.isin(days, list(col.placeholders))
        col.latest = _latest(rest, micros[keep]) if keep.any() else None
        prepared.append(col)

    events = [
        c.latest
        for c in prepared
        if c.latest is not None and not is_birth(c.source.name) and not is_planned(c.source.name)
    ]
    reference = max(events) if events else None
    checks = DateChecks()
    for col in prepared:
        _assess_column(col, reference, rows, checks)
    return checks


def _assess_column(c: _Column, reference: int | None, rows: int, out: DateChecks) -> None:
    src = c.source
    zoned = src.timezone is not None
    kind = src.kind
    extra: dict[str, Any] = {}
    if src.text:
        extra["inferred_from"] = "string"
    if src.timezone:
        extra["timezone"] = src.timezone
    present = int(c.counts.sum())
    out.cells += present
    if present:
        extra["min"] = iso(int(c.micros.min()), kind, zoned)
        extra["max"] = iso(int(c.micros.max()), kind, zoned)
        keep = ~np.isin(c.days, list(c.placeholders))
        extra["histogram"] = _histogram(c.micros[keep], c.counts[keep], kind, zoned)
        if c.placeholders:
            extra["histogram_excludes"] = "placeholder dates"
    out.profiles[src.name] = (kind, extra)

    def share(n: int) -> str:
        return f"{100.0 * n / rows:.2f}%" if rows else "0.00%"

    if c.placeholders:
        flagged = np.isin(c.days, list(c.placeholders))
        n = int(c.counts[flagged].sum())
        shown = ", ".join(
            f"{_PLACEHOLDER_DAY_NUMBERS[d]} ({k:,}x)" for d, k in sorted(c.placeholders.items())
        )
        out.placeholder_cells += n
        out.findings.append(
            DateFinding(
                "sentinel_values",
                src.name,
                f"{n:,} values in column {src.name!r} ({share(n)} of rows) are placeholder "
                f"dates, not dates: {shown}; treat them as missing",
                c.keys.filter(pl.Series(flagged)),
            )
        )
    if c.latest is None:
        return
    keep = ~np.isin(c.days, list(c.placeholders))
    if is_birth(src.name):
        ref = reference if reference is not None else c.latest
        ref_text = iso(ref, "date")
        which = "the file's latest date" if reference is not None else "the column's own latest"
        future = keep & (c.micros > ref + GRACE_DAYS * DAY_US)
        oldest = _years_before(ref, MAX_AGE_YEARS)
        ancient = keep & (c.micros < oldest)
        n_future, n_old = int(c.counts[future].sum()), int(c.counts[ancient].sum())
        if n_future or n_old:
            parts = []
            if n_future:
                parts.append(f"{n_future:,} after {ref_text} ({which}: born in the future)")
            if n_old:
                before = iso(oldest, "date")
                parts.append(f"{n_old:,} before {before} (an age over {MAX_AGE_YEARS})")
            out.impossible_cells += n_future + n_old
            out.findings.append(
                DateFinding(
                    "impossible_values",
                    src.name,
                    f"{n_future + n_old:,} birth dates in column {src.name!r} "
                    f"({share(n_future + n_old)} of rows) are impossible: {'; '.join(parts)}",
                    c.keys.filter(pl.Series(future | ancient)),
                )
            )
    elif reference is not None and not is_planned(src.name):
        future = keep & (c.micros > reference + GRACE_DAYS * DAY_US)
        n = int(c.counts[future].sum())
        if n:
            out.impossible_cells += n
            out.findings.append(
                DateFinding(
                    "impossible_values",
                    src.name,
                    f"{n:,} values in column {src.name!r} ({share(n)} of rows) are in the "
                    f"future: after {iso(reference, kind, zoned)}, the file's own latest time "
                    f"(the last value before an isolated tail, over its dated columns)",
                    c.keys.filter(pl.Series(future)),
                )
            )


def _years_before(micros: int, years: int) -> int:
    """The same calendar day (and time) ``years`` earlier (28 February for 29 February)."""
    try:
        moment = _EPOCH + dt.timedelta(microseconds=micros)
        day = min(moment.day, 28) if (moment.month, moment.day) == (2, 29) else moment.day
        earlier = moment.replace(year=moment.year - years, day=day)
    except (OverflowError, ValueError):
        return micros - int(years * 365.2425 * DAY_US)
    return (earlier - _EPOCH) // dt.timedelta(microseconds=1)


def _histogram(
    micros: np.ndarray[Any, Any], counts: np.ndarray[Any, Any], kind: str, zoned: bool
) -> list[dict[str, Any]]:
    if micros.size == 0:
        return []
    low, high = int(micros.min()), int(micros.max())
    bins = HISTOGRAM_BINS if high > low else 1
    width = max(1, -(-(high - low) // bins))
    index = np.minimum((micros - low) // width, bins - 1)
    totals = np.bincount(index, weights=counts, minlength=bins).astype(np.int64)
    return [
        {
            "start": iso(low + b * width, kind, zoned),
            "end": iso(min(high, low + (b + 1) * width), kind, zoned),
            "count": int(totals[b]),
        }
        for b in range(bins)
    ]
