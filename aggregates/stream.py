"""The stream aggregate: a Kafka topic watched by the stream quality monitor.

A stream is registered once per tenant and name, under ``stream_id_for(tenant, name)``
(like datasets: a name whose stream was removed stays taken). Its settings say how the
monitor reads the topic (``format``, ``key_field``, ``start_from``), how it cuts windows
(tumbling windows of ``window_seconds`` by record time, closed ``grace_seconds`` after
their end on the clock), how often the records become a dataset version
(``snapshot_every_seconds``) and the quality thresholds a window is checked against.

The monitor reports each closed window of each topic partition with ``CloseStreamWindow``
(its id ``window_id_for(stream, partition, window start)``); the aggregate records it as
``StreamWindowClosed`` and checks the thresholds: a window that breaches one while its
partition was healthy also records ``StreamQualityDegraded`` (the breaches), a window that
breaches none while its partition was degraded records ``StreamQualityRecovered``. The
state keeps the degraded partitions, not the windows: the monitor submits a window's
command with ``command_id = window_id``, so the processor's command-id uniqueness drops a
window redelivered after a crash, and the aggregate never sees it twice.

A removed stream (``RemoveStream``) takes no windows or snapshots; windows of a stream
that was never registered (or is another tenant's) are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from datrix.aggregates.common import (
    AggregateSpec,
    Command,
    Event,
    Meta,
    Rejected,
    check_follows,
    next_version,
)

NAMESPACE = "datrix.stream"
FORMATS = ("json", "json-schema", "debezium", "avro-confluent")
START_FROM = ("earliest", "latest")
FIELD_TYPES = ("int", "float", "string", "bool", "null", "struct", "list")
CHANGE_KINDS = ("added", "removed", "renamed", "retyped", "nullability", "values")
MIN_WINDOW_SECONDS = 1
MAX_WINDOW_SECONDS = 86_400
MAX_GRACE_SECONDS = 86_400
MAX_NAME_LENGTH = 200
# Kafka's own rule for topic names (clients refuse others).
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
# Topics a stream may not watch: Kafka's internal ones and Datrix's own (the default
# prefix; the gateway checks the configured one), which hold every tenant's messages.
RESERVED_TOPIC_PREFIXES = ("__", "datrix.")

# What a breach names (``Breach.metric``), per threshold of ``StreamThresholds``.
METRIC_OF_THRESHOLD = {
    "max_null_rate": "null_rate",
    "max_lag_seconds": "lag_seconds",
    "max_psi": "psi",
    "max_duplicate_rate": "duplicate_rate",
    "max_slot_lag_bytes": "slot_lag_bytes",
    "min_records": "records",
}

# Fixed for ever: changing it would give existing names other ids.
STREAM_NAMESPACE = UUID("8d7c2b0e-61a4-4f0b-9c3e-2f5a7d1e4b93")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stream_id_for(tenant: str, name: str) -> UUID:
    """The id of the stream ``name`` (already stripped) of ``tenant``: deterministic, so two
    producers registering one name register one aggregate and one of them is refused."""
    return uuid5(STREAM_NAMESPACE, f"{tenant}/{name}")


def window_id_for(stream_id: UUID, partition: int, window_start_ms: int) -> UUID:
    """The id of one window of one topic partition (``window_start_ms``: its start in
    milliseconds since the epoch). A window recomputed after a crash gets the same id."""
    return uuid5(stream_id, f"window/{partition}/{window_start_ms}")


def epoch_ms(moment: datetime) -> int:
    """``moment`` (timezone-aware) in whole milliseconds since the epoch, exactly."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)


SNAPSHOT_JOB_KIND = "stream-snapshot"
SNAPSHOT_SOURCE_SCHEME = "datrix-stream://"


def snapshot_dataset_name(stream_name: str) -> str:
    """The name of the dataset a stream's snapshots are versions of."""
    return f"stream:{stream_name}"


def snapshot_dataset_id(tenant: str, stream_name: str) -> UUID:
    """The id of that dataset (``dataset_id_for`` of its name: registered by the policy
    ``stream-dataset`` when a stream with a snapshot period is registered)."""
    from datrix.aggregates.dataset import dataset_id_for

    return dataset_id_for(tenant, snapshot_dataset_name(stream_name))


def snapshot_job_id(stream_id: UUID, period_start: datetime) -> UUID:
    """The snapshot job of the period starting at ``period_start``: one per period."""
    return uuid5(stream_id, f"snapshot/{epoch_ms(period_start)}")


def snapshot_source_uri(stream_id: UUID, start: datetime, end: datetime) -> str:
    """The ``source_uri`` of the dataset version a snapshot adds: the stream and period
    (read back by ``parse_snapshot_source`` to record ``AddStreamSnapshot``)."""
    return f"{SNAPSHOT_SOURCE_SCHEME}{stream_id}/{epoch_ms(start)}-{epoch_ms(end)}"


def parse_snapshot_source(uri: str) -> tuple[UUID, datetime, datetime] | None:
    """(stream id, period start, period end) of a snapshot's ``source_uri``, else None."""
    if not uri.startswith(SNAPSHOT_SOURCE_SCHEME):
        return None
    try:
        stream, period = uri[len(SNAPSHOT_SOURCE_SCHEME) :].split("/", 1)
        start_ms, end_ms = (int(x) for x in period.split("-", 1))
        return (
            UUID(stream),
            _EPOCH + timedelta(milliseconds=start_ms),
            _EPOCH + timedelta(milliseconds=end_ms),
        )
    except ValueError:
        return None


# ---- value objects --------------------------------------------------------------------
@dataclass(frozen=True)
class StreamThresholds:
    """Limits a window is checked against; None = not checked."""

    max_null_rate: float | None = None  # any field's null rate in a window (0..1)
    max_lag_seconds: float | None = None  # freshness: max(processing time - event time)
    max_psi: float | None = None  # any numeric field's PSI vs the baseline window
    max_duplicate_rate: float | None = None  # duplicates / (count + duplicates)
    max_slot_lag_bytes: int | None = None  # Debezium replication slot lag
    min_records: int | None = None  # fewer records than this in a window


@dataclass(frozen=True)
class FieldMetrics:
    name: str
    type: str  # observed logical type: one of FIELD_TYPES
    nulls: int
    null_rate: float
    distinct: int  # HyperLogLog estimate
    hll: bytes  # datasketch HyperLogLog(p=10) registers (np.uint8 bytes): mergeable
    minimum: float | None  # numeric fields only
    maximum: float | None
    mean: float | None
    stddev: float | None
    bins: tuple[float, ...]  # numeric: histogram edges (baseline's edges reused), else ()
    counts: tuple[int, ...]  # numeric: counts per bin (len(bins) - 1 of them), else ()
    psi: float | None  # vs the baseline window of the same partition; None for the baseline


@dataclass(frozen=True)
class SchemaChange:
    """One change of a schema (a stream window's, or a dataset version's scan issue)."""

    kind: str  # one of CHANGE_KINDS
    column: str
    before: str | None  # type / name / nullability / value set, as text
    after: str | None
    detail: str  # one readable sentence


@dataclass(frozen=True)
class WindowMetrics:
    count: int
    rate_per_second: float
    first_offset: int
    last_offset: int
    fields: tuple[FieldMetrics, ...]
    schema_changes: tuple[SchemaChange, ...]  # vs the previous window of this partition
    max_lag_seconds: float | None  # freshness
    mean_lag_seconds: float | None
    duplicates: int  # deliveries dropped as duplicates (same key + source position)
    poisoned: int  # records sent to the dead-letter topic
    slot_lag_bytes: int | None  # Debezium only
    # Kafka tombstones (null values: a compacted topic's deletes) read in the window, by
    # their record timestamp; no record of the window (not in count)
    tombstones: int = 0


@dataclass(frozen=True)
class Breach:
    metric: str  # a value of METRIC_OF_THRESHOLD
    field: str | None  # the field, for per-field metrics (null rate, PSI)
    value: float
    limit: float


# ---- commands -------------------------------------------------------------------------
@dataclass(frozen=True)
class RegisterStream(Command):
    stream_id: UUID
    name: str
    topic: str
    format: str
    key_field: str | None
    window_seconds: int
    grace_seconds: int
    snapshot_every_seconds: int | None
    start_from: str
    thresholds: StreamThresholds


@dataclass(frozen=True)
class CloseStreamWindow(Command):
    stream_id: UUID
    window_id: UUID
    partition: int
    window_start: datetime
    window_end: datetime
    metrics: WindowMetrics
    # the window's decoded records as a Parquet object (content-addressed), for the
    # snapshot of its period; None: no snapshot period, no rows, or written before it existed
    records_uri: str | None = None
    # how many partitions the topic had when the window closed (0: not known); a snapshot
    # period waits for the windows of every one of them
    topic_partitions: int = 0


@dataclass(frozen=True)
class AddStreamSnapshot(Command):
    """The records of one snapshot period became ``version`` of dataset ``dataset_id``."""

    stream_id: UUID
    dataset_id: UUID
    version: int
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class MarkStreamPartitionQuiet(Command):
    """A caught-up partition with no open window has no record before ``until`` still to
    come (a later one is late): for snapshots, it has covered time up to ``until``."""

    stream_id: UUID
    partition: int
    until: datetime
    topic_partitions: int = 0


@dataclass(frozen=True)
class FailStreamSnapshot(Command):
    """The snapshot job of one period failed (the job kind's ``failed`` result)."""

    stream_id: UUID
    job_id: UUID
    error_type: str
    message: str


@dataclass(frozen=True)
class RemoveStream(Command):
    stream_id: UUID
    reason: str | None = None


# ---- events ---------------------------------------------------------------------------
class StreamRegistered(Event):
    stream_id: UUID
    tenant: str
    name: str
    topic: str
    format: str
    key_field: str | None
    window_seconds: int
    grace_seconds: int
    snapshot_every_seconds: int | None
    start_from: str
    thresholds: StreamThresholds


class StreamWindowClosed(Event):
    stream_id: UUID
    window_id: UUID
    partition: int
    window_start: datetime
    window_end: datetime
    metrics: WindowMetrics
    records_uri: str | None = None
    topic_partitions: int = 0


class StreamPartitionQuiet(Event):
    stream_id: UUID
    partition: int
    until: datetime
    topic_partitions: int


class StreamSnapshotRequested(Event):
    """The job (kind ``stream-snapshot``) that concatenates the window parts of one
    snapshot period into one Parquet and adds it as a version of ``dataset_id``."""

    stream_id: UUID
    job_id: UUID
    kind: str
    tenant: str
    name: str
    dataset_id: UUID
    window_start: datetime
    window_end: datetime
    parts: tuple[str, ...]  # the windows' records_uri, by window start then partition
    attempt: int


class StreamSnapshotFailed(Event):
    stream_id: UUID
    job_id: UUID
    error_type: str
    message: str


class StreamQualityDegraded(Event):
    stream_id: UUID
    window_id: UUID
    partition: int
    breaches: tuple[Breach, ...]


class StreamQualityRecovered(Event):
    stream_id: UUID
    window_id: UUID
    partition: int


class StreamSnapshotted(Event):
    stream_id: UUID
    dataset_id: UUID
    version: int
    window_start: datetime
    window_end: datetime


class StreamRemoved(Event):
    stream_id: UUID
    reason: str | None


# ---- state ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Stream:
    id: UUID
    version: int  # aggregate (event stream) version
    tenant: str
    name: str
    topic: str
    format: str
    key_field: str | None
    window_seconds: int
    grace_seconds: int
    snapshot_every_seconds: int | None
    start_from: str
    thresholds: StreamThresholds
    removed: bool = False
    degraded: frozenset[int] = frozenset()  # partitions whose last window breached
    windows: int = 0  # windows closed, all partitions
    records: int = 0  # records counted in them
    last_window_end: datetime | None = None
    last_snapshot_end: datetime | None = None
    # snapshots: each partition seen and the end of its latest closed window; the parts of
    # the windows not yet in a requested snapshot (window start, partition, records_uri);
    # the end of the last period requested (no part before it is taken any more)
    partition_ends: tuple[tuple[int, datetime], ...] = ()
    parts: tuple[tuple[datetime, int, str], ...] = ()
    snapshot_requested_end: datetime | None = None
    topic_partitions: int = 0  # the most the monitor reported (0: not known)


# ---- rules ----------------------------------------------------------------------------
def name_problem(name: str) -> str | None:
    """Why ``name`` (already stripped) cannot name a stream, or None when it can."""
    if not name:
        return "a stream needs a non-empty name"
    if len(name) > MAX_NAME_LENGTH:
        return f"a stream name has at most {MAX_NAME_LENGTH} characters, not {len(name):,}"
    if not name.isprintable():
        return "a stream name must be printable text on one line (no line breaks or controls)"
    return None


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be watched as a stream, or None when it can."""
    if topic in (".", "..") or not _TOPIC.fullmatch(topic):
        return (
            f"{topic!r} is not a Kafka topic name (1-249 letters, digits, '.', '_' or '-'; "
            "not '.' or '..')"
        )
    for prefix in RESERVED_TOPIC_PREFIXES:
        if topic.startswith(prefix):
            return (
                f"topic {topic!r} is internal (Kafka's or Datrix's own, prefix {prefix!r}); "
                "a stream watches a data topic"
            )
    return None


def _finite(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def thresholds_problem(t: StreamThresholds) -> str | None:
    """Why ``t`` is not a valid set of thresholds, or None when it is."""
    for f in fields(t):
        value = getattr(t, f.name)
        if value is None:
            continue
        if isinstance(value, bool) or not _finite(value):
            return f"threshold {f.name} must be a finite number, not {value!r}"
        if value < 0:
            return f"threshold {f.name} cannot be negative ({value})"
    for rate in ("max_null_rate", "max_duplicate_rate"):
        value = getattr(t, rate)
        if value is not None and value > 1:
            return f"threshold {rate} is a rate between 0 and 1, not {value}"
    return None


def registration_problem(command: RegisterStream) -> str | None:
    """Why ``command``'s settings cannot be registered, or None when they can (every check
    of ``decide`` but the name being taken and the id; the gateway can call it up front)."""
    problem = name_problem(command.name.strip()) or topic_problem(command.topic)
    if problem is not None:
        return problem
    if command.format not in FORMATS:
        return f"stream format {command.format!r} is not one of {', '.join(FORMATS)}"
    if command.start_from not in START_FROM:
        return f"a stream starts from {' or '.join(START_FROM)}, not {command.start_from!r}"
    if command.key_field is not None and not command.key_field.strip():
        return "a stream's key field, when given, needs a name"
    if not MIN_WINDOW_SECONDS <= command.window_seconds <= MAX_WINDOW_SECONDS:
        return (
            f"a stream window lasts 1 second to 1 day ({MAX_WINDOW_SECONDS:,} s), "
            f"not {command.window_seconds:,} s"
        )
    if not 0 <= command.grace_seconds <= MAX_GRACE_SECONDS:
        return (
            f"a window's grace period is 0 to {MAX_GRACE_SECONDS:,} s, "
            f"not {command.grace_seconds:,} s"
        )
    every = command.snapshot_every_seconds
    if every is not None and (every < command.window_seconds or every % command.window_seconds):
        return (
            f"snapshots are taken every whole number of windows ({command.window_seconds:,} s), "
            f"not every {every:,} s"
        )
    return thresholds_problem(command.thresholds)


def _field_problem(f: FieldMetrics) -> str | None:
    if f.type not in FIELD_TYPES:
        return f"field {f.name!r} has type {f.type!r}, not one of {', '.join(FIELD_TYPES)}"
    if f.nulls < 0 or f.distinct < 0 or any(c < 0 for c in f.counts):
        return f"field {f.name!r}: counts cannot be negative"
    if not (_finite(f.null_rate) and 0 <= f.null_rate <= 1):
        return f"field {f.name!r}: null rate {f.null_rate} is not between 0 and 1"
    numbers = (f.minimum, f.maximum, f.mean, f.stddev, f.psi, *f.bins)
    if any(v is not None and not _finite(v) for v in numbers):
        return f"field {f.name!r}: its summaries must be finite numbers"
    if f.psi is not None and f.psi < 0:
        return f"field {f.name!r}: PSI cannot be negative ({f.psi})"
    if f.bins and len(f.counts) != len(f.bins) - 1:
        return (
            f"field {f.name!r}: {len(f.bins)} histogram edges make {len(f.bins) - 1} bins, "
            f"but {len(f.counts)} counts were given"
        )
    if not f.bins and f.counts:
        return f"field {f.name!r}: histogram counts without edges"
    # Equal edges are allowed: a constant value of 1e17 or more has edges v - 0.5 == v + 0.5.
    if any(b > a for a, b in zip(f.bins[1:], f.bins, strict=False)):
        return f"field {f.name!r}: histogram edges cannot decrease"
    return None


def metrics_problem(m: WindowMetrics) -> str | None:
    """Why ``m`` cannot be a window's metrics, or None when it can."""
    if min(m.count, m.duplicates, m.poisoned, m.tombstones) < 0:
        return "record, duplicate, poisoned and tombstone counts cannot be negative"
    if not (_finite(m.rate_per_second) and m.rate_per_second >= 0):
        return f"a window's rate must be a non-negative number, not {m.rate_per_second}"
    if m.count > 0 and not 0 <= m.first_offset <= m.last_offset:
        return (
            f"a window's offsets run forwards from 0: first {m.first_offset}, last {m.last_offset}"
        )
    if m.slot_lag_bytes is not None and m.slot_lag_bytes < 0:
        return f"replication slot lag cannot be negative ({m.slot_lag_bytes} bytes)"
    for lag in (m.max_lag_seconds, m.mean_lag_seconds):
        if lag is not None and not _finite(lag):
            return "a window's lags must be finite numbers"
    names = [f.name for f in m.fields]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        return f"field {', '.join(map(repr, doubled))} is reported twice in one window"
    for f in m.fields:
        problem = _field_problem(f)
        if problem is not None:
            return problem
    for change in m.schema_changes:
        if change.kind not in CHANGE_KINDS:
            return (
                f"schema change {change.kind!r} of column {change.column!r} is not one of "
                + ", ".join(CHANGE_KINDS)
            )
    return None


def breaches(thresholds: StreamThresholds, m: WindowMetrics) -> tuple[Breach, ...]:
    """The thresholds a window's metrics break, in a fixed order (threshold, then field)."""
    found: list[Breach] = []
    t = thresholds
    if t.max_null_rate is not None:
        found += [
            Breach("null_rate", f.name, f.null_rate, t.max_null_rate)
            for f in m.fields
            if f.null_rate > t.max_null_rate
        ]
    lag = m.max_lag_seconds
    if t.max_lag_seconds is not None and lag is not None and lag > t.max_lag_seconds:
        found.append(Breach("lag_seconds", None, lag, t.max_lag_seconds))
    if t.max_psi is not None:
        found += [
            Breach("psi", f.name, f.psi, t.max_psi)
            for f in m.fields
            if f.psi is not None and f.psi > t.max_psi
        ]
    delivered = m.count + m.duplicates
    if t.max_duplicate_rate is not None and delivered > 0:
        rate = m.duplicates / delivered
        if rate > t.max_duplicate_rate:
            found.append(Breach("duplicate_rate", None, rate, t.max_duplicate_rate))
    slot, slot_limit = m.slot_lag_bytes, t.max_slot_lag_bytes
    if slot_limit is not None and slot is not None and slot > slot_limit:
        found.append(Breach("slot_lag_bytes", None, float(slot), float(slot_limit)))
    if t.min_records is not None and m.count < t.min_records:
        found.append(Breach("records", None, float(m.count), float(t.min_records)))
    return tuple(found)


def _aware(moment: datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


# ---- decide / evolve ------------------------------------------------------------------
def decide(command: Command, state: Stream | None, meta: Meta) -> list[Event]:
    if state is not None and state.tenant != meta.tenant:
        # Another tenant's stream answers as a missing one: its ids must not be probeable
        # (a registration under another tenant's id is then refused by the id check).
        state = None
    if isinstance(command, RegisterStream):
        return [_register(command, state, meta)]
    if state is None:
        raise Rejected(f"stream {getattr(command, 'stream_id', '?')} is not registered")
    at: dict[str, Any] = {
        "originator_id": state.id,
        "originator_version": next_version(state.version),
        "timestamp": meta.time,
        "stream_id": state.id,
    }
    if isinstance(command, RemoveStream):
        if state.removed:
            raise Rejected(f"stream {state.name!r} is already removed")
        return [StreamRemoved(**at, reason=command.reason)]
    if state.removed:
        raise Rejected(f"stream {state.name!r} was removed; it takes no windows or snapshots")
    if isinstance(command, CloseStreamWindow):
        return _close(command, state, meta, at)
    if isinstance(command, AddStreamSnapshot):
        return [_snapshot(command, state, at)]
    if isinstance(command, MarkStreamPartitionQuiet):
        return _quiet(command, state, meta, at)
    if isinstance(command, FailStreamSnapshot):
        return [
            StreamSnapshotFailed(
                **at,
                job_id=command.job_id,
                error_type=command.error_type,
                message=command.message,
            )
        ]
    raise Rejected(f"the stream aggregate does not handle {type(command).__name__}")


def _register(command: RegisterStream, state: Stream | None, meta: Meta) -> StreamRegistered:
    name = command.name.strip()
    if state is not None:
        if state.removed:
            raise Rejected(
                f"stream {state.name!r} was removed; its name cannot be registered again"
            )
        raise Rejected(f"stream {state.name!r} ({state.id}) is already registered")
    problem = registration_problem(command)
    if problem is not None:
        raise Rejected(problem)
    if command.stream_id != stream_id_for(meta.tenant, name):
        raise Rejected(
            f"stream id {command.stream_id} is not the id of the name {name!r}; "
            "register it as stream_id_for(tenant, name)"
        )
    return StreamRegistered(
        originator_id=command.stream_id,
        originator_version=1,
        timestamp=meta.time,
        stream_id=command.stream_id,
        tenant=meta.tenant,
        name=name,
        topic=command.topic,
        format=command.format,
        key_field=command.key_field.strip() if command.key_field is not None else None,
        window_seconds=command.window_seconds,
        grace_seconds=command.grace_seconds,
        snapshot_every_seconds=command.snapshot_every_seconds,
        start_from=command.start_from,
        thresholds=command.thresholds,
    )


def _close(
    command: CloseStreamWindow, state: Stream, meta: Meta, at: dict[str, Any]
) -> list[Event]:
    if command.partition < 0:
        raise Rejected(f"a topic partition is a number from 0, not {command.partition}")
    if not (_aware(command.window_start) and _aware(command.window_end)):
        raise Rejected("a window's start and end need a time zone")
    length = command.window_end - command.window_start
    if length != timedelta(seconds=state.window_seconds):
        raise Rejected(
            f"stream {state.name!r} has windows of {state.window_seconds:,} s; "
            f"{command.window_start.isoformat()} to {command.window_end.isoformat()} "
            f"lasts {length.total_seconds():,g} s"
        )
    expected = window_id_for(state.id, command.partition, epoch_ms(command.window_start))
    if command.window_id != expected:
        raise Rejected(
            f"window id {command.window_id} is not the id of partition {command.partition}'s "
            f"window at {command.window_start.isoformat()}; use window_id_for(stream, "
            "partition, window start in ms)"
        )
    problem = metrics_problem(command.metrics)
    if problem is not None:
        raise Rejected(f"window {command.window_id}: {problem}")
    events: list[Event] = [
        StreamWindowClosed(
            **at,
            window_id=command.window_id,
            partition=command.partition,
            window_start=command.window_start,
            window_end=command.window_end,
            metrics=command.metrics,
            records_uri=command.records_uri,
            topic_partitions=command.topic_partitions,
        )
    ]
    if command.topic_partitions < 0 or (
        command.topic_partitions and command.partition >= command.topic_partitions
    ):
        raise Rejected(
            f"window {command.window_id}: partition {command.partition} of a topic of "
            f"{command.topic_partitions} partitions"
        )
    if command.records_uri is not None and not command.records_uri.strip():
        raise Rejected(f"window {command.window_id}: an empty records URI (None: no records)")
    found = breaches(state.thresholds, command.metrics)
    after: dict[str, Any] = {
        "originator_id": state.id,
        "originator_version": next_version(at["originator_version"]),
        "timestamp": meta.time,
        "stream_id": state.id,
        "window_id": command.window_id,
        "partition": command.partition,
    }
    if found and command.partition not in state.degraded:
        events.append(StreamQualityDegraded(**after, breaches=found))
    elif not found and command.partition in state.degraded:
        events.append(StreamQualityRecovered(**after))
    events += _requests(evolve(state, events[0]), meta, events[-1].originator_version)
    return events


def _quiet(
    command: MarkStreamPartitionQuiet, state: Stream, meta: Meta, at: dict[str, Any]
) -> list[Event]:
    if state.snapshot_every_seconds is None:
        raise Rejected(f"stream {state.name!r} takes no snapshots (it has no snapshot period)")
    if command.partition < 0 or command.topic_partitions < 0:
        raise Rejected("partitions and partition counts are numbers from 0")
    if command.topic_partitions and command.partition >= command.topic_partitions:
        raise Rejected(
            f"partition {command.partition} of a topic of {command.topic_partitions} partitions"
        )
    if not _aware(command.until):
        raise Rejected("a quiet partition's time needs a time zone")
    known = dict(state.partition_ends).get(command.partition)
    if known is not None and command.until <= known:
        return []  # nothing new: the partition has covered that time already
    quiet = StreamPartitionQuiet(
        **at,
        partition=command.partition,
        until=command.until,
        topic_partitions=command.topic_partitions,
    )
    return [quiet, *_requests(evolve(state, quiet), meta, quiet.originator_version)]


def _requests(state: Stream, meta: Meta, version: int) -> list[Event]:
    """The snapshot jobs of the periods ``state`` has complete (events after ``version``)."""
    events: list[Event] = []
    for start, end, parts in due_snapshots(state):
        version = next_version(version)
        events.append(
            StreamSnapshotRequested(
                originator_id=state.id,
                originator_version=version,
                timestamp=meta.time,
                stream_id=state.id,
                job_id=snapshot_job_id(state.id, start),
                kind=SNAPSHOT_JOB_KIND,
                tenant=state.tenant,
                name=state.name,
                dataset_id=snapshot_dataset_id(state.tenant, state.name),
                window_start=start,
                window_end=end,
                parts=parts,
                attempt=1,
            )
        )
    return events


def due_snapshots(state: Stream) -> list[tuple[datetime, datetime, tuple[str, ...]]]:
    """The snapshot periods ``state`` has complete, oldest first: (start, end, parts).

    Periods are aligned to the epoch (``snapshot_every_seconds`` long). A period is complete
    when every partition of the topic (as many as the monitor reported; at least those
    seen) has closed a window ending at or after the period's end (a partition's windows
    close in time order, so all of its windows in the period are in). A period with no
    parts (no records) is no snapshot."""
    if state.snapshot_every_seconds is None or not state.parts or not state.partition_ends:
        return []
    ends = dict(state.partition_ends)
    if any(p not in ends for p in range(state.topic_partitions)):
        return []  # a partition has closed no window yet
    every = timedelta(seconds=state.snapshot_every_seconds)
    covered = min(ends.values())
    parts = sorted(state.parts)
    due = []
    while parts:
        offset = (parts[0][0] - _EPOCH) % every
        start = parts[0][0] - offset
        end = start + every
        if covered < end:
            break
        due.append((start, end, tuple(uri for at, _p, uri in parts if at < end)))
        parts = [p for p in parts if p[0] >= end]
    return due


def _snapshot(command: AddStreamSnapshot, state: Stream, at: dict[str, Any]) -> Event:
    if state.snapshot_every_seconds is None:
        raise Rejected(f"stream {state.name!r} takes no snapshots (it has no snapshot period)")
    if command.version < 1:
        raise Rejected(f"dataset versions are numbered from 1, not {command.version}")
    if not (_aware(command.window_start) and _aware(command.window_end)):
        raise Rejected("a snapshot's start and end need a time zone")
    if command.window_end <= command.window_start:
        raise Rejected("a snapshot period ends after it starts")
    last = state.last_snapshot_end
    if last is not None and command.window_start < last:
        raise Rejected(
            f"stream {state.name!r} is snapshotted up to {last.isoformat()}; a snapshot "
            f"from {command.window_start.isoformat()} would count records twice"
        )
    return StreamSnapshotted(
        **at,
        dataset_id=command.dataset_id,
        version=command.version,
        window_start=command.window_start,
        window_end=command.window_end,
    )


def evolve(state: Stream | None, event: Event) -> Stream:
    if isinstance(event, StreamRegistered):
        if state is not None:
            raise ValueError("StreamRegistered on an existing stream")
        return Stream(
            id=event.originator_id,
            version=1,
            tenant=event.tenant,
            name=event.name,
            topic=event.topic,
            format=event.format,
            key_field=event.key_field,
            window_seconds=event.window_seconds,
            grace_seconds=event.grace_seconds,
            snapshot_every_seconds=event.snapshot_every_seconds,
            start_from=event.start_from,
            thresholds=event.thresholds,
        )
    if state is None:
        raise ValueError(f"{type(event).__name__} before StreamRegistered")
    check_follows(state.version, event)
    version = event.originator_version
    if isinstance(event, StreamWindowClosed):
        last = state.last_window_end
        ends = dict(state.partition_ends)
        ends[event.partition] = max(ends.get(event.partition, event.window_end), event.window_end)
        parts = state.parts
        taken = state.snapshot_requested_end
        if (
            state.snapshot_every_seconds is not None
            and event.records_uri is not None
            and (taken is None or event.window_start >= taken)
        ):
            parts = (*parts, (event.window_start, event.partition, event.records_uri))
        return replace(
            state,
            version=version,
            windows=state.windows + 1,
            records=state.records + event.metrics.count,
            last_window_end=event.window_end if last is None else max(last, event.window_end),
            partition_ends=tuple(sorted(ends.items())),
            parts=parts,
            topic_partitions=max(state.topic_partitions, event.topic_partitions),
        )
    if isinstance(event, StreamPartitionQuiet):
        ends = dict(state.partition_ends)
        ends[event.partition] = max(ends.get(event.partition, event.until), event.until)
        return replace(
            state,
            version=version,
            partition_ends=tuple(sorted(ends.items())),
            topic_partitions=max(state.topic_partitions, event.topic_partitions),
        )
    if isinstance(event, StreamSnapshotRequested):
        return replace(
            state,
            version=version,
            parts=tuple(p for p in state.parts if p[0] >= event.window_end),
            snapshot_requested_end=event.window_end,
        )
    if isinstance(event, StreamSnapshotFailed):
        return replace(state, version=version)
    if isinstance(event, StreamQualityDegraded):
        return replace(state, version=version, degraded=state.degraded | {event.partition})
    if isinstance(event, StreamQualityRecovered):
        return replace(state, version=version, degraded=state.degraded - {event.partition})
    if isinstance(event, StreamSnapshotted):
        return replace(state, version=version, last_snapshot_end=event.window_end)
    if isinstance(event, StreamRemoved):
        return replace(state, version=version, removed=True)
    raise ValueError(f"the stream aggregate does not apply {type(event).__name__}")


def _decide(
    command: Command, state: Stream | None, meta: Meta, _: Mapping[str, Any]
) -> list[Event]:
    return decide(command, state, meta)


AGGREGATE = AggregateSpec(
    name="stream",
    namespace=NAMESPACE,
    commands=(
        RegisterStream,
        CloseStreamWindow,
        AddStreamSnapshot,
        MarkStreamPartitionQuiet,
        FailStreamSnapshot,
        RemoveStream,
    ),
    events=(
        StreamRegistered,
        StreamWindowClosed,
        StreamQualityDegraded,
        StreamQualityRecovered,
        StreamSnapshotted,
        StreamPartitionQuiet,
        StreamSnapshotRequested,
        StreamSnapshotFailed,
        StreamRemoved,
    ),
    id_field="stream_id",
    decide=_decide,
    evolve=evolve,
)
