"""The use cases of streams (issue 13), beside ``gateway/services.py``: register a Kafka
topic as a stream, list streams, read one's status, its closed windows (merged across the
topic's partitions) and its quality alerts, and remove it.

The CLI (``datrix streams ...``, ``gateway/cli_streams.py``) and the HTTP API
(``gateway/api/routes/streams.py``) call these and nothing else. Like the other use cases
they return dicts and lists, raise ``datrix.gateway.errors`` and never print.

Streams need Kafka mode: the monitor (a worker role) reads the data topics of a broker, so
on the embedded default registering one is refused in one line (reading is allowed: there
is nothing to read).

A window's view merges the partitions' windows of the same start: counts, duplicates and
dead-lettered records add up, a field's null rate is its nulls over the records of every
partition, its distinct count the estimate of the union of the partitions' HyperLogLog
sketches (their registers' maximum: the sketch of the union, not a sum that counts a value
seen on two partitions twice), min and max the extremes, the mean and standard deviation
those of the pooled values, PSI and lag the worst partition's.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from datrix.aggregates.stream import (
    FORMATS,
    MAX_GRACE_SECONDS,
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    START_FROM,
    RegisterStream,
    RemoveStream,
    StreamThresholds,
    name_problem,
    stream_id_for,
    thresholds_problem,
    topic_problem,
)
from datrix.gateway.errors import NotFound, UserInputError
from datrix.gateway.services import Runtime, _one_of, derived_id
from datrix.projections.read_models import streams as stream_views

if TYPE_CHECKING:
    import numpy as np

HLL_P = 10  # the monitor's sketches: datasketch HyperLogLog(p=10)
MAX_WINDOWS = 10_000  # windows one read returns, at most
KAFKA_ONLY = (
    "streams need Kafka mode (the stream monitor reads the topic from a broker): set "
    "DATRIX_KAFKA_BOOTSTRAP, e.g. after deploy/local/up"
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, what: str) -> float:
    """Seconds of a duration like ``30s``, ``1m``, ``1h``, ``1d``, ``500ms`` (a bare
    number: seconds); UserInputError naming ``what`` otherwise."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise UserInputError(f"{what}: {text!r} is not a duration; write e.g. 30s, 1m, 1h or 1d")
    return float(found.group(1)) * _UNIT_SECONDS[found.group(2) or "s"]


def whole_seconds(text: str, what: str, low: int, high: int) -> int:
    """A duration (``parse_duration``) in whole seconds from ``low`` to ``high``."""
    seconds = parse_duration(text, what)
    if seconds != int(seconds) or not low <= seconds <= high:
        raise UserInputError(
            f"{what}: {text!r} must be a whole number of seconds from {_shown(low)} to "
            f"{_shown(high)}"
        )
    return int(seconds)


def _shown(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class StreamSubmission:
    """A registration or removal handed in: the stream's id and the command's id
    (``services.await_command`` tells whether it was accepted)."""

    stream_id: uuid.UUID
    command_id: uuid.UUID


def check_registration(
    runtime: Runtime,
    *,
    topic: str,
    name: str,
    format: str,
    key_field: str | None,
    window_seconds: int,
    grace_seconds: int,
    snapshot_every_seconds: int | None,
    start_from: str,
    thresholds: StreamThresholds,
) -> RegisterStream:
    """The ``RegisterStream`` command of these settings, or UserInputError saying what is
    wrong (one line) for what a read can foresee: Kafka mode, the values, a name taken."""
    if runtime.settings.embedded:
        raise UserInputError(KAFKA_ONLY)
    name = name.strip()
    problem = name_problem(name) or topic_problem(topic) or thresholds_problem(thresholds)
    if problem is None and topic.startswith(runtime.settings.topic_prefix):
        problem = (
            f"topic {topic!r} is one of Datrix's own (prefix {runtime.settings.topic_prefix!r}); "
            "a stream watches a data topic"
        )
    if problem is None and format not in FORMATS:
        problem = f"format {format!r} is not one of {', '.join(FORMATS)}"
    if problem is None and start_from not in START_FROM:
        problem = f"start from {start_from!r}: choose {' or '.join(START_FROM)}"
    if problem is None and not MIN_WINDOW_SECONDS <= window_seconds <= MAX_WINDOW_SECONDS:
        problem = f"a window lasts from 1s to 1d, not {window_seconds}s"
    if problem is None and not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        problem = f"the grace period lasts from 0s to 1d, not {grace_seconds}s"
    if problem is None and snapshot_every_seconds is not None and snapshot_every_seconds < 1:
        problem = f"snapshots are taken every 1s or more, not {snapshot_every_seconds}s"
    if problem is None and key_field is not None and not key_field.strip():
        problem = "a key field needs a name"
    if problem is not None:
        raise UserInputError(problem)
    taken = stream_views.stream_row(runtime.read_store, runtime.settings.tenant, name)
    if taken is not None and taken["name"] == name:
        how = "was removed; its name stays taken" if taken["status"] == "removed" else "exists"
        raise UserInputError(f"a stream named {name!r} {how} ({taken['stream_id']})")
    return RegisterStream(
        stream_id=stream_id_for(runtime.settings.tenant, name),
        name=name,
        topic=topic,
        format=format,
        key_field=key_field.strip() if key_field is not None else None,
        window_seconds=window_seconds,
        grace_seconds=grace_seconds,
        snapshot_every_seconds=snapshot_every_seconds,
        start_from=start_from,
        thresholds=thresholds,
    )


def register_stream(
    runtime: Runtime,
    command: RegisterStream,
    *,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> StreamSubmission:
    """Submit a registration ``check_registration`` made; returns at once."""
    command_id = derived_id(idempotency, "register-stream")
    envelope = runtime.submit(command, command.stream_id, command_id=command_id, actor=actor)
    return StreamSubmission(command.stream_id, envelope.id)


def await_stream(runtime: Runtime, stream_id: uuid.UUID | str, timeout: float = 60.0) -> None:
    """Wait until the stream's row is projected (after its registration was accepted)."""
    runtime.await_processed(
        lambda: (
            stream_views.stream_row(runtime.read_store, runtime.settings.tenant, str(stream_id))
            is not None
        ),
        timeout=timeout,
    )


# ---- reading ---------------------------------------------------------------------------
def list_streams(runtime: Runtime, status: str | None = None) -> list[dict[str, Any]]:
    return stream_views.streams(runtime.read_store, runtime.settings.tenant, status)


def resolve_stream(runtime: Runtime, ref: str) -> dict[str, Any]:
    """The stream named ``ref``, or whose id is it or starts with it (unique)."""
    store, tenant = runtime.read_store, runtime.settings.tenant
    found = stream_views.stream_row(store, tenant, ref)
    if found is None:
        candidates = stream_views.stream_ids_starting(store, tenant, ref)
        if not candidates:
            raise NotFound(f"no stream named or with id {ref!r}")
        found = stream_views.stream_row(store, tenant, _one_of("stream", ref, candidates))
    if found is None:
        raise NotFound(f"no stream named or with id {ref!r}")
    return found


def stream_status(runtime: Runtime, ref: str) -> dict[str, Any]:
    """A stream's row, its latest merged window (None before the first) and its latest
    alert (None before the first)."""
    found = resolve_stream(runtime, ref)
    latest = windows(runtime, found["stream_id"], limit=1)
    alerts = stream_views.alerts(
        runtime.read_store, runtime.settings.tenant, found["stream_id"], limit=MAX_WINDOWS
    )
    return {
        **found,
        "health": "degraded" if found["degraded_partitions"] else "healthy",
        "latest_window": latest[0] if latest else None,
        "latest_alert": alerts[-1] if alerts else None,
    }


def windows(
    runtime: Runtime, stream_id: str, *, limit: int = 100, before: str | None = None
) -> list[dict[str, Any]]:
    """The newest ``limit`` windows of a stream (merged across partitions: ``merge``),
    oldest first; only those starting before ``before`` (a window start) when given."""
    if not 1 <= limit <= MAX_WINDOWS:
        raise UserInputError(f"a limit is from 1 to {MAX_WINDOWS:,}, not {limit}")
    store, tenant = runtime.read_store, runtime.settings.tenant
    starts = stream_views.window_starts(store, tenant, stream_id, limit=limit, before=before)
    if not starts:
        return []
    rows = stream_views.windows_between(store, tenant, stream_id, min(starts), max(starts))
    by_start: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_start.setdefault(str(row["window_start"]), []).append(row)
    return [merge(by_start[s]) for s in sorted(by_start)]


def alerts(runtime: Runtime, ref: str, after_seq: int = 0) -> tuple[str, list[dict[str, Any]]]:
    """(stream id, its alerts after number ``after_seq``, oldest first)."""
    found = resolve_stream(runtime, ref)
    rows = stream_views.alerts(
        runtime.read_store,
        runtime.settings.tenant,
        found["stream_id"],
        after_seq=after_seq,
        limit=MAX_WINDOWS,
    )
    return str(found["stream_id"]), rows


def remove_stream(
    runtime: Runtime,
    ref: str,
    reason: str | None = None,
    *,
    actor: str | None = None,
    idempotency: uuid.UUID | None = None,
) -> StreamSubmission:
    """Submit the removal of a stream (name, id or unique id prefix); the monitor stops
    reading its topic. UserInputError when it is removed already."""
    found = resolve_stream(runtime, ref)
    if found["status"] == "removed":
        raise UserInputError(f"stream {found['name']!r} is removed already")
    if reason is not None and (len(reason) > 1000 or not reason.isprintable()):
        raise UserInputError("a reason is printable text on one line, at most 1,000 characters")
    stream_id = uuid.UUID(str(found["stream_id"]))
    command_id = derived_id(idempotency, "remove-stream")
    envelope = runtime.submit(
        RemoveStream(stream_id=stream_id, reason=reason),
        stream_id,
        command_id=command_id,
        actor=actor,
    )
    return StreamSubmission(stream_id, envelope.id)


# ---- merging a window's partitions -----------------------------------------------------
def _registers(encoded: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
    import numpy as np  # only where windows merge

    raw = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8)
    if raw.size != 1 << HLL_P:
        raise ValueError(f"a HyperLogLog of {raw.size} registers, not {1 << HLL_P}")
    return raw


def distinct_of(sketches: list[str]) -> int:
    """The distinct count of the union of HyperLogLog sketches (base64 registers)."""
    import numpy as np

    merged = np.maximum.reduce([_registers(s) for s in sketches])
    from datasketch import HyperLogLog  # imports scipy (0.8 s): only where windows merge

    estimate: float = HyperLogLog(reg=merged.astype(np.int8)).count()
    return round(estimate)


def _field(parts: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """One field's metrics over partitions: (record count of the window, field metrics)."""
    total = sum(n for n, _ in parts)
    nulls = sum(int(f["nulls"]) for _, f in parts)
    types = sorted({str(f["type"]) for _, f in parts})
    numeric = [(n - int(f["nulls"]), f) for n, f in parts if f.get("mean") is not None]
    values = sum(n for n, _ in numeric)
    mean = stddev = None
    if values > 0:
        mean = sum(n * float(f["mean"]) for n, f in numeric) / values
        second = sum(
            n * (float(f["stddev"] or 0.0) ** 2 + float(f["mean"]) ** 2) for n, f in numeric
        )
        stddev = math.sqrt(max(second / values - mean * mean, 0.0))
    sketches = [str(f["hll"]) for _, f in parts if f.get("hll")]
    minima = [float(f["minimum"]) for _, f in parts if f.get("minimum") is not None]
    maxima = [float(f["maximum"]) for _, f in parts if f.get("maximum") is not None]
    psis = [float(f["psi"]) for _, f in parts if f.get("psi") is not None]
    return {
        "type": types[0] if len(types) == 1 else "/".join(types),
        "nulls": nulls,
        "null_rate": nulls / total if total else 0.0,
        # the union's estimate, never above the values seen (HyperLogLog errs both ways)
        "distinct": min(distinct_of(sketches), total - nulls) if sketches else 0,
        "minimum": min(minima) if minima else None,
        "maximum": max(maxima) if maxima else None,
        "mean": mean,
        "stddev": stddev,
        "psi": max(psis) if psis else None,
    }


def _worst(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def merge(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The windows of one start, one per partition (``stream_windows`` rows with their
    ``metrics``), as one window document (see the module's docstring)."""
    metrics = [r["metrics"] for r in rows]
    count = sum(int(m["count"]) for m in metrics)
    by_field: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for m in metrics:
        for f in m["fields"]:
            by_field.setdefault(str(f["name"]), []).append((int(m["count"]), f))
    fields = {name: _field(parts) for name, parts in sorted(by_field.items())}
    lags = [
        (int(m["count"]), float(m["mean_lag_seconds"]))
        for m in metrics
        if m.get("mean_lag_seconds") is not None
    ]
    lagged = sum(n for n, _ in lags)
    changes = []
    for r in rows:
        for change in r["metrics"].get("schema_changes", []):
            changes.append({"partition": int(r["partition_number"]), **change})
    return {
        "window_start": rows[0]["window_start"],
        "window_end": max(str(r["window_end"]) for r in rows),
        "partitions": sorted(int(r["partition_number"]) for r in rows),
        "count": count,
        "rate_per_second": sum(float(m["rate_per_second"]) for m in metrics),
        "null_rate": {name: f["null_rate"] for name, f in fields.items()},
        "distinct": {name: f["distinct"] for name, f in fields.items()},
        "psi": {name: f["psi"] for name, f in fields.items() if f["psi"] is not None},
        "fields": fields,
        "schema_changes": changes,
        "max_lag_seconds": _worst([m.get("max_lag_seconds") for m in metrics]),
        "mean_lag_seconds": (sum(n * lag for n, lag in lags) / lagged) if lagged else None,
        "duplicates": sum(int(m["duplicates"]) for m in metrics),
        "poisoned": sum(int(m["poisoned"]) for m in metrics),
        "tombstones": sum(int(m.get("tombstones", 0)) for m in metrics),
        "slot_lag_bytes": _worst([m.get("slot_lag_bytes") for m in metrics]),
        "window_ids": [str(r["window_id"]) for r in rows],
    }
