"""A window's metrics, accumulated micro-batch by micro-batch.

``WindowAccumulator.add`` takes one decoded record (plain Python: counts, offsets, event
and processing times, the duplicate check); ``fold`` turns the rows added since the last
fold into one Polars frame and updates, per field, the non-null count, the observed
types, the HyperLogLog registers and (numeric fields) the values, kept as float64 arrays
(8 bytes a value, not the rows); ``finish`` makes the aggregate's ``WindowMetrics``.
Measured (docs/benchmarks.md, "Stream monitor"): building one frame per micro-batch and
computing every field's metrics in Polars/numpy costs less than decoding the JSON, where a
per-record Python loop over the fields cost more than the decode itself.

- **Counts and null rates.** ``count`` is every record of the window (Debezium deletes
  included); a field's null rate is over the rows with a row image (deletes carry none): a
  field a row lacks is null in that row.
- **Distinct counts**: HyperLogLog with p=10 in datasketch's layout (1,024 int8
  registers, 32-bit hash: the low 10 bits pick the register, the rank counts the leading
  zeros of the other 22), filled vectorised from Polars' seeded 64-bit hash (its low 32
  bits) instead of datasketch's per-value SHA-1. ``FieldMetrics.hll`` is the registers'
  bytes: ``datasketch.HyperLogLog(reg=np.frombuffer(hll, np.int8))`` merges and counts
  them. Polars' hash is stable within one Polars release, so sketches merge across the
  windows and partitions of one deployment (mixing releases over-counts a little).
- **Numeric summaries and drift.** min, max, mean, sample standard deviation, and a
  histogram on the *baseline's* edges: the baseline of a (partition, field) is the first
  window closed with at least ``MIN_BASELINE`` values of the field, whose edges are its
  deciles (11 quantiles, repeats removed); later windows count their values on those edges
  (values outside fall in the first or last bin) and report the PSI against the baseline's
  proportions (each floored at ``PSI_FLOOR``).
- **Freshness**: processing time (when the record was read) minus event time, in seconds.
- **Duplicates**: a record whose identity (the caller's hash of key and source position)
  was seen before is dropped and counted in its window. "Before": in the same window, or
  (``RecentIdentities``, shared by a partition's windows) among the partition's last
  ``RECENT`` identities, so a redelivery whose copies fall in two windows is counted once,
  in the later window.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
import orjson
import polars as pl

from datrix.aggregates.stream import FieldMetrics, SchemaChange, WindowMetrics

P = 10  # HyperLogLog precision: 1,024 registers, ~3.3 % standard error
REGISTERS = 1 << P
HASH_SEED = 0x5EED
MIN_BASELINE = 10  # values of a field a window needs to be its baseline
QUANTILES = np.linspace(0.0, 1.0, 11)
PSI_FLOOR = 1e-4
# Fields measured per window at most: each costs ~1 KiB of registers and a FieldMetrics in
# the window's event, so records with ever new field names cannot grow them without end.
MAX_FIELDS = 1000
# Identities (key + source position) a partition remembers across its windows: ~100 bytes
# each, ~10 MB a partition at most.
RECENT = 100_000


@dataclass(frozen=True)
class Baseline:
    """The histogram a numeric field's later windows are compared with."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


def hll_registers(hashes: np.ndarray) -> np.ndarray:
    """datasketch-layout HyperLogLog registers (p=10, int8) of 64-bit hashes."""
    reg = np.zeros(REGISTERS, dtype=np.int8)
    if hashes.size == 0:
        return reg
    low = (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    index = (low & np.uint32(REGISTERS - 1)).astype(np.intp)
    rest = low >> np.uint32(P)
    bits = np.zeros(rest.size, dtype=np.int64)
    nonzero = rest > 0
    bits[nonzero] = np.floor(np.log2(rest[nonzero].astype(np.float64))).astype(np.int64) + 1
    rank = ((32 - P) - bits + 1).astype(np.int8)
    np.maximum.at(reg, index, rank)
    return reg


def hll_count(registers: np.ndarray) -> int:
    """datasketch's estimate of the registers' cardinality, rounded."""
    from datasketch import HyperLogLog

    if not registers.any():
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "close to the correction threshold"
        return round(float(HyperLogLog(reg=registers.astype(np.int8)).count()))


def _kind(dtype: pl.DataType) -> str:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if dtype == pl.Null:
        return "null"
    if isinstance(dtype, pl.Struct):
        return "struct"
    if isinstance(dtype, pl.List | pl.Array):
        return "list"
    return "string"


def frame_of(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    """One frame of ``rows`` (a field a row lacks is null there), built column by column
    (three times faster than Polars' ``from_dicts``). A field whose values no one Polars
    type holds (an object in one row, text in another) is kept as text, the nested values
    as their JSON."""
    first = tuple(rows[0]) if rows else ()
    if all(tuple(row) == first for row in rows):
        # the common case, every row with the same fields in the same order: the columns
        # by one transposition in C rather than a get per row and field
        by_name: Iterable[tuple[str, Sequence[Any]]] = zip(
            first, zip(*map(dict.values, rows), strict=True), strict=True
        )
    else:
        names = dict.fromkeys(chain.from_iterable(rows))
        by_name = ((name, [row.get(name) for row in rows]) for name in names)
    columns = []
    for name, values in by_name:
        try:
            columns.append(pl.Series(name, values))
            continue
        except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
            pass
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int, float}:
            try:
                columns.append(pl.Series(name, values, dtype=pl.Float64, strict=False))
                continue
            except (pl.exceptions.PolarsError, TypeError, ValueError, OverflowError):
                pass
        columns.append(pl.Series(name, [_text(v) for v in values], dtype=pl.String))
    return pl.DataFrame(columns)


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


class RecentIdentities:
    """The last ``capacity`` record identities seen (a set that forgets its oldest)."""

    def __init__(self, capacity: int = RECENT) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._set: set[int] = set()
        self._order: deque[int] = deque()

    def __contains__(self, identity: object) -> bool:
        return identity in self._set

    def __len__(self) -> int:
        return len(self._set)

    def add(self, identity: int) -> None:
        if identity in self._set:
            return
        self._set.add(identity)
        self._order.append(identity)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())


@dataclass
class FieldAccumulator:
    non_null: int = 0
    types: dict[str, int] = field(default_factory=dict)  # observed type -> non-null values
    registers: np.ndarray = field(default_factory=lambda: np.zeros(REGISTERS, dtype=np.int8))
    numbers: list[np.ndarray] = field(default_factory=list)

    def fold(self, kind: str, hashes: np.ndarray, numbers: np.ndarray | None) -> None:
        """Fold one micro-batch's non-null values: their type, 64-bit hashes and (numeric
        fields) values."""
        self.non_null += hashes.size
        self.types[kind] = self.types.get(kind, 0) + hashes.size
        np.maximum(self.registers, hll_registers(hashes), out=self.registers)
        if numbers is not None:
            self.numbers.append(numbers)

    def kind(self) -> str:
        if not self.types:
            return "null"
        if set(self.types) <= {"int", "float"} and "float" in self.types:
            return "float"
        return max(sorted(self.types), key=lambda k: self.types[k])


def edges_of(values: np.ndarray) -> tuple[float, ...]:
    """A baseline's histogram edges: its deciles, repeats removed (two edges around a
    constant)."""
    edges = np.unique(np.quantile(values, QUANTILES))
    if edges.size < 2:
        v = float(edges[0])
        return (v - 0.5, v + 0.5)
    return tuple(float(e) for e in edges)


def histogram(values: np.ndarray, edges: Sequence[float]) -> tuple[int, ...]:
    """Counts of ``values`` in the bins between ``edges`` (len(edges) - 1 of them; values
    below the first edge count in the first bin, above the last in the last)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    index = np.searchsorted(inner, values, side="right")
    return tuple(int(c) for c in np.bincount(index, minlength=len(edges) - 1))


def psi(expected: Sequence[int], actual: Sequence[int]) -> float:
    """Population stability index of ``actual`` against ``expected`` (same bins)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    pe = np.maximum(e / e.sum(), PSI_FLOOR)
    pa = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def baselines_from(history: Sequence[Sequence[FieldMetrics]]) -> dict[str, Baseline]:
    """The baselines that closed windows (oldest first) established, per field: the
    first window whose field had bins, no PSI and at least ``MIN_BASELINE`` values."""
    found: dict[str, Baseline] = {}
    for fields in history:
        for f in fields:
            if f.name in found or not f.bins or f.psi is not None:
                continue
            if sum(f.counts) >= MIN_BASELINE:
                found[f.name] = Baseline(f.bins, f.counts)
    return found


class WindowAccumulator:
    """Everything one window of one partition needs, between its first record and its
    close."""

    def __init__(self, start_ms: int, end_ms: int) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.count = 0  # records counted (deletes included, duplicates not)
        self.rows = 0  # of which with a row image
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.duplicates = 0
        self.poisoned = 0
        self.tombstones = 0  # Kafka tombstones (no record: not in count)
        self.lag_sum = 0
        self.lag_max: int | None = None
        # identities seen: the window's own, or its partition's (``RecentIdentities``)
        self.seen: set[int] | RecentIdentities = set()
        # added since the last fold (appending is all ``add`` does: it runs per record)
        self.offsets: list[int] = []
        self.lags: list[int] = []
        self.pending: list[dict[str, Any]] = []
        self.fields: dict[str, FieldAccumulator] = {}
        self.fields_dropped: set[str] = set()  # past MAX_FIELDS: not measured
        # the folded record frames, kept when the stream takes snapshots (a list: the
        # monitor sets it; jobs/streams/snapshot.py writes them as the window's part)
        self.frames: list[pl.DataFrame] | None = None

    def add(
        self,
        values: dict[str, Any] | None,
        offset: int,
        event_ms: int,
        processing_ms: int,
        identity: int | None = None,
    ) -> bool:
        """Count one record; False (and counted as a duplicate) when ``identity`` was seen
        in this window already. ``values`` None: a record without a row image."""
        if identity is not None:
            if identity in self.seen:
                self.duplicates += 1
                return False
            self.seen.add(identity)
        self.offsets.append(offset)
        self.lags.append(processing_ms - event_ms)
        if values is not None:
            self.pending.append(values)
        return True

    def add_many(
        self,
        values: list[dict[str, Any] | None],
        offsets: list[int],
        event_ms: list[int],
        processing_ms: int,
        identities: list[int | None] | None = None,
    ) -> None:
        """``add`` for a micro-batch of records in offset order (list operations in C
        when there are no identities to check)."""
        if identities is not None:
            for row, offset, at, identity in zip(
                values, offsets, event_ms, identities, strict=True
            ):
                self.add(row, offset, at, processing_ms, identity)
            return
        self.offsets.extend(offsets)
        self.lags.extend([processing_ms - at for at in event_ms])
        if None in values:
            self.pending.extend([row for row in values if row is not None])
        else:
            self.pending.extend(values)  # type: ignore[arg-type]  # no None in it

    def fold(self) -> None:
        """Fold the records added since the last fold: counts, offsets and lags, and the
        rows into the per-field accumulators (one frame, three Polars selections)."""
        offsets, lags = self.offsets, self.lags
        if offsets:
            self.offsets, self.lags = [], []
            self.count += len(offsets)
            low, high, worst = min(offsets), max(offsets), max(lags)
            self.first_offset = low if self.first_offset is None else min(low, self.first_offset)
            self.last_offset = high if self.last_offset is None else max(high, self.last_offset)
            self.lag_max = worst if self.lag_max is None else max(worst, self.lag_max)
            self.lag_sum += sum(lags)
        rows = self.pending
        if not rows:
            return
        self.pending = []
        self.rows += len(rows)
        frame = frame_of(rows)
        if self.frames is not None:
            self.frames.append(frame)
        present = frame.select(pl.all().is_not_null())
        hashed = frame.select(pl.all().hash(HASH_SEED))
        for name, dtype in frame.schema.items():
            acc = self.fields.get(name)
            if acc is None:
                if len(self.fields) >= MAX_FIELDS:
                    self.fields_dropped.add(name)
                    continue
                acc = self.fields[name] = FieldAccumulator()
            mask = present.get_column(name).to_numpy()
            if not mask.any():
                continue
            kind = _kind(dtype)
            numbers = None
            if kind in ("int", "float"):
                column = frame.get_column(name)
                numbers = column.cast(pl.Float64).to_numpy()[mask]
            acc.fold(kind, hashed.get_column(name).to_numpy()[mask], numbers)

    def finish(
        self,
        baselines: Mapping[str, Baseline],
        previous: Sequence[FieldMetrics] | None = None,
    ) -> WindowMetrics:
        """The window's metrics; ``baselines``: the partition's (``baselines_from``),
        ``previous``: the fields of the partition's previous window (schema changes)."""
        self.fold()
        fields = tuple(
            self._field(name, acc, baselines.get(name)) for name, acc in sorted(self.fields.items())
        )
        changes = tuple(schema_changes(previous, fields, self.rows)) if previous else ()
        seconds = (self.end_ms - self.start_ms) / 1000.0
        return WindowMetrics(
            count=self.count,
            rate_per_second=self.count / seconds,
            first_offset=self.first_offset if self.first_offset is not None else 0,
            last_offset=self.last_offset if self.last_offset is not None else 0,
            fields=fields,
            schema_changes=changes,
            max_lag_seconds=self.lag_max / 1000.0 if self.lag_max is not None else None,
            mean_lag_seconds=self.lag_sum / self.count / 1000.0 if self.count else None,
            duplicates=self.duplicates,
            poisoned=self.poisoned,
            slot_lag_bytes=None,
            tombstones=self.tombstones,
        )

    def _field(self, name: str, acc: FieldAccumulator, baseline: Baseline | None) -> FieldMetrics:
        nulls = self.rows - acc.non_null
        kind = acc.kind()
        minimum = maximum = mean = stddev = psi_value = None
        bins: tuple[float, ...] = ()
        counts: tuple[int, ...] = ()
        if acc.numbers:
            values = np.concatenate(acc.numbers)
            minimum, maximum = float(values.min()), float(values.max())
            mean = float(values.mean())
            stddev = float(values.std(ddof=1)) if values.size > 1 else None
            if not all(map(math.isfinite, (minimum, maximum, mean))):
                minimum = maximum = mean = stddev = None  # an overflowing sum: no summary
            elif baseline is not None:
                bins = baseline.edges
                counts = histogram(values, bins)
                psi_value = psi(baseline.counts, counts)
            else:
                bins = edges_of(values)
                counts = histogram(values, bins)
        return FieldMetrics(
            name=name,
            type=kind,
            nulls=nulls,
            null_rate=nulls / self.rows if self.rows else 0.0,
            # an estimate never claims more distinct values than values seen
            distinct=min(hll_count(acc.registers), self.rows - nulls),
            hll=acc.registers.tobytes(),
            minimum=minimum,
            maximum=maximum,
            mean=mean,
            stddev=stddev,
            bins=bins,
            counts=counts,
            psi=psi_value,
        )


def schema_changes(
    previous: Sequence[FieldMetrics], current: Sequence[FieldMetrics], rows: int
) -> list[SchemaChange]:
    """The schema changes from the previous window's fields to this one's, by the
    detector file scans use (``jobs/quality/schema_change.py``): added, removed and
    retyped fields, and fields that gained nulls. A field that is null in every row of a
    window has no type to compare (it is not reported as retyped to or from "null")."""
    from datrix.jobs.quality.schema_change import ColumnProfile, detect_schema_changes

    if rows == 0:
        return []  # deletes only: no row image to compare

    def profiles(fields: Sequence[FieldMetrics], other: Sequence[FieldMetrics]) -> list[Any]:
        types = {f.name: f.type for f in other}
        out = []
        for f in fields:
            kind = f.type
            if kind == "null" and types.get(f.name) not in (None, "null"):
                kind = types[f.name]  # all null here: compare nullability only
            out.append(
                ColumnProfile(
                    name=f.name,
                    type=kind,
                    nullable=f.nulls > 0,
                    values=None,
                    fingerprint=(f.null_rate, 0.0),  # no content: never a rename
                )
            )
        return out

    return detect_schema_changes(profiles(previous, current), profiles(current, previous))
